"""The store protocol shared by the local directory and the Hugging Face Hub.

A store holds, under one root folder::

    index.json                  every wheel's manifest (one read selects a wheel)
    latest.json                 the bash installer's pointer to the default variant
    wheels/<wheel file>
    manifests/<wheel file>.json

``commit`` changes several files and the index in one atomic step: ``update`` receives the
index as it is at commit time (re-read under a lock, or after a conflict) and returns the new
one, so that concurrent publishers merge instead of overwriting each other.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .manifest import Index, WheelManifest

Update = Callable[[Index], Index]
# files to write, relative to the root: fixed, or decided from the updated index (a publish
# learns its wheel's final name only once it sees the index it merges into)
Files = Mapping[str, Path | bytes] | Callable[[Index], Mapping[str, Path | bytes]]


def files_for(files: Files, index: Index) -> Mapping[str, Path | bytes]:
    return files(index) if callable(files) else files


@dataclass(frozen=True)
class CommitResult:
    index: Index
    revision: str | None = None
    attempts: int = 1


class Store(Protocol):
    description: str

    def read_index(self) -> Index:
        """Every manifest in the store (the bash installer's latest.json when there is no index)."""
        ...

    def download(self, entry: WheelManifest, dest_dir: Path, *, fresh: bool = False) -> Path:
        """Bring the wheel into ``dest_dir``; the caller checks its size and hash. ``fresh``: do
        not serve a cached copy (the caller found the cached one damaged)."""
        ...

    def commit(self, files: Files, update: Update, message: str) -> CommitResult:
        """Write ``files`` (paths relative to the root), the manifests of changed entries, the
        updated index and latest.json, atomically."""
        ...

    def wheel_url(self, entry: WheelManifest) -> str | None:
        """A URL the bash installer can download the wheel from, if the store has one."""
        ...
