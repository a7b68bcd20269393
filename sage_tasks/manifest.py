"""Wheel manifests and the store index: model, schema validation, atomic JSON files.

A manifest says what one stored wheel is (file, hash, tags), what it was built against
(torch, CUDA, ABI, archs, nvcc, source commit) and how it was verified. ``index.json`` holds
every manifest of a store; ``latest.json`` is the bash installer's pointer, written with its
field names so that existing installers keep reading it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from . import atomic, minischema, redaction
from .archs import cuda_from_flavor, parse_arch_list, sm_number
from .errors import ConfigError, IntegrityError, StoreError
from .locations import manifests_dir

SCHEMA_VERSION = 1
WHEELS_DIR = "wheels"
MANIFESTS_DIR = "manifests"
INDEX_FILE = "index.json"
LATEST_FILE = "latest.json"
STATUSES = ("passed", "failed", "unverified")


def now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


@cache
def schema() -> dict[str, Any]:
    path = manifests_dir(os.environ) / "schema" / "wheel-manifest.schema.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    minischema.check_schema(data)
    return data


# ---------------------------------------------------------------- names


def check_wheel_name(name: str) -> str:
    """A bare wheel file name, or IntegrityError: no separators, no ``..``, no URL tricks."""
    if (
        not isinstance(name, str)
        or len(name) > 255
        or name != name.strip()
        or "/" in name
        or "\\" in name
        or "%" in name
        or ".." in name
        or name.startswith(".")
        or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.+!-]*\.whl", name)
    ):
        raise IntegrityError(
            f"refusing wheel file name {str(name)[:120]!r}", "a stored wheel must have a plain file name"
        )
    try:
        parse_wheel_filename(name)
    except (InvalidWheelFilename, ValueError) as e:
        raise IntegrityError(f"refusing wheel file name {name[:120]!r}: not a valid wheel file name") from e
    return name


def check_relative_path(path: str) -> str:
    """A store-relative path made of plain names (no absolute paths, ``..`` or empty parts)."""
    parts = path.split("/") if isinstance(path, str) else [""]
    if (
        not parts
        or any(p in ("", ".", "..") or p.startswith(".") or "\\" in p or "%" in p for p in parts)
        or not all(re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.+!-]*", p) for p in parts)
    ):
        raise IntegrityError(f"refusing store path {path!r}", "store paths must be plain relative names")
    return path


def wheel_tags(name: str) -> tuple[str, str, str]:
    """``(python_tag, abi_tag, platform_tag)`` from a wheel file name (first of each set)."""
    stem = name[:-4].split("-")
    return stem[-3], stem[-2], stem[-1]


# ---------------------------------------------------------------- model


@dataclass(frozen=True)
class Verification:
    status: str = "unverified"
    mode: str | None = None
    gpu: str | None = None
    compute_capability: str | None = None
    driver: str | None = None
    checked_at: str | None = None
    summary: str | None = None
    checks: tuple[dict[str, Any], ...] = ()
    speed: tuple[dict[str, Any], ...] = ()

    @property
    def passed(self) -> bool:
        return self.status == "passed"


@dataclass(frozen=True)
class WheelManifest:
    package: str
    version: str
    wheel_file: str
    wheel_sha256: str
    python_tag: str
    abi_tag: str
    platform_tag: str
    torch_version: str | None
    wheel_size: int | None = None
    wheel_path: str = ""
    recipe: str | None = None
    torch_cuda: str | None = None
    torch_cxx11_abi: bool | None = None
    torchvision_version: str | None = None
    torchaudio_version: str | None = None
    triton_version: str | None = None
    torch_index_url: str | None = None
    target_arch: str | None = None
    cuda_archs: tuple[str, ...] = ()
    binaries: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    nvcc_version: str | None = None
    source: dict[str, Any] = field(default_factory=lambda: {"repo": None, "ref": None, "commit": None})
    build: dict[str, Any] | None = None
    verification: Verification = field(default_factory=Verification)
    yanked: dict[str, str] | None = None
    legacy: bool = False
    created_at: str = field(default_factory=now)
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if not self.wheel_path:
            object.__setattr__(self, "wheel_path", f"{WHEELS_DIR}/{self.wheel_file}")

    @property
    def manifest_path(self) -> str:
        return f"{MANIFESTS_DIR}/{self.wheel_file}.json"

    @property
    def status(self) -> str:
        return "yanked" if self.yanked else self.verification.status

    def replace(self, **changes: Any) -> WheelManifest:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["cuda_archs"] = list(self.cuda_archs)
        data["verification"]["checks"] = list(self.verification.checks)
        data["verification"]["speed"] = list(self.verification.speed)
        return data


def _verification_from(data: Mapping[str, Any]) -> Verification:
    known = {f.name for f in dataclasses.fields(Verification)}
    values = {k: v for k, v in data.items() if k in known}
    values["checks"] = tuple(values.get("checks") or ())
    values["speed"] = tuple(values.get("speed") or ())
    return Verification(**values)


def from_dict(data: Any, where: str = "manifest") -> WheelManifest:
    """Validate against the committed schema and the file-name rules, then build the record."""
    problems = minischema.errors(data, schema())
    if problems:
        raise IntegrityError(f"malformed {where}: {problems[0]}", "republish the wheel or remove the entry")
    check_wheel_name(data["wheel_file"])
    check_relative_path(data["wheel_path"])
    if data["wheel_path"].rsplit("/", 1)[-1] != data["wheel_file"]:
        raise IntegrityError(f"malformed {where}: wheel_path does not end in wheel_file")
    tags = wheel_tags(data["wheel_file"])
    if tags != (data["python_tag"], data["abi_tag"], data["platform_tag"]):
        raise IntegrityError(f"malformed {where}: tags {tags} in the file name differ from the manifest's")
    known = {f.name for f in dataclasses.fields(WheelManifest)}
    values = {k: v for k, v in data.items() if k in known}
    values["cuda_archs"] = tuple(values.get("cuda_archs", ()))
    values["verification"] = _verification_from(values.get("verification", {}))
    return WheelManifest(**values)


# ---------------------------------------------------------------- index


@dataclass(frozen=True)
class Index:
    wheels: tuple[WheelManifest, ...] = ()
    updated_at: str | None = None

    def get(self, wheel_file: str) -> WheelManifest | None:
        return next((w for w in self.wheels if w.wheel_file == wheel_file), None)

    def with_entry(self, entry: WheelManifest) -> Index:
        """The index with ``entry`` added, or replacing the entry of the same file."""
        others = tuple(w for w in self.wheels if w.wheel_file != entry.wheel_file)
        return Index(wheels=(*others, entry), updated_at=now())

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "updated_at": self.updated_at,
            "wheels": [w.to_dict() for w in self.wheels],
        }


def index_from_dict(data: Any, where: str = "index.json") -> Index:
    problems = minischema.errors(data, {"$ref": "#/$defs/index"}, schema())
    if problems:
        raise StoreError(
            f"malformed {where}: {problems[0]}", "restore the index from a backup or republish into an empty store"
        )
    wheels = []
    for i, item in enumerate(data["wheels"]):
        try:
            wheels.append(from_dict(item, f"{where} entry {i}"))
        except IntegrityError as e:
            raise StoreError(e.message, e.hint) from e
    names = [w.wheel_file for w in wheels]
    if len(set(names)) != len(names):
        raise StoreError(f"malformed {where}: a wheel file is listed twice")
    return Index(wheels=tuple(wheels), updated_at=data.get("updated_at"))


def changed_manifests(old: Index, new: Index) -> dict[str, bytes]:
    """``manifests/<wheel>.json`` files for entries that are new or differ (derived from the index)."""
    before = {w.wheel_file: w.to_dict() for w in old.wheels}
    return {w.manifest_path: dumps(w.to_dict()).encode() for w in new.wheels if before.get(w.wheel_file) != w.to_dict()}


def parse_json(text: str | bytes, where: str, error: type[Exception] = StoreError) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:  # bad JSON, bad UTF-8, integers too long to convert
        raise error(f"{where} is not valid JSON: {e}", "restore the file or republish") from e  # type: ignore[call-arg]


# ---------------------------------------------------------------- the bash installer's latest.json


def latest_record(entry: WheelManifest, wheel_url: str | None = None) -> dict[str, Any]:
    """``latest.json``: the bash installer's field names, then our full manifest fields."""
    bash = {
        "created_at_utc": entry.created_at,
        "wheel_file": entry.wheel_file,
        "wheel_sha256": entry.wheel_sha256,
        "hf_wheel_url": wheel_url,
        "sageattention_version": entry.version.split("+", 1)[0],
        "torch_version": entry.torch_version,
        "torchvision_version": entry.torchvision_version,
        "torchaudio_version": entry.torchaudio_version,
        "triton_version": entry.triton_version,
        "torch_index_url": entry.torch_index_url,
        "target_arch": entry.target_arch,
        "cudaarchs": "".join(a.removeprefix("sm_") for a in entry.cuda_archs if a.startswith("sm_"))[:16] or None,
        "built_from_repo": entry.source.get("repo"),
        "built_from_ref": entry.source.get("ref"),
        "builder_gpu_name": entry.verification.gpu,
        "builder_gpu_compute_capability": entry.verification.compute_capability,
        "python_tag": entry.python_tag,
    }
    return {**entry.to_dict(), **bash}


def choose_latest(wheels: Iterable[WheelManifest], preferred_arch: str | None) -> WheelManifest | None:
    """The default variant: newest usable wheel, preferring the default arch and verified ones."""
    usable = [w for w in wheels if not w.yanked and w.verification.status != "failed" and not w.legacy]
    if not usable:
        return None
    return max(
        usable,
        key=lambda w: (w.target_arch == preferred_arch, w.verification.passed, w.created_at),
    )


def from_legacy_latest(data: Any, where: str) -> WheelManifest:
    """Read the bash installer's ``REMOTE_DIR/latest.json`` (its wheel sits next to it)."""
    if not isinstance(data, dict):
        raise StoreError(f"malformed {where}: expected a JSON object")
    name = check_wheel_name(data.get("wheel_file", ""))
    sha = data.get("wheel_sha256")
    if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-f]{64}", sha):
        raise IntegrityError(f"{where} has no valid wheel_sha256", "republish the wheel with sage-tasks")
    python_tag, abi_tag, platform_tag = wheel_tags(name)
    _, version, _, _ = parse_wheel_filename(name)
    torch_version = data.get("torch_version")
    cuda = None
    if isinstance(torch_version, str) and "+" in torch_version:
        cuda = cuda_from_flavor(torch_version.split("+", 1)[1])
    target = data.get("target_arch") if isinstance(data.get("target_arch"), str) else None
    try:
        target_archs = parse_arch_list(target)
    except ConfigError:
        target_archs = ()
    record = {
        "schema_version": SCHEMA_VERSION,
        "package": name.split("-", 1)[0],
        "version": str(version),
        "wheel_file": name,
        "wheel_path": name,  # next to latest.json
        "wheel_sha256": sha,
        "wheel_size": None,
        "python_tag": python_tag,
        "abi_tag": abi_tag,
        "platform_tag": platform_tag,
        "torch_version": torch_version if isinstance(torch_version, str) else None,
        "torch_cuda": cuda,
        "torch_cxx11_abi": None,
        "torchvision_version": data.get("torchvision_version"),
        "torchaudio_version": data.get("torchaudio_version"),
        "triton_version": data.get("triton_version"),
        "torch_index_url": data.get("torch_index_url"),
        "target_arch": target,
        # The bash installer built for TORCH_CUDA_ARCH_LIST without recording the binaries:
        # its claim is checked against the wheel's own binaries after download.
        "cuda_archs": [f"sm_{sm_number(a)}" for a in target_archs],
        "source": {"repo": data.get("built_from_repo"), "ref": data.get("built_from_ref"), "commit": None},
        "verification": {"status": "unverified", "summary": "published by the bash installer"},
        "legacy": True,
        "created_at": str(data.get("created_at_utc") or now()),
    }
    return from_dict(record, where)


# ---------------------------------------------------------------- atomic files


def dumps(data: Any) -> str:
    return redaction.redact(json.dumps(data, indent=2, sort_keys=False)) + "\n"


def write_atomic(path: Path, content: str | bytes) -> None:
    atomic.write(path, content)


def built(dist_dir: Path, package: str | None = None, *, strict: bool = True) -> list[tuple[Path, WheelManifest]]:
    """(manifest path, entry) for the built wheels in ``dist_dir`` whose wheel file is there,
    oldest first. ``strict``: a malformed manifest is an error; otherwise it is skipped."""
    found = []
    for path in sorted(dist_dir.glob("*.whl.json")):
        try:
            entry = read_manifest_file(path)
        except IntegrityError:
            if strict:
                raise
            continue
        if (package is None or entry.package == package) and (dist_dir / entry.wheel_file).is_file():
            found.append((entry.created_at, path, entry))
    return [(path, entry) for _, path, entry in sorted(found, key=lambda f: (f[0], str(f[1])))]


def write_manifest_file(path: Path, entry: WheelManifest) -> None:
    write_atomic(path, dumps(entry.to_dict()))


def read_manifest_file(path: Path) -> WheelManifest:
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise IntegrityError(f"cannot read manifest {path}: {e.strerror}") from e
    return from_dict(parse_json(raw, str(path), IntegrityError), str(path))
