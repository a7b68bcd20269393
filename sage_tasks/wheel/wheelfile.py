"""Wheel files: hashing, reading their own metadata, and giving them a local version label.

``relabel`` rewrites a freshly built wheel so that its version carries a PEP 440 local label
(``2.2.0`` → ``2.2.0+cu128torch2.8.0``): the ``.dist-info`` folder is renamed, ``METADATA``'s
``Version`` changes and ``RECORD`` is regenerated with new hashes. The upstream source is not
touched.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import re
import zipfile
import zlib
from dataclasses import dataclass
from email.parser import HeaderParser
from pathlib import Path

from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from ..core.atomic import open_regular
from ..core.errors import IntegrityError
from ..store.manifest import check_wheel_name

CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open_regular(path) as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class WheelInfo:
    path: Path
    name: str
    version: str
    tags: tuple[str, ...]
    extensions: tuple[str, ...]

    @property
    def python_tag(self) -> str:
        return self.path.name[:-4].split("-")[-3]

    @property
    def abi_tag(self) -> str:
        return self.path.name[:-4].split("-")[-2]

    @property
    def platform_tag(self) -> str:
        return self.path.name[:-4].split("-")[-1]


def _dist_info(zf: zipfile.ZipFile) -> str:
    tops = {n.split("/", 1)[0] for n in zf.namelist() if "/" in n}
    found = [t for t in tops if t.endswith(".dist-info")]
    if len(found) != 1:
        raise IntegrityError(f"{zf.filename} has {len(found)} .dist-info folders, expected one")
    return found[0]


def inspect(path: Path) -> WheelInfo:
    """Name, version, tags and compiled extensions, checked against the wheel's own METADATA."""
    check_wheel_name(path.name)
    name, version, _, tags = parse_wheel_filename(path.name)
    try:
        with open_regular(path) as handle, zipfile.ZipFile(handle) as zf:
            dist_info = _dist_info(zf)
            meta = HeaderParser().parsestr(zf.read(f"{dist_info}/METADATA").decode("utf-8"))
            extensions = tuple(sorted(n for n in zf.namelist() if re.search(r"\.so(\.[0-9.]+)?$|\.pyd$", n)))
    except (zipfile.BadZipFile, KeyError, OSError, UnicodeDecodeError, zlib.error, EOFError, RuntimeError) as e:
        raise IntegrityError(f"{path.name} is not a readable wheel: {e}", "delete it and fetch or build again") from e
    try:
        inside = Version(meta["Version"] or "")
    except InvalidVersion as e:
        raise IntegrityError(f"{path.name} has no valid version in its METADATA") from e
    if canonicalize_name(meta["Name"] or "") != name or inside != version:
        raise IntegrityError(
            f"{path.name} says it is {meta['Name']} {meta['Version']} inside: the file was renamed or altered"
        )
    return WheelInfo(path, str(name), str(version), tuple(sorted(str(t) for t in tags)), extensions)


def file_facts(path: Path) -> dict[str, object]:
    """The manifest fields a wheel file itself decides: name, version, hash, size, tags."""
    info = inspect(path)
    return {
        "version": info.version,
        "wheel_file": path.name,
        "wheel_sha256": sha256_file(path),
        "wheel_size": path.stat().st_size,
        "python_tag": info.python_tag,
        "abi_tag": info.abi_tag,
        "platform_tag": info.platform_tag,
    }


def record_hash(data: bytes) -> str:
    """A RECORD line's hash: urlsafe base64 of the sha256, without padding."""
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def relabel(src: Path, dest_dir: Path, label: str) -> Path:
    """Copy ``src`` into ``dest_dir`` with ``+label`` appended to its version."""
    if not re.fullmatch(r"[a-z0-9]+(\.[a-z0-9]+)*", label):
        raise ValueError(f"not a PEP 440 local label: {label}")
    info = inspect(src)
    old_version = Version(info.version)
    new_version = f"{old_version.public}+{label}"
    file_name = src.name.split("-")[0]
    old_prefix = f"{file_name}-{info.version}"
    new_prefix = f"{file_name}-{new_version}"
    return _rewritten(src, dest_dir / src.name.replace(old_prefix, new_prefix, 1), old_prefix, new_prefix, new_version)


def _rewritten(src: Path, target: Path, old_prefix: str, new_prefix: str, new_version: str) -> Path:
    """``src`` copied to ``target`` (written beside it, then renamed) under a new version; checked."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        _rewrite(src, tmp, old_prefix, new_prefix, new_version)
        tmp.replace(target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    inspect(target)
    return target


def _rewrite(src: Path, tmp: Path, old_prefix: str, new_prefix: str, new_version: str) -> None:
    with zipfile.ZipFile(src) as zin:
        old_info = _dist_info(zin)
        new_info = old_info.replace(old_prefix, new_prefix, 1)
        # the ``.data`` folder (scripts, headers, data files) is named after the version too
        old_data, new_data = old_info[: -len(".dist-info")] + ".data", new_info[: -len(".dist-info")] + ".data"
        records: list[tuple[str, str, str]] = []
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zout:
            for item in zin.infolist():
                name = item.filename
                if name == f"{old_info}/RECORD":
                    continue
                data = zin.read(item)
                if name.startswith(f"{old_info}/"):
                    name = new_info + name[len(old_info) :]
                elif name.startswith(f"{old_data}/"):
                    name = new_data + name[len(old_data) :]
                if name == f"{new_info}/METADATA":
                    data = re.sub(rb"(?m)^Version: .*$", f"Version: {new_version}".encode(), data, count=1)
                copy = zipfile.ZipInfo(name, date_time=item.date_time)
                copy.external_attr = item.external_attr
                copy.compress_type = zipfile.ZIP_DEFLATED
                zout.writestr(copy, data)
                records.append((name, record_hash(data), str(len(data))))
            out = io.StringIO()
            writer = csv.writer(out, lineterminator="\n")
            writer.writerows(records)
            writer.writerow((f"{new_info}/RECORD", "", ""))
            zout.writestr(f"{new_info}/RECORD", out.getvalue())


def plain_twin(src: Path, dest_dir: Path, build_tag: str) -> Path:
    """Copy ``src`` into ``dest_dir`` with its public version (no local label) and ``build_tag``
    in the file name: same files and binaries, ``METADATA`` and ``RECORD`` rewritten."""
    if not re.fullmatch(r"[0-9][A-Za-z0-9]*", build_tag):
        raise ValueError(f"not a wheel build tag: {build_tag}")
    info = inspect(src)
    public = Version(info.version).public
    file_name = src.name.split("-")[0]
    tags = "-".join(src.name[: -len(".whl")].split("-")[-3:])
    target = dest_dir / f"{file_name}-{public}-{build_tag}-{tags}.whl"
    return _rewritten(src, target, f"{file_name}-{info.version}", f"{file_name}-{public}", public)


def extension_bytes(path: Path) -> dict[str, bytes]:
    """The compiled extensions of a wheel, by path inside it, with their bytes."""
    try:
        with open_regular(path) as handle, zipfile.ZipFile(handle) as zf:
            return {n: zf.read(n) for n in zf.namelist() if re.search(r"\.so(\.[0-9.]+)?$|\.pyd$", n)}
    except (zipfile.BadZipFile, OSError, UnicodeDecodeError, zlib.error, EOFError, RuntimeError) as e:
        raise IntegrityError(f"{path.name} is not a readable wheel: {e}") from e
