"""Files that appear whole or not at all: written beside their final name, fsynced, renamed.

Temporary names start with a dot and end in ``.tmp`` (``.NAME.<random>.tmp``), so that a
cleanup can recognise what a killed writer left behind.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def _temporary(dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    return Path(name)


def write(dest: Path, content: str | bytes) -> None:
    tmp = _temporary(dest)
    try:
        with tmp.open("wb") as handle:
            handle.write(content.encode("utf-8") if isinstance(content, str) else content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def copy(src: Path, dest: Path) -> None:
    tmp = _temporary(dest)
    try:
        with src.open("rb") as fin, tmp.open("wb") as fout:
            shutil.copyfileobj(fin, fout, 1 << 20)
            fout.flush()
            os.fsync(fout.fileno())
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
