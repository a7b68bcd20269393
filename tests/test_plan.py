"""auto plans first: a plan that cannot succeed is refused before anything changes or downloads."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time

import pytest

from sage_tasks.core import settings
from sage_tasks.core.errors import ExitCode
from sage_tasks.stages import plan, stack
from sage_tasks.store.manifest import Index
from tests import support

GIB = 1024**3
PLENTY = {"/venv/site": 500 * GIB, "/home/u/.cache/sage-tasks": 500 * GIB}


def _settings(**flags):
    return settings.resolve(flags, {"HOME": "/home/u"})


def _lock(s):
    return stack.lock_for_machine(("12.0",), s.default_stack, s.manifests_dir)


def _machine(**changes):
    found = support.machine(**changes)
    target = dataclasses.replace(found.target, paths={"purelib": "/venv/site"})
    return dataclasses.replace(found, target=target)


def _decide(s, found, free=None, allow_unverified=False, wheels=()):
    return plan.decide(
        s, found, Index(wheels=list(wheels)), _lock(s), allow_unverified=allow_unverified, free=free or PLENTY
    )


def test_no_gpu_and_no_arch_is_refused_with_the_hints():
    decided = _decide(_settings(), _machine(gpus=(), packages={"torch": None}))
    assert decided.path == "build" and decided.problem is not None
    assert decided.problem.code == ExitCode.MACHINE
    assert "--arch 12.0" in decided.problem.hint and "store that has a wheel" in decided.problem.hint


def test_a_stored_wheel_that_fits_the_pinned_stack_is_the_fetch_path():
    entry = support.entry(wheel_file="sageattention-2.2.0+cu128torch2.8.0-cp312-cp312-linux_x86_64.whl")
    decided = _decide(_settings(), _machine(packages={"torch": "2.13.0+cpu"}, torch_cuda=None), wheels=[entry])
    assert decided.path == "fetch" and decided.problem is None
    assert decided.wheel == entry.wheel_file
    assert decided.replaces == ("torch 2.13.0+cpu → 2.8.0+cu128",)


def test_an_old_nvcc_is_refused_before_the_pin():
    decided = _decide(_settings(), _machine(nvcc="12.4"))
    assert decided.problem is not None and decided.problem.code == ExitCode.MACHINE
    assert "nvcc 12.4" in decided.problem.message


def test_too_little_disk_for_the_stack_is_refused():
    found = _machine(packages={"torch": None})
    decided = _decide(_settings(), found, free={**PLENTY, "/venv/site": 2 * GIB})
    assert decided.problem is not None and decided.problem.code == ExitCode.ENVIRONMENT
    assert "/venv/site has 2.0 GiB free" in decided.problem.message


def test_too_little_disk_for_the_build_is_refused():
    decided = _decide(_settings(), _machine(), free={**PLENTY, "/home/u/.cache/sage-tasks": GIB})
    assert decided.problem is not None and "sage-tasks has 1.0 GiB free" in decided.problem.message


def test_too_little_memory_for_one_compiler_job_is_refused():
    decided = _decide(_settings(), _machine(mem_mib=1024))
    assert decided.problem is not None and decided.problem.code == ExitCode.MACHINE
    assert "one compiler job needs" in decided.problem.message


def test_a_cross_build_without_a_gpu_needs_allow_unverified():
    found = _machine(gpus=())
    refused = _decide(_settings(arch="12.0"), found)
    assert refused.problem is not None and refused.problem.code == ExitCode.UNVERIFIED
    assert _decide(_settings(arch="12.0"), found, allow_unverified=True).problem is None


def test_keep_stack_plans_for_the_installed_torch():
    s = dataclasses.replace(_settings(), keep_stack=True)
    decided = _decide(s, _machine(packages={"torch": "2.7.1+cu128"}))
    assert decided.pin == () and decided.replaces == ()
    assert decided.build is not None and decided.build["label"].startswith("cu128torch2.7.1")


@pytest.mark.slow
def test_auto_on_a_cpu_machine_with_an_empty_store_refuses_at_once(tmp_path, no_gpu_path):
    """A real `invoke auto` against a fresh venv: non-zero, a hint, the venv and store untouched."""
    venv = support.make_venv(tmp_path / "venv")
    site = next((tmp_path / "venv" / "lib").glob("python3.*/site-packages"))
    before = sorted(p.name for p in site.iterdir())
    env = {**os.environ, "SAGE_STORE": str(tmp_path / "store"), "CUDA_HOME": str(tmp_path / "no-cuda")}
    command = [sys.executable, "-m", "invoke", "--search-root", str(support.REPO), "auto", "--python", str(venv)]
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    seconds = time.perf_counter() - start
    assert done.returncode == ExitCode.MACHINE, done.stderr
    assert "--arch 12.0" in done.stderr and "store that has a wheel" in done.stderr
    assert sorted(p.name for p in site.iterdir()) == before
    assert not (tmp_path / "store").exists()
    assert seconds < 3 * 3  # loose: the README's number comes from bench/auto_refusal.py
    dry = subprocess.run(
        [*command, "--dry-run", "--json"], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    report = json.loads(dry.stdout)
    assert dry.returncode == done.returncode and report["result"]["plan"]["ok"] is False
    assert report["result"]["plan"]["problem"] in done.stderr


SAGE_URL = "https://example.invalid/sageattention-2.2.0+cu128torch2.8.0-cp312-cp312-linux_x86_64.whl"


@pytest.mark.parametrize(
    ("env", "code", "says"),
    [
        (
            {"WHEEL_URL": "https://example.invalid/other-1.0-py3-none-any.whl"},
            ExitCode.INTEGRITY,
            "not a sageattention",
        ),
        ({"WHEEL_URL": SAGE_URL.replace("https", "http"), "WHEEL_SHA256": "b" * 64}, ExitCode.CONFIG, "plain-HTTP"),
        ({"WHEEL_URL": "https://example.invalid/sageattention.whl"}, ExitCode.INTEGRITY, "sageattention.whl"),
        ({"WHEEL_URL": SAGE_URL}, ExitCode.INTEGRITY, "no known sha256"),
    ],
)
def test_a_wheel_url_that_fetch_would_refuse_is_refused_by_the_plan(env, code, says):
    s = settings.resolve({}, {"HOME": "/home/u", **env})
    decided = _decide(s, _machine())
    assert decided.problem is not None and decided.problem.code == code, decided.problem
    assert says in decided.problem.message and decided.wheel is None


def test_a_wheel_url_with_a_known_sha256_is_the_fetch_path():
    s = settings.resolve({}, {"HOME": "/home/u", "WHEEL_URL": SAGE_URL, "WHEEL_SHA256": "b" * 64})
    decided = _decide(s, _machine())
    assert decided.path == "fetch" and decided.problem is None
    assert decided.wheel == SAGE_URL.rsplit("/", 1)[-1]


@pytest.mark.slow
def test_auto_with_a_wheel_url_of_another_package_refuses_before_the_pin(tmp_path, no_gpu_path, torch_index):
    """The plan makes fetch's checks on WHEEL_URL: the venv never gets the torch stack."""
    venv = support.make_venv(tmp_path / "venv")
    site = next((tmp_path / "venv" / "lib").glob("python3.*/site-packages"))
    before = sorted(p.name for p in site.iterdir())
    recipe = support.write_demo_recipe(tmp_path / "demo.toml", "file:///nonexistent", None)
    env = {
        **os.environ,
        "SAGE_STORE": str(tmp_path / "store"),
        "TORCH_INDEX_URL": torch_index,
        "WHEEL_URL": "https://example.invalid/other-1.0-py3-none-any.whl",
    }
    command = [sys.executable, "-m", "invoke", "--search-root", str(support.REPO), "auto", "--python", str(venv)]
    command += ["--recipe", str(recipe)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == ExitCode.INTEGRITY, done.stderr[-3000:]
    assert "not a sage-demo wheel" in done.stderr
    assert sorted(p.name for p in site.iterdir()) == before
    assert not any(site.glob("torch*"))
