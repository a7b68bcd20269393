"""The build plan, decided up front from settings and the probed machine (pure).

Archs, nvcc and torch compatibility, the job counts, the environment and the pip command;
refuses early with what to do next.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.version import Version

from ...core import archs, redaction
from ...core.errors import ConfigError, EnvironmentProblem, MachineError
from ...core.recipe import Recipe
from ...core.settings import Settings
from ..probe import Machine, Program

MEMORY_HEADROOM = 0.8  # leave a fifth of the available memory to the rest of the machine


@dataclass(frozen=True)
class Parallelism:
    max_jobs: int
    ext_parallel: int
    reason: str


@dataclass(frozen=True)
class BuildPlan:
    recipe: Recipe
    python: str
    archs: tuple[str, ...]
    source_kind: str  # "git", "dir" or "tarball"
    source: str
    ref: str | None
    commit: str | None
    work_dir: Path
    dist_dir: Path
    log_path: Path
    label: str | None
    parallel: Parallelism
    env: Mapping[str, str]
    missing_requires: tuple[str, ...]
    nvcc: Program | None
    torch_version: str | None
    torch_cuda: str | None
    torch_cxx11_abi: bool | None
    stack_versions: Mapping[str, str | None] = field(default_factory=dict)
    torch_index_url: str | None = None
    timeout_s: float | None = None  # the compile step is stopped (its whole process tree) after this

    @property
    def src_dir(self) -> Path:
        return self.work_dir / "src"

    @property
    def out_dir(self) -> Path:
        return self.work_dir / "out"

    def pip_wheel_command(self) -> list[str]:
        return [
            self.python, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps",
            "--disable-pip-version-check", "-v", "--wheel-dir", str(self.out_dir), str(self.src_dir),
        ]  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe.name,
            "python": self.python,
            "archs": list(self.archs),
            "source": {"kind": self.source_kind, "location": self.source, "ref": self.ref, "commit": self.commit},
            "work_dir": str(self.work_dir),
            "dist_dir": str(self.dist_dir),
            "log": str(self.log_path),
            "label": self.label,
            "max_jobs": self.parallel.max_jobs,
            "ext_parallel": self.parallel.ext_parallel,
            "parallelism": self.parallel.reason,
            "env": dict(self.env),
            "install_first": list(self.missing_requires),
            "nvcc": self.nvcc.version if self.nvcc else None,
            "command": self.pip_wheel_command(),
        }


def size_jobs(
    cores: int,
    mem_available_mib: int | None,
    recipe: Recipe,
    max_jobs: int | None = None,
    ext_parallel: int | None = None,
) -> Parallelism:
    """How many compiler processes may run at once, from cores *and* free memory.

    Extensions build side by side (``EXT_PARALLEL``), each running ``MAX_JOBS`` compiler
    jobs; their product is the number of compilers at once. Memory bounds it hard (a job that
    does not fit kills the build); cores bound it softly, at two jobs per core (nvcc jobs wait
    on I/O and on each other; more than that only adds memory).
    """
    per_job = max(recipe.memory_per_job_gib, 0.25) * 1024
    by_cores = max(1, 2 * cores)
    if mem_available_mib:
        by_memory = max(1, int(mem_available_mib * MEMORY_HEADROOM // per_job))
        memo = f"{mem_available_mib / 1024:.0f} GiB available / {recipe.memory_per_job_gib:g} GiB per job = {by_memory}"
    else:
        by_memory, memo = by_cores, "memory unknown"
    budget = min(by_memory, by_cores)
    ext = ext_parallel or max(1, min(recipe.extensions, budget))
    jobs = max_jobs or max(1, budget // ext)
    reason = f"{cores} cores (at most {by_cores} jobs), {memo} → {budget} compiler jobs at once"
    overrides = [name for name, value in (("MAX_JOBS", max_jobs), ("EXT_PARALLEL", ext_parallel)) if value]
    if overrides:
        reason += f"; {' and '.join(overrides)} from the environment"
    return Parallelism(max_jobs=jobs, ext_parallel=ext, reason=reason)


def _missing_requires(requires: tuple[str, ...], packages: Mapping[str, str | None]) -> tuple[str, ...]:
    missing = []
    for text in requires:
        req = Requirement(text)
        have = packages.get(req.name)
        if have is None or (req.specifier and not req.specifier.contains(Version(have), prereleases=True)):
            missing.append(text)
    return tuple(missing)


def _source(settings: Settings) -> tuple[str, str]:
    if settings.source:
        path = Path(settings.source).expanduser()
        if path.is_dir():
            return "dir", str(path.absolute())
        if path.is_file() and tarfile.is_tarfile(path):
            return "tarball", str(path.absolute())
        raise ConfigError(
            f"--source {settings.source} is neither a directory nor a tarball", "pass a source checkout or .tar.gz"
        )
    if not settings.recipe.source.repo or not (settings.recipe.source.ref or settings.recipe.source.commit):
        raise ConfigError(f"recipe {settings.recipe.name} names no source repository", "pass --source PATH")
    return "git", settings.recipe.source.repo


def _check_toolchain(recipe: Recipe, wanted: tuple[str, ...], machine: Machine) -> None:
    nvcc = machine.nvcc
    if nvcc is None:
        needed = max((recipe.min_nvcc.get(archs.base_arch(a), "12.0") for a in wanted), key=Version)
        raise MachineError(
            "nvcc was not found (CUDA_HOME, PATH, /usr/local/cuda)",
            f"install a CUDA toolkit >= {needed} matching torch's CUDA, or set CUDA_HOME",
        )
    for arch in wanted:
        needed = recipe.min_nvcc.get(archs.base_arch(arch))
        if needed and Version(nvcc.version) < Version(needed):
            raise MachineError(
                f"nvcc {nvcc.version} cannot compile for compute capability {arch}: it needs CUDA {needed} or newer",
                f"install CUDA toolkit >= {needed} and point CUDA_HOME at it",
            )
    torch_cuda = machine.target.torch_cuda
    if not torch_cuda:
        raise MachineError(
            f"torch {machine.target.version_of('torch')} in {machine.target.python} is a CPU build",
            "a CUDA extension needs a CUDA build of torch: run `invoke pin`",
        )
    if archs.cuda_tuple(torch_cuda)[0] != archs.cuda_tuple(nvcc.version)[0]:
        raise MachineError(
            f"nvcc is CUDA {nvcc.version} but torch was built with CUDA {torch_cuda}: major versions must match",
            f"install CUDA toolkit {archs.cuda_tuple(torch_cuda)[0]}.x and set CUDA_HOME, or pin a torch built for CUDA {nvcc.version}",
        )


def plan_build(
    settings: Settings,
    machine: Machine,
    *,
    index_url: str | None = None,
    started: dt.datetime | None = None,
) -> BuildPlan:
    """Everything the build will do, decided up front; refuses early with what to do next."""
    recipe, target = settings.recipe, machine.target
    torch_version = target.version_of("torch")
    if recipe.needs_torch and torch_version is None:
        raise EnvironmentProblem(
            f"torch is not installed in {target.python}, and {recipe.name} builds against it",
            "run `invoke pin` (or install torch) first",
        )
    wanted: tuple[str, ...] = ()
    nvcc = None
    if recipe.cuda:
        wanted = settings.arch or machine.compute_capabilities
        if not wanted:
            raise MachineError(
                "no GPU was found and no arch was named",
                "pass --arch (e.g. --arch 12.0 to cross-compile for an RTX 5090) or set TORCH_CUDA_ARCH_LIST",
            )
        recipe.check_archs(wanted)
        _check_toolchain(recipe, wanted, machine)
        nvcc = machine.nvcc
    kind, location = _source(settings)
    key_text = (
        recipe.source.commit if kind == "git" and recipe.source.commit else f"{kind}:{location}:{recipe.source.ref}"
    )
    key = hashlib.sha256(key_text.encode()).hexdigest()[:12]
    work_dir = settings.cache_dir / "build" / f"{recipe.name}-{key}"
    stamp = (started or dt.datetime.now(dt.UTC)).strftime("%Y%m%d-%H%M%S")
    parallel = size_jobs(machine.cpu_count, machine.mem_available_mib, recipe, settings.max_jobs, settings.ext_parallel)
    env = {"MAX_JOBS": str(parallel.max_jobs), "EXT_PARALLEL": str(parallel.ext_parallel), **recipe.env}
    if recipe.cuda and nvcc is not None:
        env["TORCH_CUDA_ARCH_LIST"] = ";".join(wanted)
        env["CUDA_HOME"] = str(Path(nvcc.path).parent.parent)
    label = variant_label(recipe, torch_version, target.torch_cuda, wanted)
    return BuildPlan(
        recipe=recipe,
        python=target.python,
        archs=wanted,
        source_kind=kind,
        source=location,
        ref=recipe.source.ref if kind == "git" else None,
        commit=recipe.source.commit if kind == "git" else None,
        work_dir=work_dir,
        dist_dir=settings.dist_dir,
        log_path=settings.cache_dir / "logs" / f"build-{recipe.name}-{stamp}.log",
        label=label,
        parallel=parallel,
        env=env,
        missing_requires=_missing_requires(recipe.requires, target.packages),
        nvcc=nvcc,
        torch_version=torch_version,
        torch_cuda=target.torch_cuda,
        torch_cxx11_abi=target.torch_cxx11_abi,
        stack_versions={p: target.version_of(p) for p in ("torchvision", "torchaudio", "triton")},
        torch_index_url=index_url,
        timeout_s=settings.build_timeout,
    )


def variant_label(
    recipe: Recipe, torch_version: str | None, torch_cuda: str | None, built_for: tuple[str, ...]
) -> str | None:
    """The PEP 440 local label that keeps variants apart: torch and its CUDA, the GPU archs the
    binaries are built for, and the commit when the recipe pins one that is not a release.

    ``cu128torch2.8.0.sm120``; ``cu130torch2.11.0.sm90.gd1a57a5``. Two builds that differ in any
    of these never share a wheel file name in a store.
    """
    if not torch_version:
        return None
    label = archs.wheel_local_label(torch_version, torch_cuda)
    for arch in built_for:
        label += f".sm{archs.sm_number(arch)}"
    if recipe.source.commit and not recipe.source.ref:
        label += f".g{recipe.source.commit[:7]}"
    return label


def build_environment(plan: BuildPlan, base: Mapping[str, str]) -> dict[str, str]:
    """The build's environment: the caller's, the plan's additions, and the target's bin first on PATH."""
    env = redaction.without_secrets(base)  # third-party build code never sees our tokens
    env.update(plan.env)
    first = [str(Path(plan.python).parent)]
    if plan.nvcc is not None:
        first.append(str(Path(plan.nvcc.path).parent))
    env["PATH"] = os.pathsep.join([*first, env.get("PATH", "")])
    env.pop("PIP_REQUIRE_VIRTUALENV", None)
    return env
