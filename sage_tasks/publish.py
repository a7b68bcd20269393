"""publish: wheel + manifest + index + latest.json into the store in one atomic step.

A wheel whose kernel test failed is never published. An unverified one only with
``allow_unverified`` (it stays marked unverified; fetch prefers verified wheels). Re-publishing
the same bytes is a no-op; different bytes under a published file name need ``replace``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import manifest, wheelfile
from .errors import ConfigError, ConflictError, IntegrityError, KernelTestError, NoMatchError, UnverifiedError
from .manifest import Index, WheelManifest
from .store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PublishResult:
    entry: WheelManifest
    store: str
    outcome: str  # "published", "unchanged" or "replaced"
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


def merge(index: Index, entry: WheelManifest, replace: bool) -> tuple[Index, str]:
    """The index with ``entry`` in it, and what happened (pure)."""
    existing = index.get(entry.wheel_file)
    if existing is None:
        return index.with_entry(entry), "published"
    if existing.wheel_sha256 == entry.wheel_sha256:
        if existing.verification.passed and not entry.verification.passed:
            return index, "unchanged"  # never downgrade a verified entry
        return index.with_entry(entry.replace(created_at=existing.created_at)), "unchanged"
    if not replace:
        raise ConflictError(
            f"{entry.wheel_file} is already published with different contents (sha256 {existing.wheel_sha256[:12]}…)",
            "pass --replace to overwrite it, or rebuild with another version",
        )
    return index.with_entry(entry), "replaced"


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
    if not wheel.is_file():
        raise NoMatchError(f"{wheel} does not exist", "run `invoke build` first")
    if wheel.stat().st_size != entry.wheel_size or wheelfile.sha256_file(wheel) != entry.wheel_sha256:
        raise IntegrityError(f"{wheel.name} no longer matches its manifest (size or sha256)", "rebuild it")
    check_publishable(entry, allow_unverified)
    entry = entry.replace(wheel_path=f"{manifest.WHEELS_DIR}/{entry.wheel_file}", created_at=manifest.now())
    outcome = {"value": "published"}

    def update(index: Index) -> Index:
        merged, outcome["value"] = merge(index, entry, replace)
        return merged

    result = store.commit(
        {entry.wheel_path: wheel}, update, f"publish {entry.wheel_file} ({entry.verification.status})"
    )
    log.info(
        "%s %s to %s (%d wheel(s) in the index)",
        outcome["value"],
        entry.wheel_file,
        store.description,
        len(result.index.wheels),
    )
    return PublishResult(entry, store.description, outcome["value"], len(result.index.wheels), result.attempts)


def built_wheels(dist_dir: Path, package: str) -> list[tuple[Path, Path]]:
    """(wheel, manifest) pairs for ``package`` in ``dist_dir``, oldest first."""
    found = []
    for manifest_path in sorted(dist_dir.glob("*.whl.json")):
        entry = manifest.read_manifest_file(manifest_path)
        wheel = dist_dir / entry.wheel_file
        if entry.package == package and wheel.is_file():
            found.append((entry.created_at, wheel, manifest_path))
    return [(w, m) for _, w, m in sorted(found)]


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
