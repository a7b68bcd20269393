"""Build planning (pure): archs, toolchain checks, job sizing, environment."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sage_tasks.core import settings
from sage_tasks.core.errors import ConfigError, EnvironmentProblem, MachineError
from sage_tasks.stages import build
from tests.support import machine


def resolved(**flags):
    return settings.resolve(flags, {"HOME": "/home/u"})


def test_plan_for_the_probed_gpu():
    plan = build.plan_build(resolved(), machine())
    assert plan.archs == ("12.0",)
    assert plan.env["TORCH_CUDA_ARCH_LIST"] == "12.0"
    assert plan.env["CUDA_HOME"] == "/usr/local/cuda"
    assert plan.label == "cu128torch2.8.0.sm120"
    assert plan.source_kind == "git" and plan.commit == "eb615cf6cf4d221338033340ee2de1c37fbdba4a"
    assert plan.pip_wheel_command()[2:6] == ["pip", "wheel", "--no-build-isolation", "--no-deps"]


def test_no_gpu_and_no_arch_names_the_flag():
    with pytest.raises(MachineError, match="no GPU was found") as err:
        build.plan_build(resolved(), machine(gpus=()))
    assert "--arch" in err.value.hint


def test_cross_compile_with_arch_on_a_machine_without_gpu():
    plan = build.plan_build(resolved(arch="12.0"), machine(gpus=()))
    assert plan.archs == ("12.0",)


@pytest.mark.parametrize(
    ("arch", "nvcc", "needed"), [("12.0", "12.6", "12.8"), ("9.0", "12.2", "12.3"), ("8.9", "12.3", "12.4")]
)
def test_nvcc_too_old_for_the_arch(arch, nvcc, needed):
    with pytest.raises(MachineError, match=rf"needs CUDA {re.escape(needed)}"):
        build.plan_build(resolved(arch=arch), machine(nvcc=nvcc))


def test_nvcc_and_torch_cuda_majors_must_match():
    with pytest.raises(MachineError, match="major versions must match"):
        build.plan_build(resolved(), machine(nvcc="13.0"))


def test_cpu_torch_cannot_build_cuda_extensions():
    with pytest.raises(MachineError, match="CPU build"):
        build.plan_build(resolved(), machine(torch_cuda=None))


def test_missing_nvcc_is_a_machine_error():
    with pytest.raises(MachineError, match="nvcc was not found"):
        build.plan_build(resolved(), machine(nvcc=None))


def test_torch_missing_is_an_environment_error():
    with pytest.raises(EnvironmentProblem, match="torch is not installed"):
        build.plan_build(resolved(), machine(packages={"torch": None}))


def test_unsupported_arch_is_a_config_error():
    with pytest.raises(ConfigError, match=r"cannot be built for arch 7\.5"):
        resolved(arch="7.5")


def test_missing_build_requirements_are_listed_for_install():
    plan = build.plan_build(resolved(), machine(packages={"ninja": None, "setuptools": "59.0"}))
    assert plan.missing_requires == ("setuptools>=62", "ninja")


def test_target_bin_comes_first_on_path():
    plan = build.plan_build(resolved(), machine())
    env = build.build_environment(plan, {"PATH": "/usr/bin"})
    assert env["PATH"].split(":")[:2] == ["/venv/bin", "/usr/local/cuda/bin"]


class TestJobSizing:
    def recipe(self):
        return resolved().recipe  # 4 extensions, 2.5 GiB per nvcc job

    def test_big_host_runs_every_extension_with_many_jobs(self):
        p = build.size_jobs(16, 128 * 1024, self.recipe())
        assert (p.ext_parallel, p.max_jobs) == (4, 8)  # 32 jobs: two per core
        assert p.ext_parallel * p.max_jobs * 2.5 <= 128 * 0.8

    def test_small_host_stays_inside_its_memory(self):
        p = build.size_jobs(2, 22 * 1024, self.recipe())
        assert p.ext_parallel * p.max_jobs * 2.5 <= 22
        assert p.max_jobs == 1

    def test_memory_not_cores_bounds_a_big_box_with_little_ram(self):
        p = build.size_jobs(64, 16 * 1024, self.recipe())
        assert p.ext_parallel * p.max_jobs * 2.5 <= 16 * 0.8
        assert "GiB available" in p.reason

    def test_tiny_memory_still_builds_one_job(self):
        assert build.size_jobs(64, 2 * 1024, self.recipe()) == build.Parallelism(
            1, 1, build.size_jobs(64, 2 * 1024, self.recipe()).reason
        )

    def test_environment_wins(self):
        p = build.size_jobs(16, 128 * 1024, self.recipe(), max_jobs=3, ext_parallel=2)
        assert (p.ext_parallel, p.max_jobs) == (2, 3)
        assert "MAX_JOBS and EXT_PARALLEL from the environment" in p.reason


def test_source_path_must_exist(tmp_path: Path):
    with pytest.raises(ConfigError, match="neither a directory nor a tarball"):
        build.plan_build(resolved(source=str(tmp_path / "nope")), machine())


def test_a_commit_pinned_recipe_names_its_commit_in_the_label():
    plan = build.plan_build(
        resolved(recipe="sageattention-2.2.0-d1a57a5", arch="9.0"), machine(gpus=(("NVIDIA H100 80GB HBM3", "9.0"),))
    )
    assert plan.label == "cu128torch2.8.0.sm90.gd1a57a5"
    assert plan.commit == "d1a57a546c3d395b1ffcbeecc66d81db76f3b4b5" and plan.ref is None


def test_labels_keep_variants_apart():
    recipe = resolved().recipe
    assert build.variant_label(recipe, "2.8.0+cu128", "12.8", ("12.0",)) == "cu128torch2.8.0.sm120"
    assert build.variant_label(recipe, "2.8.0+cu128", "12.8", ("8.9", "12.0")) == "cu128torch2.8.0.sm89.sm120"
    assert build.variant_label(recipe, None, None, ("12.0",)) is None


def test_a_source_that_is_not_the_pinned_commit_is_named(tmp_path: Path):
    recipe = resolved().recipe
    pinned = {"commit": recipe.source.commit}
    assert build.source_suffix(recipe, pinned, tmp_path) == ""
    assert build.source_suffix(recipe, {"commit": "0123456789abcdef" * 2 + "01234567"}, tmp_path) == ".g0123456"
    (tmp_path / "a.cu").write_text("one")
    first = build.source_suffix(recipe, {"commit": None}, tmp_path)
    assert first.startswith(".s") and len(first) == 9
    assert build.source_suffix(recipe, {"commit": recipe.source.commit, "dirty": True}, tmp_path) == first
    (tmp_path / "a.cu").write_text("two")
    assert build.source_suffix(recipe, {"commit": None}, tmp_path) != first
