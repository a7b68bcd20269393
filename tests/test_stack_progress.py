"""`pin` on a terminal lets the installer draw its own download progress (bytes, rate); with
--json or in CI it stays quiet. Real `invoke pin`, real uv, its stderr on a pseudo-terminal,
against the suite's index served over HTTP on loopback."""

from __future__ import annotations

import json
import os
import pty
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests import support

pytestmark = pytest.mark.slow

# uv's download bar: "0 B/1.20 KiB" then "1.20 KiB/1.20 KiB" (bytes done / bytes in all)
BAR = re.compile(r"\d+(\.\d+)? (B|KiB|MiB)/\d+(\.\d+)? (KiB|MiB)")


def on_a_terminal(argv: list[str], env: dict[str, str], cwd: Path | None = None) -> tuple[int, str, str]:
    """Run ``argv`` with stderr on a pty (stdout a pipe, as in ``invoke pin --json > out``);
    returns the exit code, what reached the terminal and stdout."""
    main, secondary = pty.openpty()
    try:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=secondary, env=env, cwd=cwd
        )
    finally:
        os.close(secondary)
    seen = bytearray()
    reader = threading.Thread(target=lambda: _drain(main, seen), daemon=True)  # a pty's buffer is small
    reader.start()
    out, _ = proc.communicate(timeout=300)
    reader.join(timeout=30)
    os.close(main)
    return proc.returncode, seen.decode(errors="replace"), out.decode(errors="replace")


def pin_on_a_terminal(python: Path, index: str, *args: str, **extra: str) -> tuple[int, str, str]:
    """``invoke pin`` with stderr on a pty."""
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "GITHUB_ACTIONS")}
    env.update(TORCH_INDEX_URL=index, SAGE_ALLOW_INSECURE_URLS="1", NO_COLOR="1", **extra)
    argv = [sys.executable, "-m", "invoke", "--search-root", str(support.REPO), "pin", "--python", str(python),
            "--installer", "uv", *args]  # fmt: skip
    return on_a_terminal(argv, env, python.parent)


def test_on_a_terminal_the_installer_draws_its_download_progress(tmp_path, torch_index_http, no_gpu_path):
    venv = support.make_venv(tmp_path / "venv")
    code, terminal, _ = pin_on_a_terminal(venv, torch_index_http)
    assert code == 0, terminal
    assert BAR.search(terminal), terminal  # uv's bytes bar reached the terminal
    assert "Prepared 4 packages" in terminal and "Installed 4 packages" in terminal
    assert support.installed_version(venv, "torch") == "2.8.0+cu128"


@pytest.mark.parametrize(
    ("args", "extra"), [(("--json",), {}), ((), {"CI": "true"})], ids=["json", "ci"]
)  # fmt: skip
def test_json_and_ci_stay_quiet_on_a_terminal(tmp_path, torch_index_http, no_gpu_path, args, extra):
    venv = support.make_venv(tmp_path / "venv")
    code, terminal, out = pin_on_a_terminal(venv, torch_index_http, *args, **extra)
    assert code == 0, terminal
    assert support.installed_version(venv, "torch") == "2.8.0+cu128"  # it did download and install
    assert not BAR.search(terminal), terminal
    assert "Preparing packages" not in terminal and "Prepared 4 packages" not in terminal, terminal
    assert "\r" not in terminal.replace("\r\n", "\n"), terminal  # no line redrawn in place
    if args:
        assert '"changed": true' in out


RELAYED = """
import json, sys
from pathlib import Path
from sage_tasks.core import runner
from sage_tasks.core.errors import EnvironmentProblem
script = "echo logged-line; printf '\\033[2Kbar 10%%\\rbar 90%%\\rerror: no route to the index\\n' >&2; exit 3"
try:
    runner.stream(["sh", "-c", script], log_path=Path(sys.argv[1]), terminal="stderr", error=EnvironmentProblem)
except EnvironmentProblem as e:
    print(json.dumps({"message": e.message, "tail": e.tail}))
"""


def test_a_stream_relayed_to_the_terminal_is_drawn_there_and_its_finished_lines_are_logged(tmp_path):
    """The command's stderr reaches our terminal byte for byte (redraws included); the log and
    the error keep its finished lines, so a failure's reason is not only on the screen."""
    log = tmp_path / "x.log"
    _, terminal, out = on_a_terminal(
        [sys.executable, "-c", RELAYED, str(log)], {**os.environ, "PYTHONPATH": str(support.REPO)}
    )
    assert "bar 10%\rbar 90%\rerror: no route to the index" in terminal, terminal  # drawn as written
    failed = json.loads(out)
    assert "exited with 3: error: no route to the index" in failed["message"]
    logged = [line for line in log.read_text().splitlines() if not line.startswith("+ ")]  # the command
    assert "logged-line" in logged and "error: no route to the index" in logged  # both streams
    assert not any("bar 10%" in line or "\x1b" in line for line in logged), logged  # no redrawn progress


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            children = (task / "children").read_text().split() if (task / "children").exists() else []
            found += [int(c) for c in children]
            todo += [int(c) for c in children]
    return found


def test_sigterm_while_the_installer_draws_is_one_line_not_a_traceback(tmp_path, no_gpu_path):
    """SIGTERM while uv waits on an index that never answers: one `interrupted` line with a hint,
    the environment's exit code, no traceback, and uv (with its tree) ended."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # connections complete in the backlog; nobody ever answers them
    venv = support.make_venv(tmp_path / "venv")
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "GITHUB_ACTIONS")}
    env.update(TORCH_INDEX_URL=f"http://127.0.0.1:{silent.getsockname()[1]}/whl/cu128", SAGE_ALLOW_INSECURE_URLS="1")
    main, secondary = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "invoke", "--search-root", str(support.REPO), "pin", "--python", str(venv),
             "--installer", "uv"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=secondary, env=env,
        )  # fmt: skip
    finally:
        os.close(secondary)
    seen = bytearray()
    reader = threading.Thread(target=lambda: _drain(main, seen), daemon=True)
    reader.start()
    deadline = time.monotonic() + 120
    installer: list[int] = []
    while time.monotonic() < deadline and proc.poll() is None and not installer:
        installer = [p for p in _descendants(proc.pid) if "uv" in Path(f"/proc/{p}/comm").read_text(errors="replace")]
        time.sleep(0.05)
    assert installer, f"uv never started: {seen.decode(errors='replace')}"
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    reader.join(timeout=30)
    os.close(main)
    silent.close()
    terminal = seen.decode(errors="replace")
    assert proc.returncode == 10, terminal
    assert "interrupted: stopped by signal 15; the running command and everything it started were ended" in terminal
    assert "Traceback" not in terminal, terminal
    assert not [p for p in installer if Path(f"/proc/{p}").exists()], "uv outlived the SIGTERM"


def _drain(fd: int, into: bytearray) -> None:
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            return
        if not chunk:
            return
        into.extend(chunk)
