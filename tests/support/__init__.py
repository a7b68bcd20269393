"""Test helpers, one module per concern: ``wheels`` (tiny wheels and a local index), ``envs``
(venvs, offline pip), ``gpu`` (a stand-in nvidia-smi), ``demo`` (the fixture recipe and its
source), ``records`` (records for pure tests), ``faults`` (fault counts for RELIABILITY.md).

Tests use them as ``support.NAME``; the names are re-exported here.
"""

from .demo import DEMO_C, DEMO_CHECK, DEMO_SETUP, git, make_demo_repo, write_demo_recipe, write_demo_source
from .envs import installed_version, make_venv, offline_pip_env
from .faults import FAULTS, count_fault
from .gpu import RTX5090, install_fake_nvidia_smi, rtx5090_banner
from .paths import CAPTURES, REPO
from .records import CP312_TAGS, INSTALLER_NEWER_FIELDS, entry, legacy_latest, machine, target, want
from .wheels import (
    PURE_NATIVE,
    build_simple_index,
    demo_manifest,
    demo_wheel,
    make_wheel,
    repack_installed,
    standin_torch_stack,
)

__all__ = [
    "CAPTURES", "CP312_TAGS", "DEMO_C", "DEMO_CHECK", "DEMO_SETUP", "FAULTS", "INSTALLER_NEWER_FIELDS",
    "PURE_NATIVE", "REPO", "RTX5090", "build_simple_index", "count_fault", "demo_manifest", "demo_wheel",
    "entry", "git", "install_fake_nvidia_smi", "installed_version", "legacy_latest", "machine", "make_demo_repo",
    "make_venv", "make_wheel", "offline_pip_env", "repack_installed", "rtx5090_banner", "standin_torch_stack",
    "target", "want", "write_demo_recipe", "write_demo_source",
]  # fmt: skip
