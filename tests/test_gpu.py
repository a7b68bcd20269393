"""Real SageAttention on a real GPU (marked ``gpu``; run on the device machine).

Needs an NVIDIA GPU, nvcc, torch with CUDA in this interpreter, and ``SAGE_SOURCE_DIR`` naming
a SageAttention source export. ``SAGE_GPU_RECIPE`` picks the recipe (default: the default
recipe); ``SAGE_PROOF_DIR`` (optional) keeps the reports.

build → install into a fresh environment → test-kernel → publish → fetch into another fresh
environment → test-kernel --quick; and a cross-build for 12.0 that fetch on this GPU rejects.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from sage_tasks.environment import venvs
from tests import support

pytestmark = pytest.mark.gpu

SOURCE = os.environ.get("SAGE_SOURCE_DIR")
# read at import: the per-test environment is scrubbed of SAGE_* settings
RECIPE = ["--recipe", os.environ["SAGE_GPU_RECIPE"]] if os.environ.get("SAGE_GPU_RECIPE") else []


def _gpu_cc() -> str | None:
    smi = shutil.which("nvidia-smi")
    if not smi:
        return None
    import subprocess

    out = subprocess.run([smi, "--query-gpu=compute_cap", "--format=csv,noheader"], capture_output=True, text=True)
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None


CC = _gpu_cc()
requires_gpu = pytest.mark.skipif(
    not (CC and SOURCE), reason="needs an NVIDIA GPU and SAGE_SOURCE_DIR (run on the device machine)"
)


@pytest.fixture
def gpu_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PIP_CONFIG_FILE", None)  # the device image's own pip settings
    env.update({"SAGE_STORE": str(tmp_path / "store"), "SAGE_DIST": str(tmp_path / "dist")})
    return env


def keep(name: str, data: object) -> None:
    """Save a record (and the kernel report it names) under SAGE_PROOF_DIR, when set."""
    proof = os.environ.get("SAGE_PROOF_DIR")
    if not proof:
        return
    Path(proof).mkdir(parents=True, exist_ok=True)
    Path(proof, name).write_text(json.dumps(data, indent=1))
    report = (data.get("result", {}).get("test_kernel") or {}).get("report") if isinstance(data, dict) else None
    if report and Path(report).is_file():
        shutil.copy(report, Path(proof, name.replace(".json", "-kernel-report.json")))


def stages(report: dict) -> dict[str, str]:
    return {s["stage"]: s["outcome"] for s in report["stages"]}


@requires_gpu
def test_build_check_publish_then_fetch_into_a_fresh_environment(tasks, tmp_path, gpu_env):
    first = venvs.create(tmp_path / "env-a", sys.executable, reuse_from=sys.executable)
    built = tasks("auto", "--python", str(first), "--source", SOURCE, *RECIPE, "--json", env=gpu_env, timeout=1500)
    report = json.loads(built.stdout) if built.stdout.strip() else {}
    keep("gpu-auto-build.json", report)
    assert built.returncode == 0, built.stderr[-4000:]
    assert stages(report) == {
        "probe": "ok",
        "index": "ok",
        "plan": "build",
        "pin": "satisfied",
        "fetch": "miss",
        "build": "ok",
        "install": "ok",
        "test-kernel": "passed",
        "publish": "published",
    }
    manifest = json.loads(Path(report["result"]["build"]["manifest"]).read_text())
    sm = "sm_" + CC.replace(".", "") + ("a" if CC == "9.0" else "")
    assert sm in manifest["cuda_archs"]
    assert all(sm in archs["sass"] for archs in manifest["binaries"].values())

    second = venvs.create(tmp_path / "env-b", sys.executable, reuse_from=sys.executable)
    fetched = tasks("auto", "--python", str(second), *RECIPE, "--json", env=gpu_env, timeout=600)
    again = json.loads(fetched.stdout) if fetched.stdout.strip() else {}
    keep("gpu-auto-fetch.json", again)
    assert fetched.returncode == 0, fetched.stderr[-4000:]
    assert stages(again) == {
        "probe": "ok",
        "index": "ok",
        "plan": "fetch",
        "pin": "satisfied",
        "fetch": "hit",
        "test-kernel --quick": "passed",
    }
    assert support.installed_version(second, "sageattention") == manifest["version"]


@requires_gpu
@pytest.mark.skipif(CC == "12.0", reason="this GPU is the cross-build's target")
def test_cross_build_for_rtx5090_is_rejected_by_fetch_here(tasks, tmp_path, gpu_env):
    env = venvs.create(tmp_path / "env-x", sys.executable, reuse_from=sys.executable)
    built = tasks(
        "build", "--python", str(env), "--arch", "12.0", "--source", SOURCE, "--json", env=gpu_env, timeout=1500
    )
    assert built.returncode == 0, built.stderr[-4000:]
    record = json.loads(built.stdout)
    keep("gpu-cross-build-120.json", record)
    assert record["cuda_archs"] == ["sm_120"]
    assert all(a["sass"] == ["sm_120"] for a in record["binaries"].values())
    published = tasks("publish", "--wheel", record["wheel"], "--allow-unverified", env=gpu_env)
    assert published.returncode == 0, published.stderr
    rejected = tasks("fetch", "--python", str(env), "--dry-run", env=gpu_env)
    keep("gpu-fetch-rejects-120.txt", {"stderr": rejected.stderr})
    assert rejected.returncode == 3
    assert f"no machine code for compute capability {CC} (wheel carries sm_120)" in rejected.stderr
