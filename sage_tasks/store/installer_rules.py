"""The bash installer's rules for ``latest.json``, and which wheel may become it (pure).

Reproduced from the installer's documented behaviour (issue 11), not from its code. It accepts
a ``latest.json`` only when it names a wheel (``wheel_file`` or ``hf_wheel_url``), its
``target_arch`` contains ``12.0`` or ``120``, ``sageattention_version`` (when present) equals
``SAGE_EXPECT_VERSION`` (default ``SAGE_VERSION``, ``2.2.0``), ``built_from_repo`` (when
present) contains ``thu-ml/SageAttention`` and ``built_from_ref`` (when present) equals
``SAGE_SOURCE_REF`` (``v2.2.0``); ``ALLOW_UNSAFE_WHEEL=1`` skips these. After ``pip install``
the installed ``sageattention`` version must equal ``SAGE_EXPECT_VERSION`` exactly (an empty one
disables the check), and local wheels are found with ``sageattention-<SAGE_VERSION>-*.whl``.

``latest.json`` is the pointer machines running the installer on an RTX 5090 follow, so
sage-tasks moves it only to a wheel those machines accept and install correctly there.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from ..core import archs
from .manifest import Index, WheelManifest, latest_record

PACKAGE = "sageattention"
POINTER_ARCH = "12.0"  # the installer's machines: RTX 5090


@dataclass(frozen=True)
class Expect:
    """What the installer expects: its defaults (machines running it may set its variables; the
    pointer is written for the defaults)."""

    version: str = "2.2.0"  # SAGE_EXPECT_VERSION (empty: the version check is off)
    sage_version: str = "2.2.0"  # SAGE_VERSION: the local wheel glob
    repo: str = "thu-ml/SageAttention"
    ref: str = "v2.2.0"  # SAGE_SOURCE_REF
    allow_unsafe: bool = False  # ALLOW_UNSAFE_WHEEL=1


DEFAULT = Expect()  # the installer with its own defaults (SAGE_VERSION 2.2.0, ref v2.2.0)


def manifest_reasons(record: Mapping[str, Any], expect: Expect = DEFAULT) -> list[str]:
    """Why the installer refuses this ``latest.json`` (empty: it takes it)."""
    if expect.allow_unsafe:
        return [] if record.get("wheel_file") or record.get("hf_wheel_url") else ["names no wheel"]
    reasons = []
    if not (record.get("wheel_file") or record.get("hf_wheel_url")):
        reasons.append("names no wheel (neither wheel_file nor hf_wheel_url)")
    target = str(record.get("target_arch") or "")
    if "12.0" not in target and "120" not in target:
        reasons.append(f"target_arch {target or 'missing'} does not contain 12.0")
    version = record.get("sageattention_version")
    if version is not None and expect.version and version != expect.version:
        reasons.append(f"sageattention_version {version}, the installer expects {expect.version}")
    repo = record.get("built_from_repo")
    if repo is not None and expect.repo not in str(repo):
        reasons.append(f"built_from_repo {repo} is not {expect.repo}")
    ref = record.get("built_from_ref")
    if ref is not None and ref != expect.ref:
        reasons.append(f"built_from_ref {ref}, the installer expects {expect.ref}")
    return reasons


def local_glob(expect: Expect = DEFAULT) -> str:
    return f"sageattention-{expect.sage_version}-*.whl"


def install_reasons(wheel_file: str, installed_version: str, expect: Expect = DEFAULT) -> list[str]:
    """Why the installer fails after installing ``wheel_file`` (its version read back)."""
    reasons = []
    if expect.version and installed_version != expect.version:
        reasons.append(f"installs sageattention {installed_version}, the installer requires exactly {expect.version}")
    if not fnmatch.fnmatchcase(wheel_file, local_glob(expect)):
        reasons.append(f"{wheel_file} does not match the installer's local pattern {local_glob(expect)}")
    return reasons


def accepts(record: Mapping[str, Any], installed_version: str, expect: Expect = DEFAULT) -> list[str]:
    """Everything the installer checks, from reading ``latest.json`` to the version read back."""
    name = record.get("wheel_file") or str(record.get("hf_wheel_url") or "").rsplit("/", 1)[-1]
    return manifest_reasons(record, expect) + install_reasons(str(name), installed_version, expect)


# ---------------------------------------------------------------- the plain-version twin


def twin_build_tag(entry: WheelManifest, number: int = 0) -> str:
    """A PEP 427 build tag naming the variant of a labelled wheel: ``0cu128torch280sm120``
    (starts with a digit, as build tags must; plain names of different variants never collide)."""
    local = Version(entry.version).local or ""
    return f"{number}{re.sub(r'[^A-Za-z0-9]', '', local)}"


def wants_twin(entry: WheelManifest, expect: Expect = DEFAULT) -> bool:
    """A labelled SageAttention wheel of the installer's version with machine code for 12.0 gets
    a plain-version twin: the only kind of wheel the installer's version check passes."""
    try:
        version = Version(entry.version)
    except InvalidVersion:
        return False
    return (
        canonicalize_name(entry.package) == PACKAGE
        and version.local is not None
        and version.public == expect.version
        and archs.satisfies(entry.cuda_archs, POINTER_ARCH)
        and entry.verification.status != "failed"
    )


# ---------------------------------------------------------------- the pointer


def pointer_reasons(
    entry: WheelManifest, index: Index, *, allow_unverified: bool = False, expect: Expect = DEFAULT
) -> list[str]:
    """Why ``entry`` may not become ``latest.json`` (empty: it may)."""
    reasons = []
    if entry.yanked:
        reasons.append(f"{entry.wheel_file} is yanked")
    if canonicalize_name(entry.package) != PACKAGE:
        reasons.append(f"package {entry.package}, the installer installs {PACKAGE}")
    reasons += manifest_reasons(latest_record(entry), expect)
    reasons += install_reasons(entry.wheel_file, entry.version, expect)
    if not archs.satisfies(entry.cuda_archs, POINTER_ARCH):
        reasons.append(f"no machine code for {POINTER_ARCH} (carries {', '.join(entry.cuda_archs) or 'none'})")
    verdict = entry.verification
    proven = {archs.base_arch(cc) for cc in verdict.proven_on()}
    failed_here = any(
        a.get("status") == "failed" and archs.base_arch(str(a.get("compute_capability"))) == POINTER_ARCH
        for a in verdict.archs
    )
    if verdict.status == "failed" or failed_here:
        reasons.append("failed its kernel test")
    elif verdict.status == "passed" and POINTER_ARCH not in proven:
        shown = ", ".join(sorted(proven)) or "an unrecorded GPU"
        reasons.append(f"passed its kernel test on {shown}, not on {POINTER_ARCH}")
    elif verdict.status == "unverified" and not allow_unverified:
        reasons.append("unverified (publish with --latest-unverified to point the installer at it anyway)")
    current = index.latest_entry
    if current is not None and current.wheel_file != entry.wheel_file and current.python_tag != entry.python_tag:
        reasons.append(f"Python {entry.python_tag}, the installer's machines use {current.python_tag}")
    return reasons


def moves_forward(entry: WheelManifest, index: Index) -> bool:
    """The pointer only moves to a newer wheel than the one it names (or when it names none)."""
    current = index.latest_entry
    return current is None or current.yanked is not None or entry.created_at >= current.created_at
