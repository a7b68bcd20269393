"""SIGKILL an installing sage-tasks process ≥ 500 times — at every step boundary of the install
transaction in turn, and at random moments — with wheels shaped like SageAttention's (four 4 MB
incompressible .so files, 1,000+ modules, ≥ 16 MB); after each kill, recover as the next command
does and judge the environment from its files (every hash against both wheels' RECORDs; pip
check and pip list vs import every tenth kill). Prints the counts as observed.

    python bench/kill_install.py --boundary 120 --random 400 --lanes 2 [--work /dev/shm/kills]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests import txn_support


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--boundary", type=int, default=120, help="kills at step boundaries (cycled in order)")
    parser.add_argument("--random", type=int, default=400, help="kills at random moments")
    parser.add_argument("--lanes", type=int, default=2, help="venvs killed side by side")
    parser.add_argument("--work", default=None, help="working folder (default: a temporary one)")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="sage-kills-"))
    work.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    wheels = {
        "1.0": txn_support.big_wheel(work / "a", "1.0", seed=1, modules=range(1000)),
        "2.0": txn_support.big_wheel(work / "b", "2.0", seed=2, modules=range(300, 1300)),
    }
    sizes = ", ".join(f"{w.name} {w.stat().st_size / 2**20:.1f} MiB" for w in wheels.values())
    print(f"wheels: {sizes}; boundaries: {', '.join(txn_support.BOUNDARIES)}", flush=True)
    boundaries, moments = txn_support.parallel_campaigns(
        work, wheels, lanes=args.lanes, boundary_kills=args.boundary, random_kills=args.random,
        log=lambda line: print(line, flush=True),
    )  # fmt: skip
    print(boundaries.line("kill -9 at step boundaries"))
    print(moments.line("kill -9 at random moments"))
    total = boundaries + moments
    print(total.line("all kills"))
    print(f"{time.monotonic() - start:.0f} s in {work}")
    for example in total.examples or []:
        print("broken:", example)
    return 1 if total.broken else 0


if __name__ == "__main__":
    sys.exit(main())
