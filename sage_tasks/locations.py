"""Where things live: committed manifests, caches, the default local store, logs."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def manifests_dir(env: Mapping[str, str]) -> Path:
    """The committed ``manifests/`` folder (``SAGE_MANIFESTS_DIR`` points elsewhere)."""
    return Path(env.get("SAGE_MANIFESTS_DIR") or REPO_ROOT / "manifests")


def _home(env: Mapping[str, str]) -> Path:
    return Path(env.get("HOME") or Path.home())


def cache_dir(env: Mapping[str, str]) -> Path:
    """Downloads, source checkouts and incremental build trees (``SAGE_TASKS_CACHE``)."""
    if env.get("SAGE_TASKS_CACHE"):
        return Path(env["SAGE_TASKS_CACHE"])
    base = Path(env.get("XDG_CACHE_HOME") or _home(env) / ".cache")
    return base / "sage-tasks"


def default_store_dir(env: Mapping[str, str]) -> Path:
    """The embedded default store, a local directory (``SAGE_STORE`` or ``--store``)."""
    if env.get("SAGE_STORE"):
        return Path(env["SAGE_STORE"])
    base = Path(env.get("XDG_DATA_HOME") or _home(env) / ".local" / "share")
    return base / "sage-tasks" / "store"
