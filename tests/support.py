"""Test helpers: tiny wheels, a local PEP 503 index, venvs, a stand-in nvidia-smi, and a
fixture recipe whose source (a package with a C extension and its own check) is generated here.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import subprocess
import sys
import textwrap
import zipfile
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CAPTURES = REPO / "tests" / "captures"


# ---------------------------------------------------------------- wheels and indexes


def _hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def make_wheel(dest: Path, name: str, version: str, files: dict[str, str | bytes], tag: str = "py3-none-any") -> Path:
    """A valid wheel with the given files (plus METADATA, WHEEL and RECORD)."""
    dest.mkdir(parents=True, exist_ok=True)
    norm = name.replace("-", "_")
    dist_info = f"{norm}-{version}.dist-info"
    contents: dict[str, bytes] = {k: v.encode() if isinstance(v, str) else v for k, v in files.items()}
    contents[f"{dist_info}/METADATA"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
    contents[f"{dist_info}/WHEEL"] = (
        f"Wheel-Version: 1.0\nGenerator: sage-tasks-tests\nRoot-Is-Purelib: true\nTag: {tag}\n".encode()
    )
    return _zip_wheel(dest / f"{norm}-{version}-{tag}.whl", contents, dist_info)


def _zip_wheel(path: Path, contents: dict[str, bytes], dist_info: str) -> Path:
    """Write ``contents`` as a wheel, with a RECORD that lists every file and its hash."""
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    for name, data in contents.items():
        writer.writerow((name, _hash(data), len(data)))
    writer.writerow((f"{dist_info}/RECORD", "", ""))
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in {**contents, f"{dist_info}/RECORD": record.getvalue().encode()}.items():
            zf.writestr(name, data)
    return path


def standin_torch_stack(
    dest: Path,
    torch: str = "2.8.0+cu128",
    vision: str = "0.23.0+cu128",
    audio: str = "2.8.0+cu128",
    triton: str = "3.4.0",
    cuda: str | None = "12.8",
) -> list[Path]:
    """Tiny wheels named torch/torchvision/torchaudio/triton whose installed files look like torch's."""
    init = textwrap.dedent(
        f"""\
        __version__ = {torch!r}


        def compiled_with_cxx11_abi() -> bool:
            return True
        """
    )
    version_py = f"from typing import Optional\n__version__ = {torch!r}\ncuda: Optional[str] = {cuda!r}\nhip = None\n"
    return [
        make_wheel(dest, "torch", torch, {"torch/__init__.py": init, "torch/version.py": version_py}),
        make_wheel(dest, "torchvision", vision, {"torchvision/__init__.py": f"__version__ = {vision!r}\n"}),
        make_wheel(dest, "torchaudio", audio, {"torchaudio/__init__.py": f"__version__ = {audio!r}\n"}),
        make_wheel(dest, "triton", triton, {"triton/__init__.py": f"__version__ = {triton!r}\n"}),
    ]


def build_simple_index(root: Path, wheels: list[Path]) -> str:
    """A PEP 503 index in ``root`` (one folder per project, links with sha256); returns its file:// URL."""
    by_project: dict[str, list[Path]] = {}
    for wheel in wheels:
        project = wheel.name.split("-")[0].replace("_", "-").lower()
        by_project.setdefault(project, []).append(wheel)
    for project, files in by_project.items():
        folder = root / project
        folder.mkdir(parents=True, exist_ok=True)
        links = []
        for wheel in files:
            target = folder / wheel.name
            target.write_bytes(wheel.read_bytes())
            digest = hashlib.sha256(target.read_bytes()).hexdigest()
            links.append(f'<a href="{wheel.name}#sha256={digest}">{wheel.name}</a><br/>')
        (folder / "index.html").write_text("<!DOCTYPE html><html><body>\n" + "\n".join(links) + "\n</body></html>\n")
    (root / "index.html").write_text(
        "<!DOCTYPE html><html><body>\n"
        + "\n".join(f'<a href="{p}/">{p}</a><br/>' for p in sorted(by_project))
        + "\n</body></html>\n"
    )
    return root.as_uri()


def repack_installed(dist_name: str, dest: Path) -> Path:
    """A wheel rebuilt from an installed distribution's files (so test venvs get setuptools offline)."""
    dist = metadata.distribution(dist_name)
    files: dict[str, bytes] = {}
    for entry in dist.files or []:
        path = Path(dist.locate_file(entry))
        text = str(entry)
        if (
            text.startswith("..")
            or "__pycache__" in text
            or text.endswith(("RECORD", "INSTALLER", "REQUESTED", "direct_url.json"))
        ):
            continue
        if path.is_file():
            files[text] = path.read_bytes()
    version = dist.version
    norm = dist.metadata["Name"].replace("-", "_")
    dist_info = f"{norm}-{version}.dist-info"
    files = {k: v for k, v in files.items() if not k.endswith(".dist-info/WHEEL")}
    files[f"{dist_info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: sage-tasks-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    return _zip_wheel(dest / f"{norm}-{version}-py3-none-any.whl", files, dist_info)


def make_venv(path: Path, wheelhouse: Path | None = None, packages: tuple[str, ...] = ()) -> Path:
    """A fresh venv (with pip); ``packages`` installed offline from ``wheelhouse``."""
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, capture_output=True)
    python = path / "bin" / "python"
    if packages:
        assert wheelhouse is not None
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "-q",
                "--upgrade",
                "--no-index",
                "--find-links",
                str(wheelhouse),
                *packages,
            ],
            check=True,
            capture_output=True,
            env=offline_pip_env(os.environ),
        )
    return python


def offline_pip_env(base: dict[str, str] | os._Environ) -> dict[str, str]:
    env = dict(base)
    env["PIP_CONFIG_FILE"] = os.devnull  # no machine-wide index, find-links or constraints
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PIP_NO_INPUT"] = "1"
    return env


def installed_version(python: Path, name: str) -> str | None:
    done = subprocess.run(
        [
            str(python),
            "-c",
            f"import importlib.metadata as m\ntry: print(m.version({name!r}))\nexcept m.PackageNotFoundError: print('')",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip() or None


# ---------------------------------------------------------------- stand-in nvidia-smi

RTX5090 = {
    "index": "0",
    "name": "NVIDIA GeForce RTX 5090",
    "compute_cap": "12.0",
    "driver_version": "570.133.07",
    "memory.total": "32607",
    "pci.bus_id": "00000000:01:00.0",
}


def rtx5090_banner() -> str:
    """The real H100 capture of plain ``nvidia-smi`` with the RTX 5090's name, driver and CUDA."""
    text = (CAPTURES / "h100-cuda13" / "nvidia-smi.txt").read_text()
    text = text.replace("NVIDIA H100 80GB HBM3     ", "NVIDIA GeForce RTX 5090   ")
    text = text.replace("Driver Version: 580.159.04", "Driver Version: 570.133.07")
    text = text.replace("CUDA Version: 13.0", "CUDA Version: 12.8")
    return text.replace("580.159.04", "570.133.07")


def install_fake_nvidia_smi(bin_dir: Path, gpu: dict[str, str] | None = None, banner: str | None = None) -> Path:
    """A stand-in ``nvidia-smi`` on PATH that answers the query forms a real one does."""
    gpu = gpu or RTX5090
    banner = banner if banner is not None else rtx5090_banner()
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "nvidia-smi"
    script.write_text(
        f"#!{sys.executable}\n"
        + textwrap.dedent(
            f"""\
            import sys
            GPU = {gpu!r}
            BANNER = {banner!r}
            args = sys.argv[1:]
            query = next((a.split("=", 1)[1] for a in args if a.startswith("--query-gpu=")), None)
            if query is None:
                sys.stdout.write(BANNER)
                sys.exit(0)
            fields = query.split(",")
            fmt = next((a.split("=", 1)[1] for a in args if a.startswith("--format=")), "csv")
            missing = [f for f in fields if f not in GPU]
            if missing:
                print(f'Field "{{missing[0]}}" is not a valid field to query.', file=sys.stderr)
                sys.exit(2)
            if "noheader" not in fmt:
                print(", ".join(fields))
            print(", ".join(GPU[f] for f in fields))
            """
        )
    )
    script.chmod(0o755)
    return script


# ---------------------------------------------------------------- the fixture recipe

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


# ---------------------------------------------------------------- records for pure tests

CP312_TAGS = frozenset(
    {"cp312-cp312-linux_x86_64", "cp312-cp312-manylinux_2_28_x86_64", "cp312-abi3-linux_x86_64", "py3-none-any"}
)


def entry(**changes):
    """A valid SageAttention manifest for RTX 5090 / cp312 / torch 2.8.0+cu128, with changes."""
    from sage_tasks.store.manifest import Verification, WheelManifest

    base = dict(
        package="sageattention",
        version="2.2.0+cu128torch2.8.0",
        wheel_file="sageattention-2.2.0+cu128torch2.8.0-cp312-cp312-linux_x86_64.whl",
        wheel_sha256="a" * 64,
        wheel_size=16_400_000,
        python_tag="cp312",
        abi_tag="cp312",
        platform_tag="linux_x86_64",
        torch_version="2.8.0+cu128",
        torch_cuda="12.8",
        torch_cxx11_abi=True,
        target_arch="12.0",
        cuda_archs=("sm_120",),
        source={
            "repo": "https://github.com/thu-ml/SageAttention",
            "ref": "v2.2.0",
            "commit": "eb615cf6cf4d221338033340ee2de1c37fbdba4a",
        },
        verification=Verification(status="passed", gpu="NVIDIA GeForce RTX 5090", compute_capability="12.0"),
        created_at="2026-11-01T00:00:00Z",
    )
    base.update(changes)
    if "wheel_file" in changes and "python_tag" not in changes:
        from sage_tasks.store.manifest import wheel_tags

        base["python_tag"], base["abi_tag"], base["platform_tag"] = wheel_tags(changes["wheel_file"])
    return WheelManifest(**base)


def want(**changes):
    from sage_tasks.stages.selection import Want

    base = dict(
        package="sageattention",
        version="2.2.0",
        tags=CP312_TAGS,
        torch_version="2.8.0+cu128",
        torch_cuda="12.8",
        torch_cxx11_abi=True,
        commit="eb615cf6cf4d221338033340ee2de1c37fbdba4a",
        ccs=("12.0",),
        driver_cuda="12.8",
    )
    base.update(changes)
    return Want(**base)


def target(packages=None, torch_cuda="12.8", abi=True, python="/venv/bin/python"):
    from sage_tasks.stages.probe import TargetEnv

    base = {
        "torch": "2.8.0+cu128",
        "torchvision": "0.23.0+cu128",
        "torchaudio": "2.8.0+cu128",
        "triton": "3.4.0",
        "setuptools": "80.0.0",
        "wheel": "0.45.0",
        "packaging": "25.0",
        "ninja": "1.13.0",
        "pip": "25.0",
    }
    base.update(packages or {})
    return TargetEnv(
        python=python,
        version="3.12.1",
        implementation="cpython",
        tags=tuple(sorted(CP312_TAGS)),
        packages=base,
        torch_cuda=torch_cuda,
        torch_cxx11_abi=abi,
    )


def machine(gpus=(("NVIDIA GeForce RTX 5090", "12.0"),), nvcc="12.8", cores=16, mem_mib=128 * 1024, **target_changes):
    from sage_tasks.stages.probe import Gpu, Machine, Program

    return Machine(
        gpus=tuple(Gpu(i, name, cc, 32607) for i, (name, cc) in enumerate(gpus)),
        driver_version="570.133.07" if gpus else None,
        driver_cuda="12.8" if gpus else None,
        nvcc=Program("/usr/local/cuda/bin/nvcc", nvcc, nvcc + ".93") if nvcc else None,
        system="Linux",
        arch="x86_64",
        libc="glibc 2.39",
        kernel="6.8",
        cpu_count=cores,
        mem_total_mib=mem_mib,
        mem_available_mib=mem_mib,
        target=target(**target_changes),
    )


# ---------------------------------------------------------------- ready-made demo wheels for store tests

PURE_NATIVE = "def weighted_sum(xs):\n    return float(sum((i + 1) * x for i, x in enumerate(xs)))\n"


def demo_wheel(dest: Path, version: str = "0.1.0+cu128torch2.8.0", tag: str = "py3-none-any") -> Path:
    """A sage-demo wheel without compiled code (a Python ``_native``), for store and fetch tests."""
    return make_wheel(
        dest,
        "sage-demo",
        version,
        {
            "sage_demo/__init__.py": f'__version__ = "{version}"\n',
            "sage_demo/_native.py": PURE_NATIVE,
            "sage_demo/selfcheck.py": DEMO_CHECK,
        },
        tag=tag,
    )


def demo_manifest(wheel: Path, status: str = "passed", **changes):
    """The manifest of a demo wheel as sage-tasks' build would write it; saved beside the wheel."""
    from sage_tasks.store import manifest
    from sage_tasks.store.manifest import Verification, WheelManifest
    from sage_tasks.wheel import wheelfile

    fields = dict(
        package="sage-demo",
        **wheelfile.file_facts(wheel),
        recipe="sage-demo-0.1.0",
        torch_version="2.8.0+cu128",
        torch_cuda="12.8",
        torch_cxx11_abi=True,
        torchvision_version="0.23.0+cu128",
        torchaudio_version="2.8.0+cu128",
        triton_version="3.4.0",
        torch_index_url="https://download.pytorch.org/whl/cu128",
        source={"repo": "file:///demo", "ref": "v0.1.0", "commit": None},
        verification=Verification(status=status, summary=f"demo {status}"),
    )
    fields.update(changes)
    entry = WheelManifest(**fields)
    manifest.write_manifest_file(wheel.with_name(wheel.name + ".json"), entry)
    return entry


# ---------------------------------------------------------------- fault counts for RELIABILITY.md

FAULTS: dict[str, dict[str, int]] = {}


def count_fault(kind: str, injected: int = 1, survived: int = 1, lost: int = 0) -> None:
    """Record faults injected by a reliability test (printed at the end of the run)."""
    entry = FAULTS.setdefault(kind, {"injected": 0, "survived": 0, "lost": 0})
    entry["injected"] += injected
    entry["survived"] += survived
    entry["lost"] += lost


# the fields newer versions of the bash installer add to latest.json
INSTALLER_NEWER_FIELDS = (
    "cudaarchs", "required_min_cuda", "built_for", "built_from_repo", "built_from_ref", "built_from_commit",
    "builder_gpu_name", "builder_gpu_compute_capability", "expected_sageattention_version",
)  # fmt: skip


def legacy_latest(wheel_file: str, sha256: str, *, older: bool = False, **changes: object) -> dict[str, object]:
    """A ``latest.json`` as the bash installer writes it: each version is the installed
    distribution's, so torch from PyPI is a plain ``2.8.0`` (its CUDA only in the index URL and
    ``required_min_cuda``). ``older``: the field set of older installer versions."""
    record: dict[str, object] = {
        "created_at_utc": "2026-11-01T00:00:00Z",
        "wheel_file": wheel_file,
        "wheel_sha256": sha256,
        "hf_wheel_url": None,
        "sageattention_version": "2.2.0",
        "torch_version": "2.8.0",
        "torchvision_version": "0.23.0",
        "torchaudio_version": "2.8.0",
        "triton_version": "3.4.0",
        "torch_index_url": "https://download.pytorch.org/whl/cu128",
        "target_arch": "12.0",
        "python_version": "3.12.3",
        "python_tag": "cp312",
        "platform": "linux",
        "machine": "x86_64",
        "cudaarchs": "120",
        "required_min_cuda": "12.8",
        "built_for": "RTX 5090 (sm_120)",
        "built_from_repo": "https://github.com/thu-ml/SageAttention",
        "built_from_ref": "v2.2.0",
        "built_from_commit": "eb615cf6cf4d221338033340ee2de1c37fbdba4a",
        "builder_gpu_name": "NVIDIA GeForce RTX 5090",
        "builder_gpu_compute_capability": "12.0",
        "expected_sageattention_version": "2.2.0",
    }
    if older:
        for name in INSTALLER_NEWER_FIELDS:
            del record[name]
    record.update(changes)
    return record
