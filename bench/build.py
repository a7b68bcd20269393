"""Build benchmarks, each compared with a baseline in the same run (ratios, not absolute claims).

compare: upstream's plain ``pip wheel . --no-build-isolation`` versus ``invoke build`` for the
         same arch, same source, same interpreter, same machine, one after the other.
resume:  a cold ``invoke build``, then one killed after --kill-after seconds and its re-run,
         then a re-run after a finished build: how much of the cold time the re-runs cost.

    python bench/build.py compare --source DIR --arch 12.0 [--order both|upstream-first|ours-first] [--out FILE]
    python bench/build.py resume  --source DIR --arch 9.0 --kill-after 90 [--python PY]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def mem_available_mib() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) // 1024
    return 0


PEAKS: dict[str, int] = {}


def timed(
    args: list[str], env: dict[str, str], cwd: Path, log: Path, kill_after: float | None = None
) -> tuple[float, int]:
    """Wall time and exit code; also the peak memory the run took (MemAvailable sampled every 0.5 s)."""
    before = mem_available_mib()
    lowest = [before]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.5):
            lowest[0] = min(lowest[0], mem_available_mib())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.Popen(args, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            code = proc.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            code = -9
    done.set()
    PEAKS[log.stem] = before - lowest[0]
    return time.perf_counter() - start, code


def invoke_build(python: str, source: str, arch: str, cache: Path, dist: Path) -> list[str]:
    return [sys.executable, "-m", "invoke", "--search-root", str(REPO), "build", "--python", python,
            "--source", source, "--arch", arch, "--dist", str(dist)]  # fmt: skip


def _one(name: str, command: list[str], env: dict[str, str], cwd: Path, log: Path, dist: Path) -> dict[str, object]:
    seconds, code = timed(command, env, cwd, log)
    wheel = next(dist.glob("*.whl"), None)
    return {
        "seconds": round(seconds, 1),
        "exit": code,
        "wheel": wheel.name if wheel else None,
        "bytes": wheel.stat().st_size if wheel else None,
        "peak_memory_mib": PEAKS.get(log.stem),
    }


def compare_once(args: argparse.Namespace, work: Path, order: str) -> dict[str, object]:
    """One upstream build and one sage-tasks build of the same source, in the given order."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAX_JOBS", "EXT_PARALLEL")}
    upstream_src = work / "upstream-src"
    shutil.copytree(args.source, upstream_src)
    runs = {
        "upstream": lambda: _one(
            "upstream",
            [args.python, "-m", "pip", "wheel", ".", "--no-build-isolation", "-w", str(work / "up-dist")],
            {**env, "TORCH_CUDA_ARCH_LIST": args.arch},
            upstream_src,
            work / "upstream.log",
            work / "up-dist",
        ),
        "sage_tasks": lambda: _one(
            "sage_tasks",
            invoke_build(args.python, args.source, args.arch, work / "cache", work / "our-dist"),
            {**env, "SAGE_TASKS_CACHE": str(work / "cache")},
            work,
            work / "ours.log",
            work / "our-dist",
        ),
    }
    sequence = ["upstream", "sage_tasks"] if order == "upstream-first" else ["sage_tasks", "upstream"]
    results = {name: runs[name]() for name in sequence}
    up_s, our_s = results["upstream"]["seconds"], results["sage_tasks"]["seconds"]
    return {
        "order": order,
        **results,
        "ratio_ours_over_upstream": round(our_s / up_s, 3) if up_s else None,  # type: ignore[operator]
    }


def compare(args: argparse.Namespace, work: Path) -> dict[str, object]:
    """``--order both`` (the default) runs both orders, so the order's own effect shows and cancels."""
    orders = ["upstream-first", "ours-first"] if args.order == "both" else [args.order]
    runs = []
    for n, order in enumerate(orders, 1):
        folder = work / f"run{n}-{order}"
        folder.mkdir(parents=True, exist_ok=True)
        runs.append(compare_once(args, folder, order))
    up = sum(r["upstream"]["seconds"] for r in runs)  # type: ignore[index]
    ours = sum(r["sage_tasks"]["seconds"] for r in runs)  # type: ignore[index]
    return {
        "arch": args.arch,
        "cpu_count": os.cpu_count(),
        "mem_available_mib_at_start": mem_available_mib(),
        "runs": runs,
        "total": {
            "upstream_s": round(up, 1),
            "sage_tasks_s": round(ours, 1),
            "ratio": round(ours / up, 3) if up else None,
        },
    }


def resume(args: argparse.Namespace, work: Path) -> dict[str, object]:
    env = {**os.environ, "SAGE_TASKS_CACHE": str(work / "cache")}
    command = invoke_build(args.python, args.source, args.arch, work / "cache", work / "dist")
    cold_s, cold_code = timed(command, env, work, work / "cold.log")
    rerun_s, rerun_code = timed(command, env, work, work / "rerun.log")
    shutil.rmtree(work / "cache" / "build")  # start over for the interrupted case
    killed_s, killed_code = timed(command, env, work, work / "killed.log", kill_after=args.kill_after)
    resumed_s, resumed_code = timed(command, env, work, work / "resumed.log")
    return {
        "arch": args.arch,
        "peak_memory_mib": PEAKS,
        "cold": {"seconds": round(cold_s, 1), "exit": cold_code},
        "rerun_after_finished_build": {
            "seconds": round(rerun_s, 1),
            "exit": rerun_code,
            "fraction_of_cold": round(rerun_s / cold_s, 3),
        },
        "killed_after": {"seconds": round(killed_s, 1), "exit": killed_code},
        "resumed": {
            "seconds": round(resumed_s, 1),
            "exit": resumed_code,
            "fraction_of_cold": round(resumed_s / cold_s, 3),
            "killed_plus_resumed_over_cold": round((killed_s + resumed_s) / cold_s, 3),
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("compare", "resume"))
    parser.add_argument("--source", required=True)
    parser.add_argument("--arch", required=True)
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--kill-after", type=float, default=90.0)
    parser.add_argument("--order", choices=("upstream-first", "ours-first", "both"), default="both")
    parser.add_argument("--out")
    parser.add_argument("--work", help="keep logs here (default: a temporary folder)")
    args = parser.parse_args()
    args.source = str(Path(args.source).resolve())
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="sage-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    result = compare(args, work) if args.mode == "compare" else resume(args, work)
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
