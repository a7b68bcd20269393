"""Stack resolution order and comparison rules (pure); pip against a local index is in test_pin.py."""

from __future__ import annotations

import pytest

from sage_tasks.core.errors import ConfigError
from sage_tasks.core.locations import manifests_dir
from sage_tasks.stages import stack
from tests.support import entry, target

LOCKS = manifests_dir({})


def default_lock():
    return stack.load_lock("rtx5090-cu128", LOCKS)


def test_committed_default_lock_is_the_rtx5090_stack():
    lock = default_lock()
    assert dict(lock.versions) == {"torch": "2.8.0", "torchvision": "0.23.0", "torchaudio": "2.8.0", "triton": "3.4.0"}
    assert lock.index_url == "https://download.pytorch.org/whl/cu128"
    assert lock.target_arch == "12.0"


def test_lock_is_chosen_by_gpu_arch():
    assert stack.lock_for_machine(("9.0",), "rtx5090-cu128", LOCKS).name == "hopper-cu130"
    assert stack.lock_for_machine(("12.0",), "rtx5090-cu128", LOCKS).name == "rtx5090-cu128"
    assert stack.lock_for_machine((), "rtx5090-cu128", LOCKS).name == "rtx5090-cu128"


def test_env_beats_store_beats_lock():
    stored = entry(
        torch_version="2.7.1+cu128",
        torchvision_version="0.22.1+cu128",
        torchaudio_version="2.7.1+cu128",
        triton_version="3.3.1",
        torch_index_url="https://example.invalid/whl/cu128",
    )
    resolved = stack.resolve(
        {"TORCH_VERSION": "2.9.0", "TORCH_INDEX_URL": "https://mirror.invalid/whl/cu129"}, stored, default_lock()
    )
    assert resolved.versions["torch"] == "2.9.0" and resolved.origins["torch"] == "env TORCH_VERSION"
    assert resolved.versions["torchvision"] == "0.22.1+cu128" and resolved.origins["torchvision"].startswith(
        "store manifest"
    )
    assert resolved.index_url == "https://mirror.invalid/whl/cu129"
    plain = stack.resolve({}, None, default_lock())
    assert plain.versions["triton"] == "3.4.0" and plain.origins["triton"] == "lock rtx5090-cu128"


def test_bad_version_in_env_is_a_config_error():
    with pytest.raises(ConfigError, match="TORCH_VERSION"):
        stack.resolve({"TORCH_VERSION": "latest please"}, None, default_lock())


def test_satisfied_stack_has_no_differences():
    assert stack.diff(default_lock(), target()) == []


def test_only_the_mismatched_package_differs():
    found = stack.diff(default_lock(), target({"torchaudio": "2.7.0+cu128"}))
    assert [(d.package, d.wanted) for d in found] == [("torchaudio", "2.8.0+cu128")]


def test_a_cpu_torch_differs_from_a_cuda_pin_even_with_the_same_version():
    found = stack.diff(default_lock(), target({"torch": "2.8.0+cpu"}, torch_cuda=None))
    assert [d.package for d in found] == ["torch"]
    assert "built for no CUDA, the index gives cu128" in found[0].reason


def test_missing_packages_differ():
    found = stack.diff(default_lock(), target({"triton": None}))
    assert [(d.package, d.reason) for d in found] == [("triton", "not installed")]


def test_pip_command_names_exact_versions_and_the_index():
    diffs = stack.diff(default_lock(), target({"torchaudio": "2.7.0+cu128", "triton": None}))
    command = stack.pip_command("/venv/bin/python", diffs, default_lock())
    assert command[:4] == ["/venv/bin/python", "-m", "pip", "install"]
    assert "torchaudio==2.8.0+cu128" in command and "triton==3.4.0" in command
    assert "--force-reinstall" not in command
    assert command[-2:] == ["--index-url", "https://download.pytorch.org/whl/cu128"]
