"""The other half of ``runner.stream``: a command that dies with the process that started it.

``runner.stream`` starts ``python -I _runner_guard.py FD GRACE -- COMMAND...`` in a new session
instead of COMMAND itself. This guard starts COMMAND in its own (the new) process group and
holds one end of a socket pair whose other end only sage-tasks holds. If sage-tasks dies in
any way, kill -9 included, the kernel closes its end; the guard reads end-of-file and ends the
whole group: SIGTERM, then SIGKILL after GRACE seconds (no orphaned ``nvcc``/``cicc`` using
the cores and writing into the build tree after sage-tasks is gone).

Why not ``prctl(PR_SET_PDEATHSIG)``: it is Linux only, and it fires when the *thread* that
forked the child ends, not the process, so a build started from a worker thread would be
killed when that thread finishes, and a grandchild (ninja, nvcc) never gets it at all. The
socket works on every POSIX system and covers the whole group.

Protocol on the socket: the guard sends ``ok\\n`` once COMMAND started, or one JSON line
``{"errno", "strerror", "filename"}`` if it could not be started (then exits 127). After that
it only reads: end-of-file means sage-tasks is gone. When COMMAND exits, the guard exits the
same way (same code, or the same signal). A SIGTERM to the group (``runner.kill_tree``) reaches
COMMAND directly; the guard waits for it to end rather than dying first.

Standard library only: it runs isolated (``-I``) so the build's PYTHONPATH cannot change it.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time

POLL_S = 0.1


def _end_group(child: subprocess.Popen[bytes], grace_s: float) -> None:
    """sage-tasks is gone: SIGTERM to the group (us included, we ignore it), SIGKILL after grace."""
    group = os.getpgrp()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        child.wait(timeout=grace_s)
    os.killpg(group, signal.SIGKILL)  # the leftovers of the tree, and this guard


def _still_there(link: socket.socket) -> bool:
    try:
        return bool(link.recv(64))  # sage-tasks never writes: only end-of-file wakes us
    except OSError:
        return False


def _exit_like(returncode: int) -> None:
    if returncode < 0:  # end by the same signal, so that the caller sees what COMMAND saw
        with contextlib.suppress(OSError, ValueError):
            signal.signal(-returncode, signal.SIG_DFL)
        os.kill(os.getpid(), -returncode)
        time.sleep(1)
        sys.exit(128 - returncode)
    sys.exit(returncode)


def main(argv: list[str]) -> None:
    fd, grace_s, command = int(argv[0]), float(argv[1]), argv[3:]
    os.set_inheritable(fd, False)  # COMMAND inherits stdio and the caller's kept fds, not this
    link = socket.socket(fileno=fd)
    # a SIGTERM to the group reaches COMMAND too: wait for it to end, then end the same way
    # (a handler, not SIG_IGN: a handler is reset on exec, so COMMAND keeps the default)
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    try:
        child = subprocess.Popen(command, close_fds=False)
    except OSError as e:
        failure = {"errno": e.errno, "strerror": e.strerror, "filename": command[0] if command else None}
        link.sendall(json.dumps(failure).encode() + b"\n")
        sys.exit(127)
    link.sendall(b"ok\n")
    while child.poll() is None:
        readable, _, _ = select.select([link], [], [], POLL_S)
        if readable and not _still_there(link):
            _end_group(child, grace_s)
    _exit_like(child.returncode)


if __name__ == "__main__":
    main(sys.argv[1:])
