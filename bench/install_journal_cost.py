"""What the install transaction costs on the fetch path: the install step with the journal
(checks, staging folder, journal, old files moved aside, new ones moved in, commit, cleanup)
against the same wheel installed without one (the same checks and pypa ``installer`` writing
straight into site-packages after the old version's files are deleted by its RECORD), same
run, alternating, median of N each. The read-back import is timed on its own.

    python bench/install_journal_cost.py --runs 7 [--work DIR] [--real WHEEL]

Both modes replace the other version of the same package (1.0 ↔ 2.0), so each does the same
amount of removing and writing. The default pair is the synthetic wheel shaped like the real one
(16 MiB, four ``.so`` files, 1,000+ members); ``--real WHEEL`` uses a built SageAttention wheel
and its plain-version twin (the same files) instead.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sage_tasks.environment import install
from sage_tasks.stages import probe
from sage_tasks.wheel import wheelcheck
from tests import support, txn_support

PACKAGE = txn_support.PACKAGE


def with_journal(python: Path, wheel: Path, version: str, package: str = PACKAGE) -> float:
    target = probe.read_target(str(python), extra=[package])
    with install.Change(target, os.environ, command="bench") as change:
        start = time.perf_counter()
        change.place(wheel, package, version)
        change.commit()
        return time.perf_counter() - start


def uninstall_by_record(python: Path, package: str = PACKAGE) -> None:
    """Delete the installed version's files by its RECORD, as pip would."""
    site = txn_support.site_packages(python)
    for info in site.glob(f"{package.replace('-', '_')}-*.dist-info"):
        folders = set()
        with open(info / "RECORD", newline="") as handle:
            for row in csv.reader(handle):
                if row:
                    path = site / row[0]
                    path.unlink(missing_ok=True)
                    folders.add(path.parent)
        shutil.rmtree(info)
        for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):  # as pip: emptied folders go
            if folder != site and folder.is_relative_to(site) and folder.exists() and not any(folder.iterdir()):
                folder.rmdir()


def install_plain(python: Path, wheel: Path, version: str, target: probe.TargetEnv, package: str = PACKAGE) -> None:
    """The same checks, then pypa ``installer`` straight into site-packages."""
    from installer import install as unpack
    from installer.destinations import SchemeDictionaryDestination

    with wheelcheck.open_zip(wheel) as zf:
        checked = wheelcheck.check(wheel, zf, package, version)
        destination = SchemeDictionaryDestination(
            install.schemes(target, package), interpreter=str(python), script_kind="posix", overwrite_existing=True
        )
        unpack(wheelcheck.source(checked, zf), destination, install._provenance(wheel))


def without_journal(python: Path, wheel: Path, version: str, package: str = PACKAGE) -> float:
    target = probe.read_target(str(python), extra=[package])
    start = time.perf_counter()
    uninstall_by_record(python, package)
    install_plain(python, wheel, version, target, package)
    return time.perf_counter() - start


def read_back(python: Path, version: str, package: str = PACKAGE) -> float:
    target = probe.read_target(str(python), extra=[package])
    start = time.perf_counter()
    install.read_back(target, package, version, [package], os.environ, "bench")
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--work", default=None)
    parser.add_argument(
        "--no-fsync", action="store_true", help="an experiment: what the journal's fsyncs cost (os.fsync made a no-op)"
    )
    parser.add_argument("--real", type=Path, help="a built SageAttention wheel (paired with its plain twin)")
    args = parser.parse_args()
    if args.no_fsync:
        os.fsync = lambda fd: None
    work = Path(args.work or tempfile.mkdtemp(prefix="sage-journal-"))
    if args.real:
        from sage_tasks.wheel import wheelfile

        package = "sageattention"
        twin = wheelfile.plain_twin(args.real, work / "twin", "1")
        wheels = {wheelfile.inspect(w).version: w for w in (args.real, twin)}
    else:
        package = PACKAGE
        wheels = {
            "1.0": txn_support.big_wheel(work / "a", "1.0", seed=1, modules=range(1000)),
            "2.0": txn_support.big_wheel(work / "b", "2.0", seed=2, modules=range(300, 1300)),
        }
    first, second = sorted(wheels)
    python = support.make_venv(work / "venv")
    without_journal(python, wheels[first], first, package)
    times: dict[str, list[float]] = {"with journal": [], "without journal": [], "read-back import": []}
    current = first
    for run in range(args.runs):
        order = ("with journal", "without journal") if run % 2 == 0 else ("without journal", "with journal")
        for mode in order:
            new = second if current == first else first
            step = with_journal if mode == "with journal" else without_journal
            os.sync()  # neither mode pays for the writeback of the other's files (on a disk; tmpfs has none)
            times[mode].append(step(python, wheels[new], new, package))
            current = new
            state = txn_support.judge(python, wheels, package)
            assert state.holds == new, state
        if not args.real:  # the real one imports torch: no read-back where torch is missing
            times["read-back import"].append(read_back(python, current, package))
    times = {mode: values for mode, values in times.items() if values}
    with zipfile.ZipFile(wheels[first]) as zf:
        members = len(zf.namelist())
    print(
        f"wheel: {wheels[first].name}, {wheels[first].stat().st_size / 2**20:.1f} MiB, {members} members; "
        f"{args.runs} runs each, alternating; {work}"
    )
    for mode, values in times.items():
        print(f"{mode:18} median {statistics.median(values):.3f} s  (min {min(values):.3f}, max {max(values):.3f})")
    ratio = statistics.median(times["with journal"]) / statistics.median(times["without journal"])
    print(f"install step with / without the journal: {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
