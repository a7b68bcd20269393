"""How fast does `invoke pin` install a torch stack, against a bare `pip install` of the same pins?

compare: per round (alternating order), each into a fresh venv with empty installer caches:
         a bare ``pip install torch==… torchvision==… torchaudio==… triton==… --index-url IDX``
         (the baseline), ``invoke pin --installer uv`` and ``invoke pin --installer pip``; then a
         warm ``invoke pin`` on the satisfied stack, counting the installer processes it starts
         (an audit hook on subprocess.Popen inside the invoke process). Median of --runs.
kill:    ``invoke pin`` killed (SIGKILL to its process group) --kill-after seconds after the first
         file of torch lands in site-packages (the middle of the install phase), with
         uv and with pip: what is left in the venv (packages whose files are missing, whether
         torch imports, what ``pin --check`` says), and how long the repairing ``pin`` takes.

The stack comes from local indexes only (no network): by default the real torch 2.14.1 +
torchvision 0.29.1 + triton 3.8.0 (CUDA wheels, ~5 GB with their nvidia dependencies) from
file:///opt/pypi-more/simple and pip's configured indexes, plus stand-in torchaudio and
cuda-bindings wheels (no local index has them) in a wheel folder. ``--standin`` uses tests/support.py's tiny stack instead.

    python bench/pin_bench.py compare --runs 3 [--out FILE]
    python bench/pin_bench.py kill --kill-after 1
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import signal
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

REAL = {"torch": "2.14.1", "torchvision": "0.29.1", "torchaudio": "2.14.1", "triton": "3.8.0"}
STANDIN = {"torch": "2.8.0+cu128", "torchvision": "0.23.0+cu128", "torchaudio": "2.8.0+cu128", "triton": "3.4.0"}
COUNT_INSTALLERS = """
import sys
count = [0]
def hook(event, args):
    if event == "subprocess.Popen":
        argv = [str(a) for a in (args[1] or [])]
        if any(a.endswith("/uv") or a == "uv" for a in argv[:1]) or "pip" in argv[1:3]:
            count[0] += 1
sys.addaudithook(hook)
import atexit
atexit.register(lambda: print(f"INSTALLER_PROCESSES={count[0]}", file=sys.stderr))
from invoke.main import program
program.run(["invoke", "--search-root", sys.argv[1], *sys.argv[2:]])
"""


def stack_setup(work: Path, standin: bool) -> tuple[dict[str, str], dict[str, str]]:
    """The pins and the environment that points every installer at the same local sources."""
    if standin:
        wheels = support.standin_torch_stack(work / "built")
        index = support.build_simple_index(work / "index" / "whl" / "cu128", wheels)
        env = support.offline_pip_env(os.environ) | {"TORCH_INDEX_URL": index}
        versions = STANDIN
    else:
        folder = work / "extra-wheels"
        support.make_wheel(
            folder, "torchaudio", REAL["torchaudio"], {"torchaudio/__init__.py": "__version__ = '2.14.1'\n"}
        )
        # torch 2.14.1 needs cuda-bindings, which no local index has: a stand-in, so nothing is downloaded
        support.make_wheel(folder, "cuda-bindings", "13.5.0", {"cuda_bindings_standin.py": ""})
        index = "file:///opt/pypi-more/simple"
        links = " ".join([str(folder), *[p for p in ("/opt/wheels",) if Path(p).is_dir()]])
        env = dict(os.environ) | {"TORCH_INDEX_URL": index, "PIP_FIND_LINKS": links}
        versions = REAL
    env |= {
        "TORCH_VERSION": versions["torch"],
        "TORCHVISION_VERSION": versions["torchvision"],
        "TORCHAUDIO_VERSION": versions["torchaudio"],
        "TRITON_VERSION": versions["triton"],
        "SAGE_STORE": str(work / "store"),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    for name in ("HF_REPO_ID", "SAGE_INSTALLER", "SAGE_KEEP_STACK"):
        env.pop(name, None)
    specs = {p: v for p, v in versions.items()}
    return specs, env


def timed(args: list[str], env: dict[str, str], check: bool = True) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    done = subprocess.run(args, env=env, cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if check and done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return seconds, done


def fresh(work: Path, name: str, env: dict[str, str]) -> tuple[Path, dict[str, str]]:
    """A fresh venv and empty pip and uv caches."""
    for sub in (name, f"{name}-pip-cache", f"{name}-uv-cache", f"{name}-sage-cache"):
        shutil.rmtree(work / sub, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(work / name)], check=True)
    return work / name / "bin" / "python", env | {
        "PIP_CACHE_DIR": str(work / f"{name}-pip-cache"),
        "UV_CACHE_DIR": str(work / f"{name}-uv-cache"),
        "SAGE_TASKS_CACHE": str(work / f"{name}-sage-cache"),
    }


def invoke(*args: str) -> list[str]:
    return [sys.executable, "-m", "invoke", "--search-root", str(REPO), *args]


def compare(args: argparse.Namespace, work: Path) -> dict[str, object]:
    specs, env = stack_setup(work, args.standin)
    bare = lambda python: [  # noqa: E731
        str(python), "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
        *[f"{p}=={v}" for p, v in specs.items()], "--index-url", env["TORCH_INDEX_URL"],
    ]  # fmt: skip
    variants = {
        "bare pip install (baseline)": bare,
        "invoke pin (uv)": lambda python: invoke("pin", "--python", str(python), "--installer", "uv"),
        "invoke pin (pip)": lambda python: invoke("pin", "--python", str(python), "--installer", "pip"),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    warm_s: list[float] = []
    warm_processes: list[int] = []
    for round_no in range(args.runs):
        names = list(variants) if round_no % 2 == 0 else list(reversed(variants))
        for name in names:
            python, run_env = fresh(work, "venv", env)
            seconds, _ = timed(variants[name](python), run_env)
            times[name].append(seconds)
            print(f"round {round_no + 1}: {name}: {seconds:.1f} s", file=sys.stderr)
            if name == "invoke pin (uv)":
                seconds, done = timed(
                    [sys.executable, "-c", COUNT_INSTALLERS, str(REPO), "pin", "--python", str(python)], run_env
                )
                warm_s.append(seconds)
                warm_processes.append(int(done.stderr.rsplit("INSTALLER_PROCESSES=", 1)[1].split()[0]))
        shutil.rmtree(work / "venv", ignore_errors=True)
    medians = {k: statistics.median(v) for k, v in times.items()}
    base = medians["bare pip install (baseline)"]
    return {
        "mode": "compare",
        "stack": specs,
        "runs": args.runs,
        "median_s": {k: round(v, 2) for k, v in medians.items()},
        "spread_s": {k: [round(min(v), 2), round(max(v), 2)] for k, v in times.items()},
        "ratio_over_bare_pip": {k: round(v / base, 3) for k, v in medians.items()},
        "warm_pin_s_median": round(statistics.median(warm_s), 3),
        "warm_pin_installer_processes": warm_processes,
    }


def _broken(python: Path, names: list[str]) -> dict[str, object]:
    """Per package: installed version, and how many of the files its RECORD lists are missing."""
    code = (
        "import importlib.metadata as m, json, os\n"
        "out = {}\n"
        f"for name in {names!r}:\n"
        "    try: d = m.distribution(name)\n"
        "    except m.PackageNotFoundError: out[name] = None; continue\n"
        "    files = [f for f in (d.files or []) if not str(f).endswith('.pyc')]\n"
        "    missing = sum(1 for f in files if not os.path.exists(d.locate_file(f)))\n"
        "    out[name] = {'version': d.version, 'files': len(files), 'missing': missing}\n"
        "print(json.dumps(out))\n"
    )
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True)
    result: dict[str, object] = json.loads(done.stdout)
    imports = subprocess.run([str(python), "-c", "import torch"], capture_output=True, text=True)
    result["import torch"] = "ok" if imports.returncode == 0 else imports.stderr.strip().splitlines()[-1][:200]
    return result


def kill(args: argparse.Namespace, work: Path) -> dict[str, object]:
    specs, env = stack_setup(work, args.standin)
    results: dict[str, object] = {"mode": "kill", "kill_after_s": args.kill_after, "stack": specs}
    for installer in args.installers.split(","):
        python, run_env = fresh(work, f"kill-{installer}", env)
        command = invoke("pin", "--python", str(python), "--installer", installer)
        proc = subprocess.Popen(command, env=run_env, cwd=REPO, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        site = next((work / f"kill-{installer}" / "lib").glob("python3.*/site-packages"))
        started = time.perf_counter()
        finished = False
        while not (site / "torch").exists():  # the install phase has begun: files land in site-packages
            if proc.poll() is not None:
                finished = True
                break
            time.sleep(0.05)
        into_install = time.perf_counter() - started
        if not finished:
            time.sleep(args.kill_after)
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                finished = True
            proc.wait()
        left = _broken(python, [*specs, "nvidia-cublas", "filelock"])
        _, check = timed(invoke("pin", "--python", str(python), "--check"), run_env, check=False)
        repair_s, repair = timed(command, run_env, check=False)
        after = _broken(python, [*specs, "nvidia-cublas", "filelock"])
        results[installer] = {
            "finished_before_kill": finished,
            "install_phase_began_after_s": round(into_install, 2),
            "left_after_kill": left,
            "pin_check_exit": check.returncode,
            "pin_check_says": (check.stderr.strip().splitlines() or [""])[-1][:300],
            "repair_exit": repair.returncode,
            "repair_s": round(repair_s, 2),
            "after_repair": after,
        }
        shutil.rmtree(work / f"kill-{installer}", ignore_errors=True)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("compare", "kill"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--kill-after", type=float, default=1.0, help="seconds into the install phase")
    parser.add_argument("--standin", action="store_true", help="tiny stand-in wheels instead of the real stack")
    parser.add_argument("--installers", default="uv,pip", help="kill: which installers (uv,pip)")
    parser.add_argument("--out")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sage-bench-pin-"))
    try:
        result = compare(args, work) if args.mode == "compare" else kill(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    result |= {
        "commit": commit.stdout.strip(),
        "machine": f"{platform.node()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }
    if args.mode != "compare":  # the kill mode has no table
        print(json.dumps(result, indent=1))
        if args.out:
            Path(args.out).write_text(json.dumps(result, indent=1))
        return 0
    base = result["median_s"]["bare pip install (baseline)"]  # type: ignore[index]
    _report.emit(
        result, result["median_s"], ("command", "median s", "min–max s", "× bare pip"),  # type: ignore[arg-type]
        lambda _, v, low, high: (f"{v:.1f}", f"{low:.1f}–{high:.1f}", f"{v / base:.2f}"),
        args.out,
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
