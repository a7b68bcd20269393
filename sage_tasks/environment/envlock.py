"""One lock per target environment: one sage-tasks process at a time changes it.

The lock is a ``filelock`` lock (``flock``) on ``<site-packages>/.sage-tasks/lock``: the kernel
drops it when its holder dies, so a lock left by a killed process is simply taken over. Beside
it, ``owner.json`` says which process holds it, so that a second process can say whom it waits
for. Waiting ends after ``SAGE_TASKS_LOCK_TIMEOUT`` seconds (default 900) with a typed error.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from ..core import atomic
from ..core.errors import EnvironmentBusy, EnvironmentProblem

log = logging.getLogger(__name__)

FOLDER = ".sage-tasks"
TIMEOUT_VAR = "SAGE_TASKS_LOCK_TIMEOUT"
DEFAULT_TIMEOUT_S = 900.0


def state_dir(paths: Mapping[str, str]) -> Path:
    """Where sage-tasks keeps its lock, journal and staging folders for one environment."""
    return Path(paths["purelib"]) / FOLDER


def timeout_from(env: Mapping[str, str]) -> float:
    raw = env.get(TIMEOUT_VAR, "")
    if not raw.strip():
        return DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:  # nan, inf or a negative wait would hang or crash filelock
        raise EnvironmentProblem(
            f"{TIMEOUT_VAR}={raw!r} is not a number of seconds (0 or more)", f"unset {TIMEOUT_VAR} or set e.g. 900"
        )
    return value


def owner(folder: Path) -> dict[str, object] | None:
    """What the current holder wrote about itself (None when unknown)."""
    try:
        data = json.loads((folder / "owner.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def pid_alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _describe(folder: Path) -> str:
    who = owner(folder)
    if who and pid_alive(who.get("pid")):
        return f"PID {who['pid']} ({who.get('command', 'sage-tasks')})"
    return "another sage-tasks process"


def is_free(folder: Path) -> bool:
    """True when no process holds the environment's lock now (nothing is taken)."""
    from filelock import FileLock, Timeout

    if not (folder / "lock").exists():
        return True
    lock = FileLock(str(folder / "lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return False
    except OSError:
        return True  # cannot even open it: nobody we know of holds it
    lock.release()
    return True


@contextmanager
def hold(folder: Path, env: Mapping[str, str], *, command: str, where: str) -> Iterator[None]:
    """Hold the lock of the environment whose state folder is ``folder``; wait for its holder."""
    from filelock import FileLock, Timeout

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise EnvironmentProblem(
            f"cannot create {folder}: {e.strerror}", f"sage-tasks needs write access to {folder.parent}"
        ) from e
    limit = timeout_from(env)
    lock = FileLock(str(folder / "lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.warning("waiting for %s to finish installing into %s", _describe(folder), where)
        start = time.monotonic()
        try:
            lock.acquire(timeout=limit)
        except Timeout as e:
            raise EnvironmentBusy(
                f"{_describe(folder)} was still installing into {where} after {limit:.0f} s",
                f"wait for it to finish (or stop it), then run again; {TIMEOUT_VAR}=SECONDS waits longer",
            ) from e
        log.info("got the lock of %s after %.1f s", where, time.monotonic() - start)
    try:
        atomic.write(folder / "owner.json", json.dumps({"pid": os.getpid(), "command": command, "since": time.time()}))
        yield
    finally:
        (folder / "owner.json").unlink(missing_ok=True)
        lock.release()
