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
