from __future__ import annotations

import pytest

from sage_tasks.core import archs
from sage_tasks.core.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("12.0", "12.0"),
        ("120", "12.0"),
        ("sm_120", "12.0"),
        ("9.0", "9.0"),
        ("sm_90a", "9.0"),
        ("8.9+PTX", "8.9+PTX"),
        (" 8.6 ", "8.6"),
    ],
)
def test_normalize_arch(text, want):
    assert archs.normalize_arch(text) == want


@pytest.mark.parametrize("bad", ["", "twelve", "12.0.1", "sm_", "1200", "../x"])
def test_bad_arch_is_a_config_error(bad):
    with pytest.raises(ConfigError):
        archs.normalize_arch(bad)


def test_arch_list_splits_and_dedups():
    assert archs.parse_arch_list("9.0;12.0, 9.0 8.9+PTX") == ("9.0", "12.0", "8.9+PTX")


@pytest.mark.parametrize(
    ("binary", "cc", "runs"),
    [
        ("sm_120", "12.0", True),
        ("sm_120", "9.0", False),
        ("sm_90a", "9.0", True),
        ("sm_90a", "9.1", False),  # arch-specific code runs only on its own chip
        ("sm_90", "9.0", True),
        ("sm_80", "8.6", True),  # same major, later minor
        ("sm_86", "8.0", False),
        ("sm_80", "9.0", False),  # machine code never crosses majors
        ("compute_80", "12.0", True),  # PTX is compiled by the driver for later GPUs
        ("compute_90a", "12.0", False),
    ],
)
def test_runs_on(binary, cc, runs):
    assert archs.runs_on(binary, cc) is runs


def test_flavors_and_labels():
    assert archs.flavor_from_index_url("https://download.pytorch.org/whl/cu128") == "cu128"
    assert archs.flavor_from_index_url("https://download.pytorch.org/whl/nightly/cu130/") == "cu130"
    assert archs.flavor_from_index_url("https://pypi.org/simple") is None
    assert archs.cuda_from_flavor("cu128") == "12.8"
    assert archs.cuda_from_flavor("cu130") == "13.0"
    assert archs.flavor_from_cuda("12.8") == "cu128"
    assert archs.wheel_local_label("2.8.0+cu128", "12.8") == "cu128torch2.8.0"
    assert archs.wheel_local_label("2.13.0+cpu", None) == "cputorch2.13.0"


def test_driver_supports_by_major_version():
    assert archs.driver_supports("12.8", "12.8") is True
    assert archs.driver_supports("12.4", "12.8") is True  # minor-version compatibility
    assert archs.driver_supports("12.8", "13.0") is False
    assert archs.driver_supports(None, "12.8") is None
