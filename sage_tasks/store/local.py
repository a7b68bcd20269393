"""A store in a local directory (the embedded default; no account needed).

Atomicity: a commit takes an exclusive lock on ``<root>/.lock``, re-reads the index, writes every
new file beside its final name and renames it into place, and renames ``index.json`` last:
the index is the commit point, so a reader never sees an entry whose wheel is missing.
``latest.json`` is derived from the index and rewritten right after it. Temporary files left by
a writer that died are removed by the next commit (they can only exist while the lock is held).
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .. import atomic, manifest
from ..errors import StoreError
from ..manifest import Index, WheelManifest
from .base import CommitResult, Files, Update, files_for

log = logging.getLogger(__name__)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalStore:
    def __init__(self, base: Path, remote_dir: str, preferred_arch: str | None = None) -> None:
        self.base = Path(base)
        self.root = self.base / remote_dir if remote_dir else self.base
        self.preferred_arch = preferred_arch
        self.description = f"local directory {self.root}"

    # ------------------------------------------------------------ reading

    def _read(self, relative: str) -> bytes | None:
        path = self.root / relative
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None
        except IsADirectoryError as e:
            raise StoreError(f"{path} is a directory, expected a file", "repair the store layout") from e
        except PermissionError as e:
            raise StoreError(
                f"cannot read {path}: permission denied", "fix the store's permissions or pass --store DIR"
            ) from e
        except OSError as e:
            raise StoreError(
                f"cannot read {path}: {e.strerror}", "check the store location (--store / SAGE_STORE)"
            ) from e

    def read_index(self) -> Index:
        if self.base.exists() and not self.base.is_dir():
            raise StoreError(f"store location {self.base} is not a directory", "pass --store with a directory")
        raw = self._read(manifest.INDEX_FILE)
        if raw is not None:
            where = str(self.root / manifest.INDEX_FILE)
            return manifest.index_from_dict(manifest.parse_json(raw, where), where)
        legacy = self._read(manifest.LATEST_FILE)
        if legacy is not None:
            where = str(self.root / manifest.LATEST_FILE)
            data = manifest.parse_json(legacy, where)
            if isinstance(data, dict) and "schema_version" not in data:
                return Index(wheels=(manifest.from_legacy_latest(data, where),))
        return Index()

    def download(self, entry: WheelManifest, dest_dir: Path) -> Path:
        src = self.root / manifest.check_relative_path(entry.wheel_path)
        dest = dest_dir / manifest.check_wheel_name(entry.wheel_file)
        if not src.is_file():
            raise StoreError(
                f"the index lists {entry.wheel_file} but {src} is missing",
                "republish the wheel, or yank the entry",
            )
        try:
            atomic.copy(src, dest)
        except OSError as e:
            raise StoreError(f"cannot copy {src} to {dest}: {e.strerror}", f"check free space in {dest_dir}") from e
        return dest

    def wheel_url(self, entry: WheelManifest) -> str | None:
        return None

    # ------------------------------------------------------------ writing

    @contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            handle = (self.root / ".lock").open("a")
        except OSError as e:
            raise StoreError(
                f"cannot write to store {self.root}: {e.strerror}", "pass --store with a writable directory"
            ) from e
        with handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _clean_leftovers(self) -> int:
        removed = 0
        for path in list(self.root.rglob(".*.tmp")):
            path.unlink(missing_ok=True)
            removed += 1
        if removed:
            log.info("removed %d temporary file(s) left by an interrupted publish", removed)
        return removed

    def commit(self, files: Files, update: Update, message: str) -> CommitResult:
        with self._locked():
            self._clean_leftovers()
            old_index = self.read_index()
            new_index = update(old_index)
            files = files_for(files, new_index)
            if not files and new_index == old_index:
                return CommitResult(index=old_index)
            index_written = False
            try:
                for relative, content in {**files, **manifest.changed_manifests(old_index, new_index)}.items():
                    dest = self.root / manifest.check_relative_path(relative)
                    if isinstance(content, bytes):
                        manifest.write_atomic(dest, content)
                    else:
                        atomic.copy(content, dest)
                    _fsync_dir(dest.parent)
                manifest.write_atomic(self.root / manifest.INDEX_FILE, manifest.dumps(new_index.to_dict()))
                index_written = True
                latest = manifest.choose_latest(new_index.wheels, self.preferred_arch)
                if latest is not None:
                    manifest.write_atomic(
                        self.root / manifest.LATEST_FILE, manifest.dumps(manifest.latest_record(latest))
                    )
                else:
                    (self.root / manifest.LATEST_FILE).unlink(missing_ok=True)
                _fsync_dir(self.root)
            except OSError as e:
                state = "the index was updated, latest.json was not" if index_written else "the index was not changed"
                raise StoreError(
                    f"writing to {self.root} failed ({e.strerror}); {state}",
                    "free disk space or fix permissions, then publish again",
                ) from e
        log.info("%s: %s", self.description, message)
        return CommitResult(index=new_index)


class DistStore:
    """Wheels that ``invoke build`` wrote into a folder, each with its manifest beside it
    (read-only): lets ``fetch --from-dist`` install a fresh build through the same checks."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.description = f"built wheels in {self.folder}"

    def read_index(self) -> Index:
        return Index(wheels=tuple(e.replace(wheel_path=e.wheel_file) for _, e in manifest.built(self.folder)))

    def download(self, entry: WheelManifest, dest_dir: Path) -> Path:
        path = self.folder / manifest.check_wheel_name(entry.wheel_file)
        if not path.is_file():
            raise StoreError(f"{path} is missing (its manifest is there)", "run `invoke build` again")
        return path

    def wheel_url(self, entry: WheelManifest) -> str | None:
        return None

    def commit(self, files: Files, update: Update, message: str) -> CommitResult:
        raise StoreError(f"{self.description} is read-only", "publish to a store instead")
