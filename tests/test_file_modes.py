"""Files we write honour the umask (0644/0755 under umask 022), like any file `open()` makes:
a store served by a web server or shared between users must stay readable to them. A yank
or a replace keeps each file's mode."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from sage_tasks.core import atomic
from tests import support


@pytest.fixture
def umask():
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o002])
def test_atomic_writes_and_copies_honour_the_umask(tmp_path, mask):
    old = os.umask(mask)
    try:
        atomic.write(tmp_path / "a.json", "{}")
        atomic.copy(tmp_path / "a.json", tmp_path / "sub" / "b.json")
        reference = tmp_path / "plain"
        reference.write_text("x")  # what open() gives under this umask
    finally:
        os.umask(old)
    assert mode(tmp_path / "a.json") == mode(tmp_path / "sub" / "b.json") == mode(reference) == 0o666 & ~mask
    assert mode(tmp_path / "sub") == 0o777 & ~mask


def test_a_rewrite_keeps_the_files_mode(tmp_path, umask):
    target = tmp_path / "index.json"
    atomic.write(target, "1")
    target.chmod(0o664)  # an operator made it group-writable
    atomic.write(target, "2")
    assert mode(target) == 0o664 and target.read_text() == "2"


def test_store_files_are_readable_by_others_after_publish_and_yank(tmp_path, umask):
    store = tmp_path / "store"
    env = {**os.environ, "SAGE_STORE": str(store), "SAGE_TASKS_CACHE": str(tmp_path / "cache")}
    wheel = support.demo_wheel(tmp_path / "dist")
    support.demo_manifest(wheel)

    def invoke(*args: str) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "invoke", "--search-root", str(support.REPO), *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr

    def modes() -> dict[str, int]:
        return {str(p.relative_to(store)): mode(p) for p in sorted(store.rglob("*")) if p.name != ".lock"}

    invoke("publish", "--wheel", str(wheel))
    published = modes()
    assert published, "nothing was published"
    for name, found in published.items():
        wanted = 0o755 if (store / name).is_dir() else 0o644
        assert found == wanted, f"{name}: {oct(found)}"
    invoke("yank", wheel.name, "--reason", "mode test")
    assert modes() == published
