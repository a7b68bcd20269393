"""An environment change as a transaction: a journal, files moved aside (never lost), a commit point.

The journal (``<site-packages>/.sage-tasks/journal.json``, written atomically) lists, before the
first file changes, every file that will be replaced and every file that will be placed. A
transaction's folder ``txn-<pid>-<random>`` holds the new files under ``new/`` (staged) and the
replaced ones under ``old/``, both laid out by path below the journal's ``base`` (the folder that
holds every scheme of the environment; journals written before it had one mirror the absolute
path); moving between them is ``os.replace`` inside one filesystem. Where each file is tells how far the transaction got, so finishing it is
idempotent and a kill at any moment is recoverable:

* a replaced file is back in place when its copy under ``old/`` is gone;
* a new file is in place when its copy under ``new/`` is gone.

States: ``open`` (the commit point not reached: roll back) and ``committed`` (roll forward:
delete what was moved aside). ``recover`` finishes whatever journal a dead process left; callers
hold the environment's lock (``envlock``), so the journal's owner is gone by then.

Test builds reach every step boundary deterministically: ``SAGE_TASKS_TEST_PAUSE=STEP`` makes
the process write ``STEP PID`` to ``SAGE_TASKS_TEST_PAUSE_FILE`` and sleep at that step (for
``SAGE_TASKS_TEST_PAUSE_SECONDS``, or until killed).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import signal
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path

from ..core import atomic
from ..core.errors import EnvironmentProblem, Interrupted

log = logging.getLogger(__name__)

JOURNAL, COMMITTED_JOURNAL = "journal.json", "journal.committed.json"  # the rename is the commit point
OPEN, COMMITTED = "open", "committed"
PAUSE_VAR, PAUSE_FILE_VAR = "SAGE_TASKS_TEST_PAUSE", "SAGE_TASKS_TEST_PAUSE_FILE"
PAUSE_SECONDS_VAR = "SAGE_TASKS_TEST_PAUSE_SECONDS"  # default: until killed

# step boundaries a test can pause (and kill) at, in the order a transaction passes them
STEPS = (
    "locked",
    "staged",
    "journal-written",
    "old-half",
    "old-moved",
    "new-half",
    "installed",
    "read-back",
    "checked",
    "committed",
    "cleaned",
    "rollback-half",
)


def pause(env: Mapping[str, str], step: str) -> None:
    """Test builds only: stop at ``step`` (marker written, then sleep until killed)."""
    if env.get(PAUSE_VAR) != step:
        return
    marker = env.get(PAUSE_FILE_VAR)
    if marker:
        atomic.write(Path(marker), f"{step} {os.getpid()}\n")
    time.sleep(float(env.get(PAUSE_SECONDS_VAR) or 3600))


def _mirror(root: Path | str, path: str, base: str = os.sep) -> str:
    """Where ``path`` (absolute, normalised, ``base`` or inside it) lives under ``root``: its
    path below ``base``. Anything else is refused: it would be kept where no rollback looks."""
    if base == os.sep:
        return os.path.join(root, os.path.splitdrive(path)[1].lstrip(os.sep))
    if path == base:
        return str(root)
    if not inside(path, base) or path[len(base) + 1 :].startswith(os.sep):
        raise ValueError(f"{path} is not a normalised path inside {base}")
    return os.path.join(root, path[len(base) + 1 :])


def inside(path: str, base: str) -> bool:
    """``path`` lies below the folder ``base`` (both normalised)."""
    return base == os.sep or path.startswith(base + os.sep)


@dataclass
class Journal:
    id: str
    pid: int
    package: str
    description: str  # "sage-demo 0.1.0 → 0.2.0" (for messages)
    restores: str  # what a rollback gives back: "sage-demo 0.1.0" or "no sage-demo"
    folder: str  # the transaction's folder
    replaced: list[str]  # absolute paths moved aside (under old/)
    placed: list[str]  # absolute paths placed (staged under new/)
    created_dirs: list[str] = field(default_factory=list)  # folders that did not exist before
    roots: list[str] = field(default_factory=list)  # site-packages, scripts...: never removed
    base: str = os.sep  # new/ and old/ mirror paths below this folder (journals before it: by absolute path)
    state: str = OPEN

    @property
    def old(self) -> Path:
        return Path(self.folder) / "old"

    @property
    def new(self) -> Path:
        return Path(self.folder) / "new"


def journal_path(state_dir: Path, state: str = OPEN) -> Path:
    return state_dir / (COMMITTED_JOURNAL if state == COMMITTED else JOURNAL)


def read_journal(state_dir: Path) -> Journal | None:
    for state in (COMMITTED, OPEN):
        path = journal_path(state_dir, state)
        try:
            raw = path.read_text(encoding="utf-8")
            break
        except FileNotFoundError:
            continue
        except OSError as e:
            raise EnvironmentProblem(f"cannot read {path}: {e.strerror}") from e
    else:
        return None
    try:
        journal = Journal(**{**json.loads(raw), "state": state})
        _check_types(journal)
        return journal
    except (ValueError, TypeError) as e:
        raise EnvironmentProblem(
            f"the install journal {path} is unreadable ({e})",
            f"the files it moved aside are under {state_dir}: reinstall the package, then delete that folder",
        ) from e


def _check_types(journal: Journal) -> None:
    """A journal is trusted only with the types it was written with (recovery acts on its paths)."""
    for name in ("id", "package", "description", "restores", "folder", "base"):
        if not isinstance(getattr(journal, name), str):
            raise TypeError(f"{name} is not a string")
    if not isinstance(journal.pid, int) or isinstance(journal.pid, bool):
        raise TypeError("pid is not a whole number")
    for name in ("replaced", "placed", "created_dirs", "roots"):
        value = getattr(journal, name)
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise TypeError(f"{name} is not a list of paths")


def _write(state_dir: Path, journal: Journal) -> None:
    # a shallow dict: ``asdict`` deep-copies every path of the lists (a millisecond per thousand)
    atomic.write(journal_path(state_dir), json.dumps({f.name: getattr(journal, f.name) for f in fields(journal)}))


def new_folder(state_dir: Path) -> Path:
    """A staging folder of this process only."""
    folder = state_dir / f"txn-{os.getpid()}-{secrets.token_hex(4)}"
    folder.mkdir(parents=True)
    return folder


class Transaction:
    """One open change of an environment; ``commit`` or ``rollback`` ends it."""

    def __init__(self, state_dir: Path, journal: Journal, env: Mapping[str, str]) -> None:
        self.state_dir = state_dir
        self.journal = journal
        self.env = env

    @property
    def open(self) -> bool:
        return self.journal.state == OPEN and journal_path(self.state_dir).exists()

    def apply(self) -> None:
        """Move the replaced files aside, then the staged ones into place. A folder that holds
        only replaced (or only staged) files moves in one rename; the journal still lists every
        file, so recovery works file by file whichever way they moved."""
        j, env = self.journal, self.env
        old, new, base = str(j.old), str(j.new), j.base
        roots = [os.path.normpath(r) for r in j.roots]
        made: set[str] = set()
        moves = _aside_moves(j.replaced, roots)
        for n, path in enumerate(moves):
            if n == len(moves) // 2:
                pause(env, "old-half")
            keep = _mirror(old, path, base)
            _makedirs(os.path.dirname(keep), made)
            os.replace(path, keep)
        emptied = {Path(os.path.dirname(p)) for p in moves}
        _prune(emptied, [Path(r) for r in roots])  # an emptied .dist-info would shadow the new one
        pause(env, "old-moved")
        moves = _into_place_moves(new, base)
        made.clear()
        for n, path in enumerate(moves):
            if n == len(moves) // 2:
                pause(env, "new-half")
            _makedirs(os.path.dirname(path), made)
            os.replace(_mirror(new, path, base), path)
        pause(env, "installed")

    def commit(self) -> None:
        """The commit point, then the cleanup (which ``recover`` finishes if this dies)."""
        with _signals_held():
            os.replace(journal_path(self.state_dir), journal_path(self.state_dir, COMMITTED))
            atomic.fsync_dir(self.state_dir)
            self.journal.state = COMMITTED
            pause(self.env, "committed")
            _finish(self.state_dir, self.journal, self.env)

    def rollback(self) -> None:
        with _signals_held():
            _roll_back(self.state_dir, self.journal, self.env)

    def finish_or_roll_back(self) -> None:
        """Forward after the commit point, back before it."""
        with _signals_held():
            if self.journal.state == COMMITTED:
                _finish(self.state_dir, self.journal, self.env)
            else:
                _roll_back(self.state_dir, self.journal, self.env)


def begin(
    state_dir: Path,
    folder: Path,
    *,
    package: str,
    description: str,
    restores: str,
    replaced: Sequence[str],
    placed: Sequence[str],
    roots: Sequence[str],
    env: Mapping[str, str],
    base: str = os.sep,
) -> Transaction:
    """Write the journal (nothing in the environment has changed yet) and return the open transaction.
    ``base``: the folder the staged tree under ``folder/new`` mirrors (``install.stage_base``)."""
    outside = next((p for paths in (replaced, placed) for p in paths if not inside(p, base)), None)
    if outside is not None:  # the staging and the journal would disagree on where a file is kept
        raise EnvironmentProblem(f"{outside} is outside {base}, the folder this install was staged for")
    created: list[str] = []
    seen: set[str] = set()
    for path in placed:
        parent = os.path.dirname(path)
        while parent not in seen:
            seen.add(parent)
            if os.path.isdir(parent):
                break
            created.append(parent)
            parent = os.path.dirname(parent)
    journal = Journal(
        id=folder.name,
        pid=os.getpid(),
        package=package,
        description=description,
        restores=restores,
        folder=str(folder),
        replaced=list(replaced),
        placed=list(placed),
        created_dirs=created,
        roots=[str(r) for r in roots],
        base=base,
    )
    _write(state_dir, journal)
    pause(env, "journal-written")
    return Transaction(state_dir, journal, env)


def _aside_moves(paths: Sequence[str], roots: Sequence[str]) -> list[str]:
    """What to rename to move ``paths`` aside: whole folders that hold nothing else, else files."""
    wanted = set(paths)
    tops = set()
    for path in paths:
        root = max((r for r in roots if path.startswith(r + os.sep)), key=len, default=None)
        if root is not None and os.sep in path[len(root) + 1 :]:
            tops.add(os.path.join(root, path[len(root) + 1 :].split(os.sep, 1)[0]))
    full: set[str] = set()
    for top in tops:
        for folder, dirs, files in os.walk(top, topdown=False):
            if all(os.path.join(folder, f) in wanted for f in files) and all(
                os.path.join(folder, d) in full for d in dirs
            ):
                full.add(folder)
    whole = sorted(d for d in full if os.path.dirname(d) not in full)
    inside = tuple(d + os.sep for d in whole)
    return whole + [p for p in paths if not p.startswith(inside)]


def _into_place_moves(new: str, base: str = os.sep) -> list[str]:
    """Destinations to rename the staged tree into: a folder that does not exist yet moves whole."""
    moves = []
    for folder, dirs, files in os.walk(new):
        real = (base.rstrip(os.sep) + folder[len(new) :]) or os.sep
        keep = []
        for d in dirs:
            if os.path.lexists(os.path.join(real, d)):
                keep.append(d)
            else:
                moves.append(os.path.join(real, d))
        dirs[:] = keep
        moves += [os.path.join(real, f) for f in files]
    return moves


def _makedirs(folder: str, made: set[str]) -> None:
    if folder not in made:
        os.makedirs(folder, exist_ok=True)
        made.add(folder)


def _prune(folders: set[Path], roots: list[Path]) -> None:
    """Remove folders left empty (and their empty parents) below the roots, never a root."""
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        while folder not in roots and any(folder.is_relative_to(r) for r in roots):
            try:
                folder.rmdir()  # only succeeds when empty
            except OSError:
                break
            folder = folder.parent


def _finish(state_dir: Path, journal: Journal, env: Mapping[str, str]) -> None:
    shutil.rmtree(journal.folder, ignore_errors=True)
    pause(env, "cleaned")
    journal_path(state_dir, COMMITTED).unlink(missing_ok=True)


def _roll_back(state_dir: Path, journal: Journal, env: Mapping[str, str]) -> None:
    """Put every placed file back under new/, every replaced file back in place. Idempotent."""
    half = len(journal.placed) // 2
    for n, path in enumerate(reversed(journal.placed)):
        if n == half:
            pause(env, "rollback-half")
        staged = _mirror(journal.new, path, journal.base)
        if not os.path.lexists(staged) and os.path.lexists(path):
            os.makedirs(os.path.dirname(staged), exist_ok=True)
            os.replace(path, staged)
    for created in sorted(journal.created_dirs, key=lambda p: len(Path(p).parts), reverse=True):
        folder = Path(created)
        shutil.rmtree(folder / "__pycache__", ignore_errors=True)  # bytecode of the new files' import
        try:
            folder.rmdir()
        except FileNotFoundError:
            pass
        except OSError:
            log.warning("%s was created by the rolled-back install but is not empty now: left in place", folder)
    for path in journal.replaced:
        keep = _mirror(journal.old, path, journal.base)
        if os.path.lexists(keep):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            os.replace(keep, path)
    shutil.rmtree(journal.folder, ignore_errors=True)
    journal_path(state_dir).unlink(missing_ok=True)


def recover(state_dir: Path, env: Mapping[str, str]) -> str | None:
    """Finish what a dead process left (the caller holds the lock): back before the commit point,
    forward after it; delete staging folders no journal refers to. Returns one line, or None."""
    if not state_dir.is_dir():
        return None
    journal = read_journal(state_dir)
    said = None
    if journal is not None:
        with _signals_held():
            if journal.state == COMMITTED:
                _finish(state_dir, journal, env)
                said = f"finished an interrupted install ({journal.description}): it had been committed"
            else:
                _roll_back(state_dir, journal, env)
                said = f"rolled back an interrupted install ({journal.description}): {journal.restores} is back"
    for stale in state_dir.glob("txn-*"):
        shutil.rmtree(stale, ignore_errors=True)
    return said


def pending(state_dir: Path) -> dict[str, object] | None:
    """An unfinished journal, for reports: what it changes and who owns it (read-only)."""
    try:
        journal = read_journal(state_dir)
    except EnvironmentProblem as e:
        return {"state": "unreadable", "detail": e.message}
    if journal is None:
        return None
    return {"state": journal.state, "change": journal.description, "pid": journal.pid, "restores": journal.restores}


# ---------------------------------------------------------------- signals


@contextmanager
def interruptible() -> Iterator[None]:
    """While a transaction is open, SIGINT and SIGTERM raise ``Interrupted`` (so it rolls back)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: object) -> None:
        raise Interrupted(f"interrupted by {signal.Signals(signum).name}", "run the command again when you are ready")

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@contextmanager
def _signals_held() -> Iterator[None]:
    """A commit or rollback is not interrupted half-way by SIGINT/SIGTERM (they wait)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    blocked = {signal.SIGINT, signal.SIGTERM}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
