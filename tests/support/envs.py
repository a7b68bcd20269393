"""Virtual environments for tests, offline pip, and what a venv has installed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def make_venv(path: Path, wheelhouse: Path | None = None, packages: tuple[str, ...] = ()) -> Path:
    """A fresh venv (with pip); ``packages`` installed offline from ``wheelhouse``."""
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, capture_output=True)
    python = path / "bin" / "python"
    if packages:
        assert wheelhouse is not None
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "-q",
                "--upgrade",
                "--no-index",
                "--find-links",
                str(wheelhouse),
                *packages,
            ],
            check=True,
            capture_output=True,
            env=offline_pip_env(os.environ),
        )
    return python


def offline_pip_env(base: dict[str, str] | os._Environ) -> dict[str, str]:
    env = dict(base)
    env["PIP_CONFIG_FILE"] = os.devnull  # no machine-wide index, find-links or constraints
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PIP_NO_INPUT"] = "1"
    return env


def installed_version(python: Path, name: str) -> str | None:
    done = subprocess.run(
        [
            str(python),
            "-c",
            f"import importlib.metadata as m\ntry: print(m.version({name!r}))\nexcept m.PackageNotFoundError: print('')",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip() or None
