"""Bad input: one clear line naming the problem and what to do, a distinct exit code, and
nothing changed in the store or the environment."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import pytest

from tests import support

pytestmark = pytest.mark.slow
ERROR_LINE = re.compile(
    r"^(config error|store error|integrity error|environment error|no compatible wheel|machine unsuitable)(: .*)$"
)


def snapshot(*roots: Path) -> dict[str, str]:
    found = {}
    for root in roots:
        for path in sorted(root.rglob("*")) if root.exists() else []:
            if path.is_file() and path.name != ".lock":
                found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


@pytest.fixture(scope="module")
def world(tmp_path_factory, torch_index):
    """A store with one published demo wheel, and a venv with the pinned stack."""
    root = tmp_path_factory.mktemp("world")
    store = root / "store"
    env = {
        **os.environ,
        "SAGE_STORE": str(store),
        "TORCH_INDEX_URL": torch_index,
        "PIP_CONFIG_FILE": os.devnull,
        "HOME": str(root / "home"),
        "SAGE_TASKS_CACHE": str(root / "cache"),
    }
    wheel = support.demo_wheel(root / "dist")
    support.demo_manifest(wheel)
    from tests.conftest import Tasks

    tasks = Tasks(root)
    assert tasks("publish", "--wheel", str(wheel), env=env).returncode == 0
    venv = support.make_venv(root / "venv")
    assert tasks("pin", "--python", str(venv), env=env).returncode == 0
    recipe = support.write_demo_recipe(root / "demo.toml", "file:///nonexistent", None)
    return {"root": root, "store": store, "env": env, "venv": venv, "recipe": recipe, "wheel": wheel, "tasks": tasks}


def run_bad(world, *args, env=None):
    env = env or world["env"]
    site = next((world["venv"].parent.parent / "lib").glob("python3.*/site-packages"))
    before = snapshot(world["store"], site)
    result = world["tasks"](*args, env=env)
    errors = [line for line in result.stderr.splitlines() if ERROR_LINE.match(line)]
    assert len(errors) == 1, result.stderr
    assert snapshot(world["store"], site) == before, "the store or the environment changed"
    return result.returncode, errors[0]


def test_unknown_recipe(world):
    code, line = run_bad(world, "fetch", "--python", str(world["venv"]), "--recipe", "sageattention-9.9")
    assert code == 2 and "unknown recipe 'sageattention-9.9'" in line and "did you mean 'sageattention-2.2.0'" in line


def test_unsupported_arch(world):
    code, line = run_bad(world, "build", "--python", str(world["venv"]), "--arch", "7.5")
    assert code == 2 and "cannot be built for arch 7.5" in line and "12.0" in line
    code, line = run_bad(world, "build", "--python", str(world["venv"]), "--arch", "sm_xyz")
    assert code == 2 and "'sm_xyz' is not a GPU architecture" in line


def test_nonexistent_python(world):
    code, line = run_bad(world, "fetch", "--python", "/nonexistent/bin/python")
    assert code == 10 and "does not exist" in line and "--python" in line


def test_malformed_manifest(world, tmp_path):
    wheel = support.demo_wheel(tmp_path / "dist")
    Path(f"{wheel}.json").write_text('{"package": "sage-demo", "version": ')
    code, line = run_bad(world, "publish", "--wheel", str(wheel), "--allow-unverified")
    assert code == 7 and "not valid JSON" in line


def test_manifest_with_a_path_in_its_wheel_name(world, tmp_path, fault):
    fault("hostile wheel names (index, manifest, wheel members)")
    wheel = support.demo_wheel(tmp_path / "dist")
    entry = support.demo_manifest(wheel).to_dict()
    entry["wheel_file"] = "../../etc/evil-0.1-py3-none-any.whl"
    Path(f"{wheel}.json").write_text(json.dumps(entry))
    code, line = run_bad(world, "publish", "--wheel", str(wheel), "--allow-unverified")
    assert code == 7 and "malformed" in line, line


@pytest.mark.parametrize(
    "name",
    [
        "..%2F..%2Fevil-0.1-py3-none-any.whl",
        "sub/dir-0.1-py3-none-any.whl",
        "/abs-0.1-py3-none-any.whl",
        "a-0.1-py3-none-any.whl\n",
    ],
)
def test_index_with_hostile_wheel_names(world, name, fault):
    fault("hostile wheel names (index, manifest, wheel members)")
    index_path = world["store"] / "sageattention" / "index.json"
    original = index_path.read_text()
    data = json.loads(original)
    data["wheels"][0]["wheel_file"] = name
    index_path.write_text(json.dumps(data))
    try:
        code, line = run_bad(world, "fetch", "--python", str(world["venv"]), "--recipe", str(world["recipe"]))
    finally:
        index_path.write_text(original)
    assert code == 6 and ("refusing wheel file name" in line or "malformed" in line), line


def test_malformed_index(world):
    index_path = world["store"] / "sageattention" / "index.json"
    original = index_path.read_text()
    for broken in ("{not json", json.dumps({"schema_version": 1, "wheels": [{"package": 3}]}), "[]"):
        index_path.write_text(broken)
        try:
            code, line = run_bad(world, "fetch", "--python", str(world["venv"]), "--recipe", str(world["recipe"]))
        finally:
            index_path.write_text(original)
        assert code == 6 and ("malformed" in line or "not valid JSON" in line)


def test_unreadable_store(world, tmp_path):
    not_a_dir = tmp_path / "store-file"
    not_a_dir.write_text("I am a file")
    env = {**world["env"], "SAGE_STORE": str(not_a_dir)}
    code, line = run_bad(world, "fetch", "--python", str(world["venv"]), "--recipe", str(world["recipe"]), env=env)
    assert code == 6 and "not a directory" in line
    index_dir = tmp_path / "store-dir" / "sageattention" / "index.json"
    index_dir.mkdir(parents=True)
    env = {**world["env"], "SAGE_STORE": str(tmp_path / "store-dir")}
    code, line = run_bad(world, "fetch", "--python", str(world["venv"]), "--recipe", str(world["recipe"]), env=env)
    assert code == 6 and "is a directory" in line


def test_bad_environment_values(world):
    env = {**world["env"], "MAX_JOBS": "many"}
    code, line = run_bad(world, "build", "--python", str(world["venv"]), env=env)
    assert code == 2 and "MAX_JOBS='many'" in line
    env = {**world["env"], "SAGE_VERSION": "2.1.1"}
    code, line = run_bad(world, "fetch", "--python", str(world["venv"]), env=env)
    assert code == 2 and "SAGE_VERSION=2.1.1" in line


def test_wheel_url_without_a_known_hash_is_refused(world):
    env = {**world["env"], "WHEEL_URL": "https://example.invalid/wheels/sage_demo-0.2.0-py3-none-any.whl"}
    code, line = run_bad(world, "fetch", "--python", str(world["venv"]), "--recipe", str(world["recipe"]), env=env)
    assert code == 7 and "no known sha256" in line and "WHEEL_SHA256" in line


def test_plain_http_wheel_url_is_refused(world, fault):
    fault("plain-http wheel URL (refused)")
    env = {
        **world["env"],
        "WHEEL_URL": "http://example.invalid/wheels/sage_demo-0.2.0-py3-none-any.whl",
        "WHEEL_SHA256": "0" * 64,
    }
    code, line = run_bad(world, "fetch", "--python", str(world["venv"]), "--recipe", str(world["recipe"]), env=env)
    assert code == 2 and "plain-HTTP" in line, line
