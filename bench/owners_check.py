"""The check that an install overwrites no file of another distribution, on a real environment
(this interpreter's site-packages, e.g. one with torch), against parsing every RECORD in full
(what the check did before it skipped RECORDs that cannot name a placed file). Same run,
alternating, medians:

    python bench/owners_check.py [--runs 15]
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import sysconfig
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sage_tasks.environment import install


def parse_all(root: str, placed: set[str]) -> dict[str, str]:
    taken = {}
    for entry in os.listdir(root):
        if entry.endswith(".dist-info"):
            try:
                with open(os.path.join(root, entry, "RECORD"), encoding="utf-8", errors="replace", newline="") as f:
                    rows = list(csv.reader(f))
            except OSError:
                continue
            for row in rows:
                if row and os.path.normpath(os.path.join(root, row[0])) in placed:
                    taken[os.path.normpath(os.path.join(root, row[0]))] = entry
    return taken


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    root = os.path.normpath(sysconfig.get_paths()["purelib"])
    placed = {os.path.join(root, "sageattention", name) for name in ("__init__.py", "core.py", "quant.py")}
    dists = [e for e in os.listdir(root) if e.endswith(".dist-info")]
    times: dict[str, list[float]] = {"every RECORD parsed": [], "install._owners": []}
    for n in range(args.runs):
        for name in sorted(times, reverse=n % 2 == 1):
            start = time.perf_counter()
            found = (
                parse_all(root, placed)
                if name == "every RECORD parsed"
                else install._owners({root}, placed, "sageattention")
            )
            times[name].append(time.perf_counter() - start)
            assert not found
    base = statistics.median(times["every RECORD parsed"])
    print(f"{root}: {len(dists)} distributions; a SageAttention wheel's files as placed; {args.runs} runs each")
    for name, values in times.items():
        med = statistics.median(values)
        print(
            f"{name:22} median {med * 1000:7.1f} ms  (min {min(values) * 1000:.1f}, max {max(values) * 1000:.1f})  {med / base:.2f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
