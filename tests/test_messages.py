"""Messages say what happened: a missing Hub repo is missing (not a refused token), an
interpreter of the wrong Python names its real tag, a damaged store names the file and the store."""

from __future__ import annotations

import os

import pytest

from tests import support
from tests.hub_server import HubServer

pytestmark = pytest.mark.slow


def test_a_missing_hub_repo_is_reported_as_missing_not_as_a_refused_token(tasks, tmp_path):
    with HubServer().start() as hub:
        env = {
            **os.environ,
            "HF_ENDPOINT": hub.url,
            "HF_TOKEN": hub.token,  # a valid token: only the repo is missing
            "HF_REPO_ID": "tester/never-created",
            "SAGE_RETRY_BASE_S": "0.05",
        }
        recipe = support.write_demo_recipe(tmp_path / "demo.toml", "file:///nonexistent", None)
        done = tasks("fetch", "--dry-run", "--arch", "12.0", "--recipe", str(recipe), env=env)
    assert done.returncode == 6, done.stderr
    line = done.stderr.strip().splitlines()[-1]
    assert "does not exist" in line and "tester/never-created" in line and "init-hf" in line, line
    assert "refused the token" not in line


def test_an_interpreter_of_an_old_python_names_its_tag(tasks, tmp_path):
    old = tmp_path / "python3.6"
    old.write_text(
        "#!/bin/sh\n"
        """echo '{"version": "3.6.15", "implementation": "cpython", "version_info": [3, 6, 15], "packages": {}}'\n"""
    )
    old.chmod(0o755)
    done = tasks("probe", "--python", str(old))
    assert done.returncode == 10, done.stderr
    assert "cp36" in done.stderr and "3.6.15" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("version", ["2.7.18", "3.7.16", "3.8.18"])
def test_an_old_python_that_cannot_run_the_probe_script_is_still_named(tasks, tmp_path, version):
    """As a real one does: the facts script fails there (syntax or a subscripted builtin), a
    plain ``-c`` that prints the version works."""
    old = tmp_path / "python"
    old.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = "-c" ]; then printf {version}; exit 0; fi\n'
        "echo \"TypeError: 'type' object is not subscriptable\" >&2; exit 1\n"
    )
    old.chmod(0o755)
    done = tasks("probe", "--python", str(old))
    major, minor = version.split(".")[:2]
    assert done.returncode == 10, done.stderr
    assert f"is Python {version} (tag cp{major}{minor}); the target must be 3.9 or newer" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_damaged_store_names_the_file_and_the_store(tasks, tmp_path):
    store = tmp_path / "store"
    env = {**os.environ, "SAGE_STORE": str(store)}
    wheel = support.demo_wheel(tmp_path / "dist")
    support.demo_manifest(wheel)
    assert tasks("publish", "--wheel", str(wheel), env=env).returncode == 0
    index = store / "sageattention" / "index.json"
    index.write_text(index.read_text()[:40])
    recipe = support.write_demo_recipe(tmp_path / "demo.toml", "file:///nonexistent", None)
    done = tasks("fetch", "--dry-run", "--arch", "12.0", "--recipe", str(recipe), env=env)
    assert done.returncode == 6, done.stderr
    line = done.stderr.strip().splitlines()[-1]
    assert str(index) in line and "not valid JSON" in line and "next:" in line, line
