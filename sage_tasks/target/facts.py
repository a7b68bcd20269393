"""Facts about a Python environment, read without importing torch.

This file runs inside the *target* interpreter (``python _target_facts.py NAME...``), which
does not have sage-tasks installed: it uses the standard library only and prints one JSON
object. Installed versions come from distribution metadata; torch's CUDA version and C++11 ABI
flag come from torch's own installed files. ``--import-torch`` adds the facts that need the
import (seconds), and is only used when asked for.
"""

from __future__ import annotations

import ast
import json
import platform
import sys
import sysconfig
from importlib import metadata

STACK = ("torch", "torchvision", "torchaudio", "triton", "pip", "setuptools", "wheel", "packaging", "ninja")


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _torch_file(name: str):
    try:
        dist = metadata.distribution("torch")
    except metadata.PackageNotFoundError:
        return None
    path = dist.locate_file(f"torch/{name}")
    return path if path.is_file() else None


def _assignments(source: str) -> dict[str, object]:
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
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef) and node.name == "compiled_with_cxx11_abi":
            for stmt in node.body:
                value = stmt.value if isinstance(stmt, ast.Return) else None
                if isinstance(value, ast.Constant) and isinstance(value.value, bool):
                    return value.value
    return None


def _abi_from_libraries() -> tuple[bool | None, str | None]:
    """Pre-C++11-ABI builds export no ``__cxx11`` symbols; every C++11-ABI libc10 does."""
    path = _torch_file("lib/libc10.so")
    if path is None:
        return None, None
    with open(path, "rb") as handle:
        return (b"__cxx11" in handle.read()), "torch/lib/libc10.so"


def torch_facts() -> dict[str, object] | None:
    version_py = _torch_file("version.py")
    if version_py is None:
        return None
    try:
        values = _assignments(version_py.read_text(encoding="utf-8"))
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
        "path": str(version_py.parent),
    }
    init_py = _torch_file("__init__.py")
    if init_py is not None:
        try:
            abi = _abi_from_init(init_py.read_text(encoding="utf-8"))
        except (OSError, SyntaxError, ValueError):
            abi = None
        if abi is not None:
            facts["cxx11_abi"], facts["cxx11_abi_source"] = abi, "torch/__init__.py"
    if facts["cxx11_abi"] is None:
        facts["cxx11_abi"], facts["cxx11_abi_source"] = _abi_from_libraries()
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


def installed_files(name: str) -> dict[str, object] | None:
    """Where an installed distribution lives and the files its RECORD lists (to replace it)."""
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
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
    facts: dict[str, object] = {
        "executable": sys.executable,
        "prefix": sys.prefix,
        "version": platform.python_version(),
        "version_info": list(sys.version_info[:3]),
        "implementation": sys.implementation.name,
        "abiflags": getattr(sys, "abiflags", ""),
        "gil_disabled": bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
        "platform": sysconfig.get_platform(),
        "packages": {name: _version(name) for name in names},
        "paths": sysconfig.get_paths(),
        "installs": {name: installed_files(name) for name in extra},
        "torch": torch_facts(),
    }
    if import_torch:
        try:
            facts["torch_imported"] = imported_torch_facts()
        except Exception as exc:  # reported as data: the caller decides what it means
            facts["torch_imported"] = {"error": f"{type(exc).__name__}: {exc}"}
    return facts


def main(argv: list[str]) -> int:
    import_torch = "--import-torch" in argv
    names = [a for a in argv if not a.startswith("--")]
    json.dump(collect(names, import_torch=import_torch), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
