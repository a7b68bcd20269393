"""Where things live: committed manifests, caches, the default local store, logs."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent
SHIPPED_MANIFESTS = PACKAGE_DIR / "_manifests"  # where an installed package carries manifests/


def manifests_dir(env: Mapping[str, str]) -> Path:
    """The committed ``manifests/`` folder: in a checkout the repository's, in an installed
    package the copy shipped inside it (``SAGE_MANIFESTS_DIR`` points elsewhere)."""
    if env.get("SAGE_MANIFESTS_DIR"):
        return Path(env["SAGE_MANIFESTS_DIR"])
    checkout = REPO_ROOT / "manifests"
    if (checkout / "defaults.toml").is_file():
        return checkout
    return SHIPPED_MANIFESTS


def tool_environment(prefix: str) -> str | None:
    """ "uv" or "pipx" when ``prefix`` is a tool's own environment (uvx, uv tool, pipx), else None."""
    path = Path(prefix)
    text = path.as_posix()
    if (path / "uv-receipt.toml").is_file() or any(
        part in text for part in ("/uv/tools/", "/uv/archive-v", "/uv/builds-v", "/uv/environments-v")
    ):
        return "uv"
    if (path / "pipx_metadata.json").is_file() or "/pipx/venvs/" in text or "/pipx/.cache/" in text:
        return "pipx"
    return None


def python_on_path(env: Mapping[str, str], outside: str) -> str | None:
    """The first ``python3`` on PATH that is not inside ``outside`` (a tool's own environment)."""
    inside = Path(outside).resolve()
    for folder in (env.get("PATH") or "").split(os.pathsep):
        if not folder or Path(folder).resolve().is_relative_to(inside):
            continue
        found = shutil.which("python3", path=folder)
        if found:
            return found
    return None


def default_python(flag: str | None, env: Mapping[str, str], prefix: str | None = None) -> tuple[str, str]:
    """The target interpreter and where it came from: --python > PYTHON_BIN > this interpreter,
    except inside a tool environment (uvx, pipx), whose interpreter is nobody's target: there,
    the user's ``python3`` on PATH."""
    if flag:
        return flag, "--python"
    if env.get("PYTHON_BIN"):
        return env["PYTHON_BIN"], "PYTHON_BIN"
    prefix = prefix or sys.prefix
    tool = tool_environment(prefix)
    if tool:
        found = python_on_path(env, prefix)
        if found:
            return found, f"python3 on PATH (sage-tasks runs from a {tool} tool environment)"
        return "python3", f"python3 (sage-tasks runs from a {tool} tool environment; none found on PATH)"
    return sys.executable, "this interpreter"


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
