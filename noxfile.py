"""Nox sessions: build and smoke-test the wheel per Python, plus tests and lint.

The sessions only create environments and call sage-tasks (``invoke ...``), which runs from
the interpreter that runs nox and acts on the session's venv through ``--python``. Recipe,
arch and source pass through posargs::

    nox -s build-3.12                                  # SageAttention for this machine's GPU
    nox -s build-3.12 -- --arch 12.0                   # cross-compile for an RTX 5090
    nox -s build-3.12 smoke-3.12 -- --recipe tests/fixtures/sage-demo.toml --source DIR

``SAGE_REUSE_TORCH_FROM=/path/to/python`` lets the session venv use that interpreter's
packages (a GPU image's torch) instead of installing the pinned stack.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nox

PYTHONS = ["3.11", "3.12"]
ROOT = Path(__file__).resolve().parent
INVOKE = [sys.executable, "-m", "invoke", "--search-root", str(ROOT)]
DIST = os.environ.get("SAGE_DIST") or str(ROOT / "dist")
CIBW_CONFIG = str(ROOT / "manifests" / "cibuildwheel" / "sageattention.toml")

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = False
nox.options.default_venv_backend = "uv|virtualenv"  # uv creates and fills the venvs when it can run


def _with_pip_config(session: nox.Session) -> None:
    """uv reads none of pip's configuration: hand it the same indexes, wheel folders and constraints."""
    from sage_tasks.environment import installers

    if session.venv_backend == "uv":
        session.env.update(installers.uv_variables(installers.pip_config(sys.executable, os.environ), os.environ))


def _sage(session: nox.Session, *args: str, success_codes: list[int] | None = None) -> None:
    """Run a sage-tasks task from nox's own interpreter against this session's venv."""
    session.run(*INVOKE, *args, external=True, success_codes=success_codes or [0])


def _python(session: nox.Session) -> str:
    return str(Path(session.virtualenv.location) / "bin" / "python")


def _split(posargs: list[str]) -> tuple[list[str], list[str]]:
    """posargs for build (all of them) and for fetch/test-kernel (--recipe and --arch only)."""
    shared = []
    it = iter(posargs)
    for arg in it:
        if arg in ("--recipe", "--arch"):
            shared += [arg, next(it, "")]
        elif arg.startswith(("--recipe=", "--arch=")):
            shared.append(arg)
    return posargs, shared


def _prepare(session: nox.Session, shared: list[str]) -> str:
    python = _python(session)
    reuse = os.environ.get("SAGE_REUSE_TORCH_FROM")
    if reuse:
        session.run(
            sys.executable,
            "-c",
            f"from sage_tasks.environment import venvs; venvs.link_site({python!r}, {reuse!r})",
            external=True,
        )
    _sage(session, "pin", "--python", python, *shared)
    return python


# build and smoke keep virtualenv: `invoke build` runs `pip wheel` inside the venv, and uv's venvs
# have no pip; their big cost, the torch stack, is installed by `invoke pin`, which uses uv.
@nox.session(name="build", python=PYTHONS, venv_backend="virtualenv")
def build(session: nox.Session) -> None:
    """A fresh venv of this Python, the pinned stack, then `invoke build` into dist/."""
    build_args, shared = _split(session.posargs)
    python = _prepare(session, shared)
    _sage(session, "build", "--python", python, "--dist", DIST, *build_args)


@nox.session(name="smoke", python=PYTHONS, venv_backend="virtualenv")
def smoke(session: nox.Session) -> None:
    """Another fresh venv, the pinned stack, the dist/ wheel (--no-deps, hash-checked), test-kernel.

    Full kernel test on a GPU; without one the check reports the wheel as unverified (exit 9),
    which this session accepts and prints as such, never as a pass.
    """
    _, shared = _split(session.posargs)
    python = _prepare(session, shared)
    _sage(session, "fetch", "--python", python, "--from-dist", DIST, *shared)
    _sage(session, "test-kernel", "--python", python, "--dist", DIST, *shared, success_codes=[0, 9])


# The kernel gate's tests need torch: only this Python installs it (a local CPU wheel where
# pip's configuration names a wheel folder; PyPI's multi-GB CUDA torch elsewhere is not worth it).
TORCH_TESTS_PYTHON = "3.11"


def _pip_wheel_folders(session: nox.Session) -> list[str]:
    """Folders pip's configuration names as find-links (uv does not read pip's configuration)."""
    listing = session.run(
        sys.executable, "-m", "pip", "config", "list", silent=True, external=True, success_codes=[0, 1]
    )
    folders = []
    for line in str(listing or "").splitlines():
        key, _, value = line.partition("=")
        if key.strip().endswith("find-links"):
            folders += [f for f in value.strip().strip("'\"").split() if Path(f).is_dir()]
    return list(dict.fromkeys(folders))


def _install_torch(session: nox.Session) -> None:
    """A local CPU torch wheel for this Python when pip's configuration has one, else PyPI's."""
    folders = _pip_wheel_folders(session)
    tag = "cp" + str(session.python).replace(".", "")
    local = sorted(w for f in folders for w in Path(f).glob(f"torch-*-{tag}-{tag}-*.whl"))
    links = [arg for f in folders for arg in ("--find-links", f)]
    session.install(str(local[-1]) if local else "torch", *links)


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The test suite, not the GPU tests; on 3.11 with torch (the gate's tests fail without it)."""
    _with_pip_config(session)
    session.install("-e", ".[dev]", "pip")  # the tests build wheels with `python -m pip` (uv's venvs have no pip)
    if session.python == TORCH_TESTS_PYTHON:
        _install_torch(session)
        session.run("pytest", "-m", "not gpu", *session.posargs, env={"SAGE_TESTS_REQUIRE_TORCH": "1"})
    else:
        session.run("pytest", "-m", "not gpu and not torch", *session.posargs)


@nox.session(default=False, venv_backend="none")
def gpu(session: nox.Session) -> None:
    """The GPU tests, in the interpreter on PATH (it must have a CUDA torch); needs SAGE_SOURCE_DIR."""
    session.run(
        "python", "-m", "pytest", "tests/test_gpu.py", "tests/test_kernel_gate.py", *session.posargs, external=True
    )


@nox.session
def lint(session: nox.Session) -> None:
    """ruff; the workflows against GitHub's schema (check-jsonschema) and audited by zizmor, offline."""
    _with_pip_config(session)
    session.install("ruff", "check-jsonschema", "zizmor")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    workflows = sorted(str(p) for p in (ROOT / ".github" / "workflows").glob("*.yml"))
    if workflows:
        session.run("check-jsonschema", "--builtin-schema", "vendor.github-workflows", *workflows)
        session.run("zizmor", "--offline", "--min-severity", "medium", *workflows)


@nox.session(default=False)
def portable(session: nox.Session) -> None:
    """Portable manylinux wheels of the recipe's source with cibuildwheel (CUDA in the container).

    ``--source DIR`` builds that folder instead of a fresh export of the pinned commit; other
    posargs go to cibuildwheel (e.g. ``--print-build-identifiers``).
    """
    _with_pip_config(session)
    session.install("cibuildwheel")
    args = list(session.posargs)
    if "--source" in args:
        at = args.index("--source")
        source = args[at + 1]
        del args[at : at + 2]
    else:
        source = str(ROOT / "build" / "portable-src")
        if not Path(source).exists():
            _sage(session, "source", source)
    session.run(
        "cibuildwheel", "--platform", "linux", "--config-file", CIBW_CONFIG, "--output-dir", "wheelhouse", *args, source
    )


@nox.session(default=False, tags=["release"], venv_backend="none")
def publish(session: nox.Session) -> None:
    """Publish built wheels from dist/ to the store (``-- --all`` for every one; HF_REPO_ID/HF_TOKEN for the Hub)."""
    _sage(session, "publish", "--dist", DIST, *session.posargs)
