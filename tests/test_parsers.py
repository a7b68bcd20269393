"""Parsers over real captured tool outputs (H100, driver 580, CUDA 13.0) and the RTX 5090 stand-in."""

from __future__ import annotations

import subprocess

from sage_tasks.stages import probe
from tests import support

CAP = support.CAPTURES / "h100-cuda13"


def test_gpu_query_with_header_and_units():
    gpus = probe.parse_gpu_query((CAP / "nvidia-smi-query.csv").read_text())
    assert gpus == [probe.Gpu(index=0, name="NVIDIA H100 80GB HBM3", compute_capability="9.0", memory_mib=81559)]


def test_gpu_query_without_header_needs_columns():
    text = (CAP / "nvidia-smi-query-noheader.csv").read_text()
    gpus = probe.parse_gpu_query(text, ["name", "compute_cap", "driver_version"])
    assert [(g.name, g.compute_capability) for g in gpus] == [("NVIDIA H100 80GB HBM3", "9.0")]
    assert probe.parse_gpu_query_drivers(text, ["name", "compute_cap", "driver_version"]) == ["580.159.04"]


def test_smi_banner_gives_driver_and_cuda():
    assert probe.parse_smi_banner((CAP / "nvidia-smi.txt").read_text()) == ("580.159.04", "13.0")


def test_nvcc_version():
    assert probe.parse_nvcc_version((CAP / "nvcc-version.txt").read_text()) == ("13.0", "13.0.88")
    assert probe.parse_nvcc_version("bash: nvcc: command not found") is None


def test_driver_version_files():
    proc_text, sys_text = (CAP / "driver-version.txt").read_text().split("---")
    assert probe.parse_driver_version_file(proc_text) == "580.159.04"
    assert probe.parse_driver_version_file(sys_text) == "580.159.04"


def test_meminfo():
    text = "MemTotal:       24683496 kB\nMemFree:        1 kB\nMemAvailable:   20000000 kB\n"
    assert probe.parse_meminfo(text) == (24104, 19531)


def test_standin_nvidia_smi_answers_like_a_5090(rtx5090):
    query = subprocess.run(
        [str(rtx5090), f"--query-gpu={','.join(probe.GPU_QUERY_FIELDS)}", "--format=csv,noheader,nounits"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    gpus = probe.parse_gpu_query(query, probe.GPU_QUERY_FIELDS)
    assert [(g.name, g.compute_capability, g.memory_mib) for g in gpus] == [("NVIDIA GeForce RTX 5090", "12.0", 32607)]
    banner = subprocess.run([str(rtx5090)], capture_output=True, text=True, check=True).stdout
    assert probe.parse_smi_banner(banner) == ("570.133.07", "12.8")
