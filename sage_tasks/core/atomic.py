"""Files that appear whole or not at all: written beside their final name, fsynced, renamed.

Temporary names start with a dot and end in ``.tmp`` (``.NAME.<random>.tmp``), so that a
cleanup can recognise what a killed writer left behind.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def current_umask() -> int:
    """The process umask, read without changing it where Linux says it (``os.umask`` can only
    be read by setting it, which races with other threads creating files)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode(dest: Path) -> int:
    """The mode a new version of ``dest`` gets: the old one's, else what ``open()`` would give
    (0644 under umask 022). ``mkstemp`` alone would leave 0600: unreadable to a web server or
    to the other users of a shared store."""
    try:
        return stat.S_IMODE(dest.stat().st_mode)
    except OSError:
        return 0o666 & ~current_umask()


def _temporary(dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    try:
        os.fchmod(fd, file_mode(dest))
    finally:
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


def fsync_dir(folder: Path) -> None:
    """Make the renames and new names inside ``folder`` durable (its entry list reaches the disk)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write(dest: Path, content: str | bytes) -> None:
    data = content.encode("utf-8") if isinstance(content, str) else content
    _replace(dest, lambda handle: handle.write(data))


def copy(src: Path, dest: Path) -> None:
    with src.open("rb") as fin:
        _replace(dest, lambda handle: shutil.copyfileobj(fin, handle, 1 << 20))


# ---------------------------------------------------------------- reading what others wrote


def open_regular(path: Path) -> BinaryIO:
    """Open ``path`` for reading only if it is a regular file: a FIFO, socket or device where a
    file is expected would block or never end. Raises ``OSError`` (with ``strerror``) otherwise,
    so that callers that report ``OSError`` say what is wrong."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory, expected a file", str(path))
        if not stat.S_ISREG(mode):
            raise OSError(errno.EINVAL, "not a regular file (a FIFO, socket or device)", str(path))
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bytes(path: Path) -> bytes:
    with open_regular(path) as handle:
        return handle.read()
