"""Build a recipe's wheel from source: plan (pure), then execute.

``plan_build`` decides everything from settings and the probed machine — archs, nvcc and
torch compatibility, job counts, environment, the pip command — and refuses early with a
clear error. ``execute`` prepares the source (a verified git checkout at the pinned commit, a
local directory or a tarball) in a persistent work tree, so that a re-run after an interrupted
or failed build reuses the finished objects; then it runs ``pip wheel --no-build-isolation
--no-deps`` in the target interpreter, labels the wheel with torch and its CUDA, checks its
binaries and writes its manifest.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import logging
import os
import re
import shutil
import socket
import tarfile
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.version import Version

from ..core import archs, atomic, redaction, runner
from ..core import log as logsetup
from ..core.errors import BuildError, ConfigError, EnvironmentProblem, IntegrityError, MachineError
from ..core.recipe import Recipe
from ..core.settings import Settings
from ..store import manifest
from ..store.manifest import Verification, WheelManifest
from ..wheel import binaries, wheelfile
from .probe import Machine, Program

log = logging.getLogger(__name__)

# Folders a build writes into its source tree: kept between runs, never copied from a source.
BUILD_OUTPUTS = ("build", "dist", ".eggs")
SKIP_COPY = (".git", "__pycache__", *BUILD_OUTPUTS)
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


@dataclass(frozen=True)
class BuildResult:
    wheel: Path
    manifest_path: Path
    entry: WheelManifest
    seconds: float
    log_path: Path
    plan: BuildPlan

    def to_dict(self) -> dict[str, Any]:
        return {
            "wheel": str(self.wheel),
            "manifest": str(self.manifest_path),
            "seconds": self.seconds,
            "log": str(self.log_path),
            "cuda_archs": list(self.entry.cuda_archs),
            "binaries": self.entry.binaries,
            "plan": self.plan.to_dict(),
        }


# ---------------------------------------------------------------- pure decisions


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


def source_suffix(recipe: Recipe, source: Mapping[str, Any], tree: Path) -> str:
    """What the label must add when the source is not the recipe's pinned, clean commit:
    ``.g<commit>`` for another commit, ``.s<content hash>`` for an unversioned or modified tree."""
    commit = source.get("commit")
    if commit and commit == recipe.source.commit and not source.get("dirty"):
        return ""
    if commit and not source.get("dirty"):
        return f".g{commit[:7]}"
    digest = hashlib.sha256()
    for path in sorted(p for p in tree.rglob("*") if p.is_file() and not _skipped(p.relative_to(tree))):
        digest.update(str(path.relative_to(tree)).encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return f".s{digest.hexdigest()[:7]}"


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


# ---------------------------------------------------------------- source preparation


@contextmanager
def _locked(work_dir: Path):
    work_dir.mkdir(parents=True, exist_ok=True)
    with (work_dir / ".lock").open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("another build is using %s; waiting for it", work_dir)
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield handle


def _git(args: list[str], cwd: Path | None = None, env: Mapping[str, str] | None = None) -> str:
    done = runner.run(
        ["git", *args], cwd=cwd, env=env, error=BuildError, hint="check the repository URL and your network"
    )
    return done.stdout.strip()


def _head(path: Path) -> str | None:
    if not (path / ".git").exists():
        return None
    done = runner.run(["git", "-C", str(path), "rev-parse", "HEAD"], check=False, echo=False)
    return done.stdout.strip() if done.returncode == 0 else None


def clone_verified(repo: str, ref: str | None, commit: str | None, dest: Path, env: Mapping[str, str]) -> str:
    """Clone ``ref`` of ``repo`` into ``dest``; the commit it resolves to must be ``commit``.

    Without a ref (or with the commit as ref) the commit itself is fetched: nothing can move.
    """
    quiet = {**env, "GIT_TERMINAL_PROMPT": "0"}
    if commit and ref in (None, commit):
        dest.mkdir(parents=True)
        _git(["init", "-q", str(dest)], env=quiet)
        _git(["-C", str(dest), "fetch", "-q", "--depth", "1", repo, commit], env=quiet)
        _git(
            ["-C", str(dest), "-c", "advice.detachedHead=false", "checkout", "-q", "--detach", "FETCH_HEAD"], env=quiet
        )
    elif ref:
        _git(["-c", "advice.detachedHead=false", "clone", "--depth", "1", "--branch", ref, repo, str(dest)], env=quiet)
    else:
        raise ConfigError(f"no ref and no commit to fetch from {repo}", "set [source] ref or commit in the recipe")
    got = _head(dest) or ""
    if commit and got != commit:
        shutil.rmtree(dest, ignore_errors=True)
        raise IntegrityError(
            f"{ref} of {repo} is now commit {got}, but the recipe pins {commit}: the ref moved",
            "check upstream; if the new commit is wanted, update the recipe's commit",
        )
    return got


def checkout(plan: BuildPlan, env: Mapping[str, str]) -> str:
    """A verified clone of the pinned ref in ``src_dir`` (reused when already at the commit)."""
    current = _head(plan.src_dir)
    if current and plan.commit and current == plan.commit:
        log.info("reusing checkout %s at %s", plan.src_dir, current[:12])
        return current
    fresh = plan.work_dir / "src.new"
    shutil.rmtree(fresh, ignore_errors=True)
    got = clone_verified(plan.source, plan.ref, plan.commit, fresh, env)
    if plan.src_dir.exists():
        shutil.rmtree(plan.src_dir)  # build outputs of other sources must not leak into this one
    fresh.rename(plan.src_dir)
    return got


def export_source(settings: Settings, dest: Path) -> str:
    """Clone the recipe's pinned ref into ``dest`` and verify its commit; returns the commit."""
    recipe = settings.recipe
    if dest.exists():
        raise ConfigError(f"{dest} already exists", "choose a new folder")
    if not recipe.source.repo:
        raise ConfigError(f"recipe {recipe.name} names no source repository")
    return clone_verified(recipe.source.repo, recipe.source.ref, recipe.source.commit, dest, settings.env)


def _skipped(relative: Path) -> bool:
    return relative.parts[0] in SKIP_COPY or relative.parts[0].endswith(".egg-info") or "__pycache__" in relative.parts


def _same_content(a: Path, b: Path) -> bool:
    if a.stat().st_size != b.stat().st_size:
        return False
    with atomic.open_regular(a) as fa, atomic.open_regular(b) as fb:
        while True:
            block = fa.read(1 << 20)
            if block != fb.read(1 << 20):
                return False
            if not block:
                return True


def sync_tree(src: Path, dest: Path) -> int:
    """Make ``dest`` hold ``src``'s files, copying only the ones whose *content* changed.

    Unchanged files keep their old modification time, so an incremental build reuses their
    objects; a changed file gets the current time, whatever time the source file carries (a
    checkout, an archive or an editor can give new content an old mtime: comparing mtimes then
    shipped a stale binary). Build outputs in ``dest`` stay."""
    copied = 0
    wanted: set[Path] = set()
    for path in sorted(src.rglob("*")):
        relative = path.relative_to(src)
        if _skipped(relative) or path.is_dir() or (path.is_symlink() and not path.exists()):
            continue
        wanted.add(relative)
        target = dest / relative
        if target.is_file() and _same_content(path, target):
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.unlink(missing_ok=True)
        shutil.copyfile(path, target)  # the copy's mtime is now: newer than every object built before
        shutil.copymode(path, target)
        copied += 1
    if dest.exists():
        for path in sorted(dest.rglob("*"), reverse=True):
            relative = path.relative_to(dest)
            if _skipped(relative):
                continue
            if path.is_file() and relative not in wanted:
                path.unlink()
    return copied


def unpack(tarball: Path, into: Path) -> Path:
    """Extract safely (no absolute paths, links out or devices); strip one top-level folder."""
    shutil.rmtree(into, ignore_errors=True)
    into.mkdir(parents=True)
    with tarfile.open(tarball) as archive:
        archive.extractall(into, filter="data")
    entries = list(into.iterdir())
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else into


def prepare_source(plan: BuildPlan, env: Mapping[str, str]) -> dict[str, Any]:
    """Put the source into ``src_dir``; returns the manifest's ``source`` record."""
    recipe = plan.recipe
    if plan.source_kind == "git":
        commit = checkout(plan, env)
        return {"repo": plan.source, "ref": plan.ref, "commit": commit or None, "path": None}
    origin = Path(plan.source)
    if plan.source_kind == "tarball":
        origin = unpack(origin, plan.work_dir / "unpacked")
    copied = sync_tree(origin, plan.src_dir)
    log.info("source %s: %d file(s) changed since the last build", plan.source, copied)
    commit = _head(Path(plan.source)) if plan.source_kind == "dir" else None
    dirty = bool(commit) and bool(
        runner.run(["git", "-C", plan.source, "status", "--porcelain"], check=False, echo=False).stdout.strip()
    )
    if commit and recipe.source.commit and commit != recipe.source.commit:
        log.warning(
            "source %s is at commit %s, the recipe pins %s (recorded as built)",
            plan.source,
            commit[:12],
            recipe.source.commit[:12],
        )
    return {
        "repo": recipe.source.repo,
        "ref": recipe.source.ref if commit == recipe.source.commit and not dirty else None,
        "commit": commit,
        "dirty": dirty,
        "path": plan.source,
    }


# ---------------------------------------------------------------- execution


class _Progress:
    """Turns compiler output into short progress lines: ``[3/14] qk_int_sv_f8_cuda_sm90.cu``."""

    NINJA = re.compile(r"^\[(\d+)/(\d+)\]\s+(.*)$")
    SOURCE = re.compile(r"(?:-c|\s)\s*(\S+\.(?:cu|cpp|cc|c))\b")
    EXTENSION = re.compile(r"building '([^']+)' extension")

    def __init__(self) -> None:
        self.last = ""

    def __call__(self, line: str) -> None:
        match = self.NINJA.match(line)
        if match:
            source = self.SOURCE.search(match.group(3))
            what = Path(source.group(1)).name if source else match.group(3)[:60]
            self.last = f"[{match.group(1)}/{match.group(2)}] {what}"
            log.info("  compiling %s", self.last)
            return
        match = self.EXTENSION.search(line)
        if match:
            self.last = f"extension {match.group(1)}"
            log.info("  building %s", self.last)

    def heartbeat(self, seconds: float, _line: str) -> None:
        log.info(
            "  … still building (%dm%02ds)%s", seconds // 60, seconds % 60, f", last: {self.last}" if self.last else ""
        )


def _built_wheel(out_dir: Path, package: str) -> Path:
    prefix = re.sub(r"[-_.]+", "_", package).lower() + "-"
    found = [p for p in out_dir.glob("*.whl") if p.name.lower().startswith(prefix)]
    if len(found) != 1:
        raise BuildError(f"expected one {package} wheel in {out_dir}, found {len(found)}", "see the build log")
    return found[0]


def _drop_partials(dist_dir: Path) -> None:
    for partial in dist_dir.glob(".*.tmp"):
        partial.unlink(missing_ok=True)


def execute(plan: BuildPlan, env: Mapping[str, str]) -> BuildResult:
    try:
        return _execute(plan, env)
    except (KeyboardInterrupt, runner.Interrupted) as e:  # the compiler tree is already stopped
        _drop_partials(plan.dist_dir)
        raise BuildError(
            f"the build was interrupted ({'Ctrl-C' if isinstance(e, KeyboardInterrupt) else e}); "
            "the compiler and everything it started were stopped, nothing was written to dist",
            "build again: the objects that finished are reused",
        ) from e
    except OSError as e:  # full disk, file-size limit: say where, leave nothing half-written in dist
        _drop_partials(plan.dist_dir)
        where = e.filename or plan.work_dir
        raise BuildError(
            f"writing {where} failed: {e.strerror or e}",
            f"free disk space (or raise the limit) and build again; log: {plan.log_path}",
        ) from e


def _execute(plan: BuildPlan, env: Mapping[str, str]) -> BuildResult:
    started = dt.datetime.now(dt.UTC)
    watch = logsetup.Stopwatch()
    logsetup.step(log, f"build {plan.recipe.name} for {', '.join(plan.archs) or 'the host'} → {plan.dist_dir}")
    log.info("build log: %s", plan.log_path)
    build_env = build_environment(plan, env)
    with _locked(plan.work_dir):
        source = prepare_source(plan, env)
        if plan.missing_requires:
            runner.run(
                [plan.python, "-m", "pip", "install", "--disable-pip-version-check", *plan.missing_requires],
                env=build_env,
                error=EnvironmentProblem,
                hint=f"install {' '.join(plan.missing_requires)} into {plan.python} yourself (offline machines: from wheels)",
            )
        shutil.rmtree(plan.out_dir, ignore_errors=True)
        plan.out_dir.mkdir(parents=True)
        progress = _Progress()
        runner.stream(
            plan.pip_wheel_command(),
            log_path=plan.log_path,
            env=build_env,
            cwd=plan.src_dir,
            on_line=progress,
            on_heartbeat=progress.heartbeat,
            timeout=plan.timeout_s,
            error=BuildError,
            hint=f"read the full log: {plan.log_path}",
        )
        built = _built_wheel(plan.out_dir, plan.recipe.package)
        label = plan.label + source_suffix(plan.recipe, source, plan.src_dir) if plan.label else None
        wheel = wheelfile.relabel(built, plan.dist_dir, label) if label else _into(built, plan.dist_dir)
        shutil.rmtree(plan.out_dir, ignore_errors=True)
    listing: dict[str, dict[str, list[str]]] = {}
    if plan.recipe.cuda:
        listing = binaries.list_wheel(wheel)
        gaps = binaries.missing(listing, plan.archs)
        if gaps:
            first = next(iter(gaps.items()))
            raise BuildError(
                f"the built wheel lacks machine code for {', '.join(first[1])} in {first[0]} ({len(gaps)} extension(s) affected)",
                f"check TORCH_CUDA_ARCH_LIST handling in the recipe's setup; log: {plan.log_path}",
            )
    seconds = watch.seconds
    entry = WheelManifest(
        package=plan.recipe.package,
        **wheelfile.file_facts(wheel),  # type: ignore[arg-type]
        recipe=plan.recipe.name,
        torch_version=plan.torch_version,
        torch_cuda=plan.torch_cuda,
        torch_cxx11_abi=plan.torch_cxx11_abi,
        torchvision_version=plan.stack_versions.get("torchvision"),
        torchaudio_version=plan.stack_versions.get("torchaudio"),
        triton_version=plan.stack_versions.get("triton"),
        torch_index_url=redaction.public_url(plan.torch_index_url),
        target_arch=";".join(plan.archs) or None,
        cuda_archs=tuple(binaries.common_sass(listing)),
        binaries=listing,
        nvcc_version=(plan.nvcc.full_version or plan.nvcc.version) if plan.nvcc else None,
        source=source,
        build={
            "host": socket.gethostname(),
            "started_at": started.replace(microsecond=0).isoformat().replace("+00:00", "Z"),
            "seconds": seconds,
            "max_jobs": plan.parallel.max_jobs,
            "ext_parallel": plan.parallel.ext_parallel,
        },
        verification=Verification(
            status="unverified",
            summary="not yet kernel-tested",
            # every arch the binaries are built for starts unproven; test-kernel proves it per GPU
            archs=tuple(
                {"compute_capability": archs.base_arch(a), "status": "unverified", "summary": "not yet kernel-tested"}
                for a in plan.archs
            ),
        ),
    )
    manifest_path = plan.dist_dir / f"{wheel.name}.json"
    manifest.write_manifest_file(manifest_path, entry)
    log.info("built %s in %.0f s (%d MB)", wheel.name, seconds, wheel.stat().st_size // 1_000_000)
    logsetup.end_step(log)
    return BuildResult(wheel, manifest_path, entry, seconds, plan.log_path, plan)


def _into(wheel: Path, dist_dir: Path) -> Path:
    atomic.copy(wheel, dist_dir / wheel.name)
    return dist_dir / wheel.name


def latest_built(dist_dir: Path, package: str) -> Path:
    """The manifest of the newest wheel of ``package`` in ``dist_dir``."""
    found = manifest.built(dist_dir, package, strict=False)
    if not found:
        raise ConfigError(
            f"no built {package} wheel with a manifest in {dist_dir}", "run `invoke build` first, or pass the wheel"
        )
    return found[-1][0]
