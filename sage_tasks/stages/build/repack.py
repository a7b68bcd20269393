"""From the compiler's wheel to a stored one: the variant label, the binaries' GPU code checked
against the plan, and the manifest written beside the wheel.
"""

from __future__ import annotations

import datetime as dt
import logging
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ...core import archs, atomic, redaction
from ...core.errors import BuildError, ConfigError
from ...store import manifest
from ...store.manifest import Verification, WheelManifest
from ...wheel import binaries, wheelfile
from .plan import BuildPlan
from .source import source_suffix

log = logging.getLogger(__name__)


def store_wheel(plan: BuildPlan, built: Path, source: Mapping[str, Any]) -> Path:
    """Copy the compiler's wheel into dist under its variant label (``.g``/``.s`` added for a
    source other than the recipe's clean pinned commit)."""
    label = plan.label + source_suffix(plan.recipe, source, plan.src_dir) if plan.label else None
    return wheelfile.relabel(built, plan.dist_dir, label) if label else _into(built, plan.dist_dir)


def describe(
    plan: BuildPlan, wheel: Path, source: dict[str, Any], started: dt.datetime, seconds: float
) -> tuple[WheelManifest, Path]:
    """The wheel's manifest, written beside it, after its binaries are checked against the plan:
    every arch asked for must have machine code in every extension."""
    listing: dict[str, dict[str, list[str]]] = {}
    if plan.recipe.cuda:
        listing = binaries.list_wheel(wheel)
        gaps = binaries.missing(listing, plan.archs)
        if gaps:
            first = next(iter(gaps.items()))
            raise BuildError(
                f"the built wheel lacks machine code for {', '.join(first[1])} in {first[0]} ({len(gaps)} extension(s) affected)",
                f"check TORCH_CUDA_ARCH_LIST handling in the recipe's setup; log: {plan.log_path}",
            )
    entry = WheelManifest(
        package=plan.recipe.package,
        **wheelfile.file_facts(wheel),  # type: ignore[arg-type]
        recipe=plan.recipe.name,
        torch_version=plan.torch_version,
        torch_cuda=plan.torch_cuda,
        torch_cxx11_abi=plan.torch_cxx11_abi,
        torchvision_version=plan.stack_versions.get("torchvision"),
        torchaudio_version=plan.stack_versions.get("torchaudio"),
        triton_version=plan.stack_versions.get("triton"),
        torch_index_url=redaction.public_url(plan.torch_index_url),
        target_arch=";".join(plan.archs) or None,
        cuda_archs=tuple(binaries.common_sass(listing)),
        binaries=listing,
        nvcc_version=(plan.nvcc.full_version or plan.nvcc.version) if plan.nvcc else None,
        source=source,
        build={
            "host": socket.gethostname(),
            "started_at": started.replace(microsecond=0).isoformat().replace("+00:00", "Z"),
            "seconds": seconds,
            "max_jobs": plan.parallel.max_jobs,
            "ext_parallel": plan.parallel.ext_parallel,
        },
        verification=Verification(
            status="unverified",
            summary="not yet kernel-tested",
            # every arch the binaries are built for starts unproven; test-kernel proves it per GPU
            archs=tuple(
                {"compute_capability": archs.base_arch(a), "status": "unverified", "summary": "not yet kernel-tested"}
                for a in plan.archs
            ),
        ),
    )
    manifest_path = plan.dist_dir / f"{wheel.name}.json"
    manifest.write_manifest_file(manifest_path, entry)
    return entry, manifest_path


def _into(wheel: Path, dist_dir: Path) -> Path:
    atomic.copy(wheel, dist_dir / wheel.name)
    return dist_dir / wheel.name


def latest_built(dist_dir: Path, package: str) -> Path:
    """The manifest of the newest wheel of ``package`` in ``dist_dir``."""
    found = manifest.built(dist_dir, package, strict=False)
    if not found:
        raise ConfigError(
            f"no built {package} wheel with a manifest in {dist_dir}", "run `invoke build` first, or pass the wheel"
        )
    return found[-1][0]
