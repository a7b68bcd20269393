"""Shared fixtures: every test gets its own HOME, caches and store; nothing reaches the internet."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests import support

SCRUBBED = (
    "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_REPO_ID", "HF_REPO_TYPE", "HF_PRIVATE", "HF_ENDPOINT",
    "REMOTE_DIR", "TORCH_VERSION", "TORCHVISION_VERSION", "TORCHAUDIO_VERSION", "TRITON_VERSION",
    "TORCH_INDEX_URL", "SAGE_VERSION", "SAGE_SOURCE_REPO", "SAGE_SOURCE_REF", "TORCH_CUDA_ARCH_LIST",
    "MAX_JOBS", "EXT_PARALLEL", "WHEEL_URL", "WHEEL_SHA256", "ALLOW_UNSAFE_WHEEL", "PYTHON_BIN",
    "SAGE_STORE", "SAGE_DIST", "SAGE_RECIPE", "SAGE_STACK", "SAGE_SOURCE_DIR", "CUDA_HOME", "CUDA_PATH",
    "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_CONSTRAINT", "GITHUB_ACTIONS",
)  # fmt: skip


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """HOME, caches, the default store and pip's configuration all point into tmp_path."""
    home = tmp_path / "home"
    home.mkdir()
    for name in SCRUBBED:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    monkeypatch.setenv("HF_HOME", str(home / ".cache" / "huggingface"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    monkeypatch.setenv("PIP_NO_INPUT", "1")
    monkeypatch.setenv("SAGE_TASKS_CACHE", str(home / ".cache" / "sage-tasks"))
    return home


@pytest.fixture
def no_gpu_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """PATH without nvidia-smi (the system's own tools stay reachable)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    parts = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and not Path(p, "nvidia-smi").exists()]
    monkeypatch.setenv("PATH", os.pathsep.join([str(bin_dir), *parts]))
    return bin_dir


@pytest.fixture
def rtx5090(no_gpu_path: Path) -> Path:
    """A stand-in nvidia-smi on PATH answering like a real RTX 5090."""
    return support.install_fake_nvidia_smi(no_gpu_path)


@dataclass(frozen=True)
class Tasks:
    """Runs the real invoke tasks in a subprocess, as a user would."""

    cwd: Path

    def __call__(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "invoke", "--search-root", str(support.REPO), *args],
            cwd=self.cwd,
            env=env or dict(os.environ),
            capture_output=True,
            text=True,
            timeout=timeout,
        )


@pytest.fixture
def tasks(tmp_path: Path) -> Tasks:
    work = tmp_path / "work"
    work.mkdir()
    return Tasks(work)


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """setuptools, wheel and packaging repacked from this interpreter: venvs get them offline."""
    house = tmp_path_factory.mktemp("wheelhouse")
    for name in ("setuptools", "wheel", "packaging"):
        support.repack_installed(name, house)
    return house


@pytest.fixture(scope="session")
def torch_index(tmp_path_factory: pytest.TempPathFactory, wheelhouse: Path) -> str:
    """A local PEP 503 index at .../whl/cu128 with stand-in torch 2.8.0+cu128 stack wheels
    (and a CPU torch build and older torchaudio, for mismatch tests), plus the build
    requirements from the wheelhouse, so that no pip process needs the internet."""
    root = tmp_path_factory.mktemp("index")
    built = root / "built"
    wheels = support.standin_torch_stack(built)
    wheels += support.standin_torch_stack(
        built / "cpu", torch="2.8.0+cpu", vision="0.23.0+cpu", audio="2.8.0+cpu", cuda=None
    )[:1]
    wheels.append(support.make_wheel(built / "old", "torchaudio", "2.7.0+cu128", {"torchaudio/__init__.py": ""}))
    wheels += sorted(wheelhouse.glob("*.whl"))
    return support.build_simple_index(root / "whl" / "cu128", wheels)


@pytest.fixture(scope="session")
def torch_index_http(torch_index: str) -> Iterator[str]:
    """The same index served over HTTP on loopback (as uv and pip download from a real one);
    needs SAGE_ALLOW_INSECURE_URLS=1 in the environment of a command given it."""
    served = Path(urlsplit(torch_index).path)
    root = served.parent.parent  # .../whl/cu128 -> the folder holding whl/

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/{served.relative_to(root).as_posix()}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def fault(request):
    """``fault(kind)``: this test injects one fault of ``kind``. It counts as survived only if the
    test then passes (read from the test's own report), never by a literal."""
    kinds: list[str] = []
    request.node.stash[_FAULT_KINDS] = kinds
    return kinds.append


_FAULT_KINDS = pytest.StashKey[list]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call" and not report.skipped:  # a skipped test injected nothing
        for kind in item.stash.get(_FAULT_KINDS, []):
            support.count_fault(kind, injected=1, survived=int(report.passed))
    return report


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Print the fault-injection counts (and save them when SAGE_RELIABILITY_OUT is set)."""
    if not support.FAULTS:
        return
    terminalreporter.section("fault injection")
    for kind, counts in sorted(support.FAULTS.items()):
        terminalreporter.write_line(
            f"{kind:45} injected {counts['injected']:5d}  survived {counts['survived']:5d}  data lost {counts['lost']}"
        )
    out = os.environ.get("SAGE_RELIABILITY_OUT")
    if out:
        import json

        Path(out).write_text(json.dumps(support.FAULTS, indent=1, sort_keys=True))
