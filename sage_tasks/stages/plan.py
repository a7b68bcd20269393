"""The whole plan of ``auto``, computed before its first change: refuse up front when it cannot succeed.

From the probe and the store's index (both already read): the stack as it will be after
pinning, the wheel that would be fetched for that stack, and — on a miss — whether a build
could run here (a GPU or ``--arch``, nvcc new enough for the arch and matching torch's CUDA, a
GPU to test on or ``--allow-unverified``, free disk for the stack and the build, memory for one
compiler job). ``decide`` is pure; ``compute`` gathers the few facts it needs (free disk) and
calls it. ``auto --dry-run`` prints this same plan.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import EnvironmentProblem, MachineError, SageTasksError, UnverifiedError
from ..core.settings import Settings
from ..store.manifest import Index
from . import build, fetch, selection, stack, stack_size
from .probe import Machine

GIB = 1024**3
BUILD_DISK = 4 * GIB  # a SageAttention build tree (objects for every arch) and its wheel
NO_WHEEL_HINT = "or use a store that has a wheel for this machine (HF_REPO_ID, --hub or --store)"


@dataclass(frozen=True)
class Plan:
    path: str  # "fetch" or "build"
    pin: tuple[stack.Difference, ...]
    replaces: tuple[str, ...]  # "torch 2.13.0+cpu → 2.8.0+cu128": installed packages the pin replaces
    wheel: str | None  # the stored wheel fetch would install
    build: Mapping[str, Any] | None  # the build plan, when the path is "build" and it can run
    disk: Mapping[str, int] = field(default_factory=dict)  # bytes needed per place
    problem: SageTasksError | None = None
    download: int | None = None  # bytes the pin downloads, asked of the index when it replaces; None: unknown

    @property
    def summary(self) -> str:
        parts = []
        if self.pin:
            parts.append("pin " + ", ".join(f"{d.package}=={d.wanted}" for d in self.pin))
        else:
            parts.append("stack as installed")
        if self.replaces:
            size = "" if self.problem else f" ({stack_size.describe(self.download)})"  # asked only if it can go ahead
            parts.append("replacing " + ", ".join(self.replaces) + size)
        parts.append(f"fetch {self.wheel}" if self.wheel else "build (no stored wheel fits)")
        if self.problem:
            parts.append(f"cannot succeed: {self.problem.message}")
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "pin": [d.to_dict() for d in self.pin],
            "replaces": list(self.replaces),
            "download_bytes": self.download,
            "wheel": self.wheel,
            "build": dict(self.build) if self.build else None,
            "disk_needed": dict(self.disk),
            "ok": self.problem is None,
            "problem": self.problem.one_line() if self.problem else None,
            "exit_code": int(self.problem.code) if self.problem else 0,
        }


# ---------------------------------------------------------------- pure


def pin_differences(pinned: stack.Stack, target: Any, *, keep_stack: bool) -> list[stack.Difference]:
    found = stack.diff(pinned, target)
    return [d for d in found if d.installed is None] if keep_stack else found


def replacements(differences: Sequence[stack.Difference]) -> tuple[str, ...]:
    return tuple(f"{d.package} {d.installed} → {d.wanted}" for d in differences if d.installed is not None)


def disk_problem(needed: Mapping[str, int], free: Mapping[str, int]) -> EnvironmentProblem | None:
    for place, need in needed.items():
        have = free.get(place)
        if need and have is not None and have < need:
            return EnvironmentProblem(
                f"{place} has {have / GIB:.1f} GiB free, the plan needs about {need / GIB:.0f} GiB there",
                "free disk space (or set SAGE_TASKS_CACHE elsewhere) and run again; nothing was changed",
            )
    return None


def memory_problem(mem_available_mib: int | None, per_job_gib: float) -> MachineError | None:
    if mem_available_mib is not None and mem_available_mib < per_job_gib * 1024:
        return MachineError(
            f"{mem_available_mib / 1024:.1f} GiB of memory is available, one compiler job needs {per_job_gib:g} GiB",
            "free memory or build on a larger machine, " + NO_WHEEL_HINT,
        )
    return None


def with_hint(error: SageTasksError, extra: str) -> SageTasksError:
    """The build's own refusal, with the other way out added to its hint."""
    error.hint = f"{error.hint}; {extra}" if error.hint else extra
    return error


def decide(
    settings: Settings,
    found: Machine,
    index: Index,
    pinned: stack.Stack,
    *,
    allow_unverified: bool,
    free: Mapping[str, int],
) -> Plan:
    """Pure: the plan for this machine, and the first reason it cannot succeed (if any)."""
    differences = pin_differences(pinned, found.target, keep_stack=settings.keep_stack)
    after = dataclasses.replace(found, target=stack.as_if_installed(found.target, differences, pinned))
    target_place = after.target.paths.get("purelib") or after.target.python
    cache_place = str(settings.cache_dir)
    needed = {target_place: stack.disk_needed(differences)}
    if settings.wheel_url:
        try:  # the checks fetch makes before downloading: refuse here, before the pin changes anything
            chosen_name: str | None = fetch.check_wheel_url(settings, index).name
        except SageTasksError as e:
            return Plan(
                "fetch",
                pin=tuple(differences),
                replaces=replacements(differences),
                wheel=None,
                build=None,
                disk=needed,
                problem=e,
            )
    else:
        chosen = selection.select_wheel(index.wheels, fetch.want_for(settings, after)).chosen
        chosen_name = chosen.wheel_file if chosen else None
    base = dict(pin=tuple(differences), replaces=replacements(differences), wheel=chosen_name)
    if chosen_name is not None:
        return Plan("fetch", disk=needed, problem=disk_problem(needed, free), build=None, **base)
    try:
        planned = build.plan_build(settings, after, index_url=pinned.index_url)
    except SageTasksError as e:
        return Plan("build", build=None, disk=needed, problem=with_hint(e, NO_WHEEL_HINT), **base)
    needed = {**needed, cache_place: needed.get(cache_place, 0) + BUILD_DISK}
    problem: SageTasksError | None = disk_problem(needed, free) or memory_problem(
        found.mem_available_mib, settings.recipe.memory_per_job_gib
    )
    if problem is None and settings.recipe.cuda and not found.gpus and not allow_unverified:
        problem = UnverifiedError(
            "there is no GPU here to kernel-test a build on, so it could not be published",
            "pass --allow-unverified to build and publish it unverified, run on a GPU machine, " + NO_WHEEL_HINT,
        )
    return Plan("build", build=planned.to_dict(), disk=needed, problem=problem, **base)


# ---------------------------------------------------------------- I/O


def _free(place: str) -> int | None:
    path = Path(place)
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


def compute(settings: Settings, found: Machine, index: Index, pinned: stack.Stack, *, allow_unverified: bool) -> Plan:
    """``decide`` with the free disk, and — when the pin would replace installed packages and
    the plan can go ahead — the size of what the pin downloads, asked of the stack's index."""
    places = [found.target.paths.get("purelib") or found.target.python, str(settings.cache_dir)]
    free = {p: f for p in places if (f := _free(p)) is not None}
    decided = decide(settings, found, index, pinned, allow_unverified=allow_unverified, free=free)
    if decided.replaces and decided.problem is None:
        size = stack_size.download_size(pinned.index_url, decided.pin, found.target.tags)
        decided = dataclasses.replace(decided, download=size)
    return decided
