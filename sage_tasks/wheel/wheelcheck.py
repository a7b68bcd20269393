"""A wheel is checked before anything of it is unpacked, and while it is unpacked.

Before: the file name parses and names the expected package (and version); every member name is
safe (no absolute path, ``..``, backslash, NUL, duplicate) and decodable; member count,
per-member and total uncompressed size and the compression ratio stay within limits (a zip
bomb is refused from its directory alone); exactly one ``.dist-info`` folder, named after the
file, whose METADATA names the same project and version; every member is listed in RECORD with
a sha256 and its size. While unpacking (``source``): each member is streamed in bounded blocks
and its hash compared with RECORD. Every problem is an ``IntegrityError``, never a traceback.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from email.parser import HeaderParser
from pathlib import Path
from typing import BinaryIO

from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from ..core.errors import IntegrityError

MAX_MEMBERS = 20_000
MAX_MEMBER_BYTES = 2 << 30  # one file, uncompressed
MAX_TOTAL_BYTES = 4 << 30  # all files, uncompressed
MAX_RATIO = 100  # uncompressed / compressed, for members (and totals) above RATIO_FLOOR
RATIO_FLOOR = 1 << 20
MAX_METADATA_BYTES = 16 << 20  # METADATA, WHEEL, RECORD, entry points, scripts: read whole
HASHES = ("sha256", "sha384", "sha512")
READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, ValueError, OSError)
HINT = "the wheel is damaged, malformed or hostile: rebuild or republish it"


@dataclass(frozen=True)
class Expected:
    algorithm: str
    digest: str  # urlsafe base64 without padding, as RECORD writes it
    size: int


@dataclass(frozen=True)
class CheckedWheel:
    path: Path
    name: str  # canonical project name
    version: str
    dist_info: str
    record: dict[str, Expected]
    members: int
    uncompressed: int


def _bad(wheel: Path | str, what: str) -> IntegrityError:
    return IntegrityError(f"{Path(wheel).name}: {what}; nothing was installed", HINT)


def open_zip(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (*READ_ERRORS, UnicodeDecodeError) as e:
        raise _bad(path, f"not a readable zip file ({type(e).__name__}: {e})") from e


def read_small(zf: zipfile.ZipFile, name: str, wheel: Path) -> bytes:
    info = zf.getinfo(name)
    if info.file_size > MAX_METADATA_BYTES:
        raise _bad(wheel, f"{name} is {info.file_size} bytes, more than {MAX_METADATA_BYTES}")
    try:
        return zf.read(info)
    except READ_ERRORS as e:
        raise _bad(wheel, f"{name} cannot be read ({type(e).__name__}: {e})") from e


def _safe_name(name: str, wheel: Path) -> None:
    parts = name.rstrip("/").split("/")
    if (
        not name
        or name.startswith("/")
        or "\\" in name
        or "\x00" in name
        or any(p in ("", ".", "..") for p in parts)
        or (len(parts[0]) == 2 and parts[0][1] == ":")
    ):
        raise _bad(wheel, f"refusing member {name!r}")


def check_directory(zf: zipfile.ZipFile, wheel: Path) -> list[zipfile.ZipInfo]:
    """Names, count, sizes and ratios, from the zip's central directory alone (nothing decompressed)."""
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        raise _bad(wheel, f"{len(infos)} members, more than {MAX_MEMBERS}")
    seen: set[str] = set()
    files = []
    total = packed = 0
    for info in infos:
        _safe_name(info.filename, wheel)
        if info.filename in seen:
            raise _bad(wheel, f"member {info.filename!r} appears twice")
        seen.add(info.filename)
        if info.is_dir():
            continue
        if info.flag_bits & 0x1:
            raise _bad(wheel, f"member {info.filename!r} is encrypted")
        if info.file_size > MAX_MEMBER_BYTES:
            raise _bad(wheel, f"member {info.filename!r} unpacks to {info.file_size} bytes (limit {MAX_MEMBER_BYTES})")
        if info.file_size > RATIO_FLOOR and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            ratio = info.file_size / max(info.compress_size, 1)
            raise _bad(wheel, f"member {info.filename!r} is compressed {ratio:.0f}:1 (limit {MAX_RATIO}:1): a zip bomb")
        total += info.file_size
        packed += info.compress_size
        files.append(info)
    if total > MAX_TOTAL_BYTES:
        raise _bad(wheel, f"unpacks to {total} bytes (limit {MAX_TOTAL_BYTES})")
    if total > RATIO_FLOOR and total > MAX_RATIO * max(packed, 1):
        raise _bad(wheel, f"compressed {total / max(packed, 1):.0f}:1 overall (limit {MAX_RATIO}:1)")
    return files


def _parse_record(text: str, wheel: Path) -> dict[str, Expected]:
    record: dict[str, Expected] = {}
    try:
        rows = list(csv.reader(io.StringIO(text)))
    except csv.Error as e:
        raise _bad(wheel, f"RECORD is not CSV ({e})") from e
    for row in rows:
        if not row:
            continue
        if len(row) != 3:
            raise _bad(wheel, f"RECORD row {row!r} does not have 3 fields")
        path, hashed, size = row
        if not hashed:
            continue
        algorithm, _, digest = hashed.partition("=")
        if algorithm not in HASHES or not digest or not size.isdigit():
            raise _bad(wheel, f"RECORD entry of {path!r} has no usable hash and size ({hashed!r}, {size!r})")
        record[path] = Expected(algorithm, digest, int(size))
    return record


def _check_entry_points(zf: zipfile.ZipFile, name: str, wheel: Path) -> None:
    """Launchers are written under names from ``entry_points.txt``, which no member-name check
    sees: each must be a plain file name. A file pypa ``installer`` cannot parse (it asserts) is
    refused here, as ours."""
    import configparser

    from installer.utils import parse_entrypoints

    if name not in zf.NameToInfo:
        return
    try:
        scripts = list(parse_entrypoints(read_small(zf, name, wheel).decode("utf-8")))
    except (configparser.Error, AssertionError, UnicodeDecodeError) as e:
        raise _bad(wheel, f"{name} cannot be parsed ({type(e).__name__}: {e})") from e
    for script, *_ in scripts:
        if not script or script in (".", "..") or any(c in script for c in "/\\\x00"):
            raise _bad(wheel, f"{name} names a launcher {script!r}, which is not a plain file name")


def check(path: Path, zf: zipfile.ZipFile, package: str, version: str | None = None) -> CheckedWheel:
    """Everything that can be checked before unpacking (see the module docstring)."""
    try:
        name, file_version, _, _ = parse_wheel_filename(path.name)
    except (InvalidWheelFilename, InvalidVersion) as e:
        raise _bad(path, f"not a valid wheel file name ({e})") from e
    if name != canonicalize_name(package):
        raise _bad(path, f"a wheel of {name}, not of {package}")
    if version is not None and Version(version) != file_version:
        raise _bad(path, f"version {file_version}, expected {version}")
    files = check_directory(zf, path)
    tops = {i.filename.split("/", 1)[0] for i in files if "/" in i.filename}
    infos = [t for t in tops if t.endswith(".dist-info")]
    if len(infos) != 1:
        raise _bad(path, f"{len(infos)} .dist-info folders ({', '.join(sorted(infos)) or 'none'}), expected one")
    dist_info = infos[0]
    stem = dist_info[: -len(".dist-info")]
    info_name, _, info_version = stem.rpartition("-")
    try:
        same_version = Version(info_version) == file_version
    except InvalidVersion:
        same_version = False
    if canonicalize_name(info_name) != name or not same_version:
        raise _bad(path, f"its metadata folder is {dist_info}, which is not {name} {file_version}")
    data_dirs = [t for t in tops if t.endswith(".data")]
    if any(d != f"{stem}.data" for d in data_dirs):
        raise _bad(path, f"unexpected data folder {sorted(data_dirs)}")
    try:
        meta = HeaderParser().parsestr(read_small(zf, f"{dist_info}/METADATA", path).decode("utf-8"))
        wheel_meta = HeaderParser().parsestr(read_small(zf, f"{dist_info}/WHEEL", path).decode("utf-8"))
        record_text = read_small(zf, f"{dist_info}/RECORD", path).decode("utf-8")
    except KeyError as e:
        raise _bad(path, f"no {e.args[0] if e.args else 'metadata file'} in {dist_info}") from e
    except UnicodeDecodeError as e:
        raise _bad(path, f"metadata in {dist_info} is not UTF-8") from e
    try:
        meta_version = Version(meta.get("Version") or "")
    except InvalidVersion:
        meta_version = None
    if canonicalize_name(meta.get("Name") or "") != name or meta_version != file_version:
        raise _bad(
            path, f"its METADATA says {meta.get('Name')} {meta.get('Version')}, the file name {name} {file_version}"
        )
    if not str(wheel_meta.get("Wheel-Version") or "").startswith("1."):
        raise _bad(path, f"Wheel-Version {wheel_meta.get('Wheel-Version')!r} is not 1.x")
    _check_entry_points(zf, f"{dist_info}/entry_points.txt", path)
    record = _parse_record(record_text, path)
    unsigned = {f"{dist_info}/RECORD", f"{dist_info}/RECORD.jws", f"{dist_info}/RECORD.p7s"}
    for info in files:
        if info.filename in unsigned:
            continue
        expected = record.get(info.filename)
        if expected is None:
            raise _bad(path, f"member {info.filename!r} is not listed in RECORD with a hash")
        if expected.size != info.file_size:
            raise _bad(path, f"RECORD says {info.filename!r} is {expected.size} bytes, the zip says {info.file_size}")
    return CheckedWheel(
        path, str(name), str(file_version), dist_info, record, len(files), sum(i.file_size for i in files)
    )


# ---------------------------------------------------------------- while unpacking


def _digest(hasher: hashlib._Hash) -> str:
    return base64.urlsafe_b64encode(hasher.digest()).rstrip(b"=").decode()


class _Verified(io.RawIOBase):
    """A member's stream that hashes what passes through and turns zip errors into ours."""

    def __init__(self, stream: BinaryIO, expected: Expected, name: str, wheel: Path) -> None:
        self._stream, self._expected, self._name, self._wheel = stream, expected, name, wheel
        self._hasher = hashlib.new(expected.algorithm)
        self.size = 0
        self.eof = False

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        try:
            data = self._stream.read(n)
        except READ_ERRORS as e:
            raise _bad(self._wheel, f"member {self._name!r} cannot be unpacked ({type(e).__name__}: {e})") from e
        if data:
            self._hasher.update(data)
            self.size += len(data)
        elif n != 0:
            self.eof = True
        return data

    def verify(self) -> None:
        if self.size != self._expected.size or _digest(self._hasher) != self._expected.digest:
            raise _bad(self._wheel, f"member {self._name!r} does not match its RECORD hash")


def source(checked: CheckedWheel, zf: zipfile.ZipFile):  # -> installer.sources.WheelFile
    """A pypa ``installer`` wheel source that verifies every member against RECORD as it streams."""
    from installer.sources import WheelFile

    class _Source(WheelFile):
        def get_contents(self) -> Iterator[tuple[tuple[str, str, str], BinaryIO, bool]]:
            record_path = f"{checked.dist_info}/RECORD"
            scripts = f"{checked.dist_info[: -len('.dist-info')]}.data/scripts/"
            for item in zf.infolist():
                if item.is_dir():
                    continue
                mode = item.external_attr >> 16
                executable = bool(mode & 0o111)
                if item.filename == record_path or item.filename not in checked.record:
                    with zf.open(item) as raw:
                        yield (item.filename, "", ""), raw, executable
                    continue
                expected = checked.record[item.filename]
                row = (item.filename, f"{expected.algorithm}={expected.digest}", str(expected.size))
                try:
                    raw = zf.open(item)
                except READ_ERRORS as e:
                    raise _bad(checked.path, f"member {item.filename!r} cannot be opened ({e})") from e
                with raw:
                    stream = _Verified(raw, expected, item.filename, checked.path)
                    if item.filename.startswith(scripts):
                        # the installer rewrites shebangs with seeks: verify first, hand over bytes
                        data = stream.read()
                        stream.read()
                        stream.verify()
                        yield row, io.BytesIO(data), True  # scripts run, whatever the zip's mode says (as pip)
                        continue
                    yield row, stream, executable  # type: ignore[misc]
                    if stream.eof or stream.size:
                        stream.verify()

    return _Source(zf)


def top_level_modules(checked: CheckedWheel, zf: zipfile.ZipFile) -> list[str]:
    """Import names the read-back imports: top-level packages (folders with ``__init__.py``)."""
    names = zf.namelist()
    packages = sorted(
        {n.split("/")[0] for n in names if n.count("/") == 1 and n.endswith("/__init__.py")} - {checked.dist_info}
    )
    if packages:
        return packages
    return sorted({n[:-3] for n in names if "/" not in n and n.endswith(".py") and n.isascii()})
