"""How long does `invoke auto` take to refuse on a machine where its plan cannot succeed?

A CPU machine (no GPU, no --arch), an empty store, a fresh venv as the target: `invoke auto`
must answer non-zero, before changing or downloading anything, within 3 s (issue 13). Baseline
in the same run: `invoke probe` against the same target (the least any answer costs), and the
same refusal through the `sage-tasks` console command when it is installed. Median of --runs.

    python bench/auto_refusal.py [--runs 7] [--out FILE]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _report  # bench/: the shared table-and-JSON ending

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--out")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sage-bench-refusal-"))
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(work / "venv")], check=True)
    target = str(work / "venv" / "bin" / "python")
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if not Path(p, "nvidia-smi").exists())
    env = {**os.environ, "PATH": path, "SAGE_STORE": str(work / "store"), "SAGE_TASKS_CACHE": str(work / "cache")}
    for name in ("HF_REPO_ID", "TORCH_CUDA_ARCH_LIST", "WHEEL_URL"):
        env.pop(name, None)
    invoke = [sys.executable, "-m", "invoke", "--search-root", str(REPO)]
    commands = {
        "invoke auto (refusal)": [*invoke, "auto", "--python", target],
        "invoke probe (baseline)": [*invoke, "probe", "--python", target],
    }
    console = shutil.which("sage-tasks")
    if console:
        commands["sage-tasks auto (refusal)"] = [console, "auto", "--python", target]
    times: dict[str, list[float]] = {k: [] for k in commands}
    codes: dict[str, int] = {}
    for _ in range(args.runs):
        for name, command in commands.items():
            start = time.perf_counter()
            done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=work)
            times[name].append(time.perf_counter() - start)
            codes[name] = done.returncode
    changed = sorted(p.name for p in (work / "venv").rglob("*") if "site-packages/" in str(p) and p.is_dir())
    shutil.rmtree(work, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    result = {
        "runs": args.runs,
        "median_s": {k: round(v, 3) for k, v in med.items()},
        "spread_s": {k: [round(min(v), 3), round(max(v), 3)] for k, v in times.items()},
        "exit_codes": codes,
        "site_packages_dirs_after": changed,
        "store_created": (work / "store").exists(),
        "commit": commit.stdout.strip(),
        "machine": f"{platform.node()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }
    base = med["invoke probe (baseline)"]
    _report.emit(
        result, med, ("command", "exit", "median s", "min–max s", "× probe"),
        lambda name, v, low, high: (str(codes[name]), f"{v:.2f}", f"{low:.2f}–{high:.2f}", f"{v / base:.2f}"),
        args.out,
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
