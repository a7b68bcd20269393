"""pin runs real pip against a local PEP 503 index of stand-in torch wheels, in throwaway venvs."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests import support

pytestmark = pytest.mark.slow


@pytest.fixture
def venv(tmp_path: Path) -> Path:
    return support.make_venv(tmp_path / "venv")


def pin_env(torch_index: str, **extra: str) -> dict[str, str]:
    import os

    return {**os.environ, "TORCH_INDEX_URL": torch_index, **extra}


def test_pin_installs_the_stack_then_reinstalls_only_what_differs(tasks, venv, torch_index, no_gpu_path):
    env = pin_env(torch_index)
    first = tasks("pin", "--python", str(venv), "--json", env=env)
    assert first.returncode == 0, first.stderr
    record = json.loads(first.stdout)
    assert {d["package"] for d in record["differences"]} == {"torch", "torchvision", "torchaudio", "triton"}
    assert record["installed"] == {
        "torch": "2.8.0+cu128",
        "torchvision": "0.23.0+cu128",
        "torchaudio": "2.8.0+cu128",
        "triton": "3.4.0",
    }

    # break one package: only that one is reinstalled
    subprocess.run(
        [str(venv), "-m", "pip", "install", "-q", "--index-url", torch_index, "torchaudio==2.7.0+cu128"],
        check=True,
        env=support.offline_pip_env(env),
    )
    check = tasks("pin", "--python", str(venv), "--check", env=env)
    assert check.returncode == 10
    assert "torchaudio: 2.7.0+cu128 installed, 2.8.0 wanted" in check.stderr

    dry = tasks("pin", "--python", str(venv), "--dry-run", env=env)
    assert dry.returncode == 0
    command_line = dry.stdout.strip().splitlines()[-1]
    assert "torchaudio==2.8.0+cu128" in command_line and "torch==" not in command_line
    assert support.installed_version(venv, "torchaudio") == "2.7.0+cu128"  # dry run changed nothing

    again = tasks("pin", "--python", str(venv), "--json", env=env)
    assert again.returncode == 0, again.stderr
    assert [d["package"] for d in json.loads(again.stdout)["differences"]] == ["torchaudio"]
    assert support.installed_version(venv, "torchaudio") == "2.8.0+cu128"
    assert tasks("pin", "--python", str(venv), "--check", env=env).returncode == 0


def test_pin_check_on_a_satisfied_stack_starts_no_pip(tasks, venv, torch_index, no_gpu_path):
    env = pin_env(torch_index)
    assert tasks("pin", "--python", str(venv), env=env).returncode == 0
    # Without pip in the target, any pip process would fail: --check must still pass.
    site = next((venv.parent.parent / "lib").glob("python3.*/site-packages"))
    shutil.rmtree(site / "pip")
    result = tasks("pin", "--python", str(venv), "--check", env=env)
    assert result.returncode == 0, result.stderr
    assert "stack satisfied" in result.stdout


def test_cpu_torch_is_replaced_by_the_cuda_build(tasks, venv, torch_index, no_gpu_path):
    env = pin_env(torch_index)
    subprocess.run(
        [str(venv), "-m", "pip", "install", "-q", "--index-url", torch_index, "torch==2.8.0+cpu"],
        check=True,
        env=support.offline_pip_env(env),
    )
    result = tasks("pin", "--python", str(venv), "--json", env=env)
    assert result.returncode == 0, result.stderr
    assert support.installed_version(venv, "torch") == "2.8.0+cu128"


def test_env_pins_beat_the_lock(tasks, venv, torch_index, no_gpu_path):
    env = pin_env(torch_index, TORCHAUDIO_VERSION="2.7.0+cu128")
    result = tasks("pin", "--python", str(venv), "--json", env=env)
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["stack"]["origins"]["torchaudio"] == "env TORCHAUDIO_VERSION"
    assert support.installed_version(venv, "torchaudio") == "2.7.0+cu128"
