"""`sage-tasks`, the console command, after a real non-editable install, from another directory;
and the default target inside a tool environment (uvx, pipx)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from sage_tasks.core import locations
from sage_tasks.environment import venvs
from tests import support

SHIPPED = ("pyproject.toml", "README.md", "tasks.py", "noxfile.py", "sage_tasks", "manifests")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv (seeing this interpreter's dependencies) with sage-tasks installed from a built wheel."""
    root = tmp_path_factory.mktemp("cli")
    source = root / "src"
    source.mkdir()
    for name in SHIPPED:  # build from a copy: the checkout gets no build/ folder
        src = support.REPO / name
        if src.is_dir():
            shutil.copytree(src, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(src, source / name)
    env = support.offline_pip_env(os.environ)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(source), "-w", str(root)],
        check=True,
        env=env,
        capture_output=True,
        cwd=root,
    )
    [wheel] = root.glob("sage_tasks-*.whl")
    # this interpreter is often a venv itself (nox's): --system-site-packages would show its base, not
    # what is installed here; our venvs.create lists this interpreter's site-packages instead
    venvs.create(root / "venv", sys.executable, reuse_from=sys.executable)
    subprocess.run(
        [str(root / "venv" / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True,
        env=env,
        capture_output=True,
    )
    return root / "venv"


@pytest.mark.slow
def test_the_console_command_works_from_any_directory_without_the_checkout(installed, tmp_path, no_gpu_path):
    command = str(installed / "bin" / "sage-tasks")
    where = subprocess.run(
        [str(installed / "bin" / "python"), "-c", "import sage_tasks.cli as c; print(c.__file__, c.where())"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
    )
    assert all(Path(p).is_relative_to(installed) for p in where.stdout.split())  # not the checkout
    listing = subprocess.run([command, "--list"], capture_output=True, text=True, cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr
    assert all(name in listing.stdout for name in ("auto", "pin", "fetch", "probe", "test-kernel"))
    helped = subprocess.run([command, "--help", "auto"], capture_output=True, text=True, cwd=tmp_path)
    assert "--keep-stack" in helped.stdout and "--dry-run" in helped.stdout
    # recipes, stack locks and defaults come from inside the package
    env = {**os.environ, "SAGE_STORE": str(tmp_path / "store")}
    dry = subprocess.run(
        [command, "auto", "--dry-run", "--json", "--arch", "12.0", "--python", sys.executable],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    report = json.loads(dry.stdout)
    assert report["result"]["plan"]["pin"][0]["wanted"] == "2.8.0+cu128"  # the rtx5090-cu128 lock was read
    pinned = subprocess.run(
        [command, "pin", "--dry-run", "--stack", "hopper-cu130", "--json", "--python", sys.executable],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    assert json.loads(pinned.stdout)["stack"]["versions"]["torch"] == "2.11.0", pinned.stderr


def test_inside_a_tool_environment_the_target_is_the_users_python3(tmp_path):
    tool = tmp_path / "home" / ".local" / "share" / "uv" / "tools" / "sage-tasks"
    user_bin = tmp_path / "usr" / "bin"
    for folder in (tool / "bin", user_bin):
        folder.mkdir(parents=True)
        (folder / "python3").symlink_to(sys.executable)
    env = {"PATH": os.pathsep.join([str(tool / "bin"), str(user_bin)])}
    python, origin = locations.default_python(None, env, prefix=str(tool))
    assert python == str(user_bin / "python3")
    assert "python3 on PATH" in origin and "uv tool environment" in origin
    assert locations.default_python(None, {**env, "PYTHON_BIN": "/opt/py"}, prefix=str(tool))[0] == "/opt/py"
    # an ordinary venv is its own target
    assert locations.default_python(None, env, prefix=str(tmp_path / "venv")) == (sys.executable, "this interpreter")


def test_tool_environments_are_recognised():
    assert locations.tool_environment("/root/.cache/uv/archive-v0/Xy12") == "uv"
    assert locations.tool_environment("/home/u/.local/share/pipx/venvs/sage-tasks") == "pipx"
    assert locations.tool_environment("/home/u/project/.venv") is None


def _env(path, cfg="home = /usr/bin\nuv = 0.8.3\n", files=()):
    path.mkdir(parents=True)
    if cfg is not None:
        (path / "pyvenv.cfg").write_text(cfg)
    for name in files:
        (path / name).write_text("")
    return str(path)


def test_uv_environments_are_recognised_under_any_cache_or_tool_dir(tmp_path):
    """UV_CACHE_DIR=/ci-cache: no "/uv/" in the path; uv's environments are known by their layout and pyvenv.cfg."""
    cache = tmp_path / "ci-cache"
    assert locations.tool_environment(_env(cache / "archive-v0" / "Xy12")) == "uv"  # uvx
    assert locations.tool_environment(_env(cache / "environments-v2" / "run-3f2a")) == "uv"
    assert locations.tool_environment(_env(cache / "builds-v0" / ".tmpAb12")) == "uv"
    tool = _env(tmp_path / "ci-tools" / "sage-tasks", files=("uv-receipt.toml",))  # UV_TOOL_DIR=/ci-tools
    assert locations.tool_environment(tool) == "uv"
    assert locations.tool_environment(_env(tmp_path / "pipx-home" / "sage", files=("pipx_metadata.json",))) == "pipx"


def test_a_users_own_venvs_are_not_tool_environments(tmp_path):
    assert locations.tool_environment(_env(tmp_path / "project" / ".venv")) is None  # made by `uv venv`
    plain = "home = /usr/bin\ninclude-system-site-packages = false\n"  # made by python -m venv
    assert locations.tool_environment(_env(tmp_path / "archive-v1" / "old", cfg=plain)) is None
    assert locations.tool_environment(_env(tmp_path / "ci-cache" / "venvs" / "x")) is None


@pytest.mark.slow
def test_the_wheel_ships_every_module_of_the_package_and_no_other(installed):
    """A folder left out of pyproject's package list (or a stale module from an older layout)
    would ship a package that fails on import, or two layouts at once."""
    [wheel] = installed.parent.glob("sage_tasks-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    shipped = {
        n for n in names if n.endswith(".py") and not n.startswith(("sage_tasks/_manifests/", "sage_tasks/_taskfile/"))
    }
    ours = {p.relative_to(support.REPO).as_posix() for p in (support.REPO / "sage_tasks").rglob("*.py")}
    assert shipped == ours, (sorted(shipped - ours), sorted(ours - shipped))
    assert "sage_tasks/py.typed" in names
