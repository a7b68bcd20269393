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
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from ..core import atomic, minischema, redaction
from ..core.archs import cuda_from_flavor, flavor_from_index_url, parse_arch_list, sm_number
from ..core.errors import ConfigError, IntegrityError, StoreError
from ..core.locations import manifests_dir

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
    # one verdict per compute capability: {"compute_capability", "status", "gpu", "mode",
    # "checked_at", "summary"}; an arch the wheel carries but no GPU tested is "unverified"
    archs: tuple[dict[str, Any], ...] = ()

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def proven_on(self) -> tuple[str, ...]:
        """Compute capabilities with a passing verdict (older manifests: the one GPU it ran on)."""
        if self.archs:
            return tuple(sorted(str(a["compute_capability"]) for a in self.archs if a.get("status") == "passed"))
        return (self.compute_capability,) if self.passed and self.compute_capability else ()


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
    yanked: dict[str, Any] | None = None
    legacy: bool = False
    # the bash installer's latest.json as it wrote it, for wheels it published (nothing is dropped)
    installer: dict[str, Any] | None = None
    # for a plain-version twin: the labelled wheel it was made from (same binaries)
    twin_of: str | None = None
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
        data["verification"]["archs"] = list(self.verification.archs)
        return data


def _verification_from(data: Mapping[str, Any]) -> Verification:
    known = {f.name for f in dataclasses.fields(Verification)}
    values = {k: v for k, v in data.items() if k in known}
    values["checks"] = tuple(values.get("checks") or ())
    values["speed"] = tuple(values.get("speed") or ())
    values["archs"] = tuple(values.get("archs") or ())
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
    """``latest``: the wheel ``latest.json`` names (None: no pointer). ``pending``: wheels
    known only from the bash installer's ``latest.json`` (not yet written into ``index.json``)."""

    wheels: tuple[WheelManifest, ...] = ()
    updated_at: str | None = None
    latest: str | None = None
    pending: tuple[str, ...] = ()

    def get(self, wheel_file: str) -> WheelManifest | None:
        return next((w for w in self.wheels if w.wheel_file == wheel_file), None)

    def with_entry(self, entry: WheelManifest) -> Index:
        """The index with ``entry`` added, or replacing the entry of the same file."""
        others = tuple(w for w in self.wheels if w.wheel_file != entry.wheel_file)
        return dataclasses.replace(self, wheels=(*others, entry), updated_at=now())

    def replace(self, **changes: Any) -> Index:
        return dataclasses.replace(self, **changes)

    @property
    def latest_entry(self) -> WheelManifest | None:
        return self.get(self.latest) if self.latest else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "updated_at": self.updated_at,
            "latest": self.latest,
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
    latest = data.get("latest")
    return Index(wheels=tuple(wheels), updated_at=data.get("updated_at"), latest=latest if latest in names else None)


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

INSTALLER_FOLDER = "sageattention220"  # the bash installer's default REMOTE_DIR
INSTALLER_MIN_CUDA = "12.8"  # the CUDA the installer assumes when its latest.json does not say


def latest_record(entry: WheelManifest, wheel_url: str | None = None) -> dict[str, Any]:
    """``latest.json`` for ``entry``: the bash installer's field names, then our manifest fields.
    A wheel the installer published gets its own file back, as it wrote it."""
    if entry.legacy and entry.installer:
        return dict(entry.installer)
    sass = [a.removeprefix("sm_") for a in entry.cuda_archs if a.startswith("sm_")]
    bash = {
        "created_at_utc": entry.created_at,
        "wheel_file": entry.wheel_file,
        "wheel_sha256": entry.wheel_sha256,
        "hf_wheel_url": wheel_url,
        "sageattention_version": entry.version,
        "expected_sageattention_version": entry.version,
        "torch_version": entry.torch_version,
        "torchvision_version": entry.torchvision_version,
        "torchaudio_version": entry.torchaudio_version,
        "triton_version": entry.triton_version,
        "torch_index_url": entry.torch_index_url,
        "target_arch": entry.target_arch,
        "cudaarchs": ";".join(sass) or None,
        "required_min_cuda": entry.torch_cuda,
        "built_from_repo": entry.source.get("repo"),
        "built_from_ref": entry.source.get("ref"),
        "built_from_commit": entry.source.get("commit"),
        "builder_gpu_name": entry.verification.gpu,
        "builder_gpu_compute_capability": entry.verification.compute_capability,
        "python_tag": entry.python_tag,
        "platform": entry.platform_tag,
        "machine": entry.platform_tag.split("_", 1)[-1] if "_" in entry.platform_tag else None,
    }
    return {**entry.to_dict(), **bash}


def legacy_torch_cuda(data: Mapping[str, Any]) -> tuple[str | None, str]:
    """The CUDA of the torch an installer entry was built against, and where it came from (pure):
    the local label of ``torch_version`` (``+cu128``), else ``torch_index_url`` (``.../cu128``),
    else ``required_min_cuda``, else unknown."""
    torch = data.get("torch_version")
    if isinstance(torch, str) and "+" in torch:
        cuda = cuda_from_flavor(torch.split("+", 1)[1])
        if cuda:
            return cuda, "torch_version"
    url = data.get("torch_index_url")
    cuda = cuda_from_flavor(flavor_from_index_url(url) if isinstance(url, str) else None)
    if cuda:
        return cuda, "torch_index_url"
    minimum = data.get("required_min_cuda")
    if isinstance(minimum, str) and re.fullmatch(r"\d{1,2}\.\d{1,2}", minimum.strip()):
        return minimum.strip(), "required_min_cuda"
    return None, "unknown"


def _legacy_archs(data: Mapping[str, Any]) -> list[str]:
    """SASS archs the installer claims: ``cudaarchs`` (``120``, ``89;120``), else ``target_arch``."""
    found: list[str] = []
    for key in ("cudaarchs", "target_arch"):
        text = data.get(key)
        if not isinstance(text, str) or found:
            continue
        for item in re.split(r"[;,\s]+", text.strip()):
            item = item.strip().lower().removeprefix("sm_")
            try:
                arch = sm_number(parse_arch_list(item)[0]) if "." in item else int(item.rstrip("a"))
            except (ConfigError, ValueError, IndexError):
                continue
            if 10 <= arch <= 999 and f"sm_{arch}" not in found:
                found.append(f"sm_{arch}")
    return found


def _scalar_fields(data: Mapping[str, Any]) -> dict[str, Any]:
    return {
        k: v
        for k, v in list(data.items())[:100]
        if isinstance(k, str) and len(k) <= 100 and (v is None or isinstance(v, str | int | float | bool))
    }


def from_legacy_latest(data: Any, where: str) -> WheelManifest:
    """Read the bash installer's ``latest.json`` (its wheel sits next to it), keeping its fields."""
    if not isinstance(data, dict):
        raise StoreError(f"malformed {where}: expected a JSON object")
    named = data.get("wheel_file")
    if not named and isinstance(data.get("hf_wheel_url"), str):
        named = data["hf_wheel_url"].split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    name = check_wheel_name(named or "")
    sha = data.get("wheel_sha256")
    if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-f]{64}", sha):
        raise IntegrityError(f"{where} has no valid wheel_sha256", "republish the wheel with sage-tasks")
    python_tag, abi_tag, platform_tag = wheel_tags(name)
    _, version, _, _ = parse_wheel_filename(name)
    torch_version = data.get("torch_version")
    cuda, _origin = legacy_torch_cuda(data)
    target = data.get("target_arch") if isinstance(data.get("target_arch"), str) else None
    commit = data.get("built_from_commit")
    builder = {
        "gpu": data.get("builder_gpu_name") if isinstance(data.get("builder_gpu_name"), str) else None,
        "compute_capability": (
            data.get("builder_gpu_compute_capability")
            if isinstance(data.get("builder_gpu_compute_capability"), str)
            else None
        ),
    }
    text = lambda key: data.get(key) if isinstance(data.get(key), str) else None  # noqa: E731
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
        "torch_version": text("torch_version") if torch_version else None,
        "torch_cuda": cuda,
        "torch_cxx11_abi": None,
        "torchvision_version": text("torchvision_version"),
        "torchaudio_version": text("torchaudio_version"),
        "triton_version": text("triton_version"),
        "torch_index_url": text("torch_index_url"),
        "target_arch": target,
        # The bash installer built for TORCH_CUDA_ARCH_LIST without recording the binaries:
        # its claim is checked against the wheel's own binaries after download.
        "cuda_archs": _legacy_archs(data),
        "source": {
            "repo": text("built_from_repo"),
            "ref": text("built_from_ref"),
            "commit": commit if isinstance(commit, str) and re.fullmatch(r"[0-9a-f]{7,64}", commit) else None,
        },
        "build": builder if any(builder.values()) else None,
        "verification": {"status": "unverified", "summary": "published by the bash installer"},
        "legacy": True,
        "installer": _scalar_fields(data),
        "created_at": str(data.get("created_at_utc") or now())[:64],
    }
    return from_dict(record, where)


@dataclass(frozen=True)
class FolderRead:
    """What one store folder holds: the index (with the installer's latest upload in it, when
    ``index.json`` lacks it), whether the two files exist, and lines to tell the user."""

    index: Index
    has_index: bool
    has_latest: bool
    notes: tuple[str, ...] = ()


def read_folder(index_data: Any | None, latest_data: Any | None, where: str) -> FolderRead | None:
    """``index.json`` and ``latest.json`` of one folder as one index (pure); None: neither exists.

    A ``latest.json`` without ``schema_version`` was written by the bash installer: when it
    names a wheel the index lacks (an upload after the index was written, or a store sage-tasks
    never wrote), that wheel is offered as a pending entry, and the pointer names it.
    """
    if index_data is None and latest_data is None:
        return None
    index = index_from_dict(index_data, f"{where}/{INDEX_FILE}") if index_data is not None else Index()
    has_index, has_latest = index_data is not None, latest_data is not None
    if not isinstance(latest_data, dict):
        return FolderRead(index, has_index, has_latest)
    named = latest_data.get("wheel_file")
    if "schema_version" in latest_data:  # ours: the index decides; old indexes had no "latest"
        if has_index and "latest" not in index_data and isinstance(named, str) and index.get(named):
            index = index.replace(latest=named)
        return FolderRead(index, has_index, has_latest)
    try:
        entry = from_legacy_latest(latest_data, f"{where}/{LATEST_FILE}")
    except (StoreError, IntegrityError) as e:
        note = f"the bash installer's {where}/{LATEST_FILE} cannot be used ({e.message}); it is left as it is"
        return FolderRead(index, has_index, has_latest, (note,))
    known = next((w for w in index.wheels if w.wheel_sha256 == entry.wheel_sha256), None)
    if known is not None:
        return FolderRead(index.replace(latest=known.wheel_file), has_index, has_latest)
    notes = []
    stale = index.get(entry.wheel_file)
    if stale is not None:
        notes.append(
            f"the bash installer replaced {entry.wheel_file} in {where} (sha256 {stale.wheel_sha256[:12]}… → "
            f"{entry.wheel_sha256[:12]}…): the index entry now describes the new file"
        )
    others = tuple(w for w in index.wheels if w.wheel_file != entry.wheel_file)
    index = index.replace(wheels=(*others, entry), latest=entry.wheel_file, pending=(entry.wheel_file,))
    if has_index:
        notes.append(
            f"the bash installer published {entry.wheel_file} into {where} after its index was written: it is "
            "offered for selection; `invoke adopt` (or the next publish or yank there) records it in the index"
        )
    else:
        notes.append(
            f"{where} holds the bash installer's store ({entry.wheel_file}) and no sage-tasks index: it is read "
            "as it is; `invoke adopt` imports it into an index there (its files and latest.json stay as they are)"
        )
    return FolderRead(index, has_index, has_latest, tuple(notes))


def beside_note(configured: str, index: Index, installer_latest: Any) -> str | None:
    """A line when the bash installer's own folder sits beside a sage-tasks store in another
    folder and holds a wheel this store lacks (pure): neither tool sees the other's wheels."""
    if not isinstance(installer_latest, dict) or "schema_version" in installer_latest:
        return None
    if any(w.wheel_sha256 == installer_latest.get("wheel_sha256") for w in index.wheels):
        return None
    name = installer_latest.get("wheel_file")
    return (
        f"the bash installer's {INSTALLER_FOLDER}/ ({name if isinstance(name, str) else 'its wheel'}) is not part "
        f"of the store in {configured}/: fetch does not see its wheel and its machines do not see these; to share "
        f"one folder, set REMOTE_DIR={INSTALLER_FOLDER}, run `invoke adopt` and publish there"
    )


def fallback_notes(configured: str, found: FolderRead) -> list[str]:
    """What to say when the store is found in the installer's folder: one line, plus what else
    the folder's read noticed (its "no index, adopt it" line is part of the first)."""
    return [fallback_note(configured, found), *(n for n in found.notes if "and no sage-tasks index" not in n)]


def fallback_note(configured: str, found: FolderRead) -> str:
    """The line every command prints when the configured folder is empty and the installer's is not."""
    then = "" if found.has_index else ", and `invoke adopt` to import its wheel into an index there"
    return (
        f"no sage-tasks store in {configured}/; using the bash installer's folder {INSTALLER_FOLDER}/ "
        f"({len(found.index.wheels)} wheel(s)) instead: set REMOTE_DIR={INSTALLER_FOLDER} to use it directly{then}"
    )


# ---------------------------------------------------------------- atomic files


def dumps(data: Any) -> str:
    return json.dumps(redaction.redact_data(data), indent=2, sort_keys=False) + "\n"


def write_atomic(path: Path, content: str | bytes) -> None:
    atomic.write(path, content)


def built(dist_dir: Path, package: str | None = None, *, strict: bool = True) -> list[tuple[Path, WheelManifest]]:
    """(manifest path, entry) for the built wheels in ``dist_dir`` whose wheel file is there,
    oldest first. ``strict``: a malformed manifest is an error; otherwise it is skipped."""
    if dist_dir.exists() and not dist_dir.is_dir():
        raise ConfigError(
            f"the dist folder {dist_dir} is not a directory", "pass --dist with a folder (or unset SAGE_DIST)"
        )
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
        raw = atomic.read_bytes(path)
    except OSError as e:
        raise IntegrityError(
            f"cannot read manifest {path}: {e.strerror}", "a built wheel's manifest sits beside it as WHEEL.json"
        ) from e
    return from_dict(parse_json(raw, str(path), IntegrityError), str(path))
