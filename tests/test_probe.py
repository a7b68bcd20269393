"""`invoke probe` end to end: a stand-in RTX 5090 on PATH, or nothing at all; torch's facts come
from its installed files, never from importing it."""

from __future__ import annotations

import json
import subprocess
import textwrap

import pytest

from tests import support


@pytest.fixture
def venv_with_unimportable_torch(tmp_path, torch_index):
    """A venv whose stand-in torch raises on import: the probe must read it without importing."""
    python = support.make_venv(tmp_path / "venv")
    booby = textwrap.dedent(
        """\
        def compiled_with_cxx11_abi() -> bool:
            return True


        raise ImportError("the probe imported torch")
        """
    )
    wheel = support.make_wheel(
        tmp_path / "w", "torch", "2.8.0+cu128",
        {"torch/__init__.py": booby, "torch/version.py": "__version__ = '2.8.0+cu128'\ncuda = '12.8'\n"},
    )  # fmt: skip
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", str(wheel)],
        check=True,
        env=support.offline_pip_env({}),
    )
    return python


def test_probe_on_a_5090_reads_gpu_driver_and_torch_without_importing_it(tasks, rtx5090, venv_with_unimportable_torch):
    result = tasks("probe", "--python", str(venv_with_unimportable_torch), "--json")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert [(g["name"], g["compute_capability"], g["memory_mib"]) for g in record["gpus"]] == [
        ("NVIDIA GeForce RTX 5090", "12.0", 32607)
    ]
    assert (record["driver_version"], record["driver_cuda"]) == ("570.133.07", "12.8")
    target = record["target"]
    assert target["packages"]["torch"] == "2.8.0+cu128"
    assert (target["torch_cuda"], target["torch_cxx11_abi"], target["torch_cxx11_abi_source"]) == (
        "12.8",
        True,
        "torch/__init__.py",
    )
    assert target["python_tag"].startswith("cp3")
    assert record["cpu_count"] >= 1 and record["mem_total_mib"] > 0 and record["libc"].startswith("glibc")
    table = tasks("probe", "--python", str(venv_with_unimportable_torch))
    assert "NVIDIA GeForce RTX 5090 (cc 12.0)" in table.stdout and "570.133.07 (CUDA 12.8)" in table.stdout


def test_probe_with_nothing_reports_absence_and_succeeds(tasks, no_gpu_path, tmp_path):
    bare = support.make_venv(tmp_path / "bare")
    env = {k: v for k, v in __import__("os").environ.items()}
    env["PATH"] = str(no_gpu_path) + ":/usr/bin:/bin"  # no nvidia-smi, no nvcc on PATH
    env["CUDA_HOME"] = str(tmp_path / "no-cuda")
    result = tasks("probe", "--python", str(bare), "--json", env=env)
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["gpus"] == [] and record["driver_cuda"] is None
    assert record["target"]["packages"]["torch"] is None and record["target"]["torch_cuda"] is None
    assert any("nvidia-smi not found" in n for n in record["notes"])
    assert any("torch is not installed" in n for n in record["notes"])


def test_import_torch_is_only_done_when_asked(tasks, no_gpu_path, venv_with_unimportable_torch):
    asked = tasks("probe", "--python", str(venv_with_unimportable_torch), "--import-torch", "--json")
    assert asked.returncode == 0, asked.stderr
    imported = json.loads(asked.stdout)["target"]["torch_imported"]
    assert "the probe imported torch" in imported["error"]  # it did import, in a subprocess, and said so
