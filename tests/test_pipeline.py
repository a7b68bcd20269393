"""The real pipeline on the fixture recipe (a C extension with its own check), on CPU.

auto on an empty store builds, checks and publishes; a second auto against a fresh venv takes
the fetch path and installs the same wheel with no build; a tampered wheel is refused before
install; a moved tag is an error.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests import support

pytestmark = pytest.mark.slow


@pytest.fixture
def demo(tmp_path: Path) -> dict[str, object]:
    repo, commit = support.make_demo_repo(tmp_path / "demo-src")
    recipe = support.write_demo_recipe(tmp_path / "demo.toml", repo.as_uri(), commit)
    return {"repo": repo, "commit": commit, "recipe": recipe}


@pytest.fixture
def env(torch_index: str, tmp_path: Path, no_gpu_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "TORCH_INDEX_URL": torch_index,
        "SAGE_STORE": str(tmp_path / "store"),
        "SAGE_DIST": str(tmp_path / "dist"),
    }


def fresh_venv(path: Path, wheelhouse: Path) -> Path:
    return support.make_venv(path, wheelhouse, ("setuptools", "wheel"))


def stages(report: dict) -> dict[str, str]:
    return {s["stage"]: s["outcome"] for s in report["stages"]}


def test_auto_builds_publishes_then_a_fresh_venv_fetches_the_same_wheel(tasks, demo, env, wheelhouse, tmp_path):
    first_venv = fresh_venv(tmp_path / "venv1", wheelhouse)
    first = tasks("auto", "--python", str(first_venv), "--recipe", str(demo["recipe"]), "--json", env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    report = json.loads(first.stdout)
    assert stages(report) == {
        "probe": "ok",
        "index": "ok",
        "plan": "build",
        "pin": "installed",
        "fetch": "miss",
        "build": "ok",
        "install": "ok",
        "test-kernel": "passed",
        "publish": "published",
    }
    built = report["result"]["build"]["wheel"]
    assert Path(built).name.startswith("sage_demo-0.1.0+cu128torch2.8.0-")
    assert "compiling" in first.stderr or "building" in first.stderr  # progress while it runs

    store = tmp_path / "store" / "sageattention"
    index = json.loads((store / "index.json").read_text())
    [published] = index["wheels"]
    assert published["verification"]["status"] == "passed"
    assert published["source"]["commit"] == demo["commit"]
    assert (store / published["wheel_path"]).read_bytes() == Path(built).read_bytes()
    # the bash installer's pointer only ever names a wheel it installs on an RTX 5090: not a demo wheel
    assert not (store / "latest.json").exists()

    second_venv = fresh_venv(tmp_path / "venv2", wheelhouse)
    second = tasks("auto", "--python", str(second_venv), "--recipe", str(demo["recipe"]), "--json", env=env)
    assert second.returncode == 0, second.stderr[-3000:]
    again = json.loads(second.stdout)
    assert stages(again) == {
        "probe": "ok",
        "index": "ok",
        "plan": "fetch",
        "pin": "installed",
        "fetch": "hit",
        "test-kernel --quick": "passed",
    }
    assert again["result"]["fetch"]["wheel_file"] == published["wheel_file"]
    assert "pip wheel" not in second.stderr  # no build
    import_check = subprocess.run(
        [str(second_venv), "-c", "from sage_demo import _native; print(_native.weighted_sum([1.0, 2.0, 3.0]))"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert import_check.stdout.strip() == "14.0"
    assert support.installed_version(second_venv, "sage-demo") == "0.1.0+cu128torch2.8.0"

    # Third run on the same venv: everything satisfied, still no build, one summary table.
    third = tasks("auto", "--python", str(second_venv), "--recipe", str(demo["recipe"]), env=env)
    assert third.returncode == 0, third.stderr[-2000:]
    assert "satisfied" in third.stdout and "hit" in third.stdout
    for column in ("stage", "outcome", "seconds"):
        assert column in third.stdout


def test_tampered_wheel_is_refused_before_install(tasks, demo, env, wheelhouse, tmp_path, fault):
    fault("stored wheel altered, local store (refused)")
    builder = fresh_venv(tmp_path / "builder", wheelhouse)
    assert tasks("auto", "--python", str(builder), "--recipe", str(demo["recipe"]), env=env).returncode == 0
    store = tmp_path / "store" / "sageattention"
    [entry] = json.loads((store / "index.json").read_text())["wheels"]
    wheel = store / entry["wheel_path"]
    data = bytearray(wheel.read_bytes())
    data[len(data) // 2] ^= 0x01
    wheel.write_bytes(bytes(data))

    victim = fresh_venv(tmp_path / "victim", wheelhouse)
    assert tasks("pin", "--python", str(victim), env=env).returncode == 0
    result = tasks("fetch", "--python", str(victim), "--recipe", str(demo["recipe"]), env=env)
    assert result.returncode == 7, result.stderr
    assert "sha256" in result.stderr and "nothing was installed" in result.stderr
    assert support.installed_version(victim, "sage-demo") is None


def test_fetch_lists_rejected_candidates_with_reasons(tasks, demo, env, wheelhouse, tmp_path):
    builder = fresh_venv(tmp_path / "builder", wheelhouse)
    assert tasks("auto", "--python", str(builder), "--recipe", str(demo["recipe"]), env=env).returncode == 0
    other = fresh_venv(tmp_path / "other", wheelhouse)
    # A different torch (CPU build) in the target: the stored wheel no longer fits.
    subprocess.run(
        [str(other), "-m", "pip", "install", "-q", "--index-url", env["TORCH_INDEX_URL"], "torch==2.8.0+cpu"],
        check=True,
        env=support.offline_pip_env(env),
    )
    result = tasks("fetch", "--python", str(other), "--recipe", str(demo["recipe"]), "--dry-run", env=env)
    assert result.returncode == 3, result.stderr
    assert "rejected sage_demo-0.1.0+cu128torch2.8.0" in result.stderr
    assert "built for torch with CUDA 12.8, installed torch has CUDA None" in result.stderr


def test_a_moved_tag_is_an_error(tasks, demo, env, wheelhouse, tmp_path):
    repo = demo["repo"]
    (repo / "README").write_text("moved\n")
    support.git("add", "-A", cwd=repo)
    support.git("commit", "-qm", "move", cwd=repo)
    support.git("tag", "-f", "v0.1.0", cwd=repo)
    builder = fresh_venv(tmp_path / "builder", wheelhouse)
    assert tasks("pin", "--python", str(builder), env=env).returncode == 0
    result = tasks("build", "--python", str(builder), "--recipe", str(demo["recipe"]), env=env)
    assert result.returncode == 7, result.stderr
    assert "the ref moved" in result.stderr and demo["commit"] in result.stderr


def test_failed_check_is_recorded_and_never_published(tasks, demo, env, wheelhouse, tmp_path):
    builder = fresh_venv(tmp_path / "builder", wheelhouse)
    failing = {**env, "SAGE_DEMO_FORCE_FAIL": "1"}
    result = tasks("auto", "--python", str(builder), "--recipe", str(demo["recipe"]), "--json", env=failing)
    assert result.returncode == 5, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert stages(report)["test-kernel"] == "failed"
    assert "publish" not in stages(report)
    [manifest] = (tmp_path / "dist").glob("*.whl.json")
    assert json.loads(manifest.read_text())["verification"]["status"] == "failed"
    published = tasks("publish", "--recipe", str(demo["recipe"]), "--allow-unverified", env=env)
    assert published.returncode == 5 and "failed its kernel test" in published.stderr
    assert not (tmp_path / "store" / "sageattention" / "index.json").exists()


def test_unverified_wheels_need_allow_unverified(tasks, demo, env, wheelhouse, tmp_path):
    builder = fresh_venv(tmp_path / "builder", wheelhouse)
    no_gpu = {**env, "SAGE_DEMO_NO_GPU": "1"}
    refused = tasks("auto", "--python", str(builder), "--recipe", str(demo["recipe"]), env=no_gpu)
    assert refused.returncode == 9, refused.stderr[-2000:]
    assert not (tmp_path / "store" / "sageattention" / "index.json").exists()
    check = tasks("test-kernel", "--python", str(builder), "--recipe", str(demo["recipe"]), env=no_gpu)
    assert check.returncode == 9 and "unverified" in check.stderr
    allowed = tasks("publish", "--recipe", str(demo["recipe"]), "--allow-unverified", "--json", env=no_gpu)
    assert allowed.returncode == 0, allowed.stderr
    assert json.loads(allowed.stdout)["verification"] == "unverified"
    # the same bytes again: nothing changes
    again = tasks("publish", "--recipe", str(demo["recipe"]), "--allow-unverified", "--json", env=no_gpu)
    assert json.loads(again.stdout)["outcome"] == "unchanged"


def test_dry_run_changes_nothing(tasks, demo, env, wheelhouse, tmp_path):
    venv = fresh_venv(tmp_path / "venv", wheelhouse)
    result = tasks("auto", "--python", str(venv), "--recipe", str(demo["recipe"]), "--dry-run", "--json", env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert stages(report)["pin"] == "would install" and stages(report)["build"] == "would build"
    assert report["result"]["build_plan"]["command"][2:4] == ["pip", "wheel"]
    assert support.installed_version(venv, "torch") is None
    assert not (tmp_path / "store").exists() and not (tmp_path / "dist").exists()


def test_build_from_a_local_source_directory_reuses_the_work_tree(tasks, demo, env, wheelhouse, tmp_path):
    venv = fresh_venv(tmp_path / "venv", wheelhouse)
    assert tasks("pin", "--python", str(venv), env=env).returncode == 0
    args = ("build", "--python", str(venv), "--recipe", str(demo["recipe"]), "--source", str(demo["repo"]), "--json")
    first = tasks(*args, env=env)
    assert first.returncode == 0, first.stderr[-2000:]
    record = json.loads(first.stdout)
    manifest = json.loads(Path(record["manifest"]).read_text())
    assert manifest["source"]["commit"] == demo["commit"] and manifest["source"]["path"] == str(demo["repo"])
    assert Path(record["log"]).is_file() and "pip" in Path(record["log"]).read_text()
    second = tasks(*args, env=env)
    assert second.returncode == 0
    assert "0 file(s) changed since the last build" in second.stderr


def test_a_recipe_pinned_to_a_commit_fetches_that_commit(tasks, env, wheelhouse, tmp_path):
    repo, first = support.make_demo_repo(tmp_path / "demo-src")
    (repo / "README").write_text("later\n")
    support.git("add", "-A", cwd=repo)
    support.git("commit", "-qm", "later", cwd=repo)  # main moves on; the recipe still pins `first`
    recipe = tmp_path / "pinned.toml"
    recipe.write_text(
        support.write_demo_recipe(tmp_path / "base.toml", repo.as_uri(), first)
        .read_text()
        .replace('ref = "v0.1.0"\n', "")
    )
    venv = fresh_venv(tmp_path / "venv", wheelhouse)
    assert tasks("pin", "--python", str(venv), env=env).returncode == 0
    result = tasks("build", "--python", str(venv), "--recipe", str(recipe), "--json", env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    manifest = json.loads(Path(json.loads(result.stdout)["manifest"]).read_text())
    assert manifest["source"]["commit"] == first
    assert manifest["version"] == f"0.1.0+cu128torch2.8.0.g{first[:7]}"
