"""The real nox sessions, driven on the fixture recipe (CPU): build-3.11, build-3.12, smoke-3.11,
smoke-3.12, and every session and task a workflow names exists."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from tests import support

WORKFLOWS = support.REPO / ".github" / "workflows"


def nox(*args: str, env: dict[str, str], timeout: float = 1200) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nox", "-f", str(support.REPO / "noxfile.py"), *args],
        cwd=support.REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.slow
def test_build_and_smoke_sessions_for_both_pythons(tmp_path, torch_index, wheelhouse, no_gpu_path):
    def runs(version: str) -> bool:  # a pyenv shim is on PATH even when its version is not selected
        found = shutil.which(f"python{version}")
        return bool(found) and subprocess.run([found, "-c", "pass"], capture_output=True).returncode == 0

    missing = [v for v in ("3.11", "3.12") if not runs(v)]
    assert not missing, (
        f"python{missing[0]} is not on PATH: nox cannot make its sessions (PYENV_VERSION=3.11.7:3.12.1?)"
    )
    repo, commit = support.make_demo_repo(tmp_path / "demo-src")
    recipe = support.write_demo_recipe(tmp_path / "demo.toml", repo.as_uri(), commit)
    env = {
        **os.environ,
        "TORCH_INDEX_URL": torch_index,
        "SAGE_DIST": str(tmp_path / "dist"),
        "PIP_INDEX_URL": torch_index,  # build requirements come from the local index, never the internet
        "NOX_ENVDIR": str(tmp_path / "nox-envs"),
    }
    result = nox(
        "--envdir",
        str(tmp_path / "nox-envs"),
        "-s",
        "build-3.11",
        "build-3.12",
        "smoke-3.11",
        "smoke-3.12",
        "--",
        "--recipe",
        str(recipe),
        env=env,
    )
    assert result.returncode == 0, result.stderr[-5000:]
    for session in ("build-3.11", "build-3.12", "smoke-3.11", "smoke-3.12"):
        assert re.search(rf"nox > Session {re.escape(session)} was successful", result.stderr), session
    wheels = sorted(p.name for p in (tmp_path / "dist").glob("*.whl"))
    assert [w.split("-")[2] for w in wheels] == ["cp311", "cp312"]
    for manifest in (tmp_path / "dist").glob("*.whl.json"):
        assert json.loads(manifest.read_text())["verification"]["status"] == "passed"
    assert (result.stdout + result.stderr).count("passed: ") >= 2  # each smoke session's check said so


def _names_in_workflows() -> tuple[set[str], set[str]]:
    """nox sessions and invoke tasks the workflows call (``build-$py`` expands to each Python)."""
    sessions, tasks = set(), set()
    for path in WORKFLOWS.glob("*.yml"):
        text = "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("#"))
        for match in re.finditer(r"\bnox\b[^\n]*?-s\s+([^\n]+)", text):
            for token in re.split(r"\s+", match.group(1).split(" --")[0].split(";")[0]):
                token = token.strip('"')
                if not token or token.startswith("-"):
                    continue
                if "$" in token:
                    sessions.update(re.sub(r"\$\{?\w+\}?", version, token) for version in ("3.11", "3.12"))
                else:
                    sessions.add(token)
        tasks.update(re.findall(r"\binvoke\s+(?:--[\w-]+\s+\S+\s+)*([a-z][a-z-]+)", text))
    return sessions, tasks


def test_every_session_and_task_named_in_a_workflow_exists():
    sessions, tasks = _names_in_workflows()
    assert sessions, "no nox sessions found in the workflows"
    assert tasks, "no invoke tasks found in the workflows"
    listed = subprocess.run(
        [sys.executable, "-m", "nox", "-f", str(support.REPO / "noxfile.py"), "-l", "--json", "-s", *sorted(sessions)],
        capture_output=True,
        text=True,
        cwd=support.REPO,
    )
    assert listed.returncode == 0, listed.stderr
    known_sessions = {s["session"] for s in json.loads(listed.stdout)}
    assert sessions <= known_sessions, sessions - known_sessions
    inv = subprocess.run(
        [sys.executable, "-m", "invoke", "--search-root", str(support.REPO), "--list"],
        capture_output=True,
        text=True,
        check=True,
    )
    known_tasks = set(re.findall(r"^\s{2}([a-z][a-z-]+)\b", inv.stdout, re.MULTILINE))
    assert tasks <= known_tasks, tasks - known_tasks
