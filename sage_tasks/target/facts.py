"""Facts about a Python environment, read without importing torch.

This file runs inside the *target* interpreter (``python _target_facts.py NAME...``), which
does not have sage-tasks installed: it uses the standard library only and prints one JSON
object. Installed versions come from distribution metadata; torch's CUDA version and C++11 ABI
flag come from torch's own installed files. ``--import-torch`` adds the facts that need the
import (seconds), and is only used when asked for. ``--import=MODULE`` (the read-back of an
install) then imports MODULE and reports the first failure as ``import_error``: one interpreter
start for the read-back and the facts after it.
"""

from __future__ import annotations

import json
import os
import platform
import re
import sys
import sysconfig
from typing import TYPE_CHECKING

STACK = ("torch", "torchvision", "torchaudio", "triton", "pip", "setuptools", "wheel", "packaging", "ninja")


class Dist:
    """An installed distribution's ``.dist-info`` folder, found without ``importlib.metadata``
    (whose import, through ``email``, is half of this script's run time)."""

    def __init__(self, info: str) -> None:
        self.info = info
        self.site = os.path.dirname(info)

    def read_text(self, name: str) -> str | None:
        try:
            with open(os.path.join(self.info, name), encoding="utf-8") as handle:
                return handle.read()
        except (OSError, UnicodeDecodeError):
            return None

    @property
    def version(self) -> str | None:
        """METADATA's first ``Version`` header, as ``email`` (compat32) parses it."""
        for line in (self.read_text("METADATA") or "").splitlines():
            if not line.strip():
                break
            key, colon, value = line.partition(":")
            if colon and key.strip().lower() == "version":
                return value.lstrip(" \t").rstrip("\r\n")
        return None

    def locate_file(self, path: str) -> str:
        return os.path.join(self.site, path) if path else self.site

    @property
    def files(self) -> list[str] | None:
        import csv

        text = self.read_text("RECORD")
        return None if text is None else [row[0] for row in csv.reader(text.splitlines()) if row]


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower().replace("-", "_")


if TYPE_CHECKING:  # no subscripted builtins at run time: this file must run on an old Python far
    # enough to say which Python it is (the caller names it and refuses it)
    Listings = dict[str, dict[str, list[str]] | None]  # one collect()'s reads of sys.path entries


def _infos(entry: str, listings: Listings) -> dict[str, list[str]] | None:
    """The ``.dist-info``/``.egg-info`` children of one ``sys.path`` entry by normalized project
    name, as importlib.metadata's ``FastPath`` indexes them; None for an entry it would read
    another way (a zip, an ``.egg``)."""
    if entry not in listings:
        root = entry or "."
        if root.lower().endswith(".egg") or (os.path.exists(root) and not os.path.isdir(root)):
            listings[entry] = None
            return None
        found: dict[str, list[str]] = {}
        try:
            children = os.listdir(root)
        except OSError:
            children = []
        for child in children:
            low = child.lower()
            if low.endswith((".dist-info", ".egg-info")):
                found.setdefault(_normalize(low.rpartition(".")[0].partition("-")[0]), []).append(child)
        listings[entry] = found
    return listings[entry]


def find(name: str, listings: Listings | None = None):
    """The distribution ``importlib.metadata`` would find for ``name``: the fast way when the
    first ``sys.path`` entry that has it has exactly one ``.dist-info`` folder with a version,
    else (eggs, zips, several copies, a custom finder) ``importlib.metadata`` itself. None when
    it is not installed."""
    wanted = _normalize(name)
    custom = any(
        getattr(finder, "find_distributions", None) is not None and getattr(finder, "__name__", "") != "PathFinder"
        for finder in sys.meta_path
    )
    for entry in [] if custom else sys.path:
        infos = _infos(entry, {} if listings is None else listings)
        if infos is None:
            break
        children = infos.get(wanted)
        if not children:
            continue
        if len(children) == 1 and children[0].lower().endswith(".dist-info"):
            dist = Dist(os.path.join(entry or ".", children[0]))
            if os.path.isdir(dist.info) and dist.version is not None:
                return dist
        break
    else:
        if not custom:
            return None
    from importlib import metadata  # the slow, general way

    try:
        return metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return None


def _version(name: str, listings: Listings | None = None) -> str | None:
    dist = find(name, listings)
    return None if dist is None else dist.version


def _torch_file(name: str, listings: Listings | None = None) -> str | None:
    dist = find("torch", listings)
    if dist is None:
        return None
    path = str(dist.locate_file(f"torch/{name}"))
    return path if os.path.isfile(path) else None


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def _assignments(source: str) -> dict[str, object]:
    import ast

    found: dict[str, object] = {}
    for node in ast.parse(source).body:
        target, value = None, None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        if isinstance(target, ast.Name):
            try:
                found[target.id] = ast.literal_eval(value)
            except ValueError:
                continue
    return found


def _abi_from_init(source: str) -> bool | None:
    """torch >= 2.9 hard-codes ``return True`` in ``compiled_with_cxx11_abi``."""
    import ast

    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef) and node.name == "compiled_with_cxx11_abi":
            for stmt in node.body:
                value = stmt.value if isinstance(stmt, ast.Return) else None
                if isinstance(value, ast.Constant) and isinstance(value.value, bool):
                    return value.value
    return None


def _abi_from_libraries(listings: Listings | None = None) -> tuple[bool | None, str | None]:
    """Pre-C++11-ABI builds export no ``__cxx11`` symbols; every C++11-ABI libc10 does."""
    path = _torch_file("lib/libc10.so", listings)
    if path is None:
        return None, None
    with open(path, "rb") as handle:
        return (b"__cxx11" in handle.read()), "torch/lib/libc10.so"


def torch_facts(listings: Listings | None = None) -> dict[str, object] | None:
    version_py = _torch_file("version.py", listings)
    if version_py is None:
        return None
    try:
        values = _assignments(_read(version_py))
    except (OSError, SyntaxError, ValueError) as exc:  # a damaged install is a fact too, not a crash
        return {
            "version": None,
            "cuda": None,
            "cxx11_abi": None,
            "cxx11_abi_source": None,
            "error": f"torch/version.py: {exc}",
        }
    facts: dict[str, object] = {
        "version": values.get("__version__"),
        "cuda": values.get("cuda"),
        "hip": values.get("hip"),
        "git_version": values.get("git_version"),
        "cxx11_abi": None,
        "cxx11_abi_source": None,
        "path": os.path.dirname(version_py),
    }
    init_py = _torch_file("__init__.py", listings)
    if init_py is not None:
        try:
            abi = _abi_from_init(_read(init_py))
        except (OSError, SyntaxError, ValueError):
            abi = None
        if abi is not None:
            facts["cxx11_abi"], facts["cxx11_abi_source"] = abi, "torch/__init__.py"
    if facts["cxx11_abi"] is None:
        facts["cxx11_abi"], facts["cxx11_abi_source"] = _abi_from_libraries(listings)
    return facts


def imported_torch_facts() -> dict[str, object]:
    import torch  # the slow part, only when asked for

    facts: dict[str, object] = {
        "version": torch.__version__,
        "cuda": torch.version.cuda,
        "cxx11_abi": bool(torch.compiled_with_cxx11_abi()),
        "cuda_available": bool(torch.cuda.is_available()),
        "arch_list": list(torch.cuda.get_arch_list()) if torch.cuda.is_available() else [],
        "devices": [],
    }
    if facts["cuda_available"]:
        for index in range(torch.cuda.device_count()):
            major, minor = torch.cuda.get_device_capability(index)
            facts["devices"].append(
                {"name": torch.cuda.get_device_name(index), "compute_capability": f"{major}.{minor}"}
            )
    return facts


def installed_files(name: str, listings: Listings | None = None) -> dict[str, object] | None:
    """Where an installed distribution lives and the files its RECORD lists (to replace it)."""
    dist = find(name, listings)
    if dist is None:
        return None
    return {
        "version": dist.version,
        "site": str(dist.locate_file("")),
        "files": [str(f) for f in dist.files or []],
        "installer": (dist.read_text("INSTALLER") or "").strip() or None,
        "direct_url": dist.read_text("direct_url.json"),
    }


def collect(extra: list[str] | tuple[str, ...] = (), import_torch: bool = False) -> dict[str, object]:
    names = list(dict.fromkeys([*STACK, *extra]))
    listings: Listings = {}  # sys.path read once per call, never kept: an install changes it
    facts: dict[str, object] = {
        "executable": sys.executable,
        "prefix": sys.prefix,
        "version": platform.python_version(),
        "version_info": list(sys.version_info[:3]),
        "implementation": sys.implementation.name,
        "abiflags": getattr(sys, "abiflags", ""),
        "gil_disabled": bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
        "platform": sysconfig.get_platform(),
        "packages": {name: _version(name, listings) for name in names},
        "paths": sysconfig.get_paths(),
        "installs": {name: installed_files(name, listings) for name in extra},
        "torch": torch_facts(listings),
    }
    if import_torch:
        try:
            facts["torch_imported"] = imported_torch_facts()
        except Exception as exc:  # reported as data: the caller decides what it means
            facts["torch_imported"] = {"error": f"{type(exc).__name__}: {exc}"}
    return facts


def import_modules(modules: list[str]) -> str | None:
    """The read-back of an install: import each module in this fresh interpreter; the first
    failure as one line, or None. What an import prints goes to stderr: stdout carries the JSON."""
    import contextlib
    import importlib

    try:
        with contextlib.redirect_stdout(sys.stderr):
            for module in modules:
                importlib.import_module(module)
    except BaseException as exc:  # SystemExit or KeyboardInterrupt from an import is a failed import too
        return (type(exc).__name__ + ": " + str(exc)).strip()[:500]
    return None


def main(argv: list[str]) -> int:
    import_torch = "--import-torch" in argv
    modules = [a[len("--import=") :] for a in argv if a.startswith("--import=")]
    names = [a for a in argv if not a.startswith("--")]
    facts = collect(names, import_torch=import_torch)
    if modules:  # after the facts: they are read as the files are, before any import could change sys.path
        facts["import_error"] = import_modules(modules)
    sys.stdout.write("\n" + json.dumps(facts) + "\n")  # the last line (an import may write to fd 1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
