"""``sage-tasks``: the same tasks and help as ``invoke`` in a checkout, from any directory.

The tasks are defined once, in the repository's ``tasks.py``; an installed package carries a
copy of it (``sage_tasks/_taskfile``), and the recipes, stack locks, defaults and schema
(``sage_tasks/_manifests``), so that a non-editable install (``uvx --from PATH sage-tasks``,
``pipx``, ``pip install``) works with no checkout around it.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from types import ModuleType

from invoke import Collection, Program

from .core import locations


def _tasks_module() -> ModuleType:
    checkout = locations.REPO_ROOT / "tasks.py"
    if checkout.is_file() and (locations.REPO_ROOT / "manifests" / "defaults.toml").is_file():
        spec = importlib.util.spec_from_file_location("sage_tasks_checkout_tasks", checkout)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    return importlib.import_module("sage_tasks._taskfile.tasks")


def namespace() -> Collection:
    return _tasks_module().ns


def version() -> str:
    from importlib import metadata

    try:
        return metadata.version("sage-tasks")
    except metadata.PackageNotFoundError:
        return "unknown"


def main(argv: list[str] | None = None) -> None:
    program = Program(namespace=namespace(), name="sage-tasks", binary="sage-tasks", version=version())
    program.run(argv)


def where() -> Path:
    """The folder the tasks were loaded from (for diagnostics)."""
    return Path(_tasks_module().__file__ or "").parent
