"""probe on an unfinished install says what is true now and what the next command will do:
nothing promised about a live install (it may still commit), and for a journal recovery refuses,
recovery's own words."""

from __future__ import annotations

import json
import os
import signal

import pytest

from sage_tasks.core.errors import EnvironmentProblem
from sage_tasks.environment import envlock, install, transaction
from sage_tasks.stages import probe
from tests import support, txn_support

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    return txn_support.big_wheel(tmp_path_factory.mktemp("w"), "1.0", seed=1, modules=range(20), so_mb=1)


def _unfinished(tasks, venv):
    done = tasks("probe", "--python", str(venv), "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)["unfinished_install"]


@pytest.mark.parametrize(("step", "state"), [("installed", "open"), ("committed", "committed")])
def test_a_running_install_is_only_said_to_be_in_progress(tasks, tmp_path, wheel, step, state):
    venv = support.make_venv(tmp_path / "venv")
    env = {**os.environ, "SAGE_TASKS_TEST_PAUSE_FILE": str(tmp_path / "paused"), "SAGE_TASKS_TEST_PAUSE": step}
    proc = txn_support.harness(venv, wheel, "1.0", env)
    try:
        assert txn_support.wait_for(tmp_path / "paused", proc)
        seen = _unfinished(tasks, venv)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert seen["state"] == state and seen["owner_running"] is True
    summary = seen["summary"]
    assert f"PID {proc.pid} is still running it; it is in progress" in summary
    assert "wait for it" not in summary and "it will be" not in summary  # no promise about a live install
    assert "finishes it if it has been committed, or rolls it back if it is still open" in summary


def test_an_unreadable_journal_gets_recoverys_own_words(tasks, tmp_path):
    venv = support.make_venv(tmp_path / "venv")
    folder = envlock.state_dir(probe.read_target(str(venv)).paths)
    folder.mkdir()
    transaction.journal_path(folder).write_text("{not json", encoding="utf-8")
    seen = _unfinished(tasks, venv)
    target = probe.read_target(str(venv), extra=[txn_support.PACKAGE])
    # what the next fetch/auto/pin/test-kernel does: recovery, when it takes the environment
    with pytest.raises(EnvironmentProblem) as refused, install.Change(target, os.environ, command="test"):
        pass
    assert seen["state"] == "unreadable"
    assert seen["summary"].endswith(refused.value.one_line())
    assert "delete that folder" in seen["summary"] and "rolled back" not in seen["summary"]
    assert transaction.journal_path(folder).read_text(encoding="utf-8") == "{not json"  # probe only reads
