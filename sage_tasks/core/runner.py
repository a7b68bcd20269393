"""The one place that starts subprocesses.

``run`` captures output; ``stream`` writes every line to a log file and reports progress while
a long command runs (under ``_runner_guard``, its only helper, so that the command's whole tree
dies with sage-tasks; or, with ``terminal=``, letting one of the command's streams draw on our
terminal: an installer's own progress bar). Both echo ``+ command`` and raise a typed error
carrying the command, its return code and the tail of the output they captured.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import redaction
from .errors import CommandFailed, EnvironmentProblem, SageTasksError

log = logging.getLogger(__name__)

TAIL_LINES = 40


@dataclass(frozen=True)
class Completed:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    seconds: float


def quote(args: Sequence[str | os.PathLike[str]]) -> str:
    return redaction.redact(shlex.join(str(a) for a in args))


def which(name: str, env: Mapping[str, str] | None = None) -> str | None:
    path = (env if env is not None else os.environ).get("PATH")
    return shutil.which(name, path=path)


_GENERIC = re.compile(
    r"subprocess-exited-with-error|metadata-generation-failed|originates from a subprocess|See above|"
    r"Encountered error|exit code:|^\s*(note|hint):",
    re.IGNORECASE,
)


def telling_line(tail: str) -> str | None:
    """The line of a failed command's output most likely to say what went wrong."""
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    errors = [
        line
        for line in lines
        if re.search(r"error|fatal|not found|denied", line, re.IGNORECASE) and not _GENERIC.search(line)
    ]
    if errors:
        return errors[0]
    return lines[-1] if lines else None


def _fail(
    error: type[SageTasksError],
    args: list[str],
    returncode: int,
    tail: str,
    hint: str | None,
    message: str | None = None,
) -> SageTasksError:
    if error is CommandFailed:
        return CommandFailed(args, returncode, redaction.redact(tail), hint)
    shown = quote(args)
    text = message or f"`{shown}` exited with {returncode}"
    telling = telling_line(tail)
    if telling:
        text += f": {redaction.redact(telling)[:300]}"
    exc = error(text, hint)
    exc.tail = redaction.redact(tail)  # type: ignore[attr-defined]
    return exc


def _start_error(error: type[SageTasksError]) -> type[SageTasksError]:
    """The error kind for a command that never ran (``CommandFailed`` needs a return code)."""
    return EnvironmentProblem if error is CommandFailed else error


def _cannot_start(error: type[SageTasksError], argv: list[str], exc: OSError, hint: str | None) -> SageTasksError:
    if isinstance(exc, FileNotFoundError):
        return _start_error(error)(f"`{argv[0]}` was not found", hint or f"install {argv[0]} or put it on PATH")
    kind = "a directory" if os.path.isdir(argv[0]) else exc.strerror or type(exc).__name__
    return _start_error(error)(
        f"`{argv[0]}` cannot be executed ({kind})",
        hint or "name a runnable program (for --python: the venv's bin/python)",
    )


def run(
    args: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    timeout: float | None = None,
    check: bool = True,
    echo: bool = True,
    input: str | None = None,
    error: type[SageTasksError] = CommandFailed,
    hint: str | None = None,
) -> Completed:
    """Run a command to completion, capturing stdout and stderr as text."""
    argv = [str(a) for a in args]
    if echo:
        log.info("+ %s", quote(argv))
    else:
        log.debug("+ %s", quote(argv))
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            argv,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            timeout=timeout,
            input=input,
            capture_output=True,
            text=True,
            errors="replace",
            check=False,
        )
    except OSError as e:  # missing, a directory, not executable, not a program
        raise _cannot_start(error, argv, e, hint) from e
    except subprocess.TimeoutExpired as e:
        raise _start_error(error)(f"`{quote(argv)}` did not finish within {timeout:.0f} s", hint) from e
    done = Completed(tuple(argv), proc.returncode, proc.stdout, proc.stderr, time.perf_counter() - start)
    if check and proc.returncode != 0:
        tail = "\n".join((proc.stdout + "\n" + proc.stderr).strip().splitlines()[-TAIL_LINES:])
        raise _fail(error, argv, proc.returncode, tail, hint)
    return done


GUARD = Path(__file__).resolve().with_name("_runner_guard.py")  # see there: why a guard
GRACE_S = 5.0


def _started(
    proc: subprocess.Popen[str],
    link: socket.socket,
    argv: list[str],
    error: type[SageTasksError],
    hint: str | None,
) -> None:
    """Wait for the guard to say that it started ``argv``; raise what starting it raised."""
    answer = b""
    try:
        while not answer.endswith(b"\n") and (part := link.recv(4096)):
            answer += part
    except BaseException:  # Ctrl-C while the guard starts: it must not go on alone
        kill_tree(proc)
        raise
    if answer == b"ok\n":
        return
    proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()
    try:
        failure = json.loads(answer)
        cause = OSError(failure["errno"], failure["strerror"], failure["filename"])  # ENOENT: FileNotFoundError
    except (ValueError, KeyError, TypeError):
        raise _start_error(error)(f"`{quote(argv)}` could not be started (exit {proc.returncode})", hint) from None
    raise _cannot_start(error, argv, cause, hint) from cause


class Interrupted(BaseException):
    """SIGTERM arrived while a long command ran (raised in the main thread, like Ctrl-C)."""


def kill_tree(proc: subprocess.Popen[str], grace_s: float = GRACE_S) -> None:
    """End a command started in its own process group, and everything it started: SIGTERM to
    the group, then SIGKILL to whatever is left after ``grace_s`` (no orphaned compilers)."""
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait)
            if wait is not None:
                # the leader is gone; its children may not be: one SIGKILL for the rest of the group
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
            break
        except subprocess.TimeoutExpired:
            continue
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=30)


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    """While a long command runs, SIGTERM unwinds like Ctrl-C (so that its tree is killed)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise Interrupted(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def stream(
    args: Sequence[str | os.PathLike[str]],
    *,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    on_line: Callable[[str], None] | None = None,
    heartbeat_s: float = 30.0,
    on_heartbeat: Callable[[float, str], None] | None = None,
    timeout: float | None = None,
    keep_fds: tuple[int, ...] = (),
    terminal: str | None = None,
    error: type[SageTasksError] = CommandFailed,
    hint: str | None = None,
) -> Completed:
    """Run a long command in its own process group; every output line goes to ``log_path``,
    progress to the callbacks. Ctrl-C, SIGTERM or ``timeout`` seconds end the whole tree, and so
    does our own death, kill -9 included (the command runs under ``_runner_guard``).

    ``terminal`` ("stdout" or "stderr"): when our stderr is a terminal, that stream of the
    command writes to a pseudo-terminal of ours (the command sees a terminal and draws its own
    progress) whose bytes we copy to our stderr as they come; its finished lines, redrawn
    progress left out, are logged and kept for the error like the other stream's."""
    if terminal not in (None, "stdout", "stderr"):
        raise ValueError(f"terminal={terminal!r}: use 'stdout', 'stderr' or None")
    argv = [str(a) for a in args]
    log.info("+ %s", quote(argv))
    log_path.parent.mkdir(parents=True, exist_ok=True)
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    if terminal and not os.isatty(sys.stderr.fileno()):
        terminal = None  # nobody to draw for
    relay = _TerminalRelay() if terminal else None
    start = time.perf_counter()
    ours, theirs = socket.socketpair()
    try:
        proc = subprocess.Popen(
            # the guard starts argv and ends its whole group if we die, kill -9 included
            [sys.executable, "-I", str(GUARD), str(theirs.fileno()), str(GRACE_S), "--", *argv],
            env=dict(env) if env is not None else None,
            cwd=cwd,
            stdout=relay.secondary if relay and terminal == "stdout" else subprocess.PIPE,
            stderr=subprocess.STDOUT
            if relay is None
            else (relay.secondary if terminal == "stderr" else subprocess.PIPE),
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
            bufsize=1,
            start_new_session=True,  # its own process group: we can end everything it starts
            pass_fds=(theirs.fileno(), *keep_fds),  # keep_fds: e.g. a lock that must outlive us if we are killed -9
        )
    except OSError as e:
        ours.close()
        if relay:
            relay.close()
        raise _cannot_start(error, argv, e, hint) from e
    finally:
        theirs.close()
        if relay:
            relay.started()
    try:
        _started(proc, ours, argv, error, hint)
    except BaseException:
        ours.close()
        if relay:
            relay.close()
        raise

    stop = threading.Event()
    timed_out = threading.Event()

    def beat() -> None:
        next_beat = heartbeat_s
        while not stop.wait(min(heartbeat_s, 1.0) if timeout is not None else heartbeat_s):
            elapsed = time.perf_counter() - start
            if timeout is not None and elapsed > timeout and not timed_out.is_set():
                timed_out.set()
                kill_tree(proc)
            if elapsed >= next_beat:
                next_beat += heartbeat_s
                if on_heartbeat is not None:
                    on_heartbeat(elapsed, tail[-1] if tail else "")

    ticker = threading.Thread(target=beat, daemon=True)
    ticker.start()
    try:
        with _sigterm_raises(), log_path.open("a", encoding="utf-8") as out:
            out.write(f"+ {quote(argv)}\n")
            writing = threading.Lock()

            def take(raw: str) -> None:
                line = redaction.redact(raw)
                with writing:
                    if out.closed:  # the relay's last lines after an interruption
                        return
                    out.write(line + "\n")
                    tail.append(line)
                if on_line is not None:
                    on_line(line)

            if relay:
                relay.start(take)
            captured = proc.stderr if terminal == "stdout" else proc.stdout
            assert captured is not None
            for raw in captured:
                take(raw.rstrip("\n"))
            returncode = proc.wait()
            if relay:
                relay.finish()
    except BaseException:  # Ctrl-C, SIGTERM, a failing callback: nothing it started may live on
        kill_tree(proc)
        raise
    finally:
        stop.set()
        ours.close()
        if relay:
            relay.close()
    done = Completed(tuple(argv), returncode, "\n".join(tail), "", time.perf_counter() - start)
    if timed_out.is_set():
        raise _start_error(error)(
            f"`{quote(argv)}` did not finish within {timeout:.0f} s and was stopped (with everything it started)",
            hint or "raise --timeout, or lower MAX_JOBS if the machine is swapping",
        )
    if returncode != 0:
        raise _fail(error, argv, returncode, "\n".join(tail), hint)
    return done


_ESCAPE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")


def finished_line(raw: str) -> str:
    """What a terminal line ends up showing: the text after its last carriage return (a
    progress bar redraws in place), without colour and cursor escapes."""
    return _ESCAPE.sub("", raw.rstrip("\r").rsplit("\r", 1)[-1]).rstrip()


class _TerminalRelay:
    """A pseudo-terminal for one stream of a command: its bytes go to our stderr (a terminal)
    as they come, and its finished lines to a callback (the log and the error's tail)."""

    def __init__(self) -> None:
        import pty

        self.main, self.secondary = pty.openpty()
        self._copy_window_size()
        self._thread: threading.Thread | None = None

    def _copy_window_size(self) -> None:
        with contextlib.suppress(OSError, ImportError):
            import fcntl
            import termios

            size = fcntl.ioctl(sys.stderr.fileno(), termios.TIOCGWINSZ, b"\0" * 8)
            fcntl.ioctl(self.secondary, termios.TIOCSWINSZ, size)

    def started(self) -> None:
        """The command has its end of the terminal: ours closes, so the read ends when theirs do."""
        if self.secondary >= 0:
            os.close(self.secondary)
            self.secondary = -1

    def start(self, take: Callable[[str], None]) -> None:
        sys.stderr.flush()
        self._thread = threading.Thread(target=self._copy, args=(take,), daemon=True)
        self._thread.start()

    def _copy(self, take: Callable[[str], None]) -> None:
        screen = sys.stderr.fileno()
        pending = ""
        while True:
            try:
                chunk = os.read(self.main, 65536)
            except OSError:  # EIO: every writer has closed the terminal
                break
            if not chunk:
                break
            with contextlib.suppress(OSError):
                os.write(screen, chunk)
            pending += chunk.decode("utf-8", errors="replace")
            *lines, pending = pending.split("\n")
            for raw in lines:
                if shown := finished_line(raw):
                    take(shown)
        if shown := finished_line(pending):
            take(shown)

    def finish(self) -> None:
        if self._thread is not None:
            self._thread.join(timeout=10)

    def close(self) -> None:
        self.started()
        if self.main >= 0:
            os.close(self.main)
            self.main = -1
