"""Where the install transaction's time goes, step by step, against the baseline's own steps
(the same wheel and venv as ``install_journal_cost.py``; medians of N; run on tmpfs):

    python bench/install_journal_parts.py --runs 10 --work /dev/shm/parts

Each step of ``install.Change.place`` + ``commit`` is timed by wrapping the function that does
it; the baseline (pypa ``installer`` straight into site-packages) is split into deleting the old
files by their RECORD and writing the new ones.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import install_journal_cost as cost  # the same two modes

from sage_tasks.environment import install, transaction
from sage_tasks.stages import probe
from tests import support, txn_support

TIMES: dict[str, list[float]] = {}


def _timed(owner: object, name: str, label: str) -> None:
    inner = getattr(owner, name)

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            TIMES.setdefault(label, []).append(time.perf_counter() - start)

    setattr(owner, name, wrapper)


def baseline_parts(python: Path, wheel: Path, version: str) -> None:
    target = probe.read_target(str(python), extra=[cost.PACKAGE])
    start = time.perf_counter()
    cost.uninstall_by_record(python)
    deleted = time.perf_counter()
    cost.install_plain(python, wheel, version, target)
    TIMES.setdefault("baseline: delete the old files", []).append(deleted - start)
    TIMES.setdefault("baseline: check + write the new ones", []).append(time.perf_counter() - deleted)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--work", default=None)
    parser.add_argument(
        "--no-fsync", action="store_true", help="an experiment: what the journal's fsyncs cost (os.fsync made a no-op)"
    )
    args = parser.parse_args()
    if args.no_fsync:
        os.fsync = lambda fd: None
    work = Path(args.work or tempfile.mkdtemp(prefix="sage-journal-parts-"))
    work.mkdir(parents=True, exist_ok=True)
    wheels = {
        "1.0": txn_support.big_wheel(work / "a", "1.0", seed=1, modules=range(1000)),
        "2.0": txn_support.big_wheel(work / "b", "2.0", seed=2, modules=range(300, 1300)),
    }
    python = support.make_venv(work / "venv")
    cost.without_journal(python, wheels["1.0"], "1.0")
    for name, label in (("stage", "check + write into staging"), ("_old_files", "find the old files"),
                        ("_owners", "no file of another distribution")):  # fmt: skip
        _timed(install, name, label)
    _timed(transaction, "begin", "write the journal")
    _timed(transaction.Transaction, "apply", "move old aside, new in")
    _timed(transaction, "_finish", "commit: delete the moved-aside files")
    current = "1.0"
    for _ in range(args.runs):
        for step in (cost.with_journal, baseline_parts):
            new = "2.0" if current == "1.0" else "1.0"
            step(python, wheels[new], new)
            current = new
    for label, values in TIMES.items():
        print(f"{label:40} median {statistics.median(values) * 1000:6.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
