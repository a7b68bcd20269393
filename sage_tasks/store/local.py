"""A store in a local directory (the embedded default; no account needed).

Atomicity: a commit takes an exclusive lock on ``<root>/.lock``, re-reads the index, writes every
new file beside its final name and renames it into place, and renames ``index.json`` last:
the index is the commit point, so a reader never sees an entry whose wheel is missing.
``latest.json`` is derived from the index (its ``latest`` field) and rewritten right after it
when the pointer moves. When the configured folder holds nothing and the bash installer's
``sageattention220/`` does, the store lives there (every command says so). Temporary files left by
a writer that died are removed by the next commit (they can only exist while the lock is held).
"""

from __future__ import annotations

import fcntl
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..core import atomic
from ..core.errors import StoreError
from . import manifest
from .base import CommitResult, Files, Update, files_for
from .manifest import Index, WheelManifest

log = logging.getLogger(__name__)


class LocalStore:
    def __init__(self, base: Path, remote_dir: str, preferred_arch: str | None = None) -> None:
        self.base = Path(base)
        self.root = self.base / remote_dir if remote_dir else self.base
        self.preferred_arch = preferred_arch
        self.active = self.root  # where the last read found the store
        self._told: set[str] = set()
        self.description = f"local directory {self.root}"

    # ------------------------------------------------------------ reading

    def _read(self, relative: str | Path) -> bytes | None:
        path = self.root / relative
        try:
            return atomic.read_bytes(path)
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

    def _json(self, path: Path, notes: list[str]) -> object | None:
        raw = self._read(path)  # an absolute path stays itself under self.root
        if raw is None:
            return None
        try:
            value = manifest.parse_json(raw, str(path))
            if value is None:  # `null` is a damaged file, never "no store here"
                raise StoreError(f"{path} holds JSON null, not a record", f"restore it or republish into {self.base}")
            return value
        except StoreError as e:
            if path.name == manifest.INDEX_FILE:
                raise
            notes.append(f"{path} cannot be used ({e.message}); it is left as it is")
            return None

    def _folder(self, root: Path) -> tuple[manifest.FolderRead | None, list[str]]:
        notes: list[str] = []
        index = self._json(root / manifest.INDEX_FILE, notes)
        latest = self._json(root / manifest.LATEST_FILE, notes)
        found = manifest.read_folder(index, latest, str(root))
        return found, notes + list(found.notes if found else ())

    def _locate(self) -> tuple[Path, manifest.FolderRead | None, list[str]]:
        """The folder the store lives in: the configured one, or else the bash installer's."""
        found, notes = self._folder(self.root)
        installer = self.base / manifest.INSTALLER_FOLDER
        if found is None and self.root != installer:
            other, other_notes = self._folder(installer)
            if other is not None:
                extra = [n for n in other_notes if n not in other.notes]  # unreadable files
                return installer, other, [*manifest.fallback_notes(str(self.root), other), *extra]
        if found is not None and found.has_index and self.root != installer:
            beside = manifest.beside_note(
                str(self.root), found.index, self._json(installer / manifest.LATEST_FILE, notes)
            )
            notes += [beside] if beside else []
        return self.root, found, notes

    def _use(self, root: Path, notes: list[str]) -> None:
        self.active = root
        self.description = f"local directory {root}"
        for note in notes:
            if note not in self._told:
                self._told.add(note)
                log.warning("%s", note)

    def read_index(self) -> Index:
        if self.base.exists() and not self.base.is_dir():
            raise StoreError(f"store location {self.base} is not a directory", "pass --store with a directory")
        root, found, notes = self._locate()
        self._use(root, notes)
        return found.index if found else Index()

    def download(self, entry: WheelManifest, dest_dir: Path, *, fresh: bool = False) -> Path:
        # every call copies from the store: a copy is always fresh
        src = self.active / manifest.check_relative_path(entry.wheel_path)
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
    def _locked(self, root: Path) -> Iterator[None]:
        try:
            root.mkdir(parents=True, exist_ok=True)
            handle = (root / ".lock").open("a")
        except OSError as e:
            raise StoreError(
                f"cannot write to store {root}: {e.strerror}", "pass --store with a writable directory"
            ) from e
        with handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _clean_leftovers(self, root: Path) -> int:
        removed = 0
        for path in list(root.rglob(".*.tmp")):
            path.unlink(missing_ok=True)
            removed += 1
        if removed:
            log.info("removed %d temporary file(s) left by an interrupted publish", removed)
        return removed

    def commit(self, files: Files, update: Update, message: str) -> CommitResult:
        if self.base.exists() and not self.base.is_dir():
            raise StoreError(f"store location {self.base} is not a directory", "pass --store with a directory")
        root, _, _ = self._locate()  # the bash installer's folder when that is where the store is
        with self._locked(root):
            self._clean_leftovers(root)
            found, notes = self._folder(root)
            if root != self.root:
                extra = [n for n in notes if not found or n not in found.notes]
                notes = [*manifest.fallback_notes(str(self.root), found), *extra] if found else notes
            self._use(root, notes)
            old_index = found.index if found else Index()
            new_index = update(old_index)
            files = files_for(files, new_index)
            if not files and new_index == old_index:
                return CommitResult(index=old_index)
            index_written = False
            try:
                for relative, content in {**files, **manifest.changed_manifests(old_index, new_index)}.items():
                    dest = root / manifest.check_relative_path(relative)
                    if isinstance(content, bytes):
                        manifest.write_atomic(dest, content)
                    else:
                        atomic.copy(content, dest)
                    atomic.fsync_dir(dest.parent)
                manifest.write_atomic(root / manifest.INDEX_FILE, manifest.dumps(new_index.to_dict()))
                index_written = True
                # latest.json follows the index, under the same lock; untouched while the pointer
                # stays (the bash installer's own file is kept as it wrote it)
                pointed = new_index.latest_entry
                if pointed is not None and (new_index.latest != old_index.latest or not found or not found.has_latest):
                    record = manifest.latest_record(pointed, self.wheel_url(pointed))
                    manifest.write_atomic(root / manifest.LATEST_FILE, manifest.dumps(record))
                elif pointed is None and old_index.latest is not None:
                    (root / manifest.LATEST_FILE).unlink(missing_ok=True)
                atomic.fsync_dir(root)
            except OSError as e:
                state = "the index was updated, latest.json was not" if index_written else "the index was not changed"
                raise StoreError(
                    f"writing to {root} failed ({e.strerror}); {state}",
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

    def download(self, entry: WheelManifest, dest_dir: Path, *, fresh: bool = False) -> Path:
        # the built file itself: there is no other copy to fetch
        path = self.folder / manifest.check_wheel_name(entry.wheel_file)
        if not path.is_file():
            raise StoreError(f"{path} is missing (its manifest is there)", "run `invoke build` again")
        return path

    def wheel_url(self, entry: WheelManifest) -> str | None:
        return None

    def commit(self, files: Files, update: Update, message: str) -> CommitResult:
        raise StoreError(f"{self.description} is read-only", "publish to a store instead")
