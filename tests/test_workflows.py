"""The GitHub workflows validate against GitHub's schema, pass zizmor's audit offline, and the
cibuildwheel configuration resolves on the fixture with cibuildwheel's own dry command."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests import support

WORKFLOWS = sorted(str(p) for p in (support.REPO / ".github" / "workflows").glob("*.yml"))
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    found = shutil.which(name, path=str(BIN)) or shutil.which(name)
    assert found, f"{name} is a dev dependency (pip install -e .[dev])"
    return found


def test_there_are_workflows():
    assert {Path(p).name for p in WORKFLOWS} >= {"ci.yml", "release.yml"}


def test_workflows_match_githubs_schema():
    done = subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *WORKFLOWS],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_zizmor_finds_nothing_of_medium_or_high_severity():
    done = subprocess.run(
        [tool("zizmor"), "--offline", "--min-severity", "medium", "--format", "plain", *WORKFLOWS],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_cibuildwheel_config_lists_the_manylinux_builds(tmp_path):
    support.write_demo_source(tmp_path / "src")
    done = subprocess.run(
        [
            tool("cibuildwheel"),
            "--print-build-identifiers",
            "--platform",
            "linux",
            "--config-file",
            str(support.REPO / "manifests" / "cibuildwheel" / "sageattention.toml"),
            str(tmp_path / "src"),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["cp311-manylinux_x86_64", "cp312-manylinux_x86_64"]


def test_release_workflow_keeps_its_promises():
    text = (support.REPO / ".github" / "workflows" / "release.yml").read_text()
    for needle in (
        "self-hosted",
        "rtx5090",
        "workflow_dispatch",
        "tags:",
        "concurrency:",
        "timeout-minutes:",
        "secrets.HF_TOKEN",
        "environment: huggingface",
        "attest-build-provenance",
        "GITHUB_STEP_SUMMARY",
        "upload-artifact",
        "id-token: write",
    ):
        assert needle in text, needle
    for line in text.splitlines():
        if line.strip().startswith("run:") or line.startswith(" " * 10):
            assert "${{ inputs." not in line or "run:" not in line, f"template injection risk: {line}"


# ---------------------------------------------------------------- the commands the workflows run exist


def _run_scripts() -> list[tuple[str, str, str]]:
    """(workflow, job, script) for every `run:` step."""
    import yaml

    found = []
    for path in WORKFLOWS:
        data = yaml.safe_load(Path(path).read_text())
        for job_name, job in data["jobs"].items():
            for step in job.get("steps", []):
                if "run" in step:
                    found.append((Path(path).name, job_name, step["run"]))
    return found


def _commands(script: str) -> list[list[str]]:
    """`invoke …` and `nox …` command lines of a script, variables filled with example values."""
    import shlex

    values = {"$py": "3.12", "${PYTHON}": "3.12", "$ARCH": "12.0", "$PYTHONS": "3.12"}
    found = []
    for line in script.splitlines():
        line = line.split(">>")[0].split(">")[0].split("||")[0].strip()
        for var, value in values.items():
            line = line.replace(f'"{var}"', value).replace(var, value)
        if "do " in line:
            line = line.split("do ", 1)[1].split(";")[0]
        words = shlex.split(line) if line else []
        if words and words[0] in ("invoke", "nox"):
            found.append(words)
    return found


def _flags(words: list[str]) -> list[str]:
    return [w.split("=")[0] for w in words if w.startswith("--")]


def _invoke_help(task: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "invoke", "--search-root", str(support.REPO), "--help", task],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, f"`invoke {task}` does not exist: {done.stderr}"
    return done.stdout


# what the posargs of each nox session are handed to
SESSION_TARGETS = {
    "build": "invoke build",
    "smoke": "invoke fetch",
    "publish": "invoke publish",
    "portable": "cibuildwheel",
}


def test_every_invoke_and_nox_command_in_the_workflows_exists_with_its_flags():
    listed = subprocess.run(
        [sys.executable, "-m", "nox", "--list", "-f", str(support.REPO / "noxfile.py")], capture_output=True, text=True
    )
    assert listed.returncode == 0, listed.stderr
    sessions = {line.split()[1] for line in listed.stdout.splitlines() if line[:2] in ("* ", "- ")}
    checked = 0
    for workflow, job, script in _run_scripts():
        for words in _commands(script):
            where = f"{workflow} job {job}: {' '.join(words)}"
            if words[0] == "invoke":
                help_text = _invoke_help(words[1])
                for flag in _flags(words[2:]):
                    assert flag in help_text, f"{where}: `invoke {words[1]}` has no {flag}"
            else:
                args = words[1:]
                posargs = args[args.index("--") + 1 :] if "--" in args else []
                named = args[args.index("-s") + 1] if "-s" in args else None
                if named is None:
                    continue  # `nox` alone: the default sessions
                assert named in sessions, f"{where}: no nox session {named} (have {sorted(sessions)})"
                target = SESSION_TARGETS.get(named.split("-")[0])
                if target == "cibuildwheel":
                    help_text = subprocess.run([tool("cibuildwheel"), "--help"], capture_output=True, text=True).stdout
                    flags = [f for f in _flags(posargs) if f != "--source"]  # --source: the session's own
                elif target:
                    help_text, flags = _invoke_help(target.split()[1]), _flags(posargs)
                else:
                    continue
                for flag in flags:
                    assert flag in help_text, f"{where}: {target} has no {flag}"
            checked += 1
    assert checked >= 8, checked


def test_release_builds_without_secrets_and_publishes_without_building():
    import yaml

    data = yaml.safe_load((support.REPO / ".github" / "workflows" / "release.yml").read_text())
    for name, job in data["jobs"].items():
        text = yaml.safe_dump(job)
        builds = 'nox -s "build-' in text or "nox -s build" in text or "cibuildwheel" in text or "portable" in text
        runs_on = str(job.get("runs-on"))
        if builds or "self-hosted" in runs_on or "matrix.runner" in runs_on:
            assert "secrets." not in text, f"job {name} builds and sees a secret"
            assert "id-token" not in yaml.safe_dump(job.get("permissions", {})), f"job {name} builds with an id-token"
            assert "environment" not in job, f"job {name} builds inside the protected environment"
    publishers = [n for n, j in data["jobs"].items() if "secrets.HF_TOKEN" in yaml.safe_dump(j)]
    assert publishers == ["publish"], publishers
    job = data["jobs"]["publish"]
    assert job["permissions"].get("id-token") == "write" and job.get("environment") == "huggingface"
    assert job["needs"] == "gpu" and "self-hosted" not in str(job["runs-on"])
    steps = yaml.safe_dump(job["steps"])
    assert "download-artifact" in steps and "attest-build-provenance" in steps and "nox -s build" not in steps
