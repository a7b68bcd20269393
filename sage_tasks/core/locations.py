"""Where things live: committed manifests, caches, the default local store, logs."""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent
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


UV_BUCKET = re.compile(r"(archive|builds|environments)-v\d+")  # uv's cache folders that hold environments


def _venv_config(prefix: Path) -> dict[str, str] | None:
    """The keys of ``prefix``'s ``pyvenv.cfg`` (None when it has none or it cannot be read)."""
    try:
        text = (prefix / "pyvenv.cfg").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line)
    return {key.strip().lower(): value.strip() for key, value in pairs}


def tool_environment(prefix: str) -> str | None:
    """ "uv" or "pipx" when ``prefix`` is a tool's own environment (uvx, uv tool, pipx), else None.

    uv's are known by what they are, wherever ``UV_CACHE_DIR``/``UV_TOOL_DIR`` put them: a
    ``uv-receipt.toml`` (uv tool), or a folder directly inside one of uv's cache buckets
    (``archive-vN``: uvx, ``builds-vN``, ``environments-vN``) or under ``uv/tools/``. A
    ``pyvenv.cfg`` without uv's ``uv = <version>`` key vetoes the layout (uv writes it into every
    environment it makes)."""
    path = Path(prefix)
    if (path / "uv-receipt.toml").is_file():
        return "uv"
    config = _venv_config(path)
    made_by_uv = config is None or "uv" in config
    uv_layout = UV_BUCKET.fullmatch(path.parent.name) is not None or "/uv/tools/" in path.as_posix()
    if uv_layout and made_by_uv:
        return "uv"
    text = path.as_posix()
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
