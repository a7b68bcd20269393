"""Fault injection: crashes, races, broken transfers, full disks, failed installs, quarantine.

Each test counts the faults it injects (printed at the end of the run, and used for
RELIABILITY.md). The promise: the store stays consistent, the environment is never left
half-installed, and the user gets one clear line.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import resource
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from urllib.parse import unquote

import pytest

from sage_tasks.store import manifest
from tests import support
from tests.hub_server import HubServer
from tests.test_build_kill import alive, descendants

pytestmark = pytest.mark.slow
ERROR = ("store error", "integrity error", "environment error", "build failed", "no compatible wheel")


# ---------------------------------------------------------------- helpers


def gone_all(pids: set[int], seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while any(alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def big_demo_wheel(dest: Path, version: str, megabytes: int = 4, tag: str = "py3-none-any") -> Path:
    """A demo wheel carrying an incompressible payload, so that writing it takes a while."""
    wheel = demo_wheel_with(dest, version, {"sage_demo/payload.bin": os.urandom(megabytes << 20)}, tag=tag)
    support.demo_manifest(wheel)
    return wheel


def demo_wheel_with(dest: Path, version: str, extra: dict[str, bytes | str], tag: str = "py3-none-any") -> Path:
    """The demo wheel with ``extra`` files, every one listed in RECORD (the installer checks it)."""
    files = {
        "sage_demo/__init__.py": f'__version__ = "{version}"\n',
        "sage_demo/_native.py": support.PURE_NATIVE,
        "sage_demo/selfcheck.py": support.DEMO_CHECK,
        **extra,
    }
    return support.make_wheel(dest, "sage-demo", version, files, tag=tag)


def store_problems(root: Path) -> list[str]:
    """Everything that would make a local store inconsistent (empty when it is fine)."""
    problems = []
    index_file = root / "index.json"
    if not index_file.exists():
        return problems
    index = manifest.index_from_dict(json.loads(index_file.read_text()), str(index_file))
    for entry in index.wheels:
        wheel = root / entry.wheel_path
        if ".tmp" in entry.wheel_path or not wheel.is_file():
            problems.append(f"{entry.wheel_file}: wheel missing")
            continue
        if hashlib.sha256(wheel.read_bytes()).hexdigest() != entry.wheel_sha256:
            problems.append(f"{entry.wheel_file}: wheel does not match")
        stored = root / entry.manifest_path
        if not stored.is_file() or manifest.read_manifest_file(stored).wheel_sha256 != entry.wheel_sha256:
            problems.append(f"{entry.wheel_file}: manifest missing or different")
    latest = root / "latest.json"
    if latest.exists():
        pointed = json.loads(latest.read_text())["wheel_file"]
        if index.get(pointed) is None:
            problems.append(f"latest.json points to {pointed}, not in the index")
    return problems


def indexed(root: Path) -> set[str]:
    index_file = root / "index.json"
    return {w["wheel_file"] for w in json.loads(index_file.read_text())["wheels"]} if index_file.exists() else set()


HARNESS = """
import sys
sys.path.insert(0, {repo!r})
from pathlib import Path
from sage_tasks.stages import publish
from sage_tasks.store.local import LocalStore
store = LocalStore(Path(sys.argv[1]), "sageattention")
print("ready", flush=True)
publish.publish(store, Path(sys.argv[2]), Path(sys.argv[2] + ".json"), allow_unverified=True)
print("done", flush=True)
"""


def one_line_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith(ERROR)]
    assert len(lines) == 1, stderr[-3000:]
    return lines[0]


# ---------------------------------------------------------------- 1. crash during publish


def test_kill_9_during_publish_never_leaves_the_store_inconsistent(tmp_path):
    base, root = tmp_path / "store", tmp_path / "store" / "sageattention"
    harness = HARNESS.format(repo=str(support.REPO))
    rng = random.Random()
    outcomes = {"indexed": 0, "wheel written, not indexed": 0, "nothing visible": 0}
    kills = 60
    for i in range(kills):
        wheel = big_demo_wheel(tmp_path / f"w{i}", f"0.1.{i}+cu128torch2.8.0")
        before = indexed(root)
        proc = subprocess.Popen(
            [sys.executable, "-c", harness, str(base), str(wheel)], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0, 0.06))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        problems = store_problems(root)
        after = indexed(root)
        # a fault only if the kill landed before the publish finished; survived: what we saw after it
        killed = int(proc.returncode == -signal.SIGKILL)
        kept = not problems and before <= after
        support.count_fault(
            "kill -9 during local publish", injected=killed, survived=killed * int(kept), lost=len(before - after)
        )
        assert not problems, f"after kill {i}: {problems}"
        assert before <= after, f"kill {i} lost {before - after}"
        if wheel.name in after:
            outcomes["indexed"] += 1
        elif (root / "wheels" / wheel.name).exists():
            outcomes["wheel written, not indexed"] += 1
        else:
            outcomes["nothing visible"] += 1
    print(f"\nkill -9 outcomes over {kills} publishes: {outcomes}")
    assert outcomes["indexed"] < kills, "no kill landed before the commit point"
    final = big_demo_wheel(tmp_path / "final", "0.2.0+cu128torch2.8.0")
    done = subprocess.run([sys.executable, "-c", harness, str(base), str(final)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert final.name in indexed(root) and not store_problems(root)
    assert not list(root.rglob(".*.tmp")), "leftovers of killed publishes were not cleaned up"


# ---------------------------------------------------------------- 2. concurrent publishers


def test_eight_concurrent_local_publishers(tasks, tmp_path):
    env = {**os.environ, "SAGE_STORE": str(tmp_path / "store")}
    wheels = [big_demo_wheel(tmp_path / f"d{i}", f"0.3.{i}+cu128torch2.8.0", megabytes=1) for i in range(8)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "invoke", "--search-root", str(support.REPO), "publish", "--wheel", str(w), "--allow-unverified"],
            cwd=tasks.cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for w in wheels
    ]  # fmt: skip
    codes = [p.wait(timeout=300) for p in procs]
    root = tmp_path / "store" / "sageattention"
    landed, problems = indexed(root), store_problems(root)
    # survived: publishers that exited 0 with their wheel indexed, in a store without problems
    published = sum(code == 0 and w.name in landed for code, w in zip(codes, wheels, strict=True))
    support.count_fault("concurrent local publishers", injected=len(procs), survived=published * (not problems))
    assert codes == [0] * 8, [p.stderr.read() for p in procs]
    assert landed == {w.name for w in wheels}
    assert not problems


# ---------------------------------------------------------------- 3. broken transfers (loopback Hub)


@pytest.fixture
def hub_env(tmp_path, torch_index, no_gpu_path):
    with HubServer().start() as hub:
        env = {
            **os.environ, "HF_ENDPOINT": hub.url, "HF_TOKEN": hub.token, "HF_REPO_ID": "tester/wheels",
            "TORCH_INDEX_URL": torch_index, "SAGE_RETRY_BASE_S": "0.05",
        }  # fmt: skip
        yield hub, env
        written = [p for p in tmp_path.rglob("*") if p.is_file() and not p.is_symlink()]
        assert not [p for p in written if hub.token.encode() in p.read_bytes()], "the token was written to disk"


def _published_on_hub(tasks, hub_env, tmp_path, megabytes=2):
    _, env = hub_env
    assert tasks("init-hf", env=env).returncode == 0
    wheel = big_demo_wheel(tmp_path / "dist", "0.1.0+cu128torch2.8.0", megabytes=megabytes)
    assert tasks("publish", "--wheel", str(wheel), "--allow-unverified", env=env).returncode == 0
    venv = support.make_venv(tmp_path / "venv")
    assert tasks("pin", "--python", str(venv), env=env).returncode == 0
    recipe = support.write_demo_recipe(tmp_path / "demo.toml", "file:///nonexistent", None)
    return wheel, venv, recipe


def no_partial_wheels(tmp_path: Path, good: Path) -> None:
    """Every .whl under tmp_path (caches included) is complete: same bytes as the published one."""
    digest = hashlib.sha256(good.read_bytes()).hexdigest()
    for path in tmp_path.rglob("*.whl"):
        if path.name == good.name and path.resolve().is_file() and path.resolve() != good.resolve():
            assert hashlib.sha256(path.resolve().read_bytes()).hexdigest() == digest, f"partial wheel at {path}"


def test_cut_downloads_are_resumed_or_fail_cleanly(tasks, hub_env, tmp_path, fault):
    fault("download cut every time (clear error)")
    hub, env = hub_env
    wheel, venv, recipe = _published_on_hub(tasks, hub_env, tmp_path)
    hub.cut_downloads(after_bytes=100_000, times=2)
    result = tasks("fetch", "--python", str(venv), "--recipe", str(recipe), env=env)
    cut = sum(1 for p in hub.cuts_served if p.endswith(wheel.name))  # wheel bodies the server cut short
    support.count_fault("download cut mid-body (retried)", injected=cut, survived=cut * int(result.returncode == 0))
    assert result.returncode == 0, result.stderr[-2000:]
    assert cut == 2, f"{cut} downloads were cut, 2 were meant to be"
    no_partial_wheels(tmp_path, wheel)

    other = support.make_venv(tmp_path / "venv-b")
    assert tasks("pin", "--python", str(other), env=env).returncode == 0
    cold = {**env, "HF_HOME": str(tmp_path / "cold-hf"), "SAGE_TASKS_CACHE": str(tmp_path / "cold-cache")}
    hub.cut_downloads(after_bytes=100_000, times=50)
    failed = tasks("fetch", "--python", str(other), "--recipe", str(recipe), env=cold)
    assert failed.returncode == 6, failed.stderr[-2000:]
    one_line_error(failed.stderr)
    assert support.installed_version(other, "sage-demo") is None
    no_partial_wheels(tmp_path, wheel)
    hub.clear_faults()


def test_503_and_429_storms(tasks, hub_env, tmp_path, fault):
    fault("429 forever on downloads (clear error)")
    hub, env = hub_env
    _, venv, recipe = _published_on_hub(tasks, hub_env, tmp_path, megabytes=1)
    other = support.make_venv(tmp_path / "venv-b")
    assert tasks("pin", "--python", str(other), env=env).returncode == 0
    cold = {**env, "HF_HOME": str(tmp_path / "hf-a"), "SAGE_TASKS_CACHE": str(tmp_path / "cache-a")}
    hub.fail_next("resolve", 503, times=3)  # index.json and manifests
    result = tasks("fetch", "--python", str(venv), "--recipe", str(recipe), env=cold)
    served = hub.faults_served.get("resolve", 0)
    read = result.returncode == 0 and support.installed_version(venv, "sage-demo") is not None
    support.count_fault("503 storm on store reads (retried)", injected=served, survived=served * read)
    assert result.returncode == 0, result.stderr[-2000:]
    assert served == 3

    # the wheel download itself: a fresh cache, and 503s answered only for the .whl
    hub.fail_next("resolve-wheel", 503, times=3)
    wheel_cold = {**env, "HF_HOME": str(tmp_path / "hf-w"), "SAGE_TASKS_CACHE": str(tmp_path / "cache-w")}
    third = support.make_venv(tmp_path / "venv-w")
    assert tasks("pin", "--python", str(third), env=env).returncode == 0
    got = tasks("fetch", "--python", str(third), "--recipe", str(recipe), env=wheel_cold)
    served = hub.faults_served.get("resolve-wheel", 0)
    assert served == 3, "the storm never reached the wheel download"
    installed = support.installed_version(third, "sage-demo") is not None
    support.count_fault("503 storm on wheel downloads (retried)", injected=served, survived=served * installed)
    assert got.returncode == 0 and installed, got.stderr[-2000:]

    hub.fail_always("resolve", 429)
    storm = {**env, "HF_HOME": str(tmp_path / "hf-b"), "SAGE_TASKS_CACHE": str(tmp_path / "cache-b")}
    failed = tasks("fetch", "--python", str(other), "--recipe", str(recipe), env=storm)
    assert failed.returncode == 6
    assert "HTTP 429" in one_line_error(failed.stderr)
    assert support.installed_version(other, "sage-demo") is None
    hub.clear_faults()


def test_wheel_url_download_resumes_after_a_cut(tasks, hub_env, tmp_path):
    hub, env = hub_env
    wheel, venv, recipe = _published_on_hub(tasks, hub_env, tmp_path)
    url = f"{hub.url}/datasets/tester/wheels/resolve/main/sageattention/wheels/{wheel.name}"
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    seen = len(hub.requests_log())
    hub.cut_downloads(after_bytes=300_000, times=2)
    with_url = {**env, "WHEEL_URL": url, "WHEEL_SHA256": digest, "SAGE_ALLOW_HTTP": "1"}
    result = tasks("fetch", "--python", str(venv), "--recipe", str(recipe), env=with_url)
    cut = sum(1 for p in hub.cuts_served if p.endswith(wheel.name))  # wheel bodies the server cut short
    gets = [h for m, p, h in hub.requests_log()[seen:] if m == "GET" and unquote(p).endswith(wheel.name)]
    ranges = [h for h in gets if any(k.lower() == "range" for k in h)]
    # survived: each cut followed by a resume (a Range request), and the wheel installed
    installed = result.returncode == 0 and support.installed_version(venv, "sage-demo") is not None
    support.count_fault(
        "WHEEL_URL download cut mid-body (resumed)", injected=cut, survived=min(cut, len(ranges)) * installed
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert cut == 2, f"{cut} wheel downloads were cut, 2 were meant to be"
    assert ranges, "the second attempt did not resume with a Range request"


# ---------------------------------------------------------------- 4. disk full / file-size limit


def _limited(megabytes: float):
    def apply() -> None:
        size = int(megabytes * (1 << 20))
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    return apply


def published_locally(tmp_path: Path, torch_index: str, wheel: Path) -> tuple[dict[str, str], list[str], Path]:
    """``wheel`` published (unverified allowed) to a local store under tmp_path, and a venv with
    the pinned stack: (environment, the invoke command, the venv's python)."""
    env = {**os.environ, "SAGE_STORE": str(tmp_path / "store"), "TORCH_INDEX_URL": torch_index}
    invoke = [sys.executable, "-m", "invoke", "--search-root", str(support.REPO)]
    published = subprocess.run(
        [*invoke, "publish", "--wheel", str(wheel), "--allow-unverified"], env=env, capture_output=True
    )
    assert published.returncode == 0, published.stderr
    venv = support.make_venv(tmp_path / "venv")
    assert subprocess.run([*invoke, "pin", "--python", str(venv)], env=env, capture_output=True).returncode == 0
    return env, invoke, venv


def test_file_size_limit_while_fetching(tmp_path, torch_index, no_gpu_path, fault):
    fault("file-size limit while downloading")
    wheel = big_demo_wheel(tmp_path / "dist", "0.1.0+cu128torch2.8.0", megabytes=6)
    env, invoke, venv = published_locally(tmp_path, torch_index, wheel)
    recipe = support.write_demo_recipe(tmp_path / "demo.toml", "file:///nonexistent", None)
    result = subprocess.run(
        [*invoke, "fetch", "--python", str(venv), "--recipe", str(recipe)],
        env=env, capture_output=True, text=True, preexec_fn=_limited(2),
    )  # fmt: skip
    assert result.returncode == 6, result.stderr[-2000:]
    line = one_line_error(result.stderr)
    assert "File too large" in line and str(tmp_path) in line
    cache = Path(env.get("SAGE_TASKS_CACHE", tmp_path))
    assert not list(cache.rglob("*.whl")) and not list(cache.rglob(".*.tmp")), "a partial wheel was left"
    assert support.installed_version(venv, "sage-demo") is None


def test_file_size_limit_while_building(tasks, tmp_path, torch_index, wheelhouse, no_gpu_path, fault):
    fault("file-size limit while building")
    repo, commit = support.make_demo_repo(tmp_path / "src")
    recipe = support.write_demo_recipe(tmp_path / "demo.toml", repo.as_uri(), commit)
    env = {**os.environ, "TORCH_INDEX_URL": torch_index, "SAGE_DIST": str(tmp_path / "dist")}
    venv = support.make_venv(tmp_path / "venv", wheelhouse, ("setuptools", "wheel"))
    assert tasks("pin", "--python", str(venv), env=env).returncode == 0
    result = subprocess.run(
        [sys.executable, "-m", "invoke", "--search-root", str(support.REPO), "build", "--python", str(venv), "--recipe", str(recipe)],
        env=env, capture_output=True, text=True, preexec_fn=_limited(0.004), cwd=tasks.cwd,
    )  # fmt: skip
    assert result.returncode in (4, 10), result.stderr[-2000:]
    line = one_line_error(result.stderr)
    assert "/" in line  # names a path
    dist = tmp_path / "dist"
    leftovers = [p.name for p in dist.glob("*")] if dist.exists() else []
    assert not [n for n in leftovers if n.endswith(".tmp") or (n.endswith(".whl") and f"{n}.json" not in leftovers)], (
        leftovers
    )
    again = tasks("build", "--python", str(venv), "--recipe", str(recipe), env=env)
    assert again.returncode == 0, again.stderr[-2000:]


# ---------------------------------------------------------------- 5. a failed install keeps the old one


def _package_files(venv: Path) -> dict[str, str]:
    """Every file of the demo package and its metadata (bytecode aside), with its sha256."""
    site = next((venv.parent.parent / "lib").glob("python3.*/site-packages"))
    return {
        str(p.relative_to(site)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in site.rglob("*")
        if p.is_file() and p.relative_to(site).parts[0].startswith("sage_demo") and "__pycache__" not in p.parts
    }


def test_failed_install_keeps_the_previous_installation(tasks, tmp_path, torch_index, no_gpu_path):
    env = {**os.environ, "SAGE_STORE": str(tmp_path / "store"), "TORCH_INDEX_URL": torch_index}
    recipe = support.write_demo_recipe(tmp_path / "demo.toml", "file:///nonexistent", None)
    v1 = support.demo_wheel(tmp_path / "v1", "0.1.0+cu128torch2.8.0")
    support.demo_manifest(v1)
    assert tasks("publish", "--wheel", str(v1), env=env).returncode == 0
    venv = support.make_venv(tmp_path / "venv")
    assert tasks("pin", "--python", str(venv), env=env).returncode == 0
    assert tasks("fetch", "--python", str(venv), "--recipe", str(recipe), env=env).returncode == 0
    before = _package_files(venv)
    invoke = [sys.executable, "-m", "invoke", "--search-root", str(support.REPO)]

    def counted(result: subprocess.CompletedProcess, code: int) -> None:
        """One failed install counted as it was seen (before the asserts): it survived if it failed
        with ``code`` and the previous installation's files are back byte for byte."""
        kept = result.returncode == code and _package_files(venv) == before
        support.count_fault("failed install (old one kept)", injected=1, survived=int(kept))

    # v2: a newer build (a 3 MB download) whose install writes a 6 MB file, under a 4 MB file-size limit
    v2 = demo_wheel_with(
        tmp_path / "v2", "0.1.0+cu128torch2.8.0.fix1", {"sage_demo/huge.txt": os.urandom(3 << 20).hex()}
    )
    support.demo_manifest(v2)
    assert tasks("publish", "--wheel", str(v2), env=env).returncode == 0
    result = subprocess.run(
        [*invoke, "fetch", "--python", str(venv), "--recipe", str(recipe)],
        env=env, capture_output=True, text=True, preexec_fn=_limited(4), cwd=tasks.cwd,
    )  # fmt: skip
    counted(result, 10)
    assert result.returncode == 10, result.stderr[-2000:]
    assert "previous installation (if any) was kept" in one_line_error(result.stderr)
    assert _package_files(venv) == before

    # v3: installs and imports fine, then fails its quick check: only the rollback can undo it
    v3 = support.demo_wheel(tmp_path / "v3", "0.1.0+cu128torch2.8.0.fix2")
    support.demo_manifest(v3)
    assert tasks("publish", "--wheel", str(v3), env=env).returncode == 0
    failing = {**env, "SAGE_DEMO_FORCE_FAIL": "1"}
    for command in ("fetch", "auto"):
        result = tasks(command, "--python", str(venv), "--recipe", str(recipe), env=failing)
        counted(result, 5)
        assert result.returncode == 5, result.stderr[-2000:]
        assert "kernel test failed" in result.stderr
        restored = [line for line in result.stderr.splitlines() if line.startswith("restored ")]
        assert restored == [
            f"restored sage-demo 0.1.0+cu128torch2.8.0 in {venv} "
            "(the install of sage-demo 0.1.0+cu128torch2.8.0 → 0.1.0+cu128torch2.8.0.fix2 was rolled back)"
        ], result.stderr[-2000:]
        last = result.stderr.strip().splitlines()[-1]  # the run ends on one line that says what was restored
        assert last.startswith("kernel test failed") and f"restored sage-demo 0.1.0+cu128torch2.8.0 in {venv}" in last
        assert support.installed_version(venv, "sage-demo") == "0.1.0+cu128torch2.8.0"
        assert _package_files(venv) == before, "the previous installation is not back byte for byte"
    # v4: its import raises (fetch used to install it and exit 0)
    v4 = demo_wheel_with(
        tmp_path / "v4", "0.1.0+cu128torch2.8.0.fix3", {"sage_demo/__init__.py": "import no_such_module\n"}
    )
    support.demo_manifest(v4)
    assert tasks("publish", "--wheel", str(v4), env=env).returncode == 0
    result = tasks("fetch", "--python", str(venv), "--recipe", str(recipe), env=env)
    counted(result, 10)
    assert result.returncode == 10, result.stderr[-2000:]
    assert (
        "`import sage_demo`" in one_line_error(result.stderr)
        and "\nrestored sage-demo 0.1.0+cu128torch2.8.0" in result.stderr
    )
    assert _package_files(venv) == before
    # a WHEEL_URL wheel must be the recipe's package
    torch = support.standin_torch_stack(tmp_path / "torch")[0]
    digest = hashlib.sha256(torch.read_bytes()).hexdigest()
    result = tasks("fetch", "--python", str(venv), "--recipe", str(recipe), env={**env, "WHEEL_URL": torch.as_uri(), "WHEEL_SHA256": digest, "SAGE_ALLOW_INSECURE_URLS": "1"})  # fmt: skip
    counted(result, 7)
    assert result.returncode == 7 and "not a sage-demo wheel" in one_line_error(result.stderr), result.stderr[-2000:]
    assert _package_files(venv) == before
    works = subprocess.run(
        [str(venv), "-m", "sage_demo.selfcheck", "--report", str(tmp_path / "r.json")], capture_output=True, text=True
    )
    assert works.returncode == 0, works.stdout + works.stderr


# ---------------------------------------------------------------- 8. quarantine


def test_yank_quarantines_and_auto_replaces_a_yanked_install(
    tasks, tmp_path, torch_index, wheelhouse, no_gpu_path, fault
):
    fault("yanked wheel installed (replaced by auto)")
    env = {**os.environ, "SAGE_STORE": str(tmp_path / "store"), "TORCH_INDEX_URL": torch_index}
    recipe = support.write_demo_recipe(tmp_path / "demo.toml", "file:///nonexistent", None)
    bad = support.demo_wheel(tmp_path / "bad", "0.1.0+cu128torch2.8.0")
    support.demo_manifest(bad, created_at="2026-11-20T00:00:00Z")
    assert tasks("publish", "--wheel", str(bad), env=env).returncode == 0
    venv = support.make_venv(tmp_path / "venv")
    assert tasks("auto", "--python", str(venv), "--recipe", str(recipe), env=env).returncode == 0
    assert support.installed_version(venv, "sage-demo") == "0.1.0+cu128torch2.8.0"

    yanked = tasks("yank", bad.name, "--reason", "wrong numbers on sm_120", "--json", env=env)
    assert yanked.returncode == 0, yanked.stderr
    assert json.loads(yanked.stdout)["yanked"]["reason"] == "wrong numbers on sm_120"
    root = tmp_path / "store" / "sageattention"
    assert (root / "wheels" / bad.name).is_file()  # the file is kept
    refused = tasks("fetch", "--python", str(venv), "--recipe", str(recipe), "--dry-run", env=env)
    assert refused.returncode == 3 and "yanked at" in refused.stderr and "wrong numbers on sm_120" in refused.stderr

    good = support.demo_wheel(tmp_path / "good", "0.1.0+cu128torch2.8.0.fix1")
    support.demo_manifest(good)
    assert tasks("publish", "--wheel", str(good), env=env).returncode == 0
    replaced = tasks("auto", "--python", str(venv), "--recipe", str(recipe), env=env)
    assert replaced.returncode == 0, replaced.stderr[-2000:]
    assert "was yanked" in replaced.stderr
    assert support.installed_version(venv, "sage-demo") == "0.1.0+cu128torch2.8.0.fix1"

    assert tasks("unyank", bad.name, env=env).returncode == 0
    assert json.loads((root / "index.json").read_text())["wheels"][0]["yanked"] is None
    assert not store_problems(root)


# ---------------------------------------------------------------- 9. interrupted build


def test_an_interrupted_build_recovers(tasks, tmp_path, torch_index, wheelhouse, no_gpu_path):
    repo, commit = support.make_demo_repo(tmp_path / "src")
    recipe = support.write_demo_recipe(tmp_path / "demo.toml", repo.as_uri(), commit)
    env = {**os.environ, "TORCH_INDEX_URL": torch_index, "SAGE_DIST": str(tmp_path / "dist")}
    venv = support.make_venv(tmp_path / "venv", wheelhouse, ("setuptools", "wheel"))
    assert tasks("pin", "--python", str(venv), env=env).returncode == 0
    args = [
        sys.executable,
        "-m",
        "invoke",
        "--search-root",
        str(support.REPO),
        "build",
        "--python",
        str(venv),
        "--source",
        str(repo),
        "--recipe",
        str(recipe),
    ]
    # The kill must land while the compiler runs (not during start-up or the source copy): a
    # compiler wrapper (CC) notes its pid, holds (longer than a tree that outlived the kill may
    # take to be noticed), then runs the real compiler.
    marker = tmp_path / "compiler.pids"
    slow_cc = tmp_path / "slow-cc"
    slow_cc.write_text(f'#!/bin/sh\necho $$ >> "{marker}"\nsleep 30\nexec cc "$@"\n')
    slow_cc.chmod(0o755)
    slow = {**env, "CC": str(slow_cc)}
    killed_compiling = 0
    for _ in range(3):
        seen = len(marker.read_text().split()) if marker.exists() else 0
        proc = subprocess.Popen(
            args, env=slow, cwd=tasks.cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (len(marker.read_text().split()) if marker.exists() else 0) == seen:
            time.sleep(0.05)
        compiler = int(marker.read_text().split()[-1])
        tree = descendants(proc.pid)  # invoke → guard → pip → setup.py → the compiler
        running = compiler in tree
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        killed_compiling += running
        # the build's tree is in its own session: it must end with sage-tasks, not write on into
        # the build tree while the next build runs (the cause of this test's old flakiness)
        ended = gone_all(tree)
        if not ended:  # counted here: the assert below ends the test
            support.count_fault("kill -9 of the compiler during a build", injected=killed_compiling, survived=0)
        assert ended, f"{sorted(p for p in tree if alive(p))} outlived the kill -9 of the build"
    again = subprocess.run([*args, "--json"], env=env, cwd=tasks.cwd, capture_output=True, text=True)
    # survived: the kills that landed while the compiler ran, provided the next build then succeeds
    recovered = again.returncode == 0
    support.count_fault(
        "kill -9 of the compiler during a build", injected=killed_compiling, survived=killed_compiling * recovered
    )
    assert killed_compiling == 3, "a kill did not land while the compiler ran"
    assert recovered, again.stderr[-2000:]
    wheel = json.loads(again.stdout)["wheel"]
    check = subprocess.run(
        [str(venv), "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", wheel],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr
    out = subprocess.run(
        [str(venv), "-c", "from sage_demo import _native; print(_native.weighted_sum([1.0, 1.0]))"],
        capture_output=True,
        text=True,
    )
    assert out.stdout.strip() == "3.0"

    # changed inputs: the next build must compile the new source, not reuse stale objects
    native = repo / "csrc" / "native.c"
    native.write_text(native.read_text().replace("total += (double)(i + 1) * x;", "total += (double)(i + 2) * x;"))
    rebuilt = subprocess.run([*args, "--json"], env=env, cwd=tasks.cwd, capture_output=True, text=True)
    assert rebuilt.returncode == 0, rebuilt.stderr[-2000:]
    subprocess.run(
        [
            str(venv),
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--force-reinstall",
            json.loads(rebuilt.stdout)["wheel"],
        ],
        check=True,
    )
    out = subprocess.run(
        [str(venv), "-c", "from sage_demo import _native; print(_native.weighted_sum([1.0, 1.0]))"],
        capture_output=True,
        text=True,
    )
    assert out.stdout.strip() == "5.0"


# ---------------------------------------------------------------- 6. static promises


def test_tls_verification_is_never_disabled():
    code = "\n".join(p.read_text() for p in (support.REPO / "sage_tasks").rglob("*.py"))
    for needle in (
        "verify=False",
        "_create_unverified_context",
        "CERT_NONE",
        "check_hostname = False",
        "HF_HUB_DISABLE_SSL",
    ):
        assert needle not in code, needle


def test_manifest_archs_that_disagree_with_the_binaries_are_rejected(tmp_path, torch_index, no_gpu_path, fault):
    fault("manifest archs disagree with the binaries")
    import shutil

    nvcc = shutil.which("nvcc") or "/usr/local/cuda/bin/nvcc"
    if not Path(nvcc).exists():
        pytest.skip("needs nvcc to make a real fatbin")
    src = tmp_path / "k.cu"
    src.write_text("__global__ void k(float* x) { x[0] = 1.0f; }\n")
    so = tmp_path / "k.so"
    subprocess.run(
        [nvcc, "-shared", "-Xcompiler", "-fPIC", "-gencode", "arch=compute_90a,code=sm_90a", str(src), "-o", str(so)],
        check=True,
    )
    wheel = support.demo_wheel(tmp_path / "dist", "0.1.0+cu128torch2.8.0")
    with zipfile.ZipFile(wheel, "a") as zf:
        zf.write(so, "sage_demo/_k.cpython-311-x86_64-linux-gnu.so")
    support.demo_manifest(wheel, cuda_archs=("sm_120",), target_arch="12.0")  # the claim: RTX 5090 code
    recipe = tmp_path / "cuda-demo.toml"
    recipe.write_text(
        support.write_demo_recipe(tmp_path / "d.toml", "file:///x", None)
        .read_text()
        .replace("cuda = false", 'cuda = true\nsupported_archs = ["9.0", "12.0"]')
    )
    env, invoke, venv = published_locally(tmp_path, torch_index, wheel)
    result = subprocess.run(
        [*invoke, "fetch", "--python", str(venv), "--recipe", str(recipe), "--arch", "12.0"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 7, result.stderr[-2000:]
    assert "carries machine code for sm_90a, its manifest claims sm_120" in one_line_error(result.stderr)
    assert support.installed_version(venv, "sage-demo") is None


def test_an_unreachable_hub_is_an_error_not_a_stale_index(tasks, hub_env, tmp_path, fault):
    fault("Hub unreachable after a yank (no stale index)")
    hub, env = hub_env
    wheel, venv, recipe = _published_on_hub(tasks, hub_env, tmp_path, megabytes=1)
    assert (
        tasks("fetch", "--python", str(venv), "--recipe", str(recipe), "--dry-run", env=env).returncode == 0
    )  # cached
    assert tasks("yank", wheel.name, "--reason", "broken", env=env).returncode == 0
    hub.fail_always("repo-info", 503)
    stale = tasks("fetch", "--python", str(venv), "--recipe", str(recipe), "--dry-run", env=env)
    assert stale.returncode == 6, stale.stderr[-2000:]
    assert "HTTP 503" in one_line_error(stale.stderr)
    hub.clear_faults()
    fresh = tasks("fetch", "--python", str(venv), "--recipe", str(recipe), "--dry-run", env=env)
    assert fresh.returncode == 3 and "yanked" in fresh.stderr
