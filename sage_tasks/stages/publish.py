"""publish: wheel + manifest + index + latest.json into the store in one atomic step.

A wheel whose kernel test failed is never published. An unverified one only with
``allow_unverified`` (it stays marked unverified; fetch prefers verified wheels). Nothing
published is overwritten: see ``merge``.

The bash installer requires the installed version to be exactly ``2.2.0``, so a labelled
SageAttention wheel for 12.0 is published with a plain-version twin (same files, its own hash
and entry; the variant is in its build tag: ``sageattention-2.2.0-0cu128torch280sm120-…``).
``latest.json`` moves only to a twin the installer accepts on an RTX 5090 (``installer_rules``).
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.utils import parse_wheel_filename
from packaging.version import Version

from ..core import redaction
from ..core.errors import ConfigError, ConflictError, IntegrityError, KernelTestError, NoMatchError, UnverifiedError
from ..store import Store, installer_rules, manifest
from ..store.manifest import Index, Verification, WheelManifest
from ..wheel import wheelfile

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PublishResult:
    entry: WheelManifest
    store: str
    outcome: str  # "published", "unchanged" or "superseded"
    wheels_in_index: int
    attempts: int = 1
    twin: WheelManifest | None = None
    latest: str | None = None  # the wheel latest.json names after the publish
    pointer: str = ""  # what happened to latest.json, in one line

    def to_dict(self) -> dict[str, Any]:
        return {
            "wheel_file": self.entry.wheel_file,
            "store": self.store,
            "outcome": self.outcome,
            "verification": self.entry.verification.status,
            "wheels_in_index": self.wheels_in_index,
            "attempts": self.attempts,
            "twin": self.twin.wheel_file if self.twin else None,
            "latest": self.latest,
            "pointer": self.pointer,
        }


def check_publishable(entry: WheelManifest, allow_unverified: bool) -> None:
    status = entry.verification.status
    if status == "failed":
        raise KernelTestError(
            f"{entry.wheel_file} failed its kernel test ({entry.verification.summary or 'see its manifest'}); it is not published",
            "fix the build (or the GPU stack) and run `invoke test-kernel` again",
        )
    if status == "unverified" and not allow_unverified:
        raise UnverifiedError(
            f"{entry.wheel_file} has not passed a kernel test on a GPU",
            "run `invoke test-kernel` on the target GPU, or publish with --allow-unverified",
        )


def with_build_tag(entry: WheelManifest, index: Index) -> WheelManifest:
    """The entry renamed with the next free wheel build tag (``name-version-N-tags.whl``):
    the way to publish new bytes for a variant without overwriting the old file."""
    taken = [0]
    for other in index.wheels:
        if _base(other.wheel_file) == _base(entry.wheel_file):
            build = parse_wheel_filename(other.wheel_file)[2]
            taken.append(build[0] if build else 0)
    stem = entry.wheel_file[: -len(".whl")].split("-")
    suffix = _build_suffix(entry.wheel_file)  # a twin's variant stays in its build tag
    renamed = "-".join([*stem[:2], f"{max(taken) + 1}{suffix}", *stem[-3:]]) + ".whl"
    return entry.replace(wheel_file=renamed, wheel_path=f"{manifest.WHEELS_DIR}/{renamed}")


def _build_suffix(wheel_file: str) -> str:
    build = parse_wheel_filename(wheel_file)[2]
    return build[1] if build else ""


def _base(wheel_file: str) -> tuple[object, object, object, object]:
    """What makes a variant: name, version, the build tag's variant part (not its number), tags."""
    name, version, _, tags = parse_wheel_filename(wheel_file)
    return name, version, _build_suffix(wheel_file), tags


def merge(index: Index, entry: WheelManifest, replace: bool) -> tuple[Index, str, WheelManifest]:
    """The index with ``entry`` in it, what happened, and the entry as stored (pure).

    Nothing published is ever overwritten. The same bytes keep their entry (a yank stays, a full
    verdict is not downgraded). New bytes for a variant (same name, version and tags) conflict
    while one of its builds is live; once they are all yanked or failed, or with ``replace``,
    they go in under the next build tag, and ``replace`` yanks the live ones they supersede.
    """
    same = [w for w in index.wheels if _base(w.wheel_file) == _base(entry.wheel_file)]
    identical = next((w for w in same if w.wheel_sha256 == entry.wheel_sha256), None)
    if identical is not None:
        best = identical.verification if identical.verification.passed else entry.verification
        merged = identical.replace(verification=best)
        return (index if merged == identical else index.with_entry(merged)), "unchanged", merged
    if not same:
        return index.with_entry(entry), "published", entry
    live = [w for w in same if w.yanked is None and w.verification.status != "failed"]
    if live and not replace:
        raise ConflictError(
            f"{live[0].wheel_file} is already published with different contents (sha256 {live[0].wheel_sha256[:12]}…)",
            "yank the published one first, or pass --replace (it is kept, yanked, and yours goes in under a build tag)",
        )
    renamed = with_build_tag(entry, index)
    merged_index = index.with_entry(renamed)
    for old in live:
        reason = f"superseded by {renamed.wheel_file}"
        merged_index = merged_index.with_entry(old.replace(yanked={"reason": reason, "at": manifest.now()}))
    return merged_index, "superseded", renamed


def make_twin(wheel: Path, entry: WheelManifest, dest_dir: Path) -> tuple[WheelManifest, bytes]:
    """The plain-version twin of a labelled wheel and its manifest entry. It inherits the
    verdict only when its extensions are byte-identical to the tested wheel's."""
    path = wheelfile.plain_twin(wheel, dest_dir, installer_rules.twin_build_tag(entry))
    data = path.read_bytes()
    verdict = twin_verdict(entry, wheel, path)
    twin = entry.replace(
        version=str(Version(entry.version).public),
        wheel_file=path.name,
        wheel_path=f"{manifest.WHEELS_DIR}/{path.name}",
        wheel_sha256=hashlib.sha256(data).hexdigest(),
        wheel_size=len(data),
        twin_of=entry.wheel_file,
        verification=verdict,
    )
    return twin, data


def twin_verdict(entry: WheelManifest, wheel: Path, twin: Path) -> Verification:
    """The labelled wheel's verdict if ``twin``'s extensions (paths and bytes) are the tested
    ``wheel``'s, else unverified: a kernel test proves the binaries it ran, nothing else."""
    if wheelfile.extension_bytes(twin) == wheelfile.extension_bytes(wheel):
        return entry.verification
    return Verification(status="unverified", summary=f"its extensions differ from {entry.wheel_file}'s")


def drop_yanked_pointer(index: Index) -> Index:
    """No pointer to a yanked wheel: the pointer goes, and the wheel records that it had it."""
    current = index.latest_entry
    if current is None or not current.yanked:
        return index
    marked = current.replace(yanked={**current.yanked, "was_latest": True})
    return index.with_entry(marked).replace(latest=None)


def move_pointer(index: Index, candidate: WheelManifest | None, allow_unverified: bool) -> tuple[Index, str]:
    """The index with ``latest`` moved to ``candidate`` when the installer's machines may follow
    it there (pure), and one line saying what happened."""
    index = drop_yanked_pointer(index)
    current = index.latest or "nothing"
    if candidate is None:
        return index, f"latest.json stays at {current}: no plain-version wheel for the bash installer"
    reasons = installer_rules.pointer_reasons(candidate, index, allow_unverified=allow_unverified)
    if not reasons and not installer_rules.moves_forward(candidate, index):
        reasons = [f"{current} is newer"]
    if reasons:
        return index, f"latest.json stays at {current}: {candidate.wheel_file}: {reasons[0]}"
    if index.latest == candidate.wheel_file:
        return index, f"latest.json already names {candidate.wheel_file}"
    return index.replace(latest=candidate.wheel_file), f"latest.json now names {candidate.wheel_file}"


def publish(
    store: Store,
    wheel: Path,
    manifest_path: Path,
    *,
    allow_unverified: bool = False,
    replace: bool = False,
    latest_unverified: bool = False,
) -> PublishResult:
    entry = manifest.read_manifest_file(manifest_path)
    if wheel.name != entry.wheel_file:
        raise IntegrityError(f"{manifest_path} describes {entry.wheel_file}, not {wheel.name}")
    try:
        data = wheel.read_bytes()  # read once: what is hashed here is exactly what is stored
    except OSError as e:
        raise NoMatchError(f"cannot read {wheel}: {e.strerror}", "run `invoke build` first") from e
    if len(data) != entry.wheel_size or hashlib.sha256(data).hexdigest() != entry.wheel_sha256:
        raise IntegrityError(f"{wheel.name} no longer matches its manifest (size or sha256)", "rebuild it")
    check_publishable(entry, allow_unverified)
    entry = entry.replace(wheel_path=f"{manifest.WHEELS_DIR}/{entry.wheel_file}", created_at=manifest.now())
    twin: WheelManifest | None = None
    twin_data = b""
    if installer_rules.wants_twin(entry):
        with tempfile.TemporaryDirectory(prefix="sage-twin-") as tmp:
            twin, twin_data = make_twin(wheel, entry, Path(tmp))
    state: dict[str, Any] = {"twin": None}

    def update(index: Index) -> Index:
        merged, state["outcome"], state["entry"] = merge(index, entry, replace)
        candidate = state["entry"] if "+" not in state["entry"].version else None
        if twin is not None:
            renamed = twin.replace(twin_of=state["entry"].wheel_file)
            # a superseded labelled wheel takes its twin along
            merged, _, state["twin"] = merge(merged, renamed, replace or state["outcome"] == "superseded")
            candidate = state["twin"]
        merged, state["pointer"] = move_pointer(merged, candidate, latest_unverified)
        return merged

    def files(_: Index) -> dict[str, Path | bytes]:
        out: dict[str, Path | bytes] = {state["entry"].wheel_path: data}
        if state["twin"] is not None:
            out[state["twin"].wheel_path] = twin_data
        return out

    result = store.commit(files, update, f"publish {entry.wheel_file} ({entry.verification.status})")
    stored: WheelManifest = state["entry"]
    log.info(
        "%s %s to %s (%d wheel(s) in the index)",
        state["outcome"],
        stored.wheel_file,
        store.description,
        len(result.index.wheels),
    )
    log.info("%s", state["pointer"])
    return PublishResult(
        stored,
        store.description,
        state["outcome"],
        len(result.index.wheels),
        result.attempts,
        state["twin"],
        result.index.latest,
        state["pointer"],
    )


def built_wheels(dist_dir: Path, package: str) -> list[tuple[Path, Path]]:
    """(wheel, manifest) pairs for ``package`` in ``dist_dir``, oldest first."""
    return [(dist_dir / entry.wheel_file, path) for path, entry in manifest.built(dist_dir, package)]


def publish_all(
    store: Store,
    dist_dir: Path,
    package: str,
    *,
    allow_unverified: bool = False,
    replace: bool = False,
    latest_unverified: bool = False,
) -> list[PublishResult]:
    pairs = built_wheels(dist_dir, package)
    if not pairs:
        raise NoMatchError(f"no built {package} wheel with a manifest in {dist_dir}", "run `invoke build` first")
    return [
        publish(store, w, m, allow_unverified=allow_unverified, replace=replace, latest_unverified=latest_unverified)
        for w, m in pairs
    ]


@dataclass(frozen=True)
class YankResult:
    wheel_file: str
    store: str
    yanked: dict[str, Any] | None
    changed: bool
    pointer: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "wheel_file": self.wheel_file,
            "store": self.store,
            "yanked": self.yanked,
            "changed": self.changed,
            "pointer": self.pointer,
        }


def yank_change(index: Index, wheel_file: str, reason: str | None, at: str) -> tuple[Index, bool, str]:
    """The index after yanking (``reason``) or unyanking (None) ``wheel_file`` and its
    plain-version twins (pure), whether anything changed, and what happened to the pointer.

    A yank takes ``latest.json`` away from the wheel and records that it had it; an unyank gives
    it back unless a newer wheel took its place since."""
    entry = index.get(wheel_file)
    if entry is None:
        known = ", ".join(w.wheel_file for w in index.wheels) or "none"
        raise NoMatchError(f"{wheel_file} is not in the store", f"published wheels: {known}")
    group = [entry, *(w for w in index.wheels if w.twin_of == wheel_file)]
    if (entry.yanked is None) != (reason is not None):
        return index, False, f"latest.json names {index.latest or 'nothing'}"
    new = index
    if reason is not None:
        for w in group:
            if w.yanked is None:
                mark = {"reason": reason, "at": at, **({"was_latest": True} if index.latest == w.wheel_file else {})}
                new = new.with_entry(w.replace(yanked=mark))
        if new.latest in {w.wheel_file for w in group}:
            return new.replace(latest=None), True, f"latest.json removed (it named {new.latest})"
        return new, True, f"latest.json names {new.latest or 'nothing'}"
    had = [w for w in group if w.yanked and w.yanked.get("was_latest")]
    for w in group:
        if w.yanked is not None:
            new = new.with_entry(w.replace(yanked=None))
    if not had:
        return new, True, f"latest.json names {new.latest or 'nothing'}"
    back = new.get(had[0].wheel_file)
    assert back is not None
    current = new.latest_entry
    if current is not None and not current.yanked and current.created_at > back.created_at:
        return new, True, f"latest.json stays at the newer {current.wheel_file}"
    return new.replace(latest=back.wheel_file), True, f"latest.json restored to {back.wheel_file}"


def set_yanked(store: Store, wheel_file: str, reason: str | None) -> YankResult:
    """Mark a published wheel as bad (``reason``) or good again (None), in one atomic commit,
    together with its plain-version twins and ``latest.json``. The wheel file is kept: a yank
    is reversible and leaves a trace."""
    manifest.check_wheel_name(wheel_file)
    if reason is not None and not reason.strip():
        raise ConfigError("a yank needs a reason", 'pass --reason "what is wrong with it"')
    if reason is not None:  # recorded in the index and the commit message: never a secret it quotes
        reason = redaction.redact(reason.strip())
    state: dict[str, Any] = {}

    def update(index: Index) -> Index:
        try:
            new, state["changed"], state["pointer"] = yank_change(index, wheel_file, reason, manifest.now())
        except NoMatchError as e:
            raise NoMatchError(e.message.replace("the store", store.description), e.hint) from e
        entry = new.get(wheel_file)
        state["yanked"] = entry.yanked if entry else None
        return new

    verb = "yank" if reason is not None else "unyank"
    store.commit({}, update, f"{verb} {wheel_file}" + (f": {reason}" if reason else ""))
    log.info("%s", state["pointer"])
    return YankResult(wheel_file, store.description, state["yanked"], state["changed"], state["pointer"])


@dataclass(frozen=True)
class AdoptResult:
    store: str
    adopted: tuple[str, ...]
    wheels_in_index: int
    latest: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "store": self.store,
            "adopted": list(self.adopted),
            "wheels_in_index": self.wheels_in_index,
            "latest": self.latest,
        }


def adopt(store: Store) -> AdoptResult:
    """Write the bash installer's wheel(s) into a sage-tasks index in its folder, in one commit;
    its wheel and ``latest.json`` stay as they are."""
    state: dict[str, Any] = {}

    def update(index: Index) -> Index:
        state["pending"] = index.pending
        return index.replace(pending=(), updated_at=manifest.now()) if index.pending else index

    result = store.commit({}, update, "adopt the bash installer's wheel")
    if not result.index.wheels:
        raise NoMatchError(
            f"{store.description} has neither a sage-tasks index nor the bash installer's latest.json "
            f"(also looked in {manifest.INSTALLER_FOLDER}/)",
            f"set REMOTE_DIR to the installer's folder (default {manifest.INSTALLER_FOLDER})",
        )
    return AdoptResult(store.description, tuple(state["pending"]), len(result.index.wheels), result.index.latest)
