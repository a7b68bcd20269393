"""A long command (the compile) runs in its own process group: a timeout, Ctrl-C or SIGTERM
ends it and everything it started (no orphaned compilers using the cores afterwards)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from sage_tasks.core import runner
from sage_tasks.core.errors import BuildError
from tests import support

# a stand-in for `pip wheel` → ninja → nvcc → cicc: a shell that starts a long "compiler" and waits
COMPILER_TREE = "sh -c 'sleep 300 & echo $! > \"$1\"; echo compiling; wait' sh {pidfile}"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie waiting for its reaper is gone for our purpose
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ", 1)[1].startswith("Z"))


def wait_for(path: Path, seconds: float = 20) -> int:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return int(path.read_text())
        time.sleep(0.05)
    raise AssertionError(f"{path} never appeared")


def gone(pid: int, seconds: float = 15) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.1)
    return False


def descendants(root: int) -> set[int]:
    """Every live process below ``root``, read from /proc (children by parent pid)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            pid, rest = stat.read_text().split(" (", 1)
        except OSError:  # ended while we looked
            continue
        children.setdefault(int(rest.rsplit(") ", 1)[1].split()[1]), []).append(int(pid))
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found and alive(child):
                found.add(child)
                todo.append(child)
    return found


def test_a_timeout_stops_the_whole_tree(tmp_path):
    pidfile = tmp_path / "compiler.pid"
    start = time.monotonic()
    try:
        runner.stream(
            ["sh", "-c", COMPILER_TREE.format(pidfile=pidfile)],
            log_path=tmp_path / "build.log",
            timeout=1.5,
            error=BuildError,
        )
    except BuildError as e:
        message = e.message
    else:
        message = None
    took = time.monotonic() - start
    compiler = wait_for(pidfile)
    # injected: the compiler was started and the timeout came due while it ran; survived: the build
    # was stopped promptly with the timeout's error, and the compiler's tree ended (not ran its course)
    due = took >= 1.5
    ended = gone(compiler)
    stopped = message is not None and "did not finish within" in message and "stopped" in message
    support.count_fault(
        "build stopped by --timeout (compiler tree killed)",
        injected=int(due),
        survived=int(due and took < 30 and stopped and ended),
    )
    assert message is not None, "no BuildError: the timeout did not stop the build"
    assert took < 30
    assert stopped, message
    assert ended, "the compiler outlived the timeout"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_or_ctrl_c_stops_the_whole_tree(tmp_path, sig):
    pidfile = tmp_path / "compiler.pid"
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(support.REPO)!r})
        from pathlib import Path
        from sage_tasks.core import runner
        from sage_tasks.core.errors import BuildError
        try:
            runner.stream(["sh", "-c", {COMPILER_TREE.format(pidfile=pidfile)!r}],
                          log_path=Path({str(tmp_path / "build.log")!r}), error=BuildError)
        except BaseException as e:
            print("unwound:", type(e).__name__, flush=True)
            raise SystemExit(4)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    compiler = wait_for(pidfile)
    assert alive(compiler)
    delivered = proc.poll() is None  # the signal reaches a build that is still running
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=60)
    survived = gone(compiler)
    support.count_fault(
        f"build interrupted by {sig.name} (compiler tree killed)",
        injected=int(delivered),
        survived=int(delivered and survived),
    )
    assert proc.returncode == 4 and "unwound" in out, out
    assert survived, f"the compiler (pid {compiler}) outlived {sig.name}"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process tree from /proc")
def test_kill_9_of_sage_tasks_stops_the_whole_tree(tmp_path):
    """SIGKILL cannot be caught: the compiler tree must still not outlive the process that started it."""
    pidfile = tmp_path / "compiler.pid"
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(support.REPO)!r})
        from pathlib import Path
        from sage_tasks.core import runner
        from sage_tasks.core.errors import BuildError
        runner.stream(["sh", "-c", {COMPILER_TREE.format(pidfile=pidfile)!r}],
                      log_path=Path({str(tmp_path / "build.log")!r}), error=BuildError)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script])
    compiler = wait_for(pidfile)
    tree = descendants(proc.pid)
    assert compiler in tree and len(tree) >= 3, tree  # at least the shell, the compiler and what runs them
    proc.kill()
    proc.wait(timeout=30)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(alive(pid) for pid in tree):
        time.sleep(0.1)
    left = sorted(pid for pid in tree if alive(pid))
    killed = int(proc.returncode == -signal.SIGKILL)
    support.count_fault(
        "kill -9 of sage-tasks during a build (compiler tree ended)", injected=killed, survived=killed * int(not left)
    )
    for pid in left:  # do not leave them behind for the next test
        os.kill(pid, signal.SIGKILL)
    assert not left, f"{left} outlived the kill -9 of the process that started them (compiler pid {compiler})"


def test_the_guard_passes_on_what_the_command_did(tmp_path):
    """Under the guard, a command that cannot start, fails, or dies by a signal reads as before."""
    log_path = tmp_path / "build.log"
    with pytest.raises(BuildError, match="`no-such-compiler` was not found"):
        runner.stream(["no-such-compiler"], log_path=log_path, error=BuildError)
    with pytest.raises(BuildError, match="cannot be executed \\(a directory\\)"):
        runner.stream([str(tmp_path)], log_path=log_path, error=BuildError)
    with pytest.raises(BuildError, match="exited with 3: broken"):
        runner.stream(["sh", "-c", "echo broken; exit 3"], log_path=log_path, error=BuildError)
    with pytest.raises(BuildError, match="exited with -9"):
        runner.stream(["sh", "-c", "kill -KILL $$"], log_path=log_path, error=BuildError)
    done = runner.stream(["sh", "-c", "echo fine"], log_path=log_path, error=BuildError)
    assert done.returncode == 0 and done.stdout == "fine"
