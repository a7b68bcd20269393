"""Which GPU archs (SASS machine code and PTX) each compiled extension of a wheel carries.

Reads the ELF ``.nv_fatbin`` section itself (a runtime-only machine has a driver but often no
CUDA toolkit), or asks ``cuobjdump`` when it is installed and ``prefer_cuobjdump`` is set.

Fatbin layout, as nvcc writes it (little-endian): a container header ``magic 0xBA55ED50``,
``u16 version``, ``u16 header size``, ``u64 payload size``; then entries, each starting with
``u16 kind`` (1 PTX, 2 ELF cubin), ``u16 version``, ``u32 header size``, ``u64 payload size``,
``u32 compressed size``, ``u32``, ``u16 minor``, ``u16 major``, ``u32 arch`` (e.g. 90, 120),
``u32 name offset``, ``u32 name length``, ``u64 flags``. Flag ``0x100000`` marks
arch-specific code (``sm_90a``).
"""

from __future__ import annotations

import re
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path

from ..core import archs, atomic, runner
from ..core.errors import ConfigError, IntegrityError

FATBIN_MAGIC = 0xBA55ED50
KIND_PTX, KIND_CUBIN = 1, 2
FLAG_ARCH_SPECIFIC = 0x100000
_SO = re.compile(r"\.so(\.[0-9.]+)?$")

Listing = dict[str, dict[str, list[str]]]


def _elf_sections(data: bytes) -> dict[str, tuple[int, int]]:
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ValueError("not a 64-bit little-endian ELF file")
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    headers = []
    for i in range(shnum):
        name, _type, _flags, _addr, offset, size = struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize)
        headers.append((name, offset, size))
    names_at = headers[shstrndx][1]
    sections = {}
    for name, offset, size in headers:
        end = data.index(b"\0", names_at + name)
        sections[data[names_at + name : end].decode("ascii", "replace")] = (offset, size)
    return sections


def parse_fatbin(blob: bytes) -> tuple[set[str], set[str]]:
    """``(sass, ptx)`` arch names found in a fatbin section (several containers may follow)."""
    sass: set[str] = set()
    ptx: set[str] = set()
    pos = 0
    while pos + 16 <= len(blob):
        magic, _version, header_size, size = struct.unpack_from("<IHHQ", blob, pos)
        if magic != FATBIN_MAGIC:
            # containers are 8-byte aligned; padding between them is zeros
            pos += 8
            continue
        entry, end = pos + header_size, min(pos + header_size + size, len(blob))
        if end <= pos:  # an empty or corrupt container: step past its header, never stand still
            pos += 16
            continue
        while entry + 56 <= end:
            kind, _v, entry_header, payload = struct.unpack_from("<HHIQ", blob, entry)
            (arch,) = struct.unpack_from("<I", blob, entry + 28)
            (flags,) = struct.unpack_from("<Q", blob, entry + 40)
            suffix = "a" if flags & FLAG_ARCH_SPECIFIC else ""
            if kind == KIND_CUBIN:
                sass.add(f"sm_{arch}{suffix}")
            elif kind == KIND_PTX:
                ptx.add(f"compute_{arch}{suffix}")
            if entry_header == 0:
                break
            entry += entry_header + payload
        pos = end
    return sass, ptx


def archs_in_elf(data: bytes) -> tuple[set[str], set[str]]:
    sections = _elf_sections(data)
    if ".nv_fatbin" not in sections:
        return set(), set()
    offset, size = sections[".nv_fatbin"]
    return parse_fatbin(data[offset : offset + size])


def parse_cuobjdump(listing: str) -> tuple[set[str], set[str]]:
    """``cuobjdump --list-elf --list-ptx`` lines such as ``ELF file 1: x.1.sm_90a.cubin``."""
    sass, ptx = set(), set()
    for line in listing.splitlines():
        match = re.search(r"\bsm_(\d+[af]?)\b", line)
        if not match:
            continue
        if line.lstrip().startswith("ELF"):
            sass.add(f"sm_{match.group(1)}")
        elif line.lstrip().startswith("PTX"):
            ptx.add(f"compute_{match.group(1)}")
    return sass, ptx


def _with_cuobjdump(cuobjdump: str, data: bytes) -> tuple[set[str], set[str]]:
    with tempfile.NamedTemporaryFile(suffix=".so") as handle:
        handle.write(data)
        handle.flush()
        done = runner.run([cuobjdump, "--list-elf", "--list-ptx", handle.name], check=False, echo=False)
    if done.returncode != 0 and "does not contain device code" not in done.stderr + done.stdout:
        raise IntegrityError(f"cuobjdump could not read an extension: {done.stderr.strip()[:200]}")
    return parse_cuobjdump(done.stdout)


def list_wheel(path: Path, prefer_cuobjdump: bool = False) -> Listing:
    """For each ``.so`` in the wheel: its SASS and PTX archs, sorted."""
    tool = runner.which("cuobjdump") if prefer_cuobjdump else None
    found: Listing = {}
    try:
        with atomic.open_regular(path) as handle, zipfile.ZipFile(handle) as zf:
            for name in sorted(n for n in zf.namelist() if _SO.search(n)):
                data = zf.read(name)
                try:
                    sass, ptx = _with_cuobjdump(tool, data) if tool else archs_in_elf(data)
                except (ValueError, struct.error, IndexError) as e:
                    raise IntegrityError(f"{name} in {path.name} is not a readable ELF file: {e}") from e
                found[name] = {"sass": sorted(sass), "ptx": sorted(ptx)}
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, UnicodeDecodeError) as e:
        # bad compressed data, a cut file, an unknown compression, a name that is not UTF-8
        raise IntegrityError(
            f"{path.name} is not a readable wheel: {type(e).__name__}: {e}"[:300], "rebuild or re-download the wheel"
        ) from e
    except OSError as e:
        raise ConfigError(f"cannot read wheel {path}: {e.strerror}", "pass the path of a .whl file") from e
    return found


def common_sass(listing: Mapping[str, Mapping[str, list[str]]]) -> list[str]:
    """Machine-code archs present in every extension (what the wheel as a whole can run)."""
    sets = [set(a["sass"]) for a in listing.values()]
    return sorted(set.intersection(*sets)) if sets else []


def missing(listing: Mapping[str, Mapping[str, list[str]]], wanted: tuple[str, ...]) -> dict[str, list[str]]:
    """For each extension, the requested compute capabilities it has no machine code for."""
    gaps = {}
    for so, found in listing.items():
        lacking = [cc for cc in wanted if not archs.satisfies(set(found["sass"]), cc)]
        if lacking:
            gaps[so] = lacking
    return gaps
