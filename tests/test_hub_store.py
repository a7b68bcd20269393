"""The Hub store against a Hub-compatible server on loopback that the suite starts itself
(tests/hub_server.py); the real huggingface_hub client talks to it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote

import pytest

from tests import support
from tests.hub_server import HubServer

pytestmark = pytest.mark.slow
REPO_ID = "tester/sage-wheels"


@pytest.fixture
def hub(tmp_path: Path):
    """The loopback Hub; afterwards, nothing anything wrote under tmp_path may hold its token."""
    with HubServer().start() as server:
        yield server
        written = [p for p in tmp_path.rglob("*") if p.is_file() and not p.is_symlink()]
        assert not [p for p in written if server.token.encode() in p.read_bytes()], "the token was written to disk"


@pytest.fixture
def recipe(tmp_path: Path) -> Path:
    return support.write_demo_recipe(tmp_path / "demo.toml", "file:///nonexistent/demo", None)


@pytest.fixture
def env(hub, torch_index: str, tmp_path: Path, no_gpu_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "HF_ENDPOINT": hub.url,
        "HF_TOKEN": hub.token,
        "HF_REPO_ID": REPO_ID,
        "TORCH_INDEX_URL": torch_index,
        "SAGE_RETRY_BASE_S": "0.05",
        "SAGE_DIST": str(tmp_path / "dist"),
    }


def venv_with_stack(tasks, path: Path, env: dict[str, str]) -> Path:
    python = support.make_venv(path)
    assert tasks("pin", "--python", str(python), env=env).returncode == 0
    return python


def publish_demo(tasks, env, dist: Path, version: str = "0.1.0+cu128torch2.8.0", status: str = "passed"):
    wheel = support.demo_wheel(dist, version)
    support.demo_manifest(wheel, status)
    return wheel, tasks("publish", "--wheel", str(wheel), "--json", "--allow-unverified", env=env)


def test_init_hf_is_idempotent(tasks, hub, env):
    dry = tasks("init-hf", "--dry-run", "--json", env=env)
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["action"].startswith("would create")
    assert hub.head_commit(REPO_ID) is None

    first = tasks("init-hf", "--json", env=env)
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["user"] == "tester" and report["action"] == "created" and report["card"] == "written"
    commits = hub.commit_count(REPO_ID)
    card = hub.repo_files(REPO_ID)["README.md"].decode()
    assert "index.json" in card and "invoke auto" in card

    second = tasks("init-hf", "--json", env=env)
    assert second.returncode == 0, second.stderr
    again = json.loads(second.stdout)
    assert again["existed"] is True and again["card"] == "up to date"
    assert hub.commit_count(REPO_ID) == commits


def test_publish_fetch_into_fresh_venv_then_offline_from_cache(tasks, hub, env, recipe, tmp_path):
    assert tasks("init-hf", env=env).returncode == 0
    wheel, published = publish_demo(tasks, env, tmp_path / "dist")
    assert published.returncode == 0, published.stderr
    files = hub.repo_files(REPO_ID)
    assert f"sageattention/wheels/{wheel.name}" in files
    assert f"sageattention/manifests/{wheel.name}.json" in files
    index = json.loads(files["sageattention/index.json"])
    assert [w["wheel_file"] for w in index["wheels"]] == [wheel.name]
    # a demo wheel is nothing the bash installer would install on an RTX 5090: no latest.json
    # (tests/test_installer_interop.py covers the wheels that get one, and their hf_wheel_url)
    assert "sageattention/latest.json" not in files

    venv = venv_with_stack(tasks, tmp_path / "venv", env)
    fetched = tasks("fetch", "--python", str(venv), "--recipe", str(recipe), "--json", env=env)
    assert fetched.returncode == 0, fetched.stderr
    assert support.installed_version(venv, "sage-demo") == "0.1.0+cu128torch2.8.0"
    gets = lambda: sum(1 for m, p, _ in hub.requests_log() if m == "GET" and unquote(p).endswith(wheel.name))  # noqa: E731
    downloads = gets()
    assert downloads >= 1, "the first fetch downloaded nothing (or the count cannot see it)"

    # a second fetch on this machine downloads nothing
    venv2 = venv_with_stack(tasks, tmp_path / "venv2", env)
    assert tasks("fetch", "--python", str(venv2), "--recipe", str(recipe), env=env).returncode == 0
    assert gets() == downloads

    offline = {**env, "HF_HUB_OFFLINE": "1"}
    venv3 = venv_with_stack(tasks, tmp_path / "venv3", env)
    before = len(hub.requests_log())
    result = tasks("fetch", "--python", str(venv3), "--recipe", str(recipe), env=offline)
    assert result.returncode == 0, result.stderr
    assert len(hub.requests_log()) == before  # nothing reached the server
    assert support.installed_version(venv3, "sage-demo") == "0.1.0+cu128torch2.8.0"


def test_four_concurrent_publishers_all_land(tasks, hub, env, tmp_path):
    assert tasks("init-hf", env=env).returncode == 0
    procs = []
    wheels = []
    for n in range(4):
        dist = tmp_path / f"dist{n}"
        wheel = support.demo_wheel(dist, f"0.1.{n}+cu128torch2.8.0")
        support.demo_manifest(wheel)
        wheels.append(wheel.name)
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "invoke", "--search-root", str(support.REPO), "publish", "--wheel", str(wheel)],
                cwd=tasks.cwd,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    files = hub.repo_files(REPO_ID)
    index = json.loads(files.get("sageattention/index.json", b'{"wheels": []}'))
    # survived: publishers whose wheel is in the index afterwards, with its file in the repo
    landed = {w["wheel_file"] for w in index["wheels"] if f"sageattention/{w['wheel_path']}" in files}
    support.count_fault("concurrent Hub publishers", injected=len(procs), survived=len(landed & set(wheels)))
    assert all(code == 0 for code, _ in results), results
    assert sorted(w["wheel_file"] for w in index["wheels"]) == sorted(wheels)
    for entry in index["wheels"]:
        assert f"sageattention/{entry['wheel_path']}" in files
    assert any("412" in err for _, err in results)  # at least one had to merge


def test_publish_retries_503_then_succeeds(tasks, hub, env, tmp_path):
    assert tasks("init-hf", env=env).returncode == 0
    before = hub.commit_count(REPO_ID)
    hub.fail_next("commit", 503, times=2)
    _, published = publish_demo(tasks, env, tmp_path / "dist")
    served = hub.faults_served.get("commit", 0)  # the 503s the server actually answered
    landed = hub.commit_count(REPO_ID) - before
    support.count_fault(
        "503 twice on the Hub commit (retried)",
        injected=served,
        survived=served * (landed == 1 and published.returncode == 0),
    )
    assert published.returncode == 0, published.stderr
    assert served == 2, f"{served} commits were answered 503, 2 were meant to be"
    assert "HTTP 503; retrying" in published.stderr
    assert landed == 1


def test_publish_gives_up_on_500_forever_and_changes_nothing(tasks, hub, env, tmp_path, fault):
    fault("500 forever on the Hub commit (repo unchanged)")
    assert tasks("init-hf", env=env).returncode == 0
    head, files = hub.head_commit(REPO_ID), hub.repo_files(REPO_ID)
    hub.fail_always("commit", 500)
    _, published = publish_demo(tasks, env, tmp_path / "dist")
    assert published.returncode == 6
    [line] = [line for line in published.stderr.splitlines() if line.startswith("store error")]
    assert "HTTP 500" in line
    assert hub.head_commit(REPO_ID) == head and hub.repo_files(REPO_ID) == files


def test_stored_wheel_that_no_longer_matches_is_refused(tasks, hub, env, recipe, tmp_path, fault):
    fault("stored wheel altered on the Hub (refused)")
    assert tasks("init-hf", env=env).returncode == 0
    wheel, published = publish_demo(tasks, env, tmp_path / "dist")
    assert published.returncode == 0
    evil = support.demo_wheel(tmp_path / "evil", "0.1.0+cu128torch2.8.0")
    data = bytearray(evil.read_bytes())
    data[-100] ^= 0xFF
    hub.put_files(REPO_ID, {f"sageattention/wheels/{wheel.name}": bytes(data)})
    venv = venv_with_stack(tasks, tmp_path / "venv", env)
    result = tasks("fetch", "--python", str(venv), "--recipe", str(recipe), env=env)
    assert result.returncode == 7, result.stderr
    assert "nothing was installed" in result.stderr
    assert support.installed_version(venv, "sage-demo") is None


def test_bash_installer_layout_is_still_readable(tasks, hub, env, recipe, tmp_path):
    wheel = support.demo_wheel(tmp_path / "legacy", "0.1.0+cu128torch2.8.0")
    import hashlib

    latest = support.legacy_latest(
        wheel.name,
        hashlib.sha256(wheel.read_bytes()).hexdigest(),
        created_at_utc="2026-02-10T00:00:00Z",
        sageattention_version="0.1.0",
        python_tag="cp311",
    )
    for absent in ("builder_gpu_name", "builder_gpu_compute_capability"):
        del latest[absent]
    hub.put_files(
        REPO_ID,
        {
            "sageattention220/latest.json": json.dumps(latest).encode(),
            f"sageattention220/{wheel.name}": wheel.read_bytes(),
        },
    )
    venv = venv_with_stack(tasks, tmp_path / "venv", env)
    result = tasks("fetch", "--python", str(venv), "--recipe", str(recipe), env=env)
    assert result.returncode == 0, result.stderr
    assert "bash installer" in result.stderr
    assert support.installed_version(venv, "sage-demo") == "0.1.0+cu128torch2.8.0"


def test_wrong_token_is_one_clear_line_and_never_printed(tasks, hub, env, recipe, tmp_path):
    assert tasks("init-hf", env=env).returncode == 0
    hub.set_private(REPO_ID, True)
    wrong = "hf_wrong_token_wrong_token_1234"  # shaped unlike a real token on purpose
    bad = {**env, "HF_TOKEN": wrong}
    venv = support.make_venv(tmp_path / "venv")
    results = [
        (args, tasks(*args, env=bad))
        for args in (
            ("fetch", "--python", str(venv), "--recipe", str(recipe)),
            ("init-hf",),
            ("publish", "--wheel", str(publish_demo_files(tmp_path))),
        )
    ]
    errors = [[line for line in r.stderr.splitlines() if line.startswith("store error")] for _, r in results]
    outputs = [r.stdout + r.stderr for _, r in results]
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p.stat().st_size < 5_000_000]
    on_disk = [p for p in written if wrong.encode() in p.read_bytes()]
    # survived: runs refused (exit 6, one store error line) whose output holds neither token
    refused = [
        r.returncode == 6 and len(lines) == 1 and wrong not in text and hub.token not in text
        for (_, r), lines, text in zip(results, errors, outputs, strict=True)
    ]
    support.count_fault(
        "wrong token (one line, never printed)", injected=len(results), survived=sum(refused) * (not on_disk)
    )
    for (args, result), lines in zip(results, errors, strict=True):
        assert result.returncode == 6, (args, result.stderr)
        assert len(lines) == 1, result.stderr
    assert "refused the token" in outputs[0]
    for text in outputs:
        assert wrong not in text and hub.token not in text
    assert not on_disk


def publish_demo_files(tmp_path: Path) -> Path:
    wheel = support.demo_wheel(tmp_path / "dist-token", "0.1.0+cu128torch2.8.0")
    support.demo_manifest(wheel)
    return wheel
