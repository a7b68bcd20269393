"""What to build: a package, its pinned source, the archs it supports and how to check it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import archs, scripts, tomlfile
from .errors import ConfigError

_TOP = {"name", "package", "version", "description", "source", "build", "check"}
_SOURCE = {"repo", "ref", "commit"}
_BUILD = {
    "cuda", "needs_torch", "supported_archs", "min_nvcc", "requires", "extensions",
    "memory_per_job_gib", "env",
}  # fmt: skip
_CHECK = {"builtin", "module"}
BUILTIN_CHECKS = ("kernel_check",)


@dataclass(frozen=True)
class Source:
    repo: str | None
    ref: str | None
    commit: str | None


@dataclass(frozen=True)
class Check:
    builtin: str | None = None
    module: str | None = None

    def command(self, python: str, cache_dir: Path) -> list[str]:
        """How the check runs inside the target interpreter (which lacks sage-tasks)."""
        if self.builtin:
            return [python, str(scripts.path(self.builtin, cache_dir))]
        assert self.module
        return [python, "-m", self.module]


@dataclass(frozen=True)
class Recipe:
    name: str
    package: str
    version: str
    source: Source
    check: Check
    path: Path
    description: str = ""
    cuda: bool = True
    needs_torch: bool = True
    supported_archs: tuple[str, ...] = ()
    min_nvcc: dict[str, str] = field(default_factory=dict)
    requires: tuple[str, ...] = ()
    extensions: int = 1
    memory_per_job_gib: float = 2.0
    env: dict[str, str] = field(default_factory=dict)

    def check_archs(self, wanted: tuple[str, ...]) -> None:
        """Refuse archs this recipe cannot build, naming the ones it can."""
        if not self.cuda:
            return
        for arch in wanted:
            if archs.base_arch(arch) not in self.supported_archs:
                raise ConfigError(
                    f"{self.name} cannot be built for arch {arch}",
                    f"choose from {', '.join(self.supported_archs)} (--arch)",
                )


def recipes_dir(manifests_dir: Path) -> Path:
    return manifests_dir / "recipes"


def known_recipes(manifests_dir: Path) -> list[str]:
    return sorted(p.stem for p in recipes_dir(manifests_dir).glob("*.toml"))


def _resolve(name_or_path: str, manifests_dir: Path) -> Path:
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml" or "/" in name_or_path:
        if not candidate.is_file():
            raise ConfigError(
                f"recipe file {name_or_path} does not exist", "pass a recipe name or an existing .toml path"
            )
        return candidate
    path = recipes_dir(manifests_dir) / f"{name_or_path}.toml"
    if not path.is_file():
        raise ConfigError(
            f"unknown recipe '{name_or_path}'",
            tomlfile.did_you_mean(name_or_path, known_recipes(manifests_dir)) + " (or a path to a recipe .toml)",
        )
    return path


def parse_recipe(data: dict[str, Any], path: Path) -> Recipe:
    where = str(path)
    tomlfile.check_keys(data, _TOP, where)
    source = data.get("source", {})
    build = data.get("build", {})
    check = data.get("check", {})
    tomlfile.check_keys(source, _SOURCE, f"[source] of {where}")
    tomlfile.check_keys(build, _BUILD, f"[build] of {where}")
    tomlfile.check_keys(check, _CHECK, f"[check] of {where}")
    commit = source.get("commit")
    if commit is not None and not re.fullmatch(r"[0-9a-f]{40}", commit):
        raise ConfigError(f"[source] commit in {where} must be a full 40-hex git commit")
    if bool(check.get("builtin")) == bool(check.get("module")):
        raise ConfigError(f"[check] in {where} needs exactly one of 'builtin' or 'module'")
    if check.get("builtin") and check["builtin"] not in BUILTIN_CHECKS:
        raise ConfigError(
            f"unknown builtin check '{check['builtin']}' in {where}",
            tomlfile.did_you_mean(check["builtin"], BUILTIN_CHECKS),
        )
    supported = tuple(archs.normalize_arch(a) for a in build.get("supported_archs", []))
    return Recipe(
        name=tomlfile.require(data, "name", str, where),
        package=tomlfile.require(data, "package", str, where),
        version=tomlfile.require(data, "version", str, where),
        description=data.get("description", ""),
        source=Source(repo=source.get("repo"), ref=source.get("ref"), commit=commit),
        check=Check(builtin=check.get("builtin"), module=check.get("module")),
        path=path,
        cuda=bool(build.get("cuda", True)),
        needs_torch=bool(build.get("needs_torch", True)),
        supported_archs=supported,
        min_nvcc={archs.normalize_arch(k): str(v) for k, v in build.get("min_nvcc", {}).items()},
        requires=tuple(build.get("requires", ())),
        extensions=int(build.get("extensions", 1)),
        memory_per_job_gib=float(build.get("memory_per_job_gib", 2.0)),
        env={str(k): str(v) for k, v in build.get("env", {}).items()},
    )


def load_recipe(name_or_path: str, manifests_dir: Path) -> Recipe:
    path = _resolve(name_or_path, manifests_dir)
    return parse_recipe(tomlfile.load(path), path)
