"""Records for pure tests: manifests, wants, targets, machines, and the bash installer's
``latest.json``.
"""

from __future__ import annotations

CP312_TAGS = frozenset(
    {"cp312-cp312-linux_x86_64", "cp312-cp312-manylinux_2_28_x86_64", "cp312-abi3-linux_x86_64", "py3-none-any"}
)


def entry(**changes):
    """A valid SageAttention manifest for RTX 5090 / cp312 / torch 2.8.0+cu128, with changes."""
    from sage_tasks.store.manifest import Verification, WheelManifest

    base = dict(
        package="sageattention",
        version="2.2.0+cu128torch2.8.0",
        wheel_file="sageattention-2.2.0+cu128torch2.8.0-cp312-cp312-linux_x86_64.whl",
        wheel_sha256="a" * 64,
        wheel_size=16_400_000,
        python_tag="cp312",
        abi_tag="cp312",
        platform_tag="linux_x86_64",
        torch_version="2.8.0+cu128",
        torch_cuda="12.8",
        torch_cxx11_abi=True,
        target_arch="12.0",
        cuda_archs=("sm_120",),
        source={
            "repo": "https://github.com/thu-ml/SageAttention",
            "ref": "v2.2.0",
            "commit": "eb615cf6cf4d221338033340ee2de1c37fbdba4a",
        },
        verification=Verification(status="passed", gpu="NVIDIA GeForce RTX 5090", compute_capability="12.0"),
        created_at="2026-11-01T00:00:00Z",
    )
    base.update(changes)
    if "wheel_file" in changes and "python_tag" not in changes:
        from sage_tasks.store.manifest import wheel_tags

        base["python_tag"], base["abi_tag"], base["platform_tag"] = wheel_tags(changes["wheel_file"])
    return WheelManifest(**base)


def want(**changes):
    from sage_tasks.stages.selection import Want

    base = dict(
        package="sageattention",
        version="2.2.0",
        tags=CP312_TAGS,
        torch_version="2.8.0+cu128",
        torch_cuda="12.8",
        torch_cxx11_abi=True,
        commit="eb615cf6cf4d221338033340ee2de1c37fbdba4a",
        ccs=("12.0",),
        driver_cuda="12.8",
    )
    base.update(changes)
    return Want(**base)


def target(packages=None, torch_cuda="12.8", abi=True, python="/venv/bin/python"):
    from sage_tasks.stages.probe import TargetEnv

    base = {
        "torch": "2.8.0+cu128",
        "torchvision": "0.23.0+cu128",
        "torchaudio": "2.8.0+cu128",
        "triton": "3.4.0",
        "setuptools": "80.0.0",
        "wheel": "0.45.0",
        "packaging": "25.0",
        "ninja": "1.13.0",
        "pip": "25.0",
    }
    base.update(packages or {})
    return TargetEnv(
        python=python,
        version="3.12.1",
        implementation="cpython",
        tags=tuple(sorted(CP312_TAGS)),
        packages=base,
        torch_cuda=torch_cuda,
        torch_cxx11_abi=abi,
    )


def machine(gpus=(("NVIDIA GeForce RTX 5090", "12.0"),), nvcc="12.8", cores=16, mem_mib=128 * 1024, **target_changes):
    from sage_tasks.stages.probe import Gpu, Machine, Program

    return Machine(
        gpus=tuple(Gpu(i, name, cc, 32607) for i, (name, cc) in enumerate(gpus)),
        driver_version="570.133.07" if gpus else None,
        driver_cuda="12.8" if gpus else None,
        nvcc=Program("/usr/local/cuda/bin/nvcc", nvcc, nvcc + ".93") if nvcc else None,
        system="Linux",
        arch="x86_64",
        libc="glibc 2.39",
        kernel="6.8",
        cpu_count=cores,
        mem_total_mib=mem_mib,
        mem_available_mib=mem_mib,
        target=target(**target_changes),
    )


# the fields newer versions of the bash installer add to latest.json
INSTALLER_NEWER_FIELDS = (
    "cudaarchs", "required_min_cuda", "built_for", "built_from_repo", "built_from_ref", "built_from_commit",
    "builder_gpu_name", "builder_gpu_compute_capability", "expected_sageattention_version",
)  # fmt: skip


def legacy_latest(wheel_file: str, sha256: str, *, older: bool = False, **changes: object) -> dict[str, object]:
    """A ``latest.json`` as the bash installer writes it: each version is the installed
    distribution's, so torch from PyPI is a plain ``2.8.0`` (its CUDA only in the index URL and
    ``required_min_cuda``). ``older``: the field set of older installer versions."""
    record: dict[str, object] = {
        "created_at_utc": "2026-11-01T00:00:00Z",
        "wheel_file": wheel_file,
        "wheel_sha256": sha256,
        "hf_wheel_url": None,
        "sageattention_version": "2.2.0",
        "torch_version": "2.8.0",
        "torchvision_version": "0.23.0",
        "torchaudio_version": "2.8.0",
        "triton_version": "3.4.0",
        "torch_index_url": "https://download.pytorch.org/whl/cu128",
        "target_arch": "12.0",
        "python_version": "3.12.3",
        "python_tag": "cp312",
        "platform": "linux",
        "machine": "x86_64",
        "cudaarchs": "120",
        "required_min_cuda": "12.8",
        "built_for": "RTX 5090 (sm_120)",
        "built_from_repo": "https://github.com/thu-ml/SageAttention",
        "built_from_ref": "v2.2.0",
        "built_from_commit": "eb615cf6cf4d221338033340ee2de1c37fbdba4a",
        "builder_gpu_name": "NVIDIA GeForce RTX 5090",
        "builder_gpu_compute_capability": "12.0",
        "expected_sageattention_version": "2.2.0",
    }
    if older:
        for name in INSTALLER_NEWER_FIELDS:
            del record[name]
    record.update(changes)
    return record
