"""The fetch path on a wheel shaped like SageAttention's, against bare pip and bare uv installs.

The wheel: a package with three C extensions, each carrying 6 MB of random (incompressible)
bytes, ~18 MB in all; it really imports (its __init__ loads the three). Per run, alternating,
the package uninstalled before each, installer caches empty (a fresh machine):

- ``pip install --no-deps <wheel>`` (baseline 1) and ``uv pip install --no-deps <wheel>``
  (baseline 2, ``--no-cache``);
- our install step alone: size + sha256 check and the transaction (checks, staging, journal,
  moves, commit), timed inside one process; the read-back import it holds the transaction open
  for is timed on its own beside it (issue 13: "the import timed on its own");
- ``invoke fetch`` (probe, index, selection, hash and metadata checks, transactional install,
  read-back, the recipe's quick check, which imports the package), and ``import`` of the package
  in the target timed on its own.

Targets (issue 13): install step ≤ 1.5× bare uv; whole fetch incl. the import ≤ 1.0× bare pip.

    python bench/fetch_bench.py [--runs 7] [--out FILE]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import _report  # bench/: the shared table-and-JSON ending

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests import support  # noqa: E402

BLOB_MB = 6
VERSION = "0.1.0+cu128torch2.8.0"
C_SOURCE = r"""
#include <Python.h>
__asm__(".section .rodata\n.global blob_{name}\nblob_{name}:\n.incbin \"{blob}\"\n.previous\n");
extern const unsigned char blob_{name}[];
static PyObject *first(PyObject *self, PyObject *args) {{ return PyLong_FromLong(blob_{name}[0]); }}
static PyMethodDef methods[] = {{{{"first", first, METH_NOARGS, ""}}, {{NULL, NULL, 0, NULL}}}};
static struct PyModuleDef module = {{PyModuleDef_HEAD_INIT, "_{name}", NULL, -1, methods}};
PyMODINIT_FUNC PyInit__{name}(void) {{ return PyModule_Create(&module); }}
"""
RECIPE = """\
name = "sage-fat"
package = "sage-fat"
version = "0.1.0"
description = "benchmark: a wheel shaped like SageAttention's"

[source]
repo = "file:///fat"
ref = "v0.1.0"

[build]
cuda = false
needs_torch = true
requires = ["setuptools", "wheel"]
extensions = 3
memory_per_job_gib = 0.5

[check]
module = "sage_fat.selfcheck"
"""
CHECK = """\
import argparse, json, sys
from sage_fat import _a, _b, _c
parser = argparse.ArgumentParser()
parser.add_argument("--report", required=True)
parser.add_argument("--quick", action="store_true")
args = parser.parse_args()
ok = all(isinstance(m.first(), int) for m in (_a, _b, _c))
with open(args.report, "w") as handle:
    json.dump({"status": "passed" if ok else "failed", "summary": "3 extensions load", "checks": [], "speed": []}, handle)
sys.exit(0 if ok else 1)
"""
STEP = """
import json, os, sys, time
from pathlib import Path
from sage_tasks.environment import install
from sage_tasks.stages import fetch, probe
python, wheel, sha, version = sys.argv[1], Path(sys.argv[2]), sys.argv[3], sys.argv[4]
target = probe.read_target(python, extra=["sage-fat"])
with install.Change(target, os.environ, command="bench") as change:
    start = time.perf_counter()
    fetch.verify_file(wheel, sha, wheel.stat().st_size, discard=False)  # size and hash
    modules = change.place(wheel, "sage-fat", version, sha256=sha)  # checks, staging, journal, moves
    placed = time.perf_counter()
    install.read_back(target, "sage-fat", version, modules, os.environ, wheel.name)  # the import
    read = time.perf_counter()
    change.commit()
    done = time.perf_counter()
print(json.dumps({"seconds": (placed - start) + (done - read), "read_back": read - placed}))
"""


def fat_wheel(work: Path) -> Path:
    src = work / "fat-src"
    (src / "sage_fat").mkdir(parents=True)
    (src / "csrc").mkdir()
    for name in ("a", "b", "c"):
        blob = src / "csrc" / f"{name}.bin"
        blob.write_bytes(os.urandom(BLOB_MB * 1024 * 1024))
        (src / "csrc" / f"{name}.c").write_text(C_SOURCE.format(name=name, blob=blob))
    (src / "sage_fat" / "__init__.py").write_text("from . import _a, _b, _c\n")
    (src / "sage_fat" / "selfcheck.py").write_text(CHECK)
    (src / "setup.py").write_text(
        textwrap.dedent(
            f"""\
            from setuptools import Extension, setup
            setup(name="sage-fat", version="{VERSION}", packages=["sage_fat"],
                  ext_modules=[Extension(f"sage_fat._{{n}}", [f"csrc/{{n}}.c"]) for n in "abc"])
            """
        )
    )
    out = work / "fat-dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(src), "-w", str(out)],
        check=True,
        capture_output=True,
        env=support.offline_pip_env(os.environ),
    )
    return next(out.glob("*.whl"))


def run(args: list[str], env: dict[str, str], check: bool = True) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(args, env=env, cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if check and done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return seconds, done.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--out")
    args = parser.parse_args()
    # our code runs from bytecode, as pip's and an installed sage-tasks's do (with
    # PYTHONDONTWRITEBYTECODE set and no __pycache__, every run would compile ~40 modules first)
    subprocess.run([sys.executable, "-m", "compileall", "-q", "sage_tasks", "tasks.py"], cwd=REPO, check=True)
    work = Path(tempfile.mkdtemp(prefix="sage-bench-fetchfat-"))
    index = support.build_simple_index(work / "index" / "whl" / "cu128", support.standin_torch_stack(work / "built"))
    env = support.offline_pip_env(os.environ) | {
        "TORCH_INDEX_URL": index,
        "SAGE_STORE": str(work / "store"),
        "SAGE_TASKS_CACHE": str(work / "cache"),
        "HOME": str(work / "home"),
    }
    env.pop("HF_REPO_ID", None)
    wheel = fat_wheel(work)
    entry = support.demo_manifest(wheel, package="sage-fat", recipe="sage-fat")
    recipe = work / "fat.toml"
    recipe.write_text(RECIPE)
    invoke = [sys.executable, "-m", "invoke", "--search-root", str(REPO)]
    run([*invoke, "publish", "--wheel", str(wheel), "--recipe", str(recipe)], env)
    target = support.make_venv(work / "target")
    run([*invoke, "pin", "--python", str(target)], env)
    uv = shutil.which("uv") or "uv"
    uninstall = [str(target), "-m", "pip", "uninstall", "-y", "-q", "sage-fat"]
    names = ["pip install --no-deps", "uv pip install --no-deps", "our install step (hash + transaction)",
             "invoke fetch", "import in the target", "our read-back (import in the open transaction)"]  # fmt: skip
    times: dict[str, list[float]] = {n: [] for n in names}
    for n in range(args.runs):
        order = names[:4] if n % 2 == 0 else list(reversed(names[:4]))
        for name in order:
            run(uninstall, env, check=False)
            if name == "pip install --no-deps":
                seconds, _ = run([str(target), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], env)
            elif name == "uv pip install --no-deps":
                seconds, _ = run([uv, "pip", "install", "-q", "--no-cache", "--python", str(target), "--no-deps",
                                  str(wheel)], env)  # fmt: skip
            elif name == "our install step (hash + transaction)":
                _, out = run([sys.executable, "-c", STEP, str(target), str(wheel), entry.wheel_sha256, VERSION], env)
                step = json.loads(out.strip().splitlines()[-1])
                seconds = step["seconds"]
                times["our read-back (import in the open transaction)"].append(step["read_back"])
            else:
                seconds, _ = run([*invoke, "fetch", "--python", str(target), "--recipe", str(recipe)], env)
                times["import in the target"].append(run([str(target), "-c", "import sage_fat"], env)[0])
            times[name].append(seconds)
    wheel_bytes = wheel.stat().st_size
    shutil.rmtree(work, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    pip_s, uv_s = med["pip install --no-deps"], med["uv pip install --no-deps"]
    whole = med["invoke fetch"] + med["import in the target"]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    result = {
        "runs": args.runs,
        "wheel_bytes": wheel_bytes,
        "median_s": {k: round(v, 3) for k, v in med.items()},
        "spread_s": {k: [round(min(v), 3), round(max(v), 3)] for k, v in times.items()},
        "install_step_over_bare_uv": round(med["our install step (hash + transaction)"] / uv_s, 3),
        "fetch_plus_import_over_bare_pip": round(whole / pip_s, 3),
        "commit": commit.stdout.strip(),
        "machine": f"{platform.node()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }
    _report.emit(
        result, med, ("command", "median s", "min–max s", "× pip", "× uv"),
        lambda _, v, low, high: (f"{v:.3f}", f"{low:.3f}–{high:.3f}", f"{v / pip_s:.2f}", f"{v / uv_s:.2f}"),
        args.out,
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
