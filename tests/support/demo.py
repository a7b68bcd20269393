"""The fixture recipe: a small package with a C extension and its own check, its git repo, and
its recipe file.
"""

from __future__ import annotations

import os
import subprocess
import textwrap
from pathlib import Path

DEMO_SETUP = """\
from setuptools import Extension, setup

setup(
    name="sage-demo",
    version="{version}",
    packages=["sage_demo"],
    ext_modules=[Extension("sage_demo._native", ["csrc/native.c"])],
)
"""


DEMO_C = r"""
#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* weighted_sum(xs): sum of (i + 1) * xs[i], computed in C. */
static PyObject *weighted_sum(PyObject *self, PyObject *args) {
    PyObject *seq;
    if (!PyArg_ParseTuple(args, "O", &seq)) return NULL;
    PyObject *fast = PySequence_Fast(seq, "expected a sequence");
    if (!fast) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    double total = 0.0;
    for (Py_ssize_t i = 0; i < n; i++) {
        double x = PyFloat_AsDouble(PySequence_Fast_GET_ITEM(fast, i));
        if (PyErr_Occurred()) { Py_DECREF(fast); return NULL; }
        total += (double)(i + 1) * x;
    }
    Py_DECREF(fast);
    return PyFloat_FromDouble(total);
}

static PyMethodDef methods[] = {
    {"weighted_sum", weighted_sum, METH_VARARGS, "sum of (i + 1) * xs[i]"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_native", NULL, -1, methods};

PyMODINIT_FUNC PyInit__native(void) { return PyModule_Create(&module); }
"""


DEMO_CHECK = '''\
"""The fixture's own check, following sage-tasks' check protocol (exit 0/1/2, JSON report)."""
import argparse
import json
import os
import random
import sys


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--report", required=True)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    from sage_demo import _native

    cases = 5 if args.quick else 50
    checks, worst = [], 0.0
    rng = random.Random()
    for case in range(cases):
        xs = [rng.uniform(-1, 1) for _ in range(rng.randint(1, 64))]
        want = sum((i + 1) * x for i, x in enumerate(xs))
        got = _native.weighted_sum(xs)
        if os.environ.get("SAGE_DEMO_FORCE_FAIL") == "1":
            got += 1.0
        error = abs(got - want)
        worst = max(worst, error)
        checks.append({"name": f"weighted_sum[{case}]", "n": len(xs), "abs_error": error, "ok": error < 1e-9})
    status = "passed" if all(c["ok"] for c in checks) else "failed"
    code = 0 if status == "passed" else 1
    if os.environ.get("SAGE_DEMO_NO_GPU") == "1":
        status, code = "unverified", 2
    report = {
        "status": status,
        "summary": f"{sum(c['ok'] for c in checks)}/{len(checks)} cases within 1e-9 (worst {worst:.2e})",
        "checks": checks,
        "speed": [],
    }
    with open(args.report, "w") as handle:
        json.dump(report, handle)
    print(report["summary"])
    return code


if __name__ == "__main__":
    sys.exit(main())
'''


def write_demo_source(dest: Path, version: str = "0.1.0") -> Path:
    (dest / "sage_demo").mkdir(parents=True, exist_ok=True)
    (dest / "csrc").mkdir(exist_ok=True)
    (dest / "setup.py").write_text(DEMO_SETUP.format(version=version))
    (dest / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
    )
    (dest / "csrc" / "native.c").write_text(DEMO_C)
    (dest / "sage_demo" / "__init__.py").write_text(f'__version__ = "{version}"\n')
    (dest / "sage_demo" / "selfcheck.py").write_text(DEMO_CHECK)
    return dest


def git(*args: str, cwd: Path) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout.strip()


def make_demo_repo(dest: Path, version: str = "0.1.0", tag: str = "v0.1.0") -> tuple[Path, str]:
    """A git repository holding the demo source, tagged; returns (path, commit)."""
    write_demo_source(dest, version)
    git("init", "-q", "-b", "main", cwd=dest)
    git("add", "-A", cwd=dest)
    git("commit", "-qm", "demo", cwd=dest)
    git("tag", tag, cwd=dest)
    return dest, git("rev-parse", "HEAD", cwd=dest)


def write_demo_recipe(path: Path, repo: str, commit: str | None, ref: str = "v0.1.0", version: str = "0.1.0") -> Path:
    commit_line = f'commit = "{commit}"\n' if commit else ""
    path.write_text(
        textwrap.dedent(
            f"""\
            name = "sage-demo-{version}"
            package = "sage-demo"
            version = "{version}"
            description = "test fixture: a C extension with its own check"

            [source]
            repo = "{repo}"
            ref = "{ref}"
            """
        )
        + commit_line
        + textwrap.dedent(
            """\

            [build]
            cuda = false
            needs_torch = true
            requires = ["setuptools", "wheel"]
            extensions = 1
            memory_per_job_gib = 0.5

            [check]
            module = "sage_demo.selfcheck"
            """
        )
    )
    return path
