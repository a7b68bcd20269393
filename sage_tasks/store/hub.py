"""A store in a Hugging Face Hub repository (a dataset by default), through ``huggingface_hub``.

Publishing is one ``create_commit`` holding the wheel, the changed manifests, ``index.json``
and ``latest.json``, conditioned on the commit the index was read at (``parent_commit``). When
someone published in between, the Hub answers 412: we re-read the index, merge, and try again
with backoff. Reads go through ``hf_hub_download`` and its cache, so a second fetch on the same
machine downloads nothing and ``HF_HUB_OFFLINE=1`` works from the cache.

``huggingface_hub`` retries downloads itself; the calls it does not retry (create_repo, whoami,
repo_info, the commit POST) are retried here on 429/5xx/connection errors, boundedly.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from ..core import redaction
from ..core.download import RETRY_STATUS
from ..core.errors import ConfigError, ConflictError, SageTasksError, StoreError
from ..core.settings import StoreConfig
from . import hub_errors, manifest
from .base import CommitResult, Files, Update, files_for
from .manifest import Index, WheelManifest

log = logging.getLogger(__name__)


T = TypeVar("T")


LEGACY_FOLDER = "sageattention220"  # the bash installer's default REMOTE_DIR


COMMIT_ATTEMPTS = 6


CALL_ATTEMPTS = 4


class HubStore:
    def __init__(self, config: StoreConfig, env: Mapping[str, str]) -> None:
        from huggingface_hub import HfApi
        from huggingface_hub.utils import get_token

        self.config = config
        self.repo_id = config.repo_id or ""
        self.repo_type = config.repo_type
        self.revision = config.revision
        self.root = config.remote_dir
        self.endpoint = (config.endpoint or env.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")
        self.token = env.get("HF_TOKEN") or env.get("HUGGING_FACE_HUB_TOKEN") or get_token() or None
        redaction.register(self.token)
        try:
            self.backoff = max(0.0, float(env.get("SAGE_RETRY_BASE_S", "1.0")))
        except ValueError as e:
            raise ConfigError(f"SAGE_RETRY_BASE_S={env['SAGE_RETRY_BASE_S']!r} is not a number of seconds") from e
        self.offline = env.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
        self.api = HfApi(endpoint=self.endpoint, token=self.token)
        self.description = f"hf {self.repo_type} {self.repo_id}@{self.revision}:{self.root}"
        self.active = self.root  # the folder where the last read found the store
        self._siblings: set[str] = set()  # the repo's files at the last head read
        self._told: set[str] = set()

    # ------------------------------------------------------------ errors and retries

    def _delay(self, attempt: int) -> float:
        """Exponential backoff with jitter, capped at 20 s."""
        return min(self.backoff * 2 ** (attempt - 1), 20.0) * (0.5 + random.random() / 2)

    def _translate(self, exc: BaseException, what: str) -> SageTasksError:
        from huggingface_hub.errors import (
            EntryNotFoundError,
            GatedRepoError,
            LocalEntryNotFoundError,
            OfflineModeIsEnabled,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )

        status = hub_errors.status(exc)
        if isinstance(exc, OfflineModeIsEnabled | LocalEntryNotFoundError) and self.offline:
            return StoreError(
                f"{what}: HF_HUB_OFFLINE=1 and it is not in the local cache",
                "run once online first, or unset HF_HUB_OFFLINE",
            )
        if isinstance(exc, GatedRepoError):
            return StoreError(
                f"{what}: {self.repo_id} is gated", "accept its terms on the Hub with the account of HF_TOKEN"
            )
        if isinstance(exc, RepositoryNotFoundError) or status == 401:
            if not self.token:
                return StoreError(
                    f"{what}: {self.repo_type} {self.repo_id} was not found, or it is private",
                    "set HF_TOKEN to a token that can read it",
                )
            if status == 401 or status == 403:
                return StoreError(
                    f"{what}: the Hub refused the token for {self.repo_type} {self.repo_id} (HTTP {status})",
                    "check that HF_TOKEN is valid and can read this repo",
                )
            return StoreError(  # 404 with a token the Hub accepted: the repo is not there (for this account)
                f"{what}: {self.repo_type} {self.repo_id} does not exist (HTTP 404), or HF_TOKEN's account cannot see it",
                "check HF_REPO_ID and HF_REPO_TYPE, or create it with `invoke init-hf`",
            )
        if isinstance(exc, RevisionNotFoundError):
            return StoreError(
                f"{what}: branch {self.revision} does not exist in {self.repo_id}",
                "set HF_REPO_BRANCH to an existing branch",
            )
        if isinstance(exc, LocalEntryNotFoundError):  # a subclass of EntryNotFoundError: test it first
            underlying = hub_errors.status(exc.__cause__) or hub_errors.status(exc.__context__)
            why = f"HTTP {underlying} after retries" if underlying else "no answer"
            return StoreError(
                f"{what}: cannot reach {self.endpoint} ({why}) and nothing is cached",
                "check the network, HF_ENDPOINT or proxy settings, and try again later",
            )
        if isinstance(exc, EntryNotFoundError):
            return StoreError(f"{what}: not found in {self.repo_id}")
        if status is not None:
            return StoreError(
                f"{what}: HTTP {status} from {self.endpoint}: {hub_errors.server_message(exc)}",
                "try again later" if status >= 500 else None,
            )
        return StoreError(
            f"{what}: {type(exc).__name__}: {redaction.redact(str(exc))[:200]}", "check the network and HF_ENDPOINT"
        )

    def _retrying(
        self, what: str, call: Callable[[], T], attempts: int = CALL_ATTEMPTS, passthrough: tuple[int, ...] = ()
    ) -> T:
        """Retry 408/429/5xx and connection errors with bounded backoff; other errors fail fast."""
        for attempt in range(1, attempts + 1):
            try:
                return call()
            except SageTasksError:
                raise
            except Exception as exc:
                status = hub_errors.status(exc)
                if status in passthrough:
                    raise
                retryable = status in RETRY_STATUS or (status is None and hub_errors.is_connection_error(exc))
                if not retryable or attempt == attempts:
                    raise self._translate(exc, what) from exc
                delay = self._delay(attempt)
                log.info(
                    "%s: %s; retrying in %.1f s (%d/%d)",
                    what,
                    f"HTTP {status}" if status else type(exc).__name__,
                    delay,
                    attempt,
                    attempts,
                )
                time.sleep(delay)
        raise AssertionError("unreachable")

    # ------------------------------------------------------------ reading

    def _path(self, relative: str, root: str | None = None) -> str:
        root = self.root if root is None else root
        return f"{root}/{relative}" if root else relative

    def _download(self, path: str, revision: str | None = None, *, fresh: bool = False) -> Path:
        from huggingface_hub import hf_hub_download

        return Path(
            hf_hub_download(
                self.repo_id,
                path,
                repo_type=self.repo_type,
                revision=revision or self.revision,
                token=self.token,
                endpoint=self.endpoint,
                force_download=fresh,
            )
        )

    def _fetch_file(self, path: str, revision: str | None = None) -> Path | None:
        """A file of the repo through the cache, or None if the repo has no such file.

        ``huggingface_hub`` retries downloads itself, so this does not retry again. "Not in
        the repo" is only the server's answer: failing to reach it is an error, never "missing".
        """
        from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

        try:
            return self._retrying(f"reading {path}", lambda: self._download(path, revision), attempts=1)
        except StoreError as e:
            cause = e.__cause__
            if isinstance(cause, EntryNotFoundError) and not isinstance(cause, LocalEntryNotFoundError):
                return None
            raise

    def _read_json(self, path: str, revision: str | None = None) -> Any | None:
        """The JSON at ``path``, or None if the repo has no such file."""
        local = self._fetch_file(path, revision)
        return None if local is None else manifest.parse_json(local.read_bytes(), f"{self.description}/{path}")

    def _folder(self, folder: str, revision: str | None) -> tuple[manifest.FolderRead | None, list[str]]:
        notes: list[str] = []
        index = self._read_json(self._path(manifest.INDEX_FILE, folder), revision)
        try:
            latest = self._read_json(self._path(manifest.LATEST_FILE, folder), revision)
        except StoreError as e:
            if self.offline and index is not None and not isinstance(e.__cause__, ValueError | RecursionError):
                return manifest.read_folder(index, None, f"{self.repo_id}:{folder or '.'}"), notes  # never cached
            if not isinstance(e.__cause__, ValueError | RecursionError):
                raise  # unreachable is never "missing"
            notes.append(f"{self._path(manifest.LATEST_FILE, folder)} cannot be used ({e.message}); left as it is")
            latest = None
        found = manifest.read_folder(index, latest, f"{self.repo_id}:{folder or '.'}")
        return found, notes + list(found.notes if found else ())

    def _read(self, revision: str | None) -> tuple[manifest.FolderRead | None, str, list[str]]:
        """The store as found at ``revision``: in the configured folder, or else in the bash
        installer's folder (every command then says so)."""
        found, notes = self._folder(self.root, revision)
        if found is None and self.root != LEGACY_FOLDER:
            other, other_notes = self._folder(LEGACY_FOLDER, revision)
            if other is not None:
                extra = [n for n in other_notes if n not in other.notes]  # unreadable files
                return other, LEGACY_FOLDER, [*manifest.fallback_notes(self.root or ".", other), *extra]
        return found, self.root, notes

    def _use(self, folder: str, notes: list[str]) -> None:
        self.active = folder
        self.description = f"hf {self.repo_type} {self.repo_id}@{self.revision}:{folder}"
        for note in notes:
            if note not in self._told:
                self._told.add(note)
                log.warning("%s", note)

    def read_index(self) -> Index:
        # Read at the branch's current commit: when the Hub cannot be asked, the client would
        # otherwise serve the cached copy of the branch silently (a yank could go unseen).
        # Offline (HF_HUB_OFFLINE=1) the cache is what was asked for.
        revision = None if self.offline else self._head()
        found, folder, notes = self._read(revision)
        beside = f"{LEGACY_FOLDER}/{manifest.LATEST_FILE}"
        if found is not None and found.has_index and folder != LEGACY_FOLDER and beside in self._siblings:
            note = manifest.beside_note(folder or ".", found.index, self._read_json(beside, revision))
            notes += [note] if note else []
        self._use(folder, notes)
        return found.index if found else Index()

    def repo_exists(self) -> bool:
        from huggingface_hub.errors import RepositoryNotFoundError

        try:
            self._retrying(
                f"looking up {self.repo_id}", lambda: self.api.repo_info(self.repo_id, repo_type=self.repo_type)
            )
        except StoreError as e:
            if isinstance(e.__cause__, RepositoryNotFoundError) and hub_errors.status(e.__cause__) in (None, 404):
                return False
            raise
        return True

    def read_bytes(self, path: str) -> bytes | None:
        """A file of the repo (not under the root), or None if it has none."""
        local = self._fetch_file(path)
        return None if local is None else local.read_bytes()

    def download(self, entry: WheelManifest, dest_dir: Path, *, fresh: bool = False) -> Path:
        """Through the Hugging Face cache; ``fresh`` downloads again over a cached copy (a damaged blob)."""
        path = self._path(manifest.check_relative_path(entry.wheel_path), self.active)
        local = self._retrying(f"downloading {path}", lambda: self._download(path, fresh=fresh), attempts=1)
        manifest.check_wheel_name(local.name)
        return local

    def wheel_url(self, entry: WheelManifest, folder: str | None = None) -> str | None:
        prefix = {"dataset": "datasets/", "space": "spaces/"}.get(self.repo_type, "")
        path = self._path(entry.wheel_path, self.active if folder is None else folder)
        return f"{self.endpoint}/{prefix}{self.repo_id}/resolve/{self.revision}/{path}"

    # ------------------------------------------------------------ writing

    def _head(self) -> str:
        info = self._retrying(
            f"reading the head of {self.repo_id}",
            lambda: self.api.repo_info(self.repo_id, repo_type=self.repo_type, revision=self.revision),
        )
        self._siblings = {s.rfilename for s in getattr(info, "siblings", None) or []}
        return info.sha

    def commit(self, files: Files, update: Update, message: str) -> CommitResult:
        from huggingface_hub import CommitOperationAdd, CommitOperationDelete

        if not self.token:
            raise StoreError(f"publishing to {self.repo_id} needs a token", "set HF_TOKEN to a token with write access")
        last = ""
        for attempt in range(1, COMMIT_ATTEMPTS + 1):
            head = self._head()
            found, folder, notes = self._read(head)
            self._use(folder, notes)
            old = found.index if found else Index()
            new = update(old)
            written = files_for(files, new)
            if not written and new == old:
                return CommitResult(index=old, attempts=attempt)  # nothing to change: no empty commit
            contents: dict[str, Path | bytes] = {**written, **manifest.changed_manifests(old, new)}
            contents[manifest.INDEX_FILE] = manifest.dumps(new.to_dict()).encode()
            pointed = new.latest_entry
            # latest.json changes in the same commit as the index, and only when the pointer moves
            # (the bash installer's own file is kept as it wrote it)
            if pointed is not None and (new.latest != old.latest or not found or not found.has_latest):
                record = manifest.latest_record(pointed, self.wheel_url(pointed, folder))
                contents[manifest.LATEST_FILE] = manifest.dumps(record).encode()
            operations: list[Any] = [
                CommitOperationAdd(
                    path_in_repo=self._path(manifest.check_relative_path(rel), folder),
                    path_or_fileobj=str(c) if isinstance(c, Path) else c,
                )
                for rel, c in contents.items()
            ]
            if pointed is None and old.latest is not None and found is not None and found.has_latest:
                operations.append(CommitOperationDelete(path_in_repo=self._path(manifest.LATEST_FILE, folder)))
            try:
                info = self._retrying(
                    f"committing to {self.repo_id}",
                    lambda ops=operations, parent=head: self.api.create_commit(
                        self.repo_id,
                        operations=ops,
                        commit_message=redaction.redact(message),
                        repo_type=self.repo_type,
                        revision=self.revision,
                        parent_commit=parent,
                    ),
                    passthrough=(412,),
                )
            except Exception as exc:
                if hub_errors.status(exc) != 412:
                    raise
                last = "someone else published in between (HTTP 412)"
                delay = self._delay(attempt)
                log.info(
                    "%s: %s; re-reading the index and merging in %.1f s (%d/%d)",
                    self.repo_id,
                    last,
                    delay,
                    attempt,
                    COMMIT_ATTEMPTS,
                )
                time.sleep(delay)
                continue
            log.info("%s: %s (commit %s)", self.description, message, str(getattr(info, "oid", ""))[:12])
            return CommitResult(index=new, revision=getattr(info, "oid", None), attempts=attempt)
        raise ConflictError(
            f"could not publish to {self.repo_id} after {COMMIT_ATTEMPTS} attempts: {last}; the repo was not changed by us",
            "publishers keep colliding: try again in a minute",
        )
