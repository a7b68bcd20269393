"""publish: wheel + manifest + index + latest.json into the store in one atomic step.

A wheel whose kernel test failed is never published. An unverified one only with
``allow_unverified`` (it stays marked unverified; fetch prefers verified wheels). Nothing
published is overwritten: see ``merge``.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.utils import parse_wheel_filename

from . import manifest
from .errors import ConfigError, ConflictError, IntegrityError, KernelTestError, NoMatchError, UnverifiedError
from .manifest import Index, WheelManifest
from .store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PublishResult:
    entry: WheelManifest
    store: str
    outcome: str  # "published", "unchanged" or "superseded"
    wheels_in_index: int
    attempts: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "wheel_file": self.entry.wheel_file,
            "store": self.store,
            "outcome": self.outcome,
            "verification": self.entry.verification.status,
            "wheels_in_index": self.wheels_in_index,
            "attempts": self.attempts,
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
    renamed = "-".join([*stem[:2], str(max(taken) + 1), *stem[-3:]]) + ".whl"
    return entry.replace(wheel_file=renamed, wheel_path=f"{manifest.WHEELS_DIR}/{renamed}")


def _base(wheel_file: str) -> tuple[object, object, object]:
    name, version, _, tags = parse_wheel_filename(wheel_file)
    return name, version, tags


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


def publish(
    store: Store,
    wheel: Path,
    manifest_path: Path,
    *,
    allow_unverified: bool = False,
    replace: bool = False,
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
    state: dict[str, Any] = {}

    def update(index: Index) -> Index:
        merged, state["outcome"], state["entry"] = merge(index, entry, replace)
        return merged

    def files(_: Index) -> dict[str, Path | bytes]:
        return {state["entry"].wheel_path: data}

    result = store.commit(files, update, f"publish {entry.wheel_file} ({entry.verification.status})")
    stored: WheelManifest = state["entry"]
    log.info(
        "%s %s to %s (%d wheel(s) in the index)",
        state["outcome"],
        stored.wheel_file,
        store.description,
        len(result.index.wheels),
    )
    return PublishResult(stored, store.description, state["outcome"], len(result.index.wheels), result.attempts)


def built_wheels(dist_dir: Path, package: str) -> list[tuple[Path, Path]]:
    """(wheel, manifest) pairs for ``package`` in ``dist_dir``, oldest first."""
    return [(dist_dir / entry.wheel_file, path) for path, entry in manifest.built(dist_dir, package)]


def publish_all(
    store: Store, dist_dir: Path, package: str, *, allow_unverified: bool = False, replace: bool = False
) -> list[PublishResult]:
    pairs = built_wheels(dist_dir, package)
    if not pairs:
        raise NoMatchError(f"no built {package} wheel with a manifest in {dist_dir}", "run `invoke build` first")
    return [publish(store, w, m, allow_unverified=allow_unverified, replace=replace) for w, m in pairs]


@dataclass(frozen=True)
class YankResult:
    wheel_file: str
    store: str
    yanked: dict[str, str] | None
    changed: bool

    def to_dict(self) -> dict[str, Any]:
        return {"wheel_file": self.wheel_file, "store": self.store, "yanked": self.yanked, "changed": self.changed}


def set_yanked(store: Store, wheel_file: str, reason: str | None) -> YankResult:
    """Mark a published wheel as bad (``reason``) or good again (None), in one atomic commit.
    The wheel file is kept: a yank is reversible and leaves a trace."""
    manifest.check_wheel_name(wheel_file)
    if reason is not None and not reason.strip():
        raise ConfigError("a yank needs a reason", 'pass --reason "what is wrong with it"')
    state: dict[str, Any] = {}

    def update(index: Index) -> Index:
        entry = index.get(wheel_file)
        if entry is None:
            known = ", ".join(w.wheel_file for w in index.wheels) or "none"
            raise NoMatchError(f"{wheel_file} is not in {store.description}", f"published wheels: {known}")
        state["changed"] = (entry.yanked is None) == (reason is not None)
        if not state["changed"]:
            state["yanked"] = entry.yanked  # already in the wanted state: keep its first reason and time
            return index
        state["yanked"] = {"reason": reason.strip(), "at": manifest.now()} if reason is not None else None
        return index.with_entry(entry.replace(yanked=state["yanked"]))

    verb = "yank" if reason is not None else "unyank"
    store.commit({}, update, f"{verb} {wheel_file}" + (f": {reason}" if reason else ""))
    return YankResult(wheel_file, store.description, state["yanked"], state["changed"])
