"""The cache heals: a cached wheel (ours or the Hugging Face cache) that no longer matches its
manifest is dropped and downloaded once more; only a fresh copy that mismatches too makes the
store's file damaged, and the message names the file and the store (and never says to yank a
wheel that is fine)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from tests import support
from tests.test_hub_store import REPO_ID, env, hub, publish_demo, recipe, venv_with_stack  # noqa: F401

pytestmark = pytest.mark.slow


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.chmod(0o644)
    path.write_bytes(bytes(data))


def _blobs_of(home: Path, digest: str) -> list[Path]:
    return [p for p in home.rglob("blobs/*") if p.is_file() and hashlib.sha256(p.read_bytes()).hexdigest() == digest]


def test_a_damaged_hugging_face_cache_is_downloaded_again(tasks, hub, env, recipe, tmp_path, fault):  # noqa: F811
    fault("damaged blob in the Hugging Face cache (downloaded again)")
    fault("damaged wheel in the store and the cache (named, nothing installed)")
    assert tasks("init-hf", env=env).returncode == 0
    wheel, published = publish_demo(tasks, env, tmp_path / "dist")
    assert published.returncode == 0, published.stderr
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    first = venv_with_stack(tasks, tmp_path / "venv-a", env)
    assert tasks("fetch", "--python", str(first), "--recipe", str(recipe), env=env).returncode == 0
    home = Path(env.get("HF_HOME", os.environ["HF_HOME"]))
    [blob] = _blobs_of(home, digest)
    _flip(blob)

    second = venv_with_stack(tasks, tmp_path / "venv-b", env)
    healed = tasks("fetch", "--python", str(second), "--recipe", str(recipe), env=env)
    assert healed.returncode == 0, healed.stderr[-2000:]
    assert "downloading it once more" in healed.stderr
    assert len(_blobs_of(home, digest)) == 1, "the cache was not repaired"
    assert support.installed_version(second, "sage-demo") == "0.1.0+cu128torch2.8.0"

    # the store's own copy damaged (and the cache too): now it is the store, named with the file
    data = bytearray(wheel.read_bytes())
    data[-100] ^= 0xFF
    hub.put_files(REPO_ID, {f"sageattention/wheels/{wheel.name}": bytes(data)})
    _flip(_blobs_of(home, digest)[0])
    third = venv_with_stack(tasks, tmp_path / "venv-c", env)
    refused = tasks("fetch", "--python", str(third), "--recipe", str(recipe), env=env)
    assert refused.returncode == 7, refused.stderr[-2000:]
    [line] = [line for line in refused.stderr.splitlines() if line.startswith("integrity error")]
    assert f"{wheel.name} in hf dataset {REPO_ID}" in line and "is damaged" in line
    assert "yank" not in line
    assert support.installed_version(third, "sage-demo") is None


def test_a_damaged_wheel_in_our_cache_is_downloaded_again(tasks, tmp_path, torch_index, no_gpu_path, fault):
    fault("damaged wheel in our cache (downloaded again)")
    store_env = {**os.environ, "SAGE_STORE": str(tmp_path / "store"), "TORCH_INDEX_URL": torch_index}
    recipe_file = support.write_demo_recipe(tmp_path / "demo.toml", "file:///nonexistent", None)
    wheel = support.demo_wheel(tmp_path / "dist", "0.1.0+cu128torch2.8.0")
    support.demo_manifest(wheel)
    assert tasks("publish", "--wheel", str(wheel), env=store_env).returncode == 0
    first = venv_with_stack(tasks, tmp_path / "venv-a", store_env)
    assert tasks("fetch", "--python", str(first), "--recipe", str(recipe_file), env=store_env).returncode == 0
    [cached] = list(Path(os.environ["SAGE_TASKS_CACHE"]).rglob(wheel.name))
    _flip(cached)
    second = venv_with_stack(tasks, tmp_path / "venv-b", store_env)
    healed = tasks("fetch", "--python", str(second), "--recipe", str(recipe_file), env=store_env)
    assert healed.returncode == 0, healed.stderr[-2000:]
    assert "does not match its manifest: removed, downloading it again" in healed.stderr
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == hashlib.sha256(wheel.read_bytes()).hexdigest()
