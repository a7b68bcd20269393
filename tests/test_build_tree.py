"""The incremental build's source copy follows content, not modification times: new content
that carries an old mtime (a checkout, an archive, an editor) is copied and looks newer than
every object built before, so the build compiles it; unchanged files keep their times."""

from __future__ import annotations

import os
import time

from sage_tasks.stages.build import sync_tree

OLD = 1_000_000_000  # 2001: older than any object file


def test_new_content_with_an_old_mtime_is_copied_and_looks_newer_than_the_objects(tmp_path):
    src, dest = tmp_path / "src", tmp_path / "work"
    (src / "csrc").mkdir(parents=True)
    source = src / "csrc" / "native.c"
    source.write_text("int answer(void) { return 41; }\n")
    os.utime(source, (OLD, OLD))
    assert sync_tree(src, dest) == 1
    obj = dest / "build" / "native.o"  # what the first build left
    obj.parent.mkdir()
    obj.write_bytes(b"\x7fELF old object")
    built_at = time.time() - 5
    os.utime(obj, (built_at, built_at))

    source.write_text("int answer(void) { return 42; }\n")  # same size
    os.utime(source, (OLD, OLD))  # and the same (old) mtime: the stale-binary case
    assert sync_tree(src, dest) == 1
    copy = dest / "csrc" / "native.c"
    assert copy.read_text() == source.read_text()
    assert copy.stat().st_mtime > obj.stat().st_mtime, "the build would reuse the stale object"
    assert obj.exists(), "build outputs stay"


def test_unchanged_content_keeps_its_time_and_removed_files_go(tmp_path):
    src, dest = tmp_path / "src", tmp_path / "work"
    src.mkdir()
    (src / "a.c").write_text("int a;\n")
    (src / "b.c").write_text("int b;\n")
    assert sync_tree(src, dest) == 2
    before = (dest / "a.c").stat().st_mtime_ns
    now = time.time() + 100
    os.utime(src / "a.c", (now, now))  # touched, same content
    (src / "b.c").unlink()
    assert sync_tree(src, dest) == 0
    assert (dest / "a.c").stat().st_mtime_ns == before
    assert not (dest / "b.c").exists()
