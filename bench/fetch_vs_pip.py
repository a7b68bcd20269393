"""How much does `invoke auto` cost over a bare `pip install --no-deps` of the same wheel?

On a machine where the stack already matches, with the wheel in the local store, it times
(alternating, median of N each, the package uninstalled before every run):

- baseline: ``python -m pip install --no-deps <wheel file>``
- ``invoke auto`` taking the fetch path (probe, index, pin check, fetch: hash + metadata
  checks + install, test-kernel --quick)
- ``invoke probe`` and ``invoke pin --check`` on their own.

Uses the fixture recipe (a small C extension) and stand-in torch wheels from tests/support.py, so
it runs on any machine, without a GPU or network.

    python bench/fetch_vs_pip.py [--runs 7] [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _report  # bench/: the shared table-and-JSON ending

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests import support  # noqa: E402


def run(args: list[str], env: dict[str, str], check: bool = True) -> float:
    start = time.perf_counter()
    done = subprocess.run(args, env=env, cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if check and done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--out")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sage-bench-fetch-"))
    house = work / "wheelhouse"
    for name in ("setuptools", "wheel", "packaging"):
        support.repack_installed(name, house)
    index = support.build_simple_index(
        work / "index" / "whl" / "cu128", [*support.standin_torch_stack(work / "built"), *house.glob("*.whl")]
    )
    env = support.offline_pip_env(os.environ) | {
        "TORCH_INDEX_URL": index,
        "SAGE_STORE": str(work / "store"),
        "SAGE_DIST": str(work / "dist"),
        "SAGE_TASKS_CACHE": str(work / "cache"),
        "HOME": str(work / "home"),
    }
    env.pop("HF_REPO_ID", None)
    repo, commit = support.make_demo_repo(work / "demo-src")
    recipe = support.write_demo_recipe(work / "demo.toml", repo.as_uri(), commit)
    invoke = [sys.executable, "-m", "invoke", "--search-root", str(REPO)]
    builder = support.make_venv(work / "builder", house, ("setuptools", "wheel"))
    run([*invoke, "auto", "--python", str(builder), "--recipe", str(recipe)], env)  # build + publish once
    wheel = next((work / "store" / "sageattention" / "wheels").glob("*.whl"))

    target = support.make_venv(work / "target")
    run([*invoke, "pin", "--python", str(target)], env)
    uninstall = [str(target), "-m", "pip", "uninstall", "-y", "-q", "sage-demo"]
    times: dict[str, list[float]] = {
        "pip install --no-deps": [],
        "invoke auto (fetch path)": [],
        "invoke probe": [],
        "invoke pin --check": [],
    }
    for _ in range(args.runs):
        run(uninstall, env, check=False)
        times["pip install --no-deps"].append(
            run([str(target), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], env)
        )
        run(uninstall, env)
        times["invoke auto (fetch path)"].append(
            run([*invoke, "auto", "--python", str(target), "--recipe", str(recipe)], env)
        )
        times["invoke probe"].append(run([*invoke, "probe", "--python", str(target), "--recipe", str(recipe)], env))
        times["invoke pin --check"].append(run([*invoke, "pin", "--python", str(target), "--check"], env))
    medians = {k: statistics.median(v) for k, v in times.items()}
    base = medians["pip install --no-deps"]
    result = {
        "runs": args.runs,
        "median_s": {k: round(v, 3) for k, v in medians.items()},
        "spread_s": {k: [round(min(v), 3), round(max(v), 3)] for k, v in times.items()},
        "auto_over_pip": round(medians["invoke auto (fetch path)"] / base, 3),
        "wheel": wheel.name,
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
    }
    _report.emit(
        result, medians, ("command", "median s", "min–max s", "× pip"),
        lambda _, v, low, high: (f"{v:.3f}", f"{low:.3f}–{high:.3f}", f"{v / base:.2f}"),
        args.out,
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
