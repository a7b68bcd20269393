"""Files that appear whole or not at all: written beside their final name, fsynced, renamed.

Temporary names start with a dot and end in ``.tmp`` (``.NAME.<random>.tmp``), so that a
cleanup can recognise what a killed writer left behind.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def _temporary(dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    return Path(name)


def _replace(dest: Path, fill: Callable[[BinaryIO], object]) -> None:
    """Let ``fill`` write a temporary file beside ``dest``, fsync it, rename it over ``dest``."""
    tmp = _temporary(dest)
    try:
        with tmp.open("wb") as handle:
            fill(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write(dest: Path, content: str | bytes) -> None:
    data = content.encode("utf-8") if isinstance(content, str) else content
    _replace(dest, lambda handle: handle.write(data))


def copy(src: Path, dest: Path) -> None:
    with src.open("rb") as fin:
        _replace(dest, lambda handle: shutil.copyfileobj(fin, handle, 1 << 20))
