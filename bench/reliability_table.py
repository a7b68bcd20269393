"""Write the fault counts of a test run into RELIABILITY.md (between its ``counts`` markers).

    SAGE_RELIABILITY_OUT=counts.json nox -s tests      # or: pytest -m "not gpu"
    python bench/reliability_table.py counts.json --run "nox -s tests-3.12, 2026-11-30, dev VM (2 cores)"

The counts are what the tests observed (``tests/support/faults.py``: faults the servers served,
kills that landed, runs judged), never literals; this script only formats them.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- counts:start -->", "<!-- counts:end -->"


def table(counts: dict[str, dict[str, int]], run: str, commit: str) -> str:
    rows = ["| fault (as the test names it) | injected | survived | data lost |", "| --- | ---: | ---: | ---: |"]
    for kind, c in sorted(counts.items()):
        rows.append(f"| {kind} | {c['injected']:,} | {c['survived']:,} | {c['lost']:,} |")
    total = {k: sum(c[k] for c in counts.values()) for k in ("injected", "survived", "lost")}
    rows.append(f"| **all** | **{total['injected']:,}** | **{total['survived']:,}** | **{total['lost']:,}** |")
    return f"{START}\nCommit {commit}; {run}.\n\n" + "\n".join(rows) + f"\n{END}"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("counts", type=Path)
    parser.add_argument("--run", required=True, help="which command, date and machine produced the counts")
    parser.add_argument("--doc", type=Path, default=ROOT / "RELIABILITY.md")
    args = parser.parse_args()
    counts = json.loads(args.counts.read_text())
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, check=True).stdout.strip()  # fmt: skip
    text = args.doc.read_text()
    if START not in text or END not in text:
        print(f"{args.doc} has no {START} … {END} section", file=sys.stderr)
        return 2
    block = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    args.doc.write_text(block.sub(lambda _: table(counts, args.run, commit), text, count=1))
    print(f"{len(counts)} kinds of fault written to {args.doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
