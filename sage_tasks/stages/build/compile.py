"""Run the compile: ``pip wheel --no-build-isolation --no-deps`` in the target interpreter, in
its own process group, with progress lines; an interrupted build leaves nothing in dist.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import logging
import re
import shutil
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...core import log as logsetup
from ...core import runner
from ...core.errors import BuildError, EnvironmentProblem
from ...store.manifest import WheelManifest
from .plan import BuildPlan, build_environment
from .repack import describe, store_wheel
from .source import prepare_source

log = logging.getLogger(__name__)


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
    with _locked(plan.work_dir) as lock:
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
            # the guard (and pip under it) hold the work tree's lock too: if we are killed -9, the
            # next build waits until the guard has ended the compiler's process group
            keep_fds=(lock.fileno(),),
            error=BuildError,
            hint=f"read the full log: {plan.log_path}",
        )
        built = _built_wheel(plan.out_dir, plan.recipe.package)
        wheel = store_wheel(plan, built, source)
        shutil.rmtree(plan.out_dir, ignore_errors=True)
    seconds = watch.seconds
    entry, manifest_path = describe(plan, wheel, source, started, seconds)
    log.info("built %s in %.0f s (%d MB)", wheel.name, seconds, wheel.stat().st_size // 1_000_000)
    logsetup.end_step(log)
    return BuildResult(wheel, manifest_path, entry, seconds, plan.log_path, plan)
