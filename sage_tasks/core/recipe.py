"""What to build: a package, its pinned source, the archs it supports and how to check it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..environment import scripts
from . import archs, tomlfile
from .errors import ConfigError

_TOP = {"name", "package", "version", "description", "source", "build", "check", "known_bad"}
_KNOWN_BAD = {"arch", "reason", "evidence", "fixed_by", "use_instead"}
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
class KnownBad:
    """A (source, arch) pair known from evidence to fail the kernel gate."""

    arch: str
    reason: str
    evidence: tuple[str, ...] = ()
    fixed_by: str | None = None
    use_instead: str | None = None

    def describe(self) -> str:
        fixed = f"; fixed by {self.fixed_by}" if self.fixed_by else ""
        seen = f" (evidence: {', '.join(self.evidence)})" if self.evidence else ""
        return f"{self.reason}{fixed}{seen}"


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
    known_bad: tuple[KnownBad, ...] = ()

    def known_bad_on(self, ccs: tuple[str, ...]) -> list[KnownBad]:
        """The known failures of this recipe's pinned source on any of ``ccs`` (none once the
        source was overridden: the evidence is about the pinned commit)."""
        if self.source.commit is None:
            return []
        wanted = {archs.base_arch(cc) for cc in ccs}
        return [bad for bad in self.known_bad if bad.arch in wanted]

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
    return tomlfile.names_in(recipes_dir(manifests_dir))


# the kind of each [build] value (lists and tables: of what)
_BUILD_TYPES: dict[str, Any] = {
    "cuda": bool, "needs_torch": bool, "supported_archs": (list, str), "min_nvcc": (dict, str),
    "requires": (list, str), "extensions": int, "memory_per_job_gib": (int, float), "env": (dict, str),
}  # fmt: skip


def parse_recipe(data: dict[str, Any], path: Path) -> Recipe:
    where = str(path)
    tomlfile.check_keys(data, _TOP, where)
    source = data.get("source", {})
    build = data.get("build", {})
    check = data.get("check", {})
    tomlfile.check_keys(source, _SOURCE, f"[source] of {where}")
    tomlfile.check_keys(build, _BUILD, f"[build] of {where}")
    tomlfile.check_keys(check, _CHECK, f"[check] of {where}")
    for table, spot in ((source, "[source]"), (build, "[build]"), (check, "[check]")):
        if not isinstance(table, dict):
            raise ConfigError(f"{spot} of {where} must be a table", f"write {spot} as a TOML table")
    tomlfile.check_types(source, {"repo": str, "ref": str, "commit": str}, f"[source] of {where}")
    tomlfile.check_types(build, _BUILD_TYPES, f"[build] of {where}")
    tomlfile.check_types(check, {"builtin": str, "module": str}, f"[check] of {where}")
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
    known_bad = []
    for i, item in enumerate(data.get("known_bad", [])):
        spot = f"[[known_bad]] {i + 1} of {where}"
        if not isinstance(item, dict):
            raise ConfigError(f"{spot} must be a table")
        tomlfile.check_keys(item, _KNOWN_BAD, spot)
        known_bad.append(
            KnownBad(
                arch=archs.normalize_arch(tomlfile.require(item, "arch", str, spot)),
                reason=tomlfile.require(item, "reason", str, spot),
                evidence=tuple(str(e) for e in item.get("evidence", ())),
                fixed_by=item.get("fixed_by"),
                use_instead=item.get("use_instead"),
            )
        )
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
        known_bad=tuple(known_bad),
    )


def load_recipe(name_or_path: str, manifests_dir: Path) -> Recipe:
    path = tomlfile.find(name_or_path, recipes_dir(manifests_dir), "recipe")
    return parse_recipe(tomlfile.load(path), path)


def choose(
    explicit: Recipe | None, defaults: list[Recipe], ccs: tuple[str, ...], *, allow_known_bad: bool = False
) -> tuple[Recipe, str]:
    """Which recipe to build for a machine with GPUs of ``ccs`` (present or targeted), and why
    (pure). Without an explicit recipe: the first default whose source is not known to fail the
    kernel gate on any of them. A known-bad pair is only taken with ``allow_known_bad``."""
    where = ", ".join(sorted({archs.base_arch(cc) for cc in ccs})) or "no GPU arch"
    if explicit is not None:
        bad = explicit.known_bad_on(ccs)
        if not bad:
            return explicit, f"{explicit.name}, as asked"
        if allow_known_bad:
            return (
                explicit,
                f"{explicit.name} forced with --allow-known-bad although known to fail on {bad[0].arch} (the kernel gate still runs)",
            )
        instead = bad[0].use_instead or next((d.name for d in defaults if not d.known_bad_on(ccs)), None)
        raise ConfigError(
            f"{explicit.name} is known to fail the kernel gate on {bad[0].arch}: {bad[0].describe()}",
            (f"use --recipe {instead}, or " if instead else "")
            + "pass --allow-known-bad to build it anyway (the kernel gate still runs)",
        )
    skipped = []
    for candidate in defaults:
        bad = candidate.known_bad_on(ccs)
        if not bad:
            if not skipped:
                return candidate, f"{candidate.name}, the default (not known to fail on {where})"
            return candidate, f"{candidate.name}, because " + "; ".join(skipped)
        skipped.append(
            f"{candidate.name} is known to fail on {bad[0].arch} ({bad[0].reason.split(':')[0]}; "
            f"fixed by {bad[0].fixed_by or 'nothing yet'})"
        )
    if allow_known_bad and defaults:
        return defaults[
            0
        ], f"{defaults[0].name} forced with --allow-known-bad ({'; '.join(skipped)}; the kernel gate still runs)"
    raise ConfigError(
        f"no default recipe is free of known failures on {where}: {'; '.join(skipped) or 'no default recipes'}",
        "pass --recipe with a recipe that works there, or --allow-known-bad to build one anyway",
    )
