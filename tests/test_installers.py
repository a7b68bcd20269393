"""uv installs the stack, pip is the fallback; pip's configuration keeps working with both; the
torch index wins; a failed or interrupted install is survived. Real uv and pip, local indexes."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sage_tasks.environment import installers
from tests import support

# `pip config list` on the development machine (pip 24, /etc/pip.conf plus PIP_* variables)
CAPTURED = """\
:env:.cert='/etc/ssl/certs/ca-certificates.crt'
:env:.default-timeout='180'
:env:.disable-pip-version-check='1'
:env:.find-links='/opt/wheels'
global.cert='/etc/ssl/certs/ca-certificates.crt'
global.constraint='/etc/xdg/pip/constraints.txt'
global.extra-index-url='file:///opt/pypi/simple file:///opt/pypi-more/simple'
global.find-links='/opt/wheels'
"""
TORCH = "https://download.pytorch.org/whl/cu128"


def test_pip_config_list_is_read_with_the_environment_winning():
    found = installers.parse_pip_config_list(CAPTURED + ":env:.index-url='file:///mirror'\nglobal.index-url='x'\n")
    assert found["index-url"] == "file:///mirror"
    assert found["extra-index-url"] == "file:///opt/pypi/simple file:///opt/pypi-more/simple"
    assert found["constraint"] == "/etc/xdg/pip/constraints.txt"


def test_uv_is_chosen_when_pip_config_translates_and_pip_when_it_does_not():
    translatable = installers.parse_pip_config_list(CAPTURED + ":env:.config-file='/dev/null'\n")
    assert installers.choose(None, "/bin/uv", translatable).tool == "uv"
    trusted = {**translatable, "trusted-host": "mirror.local"}
    fallback = installers.choose(None, "/bin/uv", trusted)
    assert fallback.tool == "pip" and "trusted-host" in fallback.reason
    assert installers.choose("uv", "/bin/uv", trusted).tool == "uv"
    assert installers.choose("pip", "/bin/uv", {}).tool == "pip"
    missing = installers.choose(None, None, {})
    assert missing.tool == "pip" and "not found" in missing.reason


def test_the_torch_index_comes_before_every_index_the_user_configured():
    args = installers.uv_index_args(TORCH, installers.parse_pip_config_list(CAPTURED), {})
    urls = [args[i + 1] for i, a in enumerate(args) if a in ("--index-url", "--extra-index-url")]
    assert urls == [TORCH, "file:///opt/pypi/simple", "file:///opt/pypi-more/simple", TORCH]  # PyPI never
    assert args[args.index("--find-links") : args.index("--find-links") + 2] == ["--find-links", "/opt/wheels"]
    assert args[-2:] == ["--constraint", "/etc/xdg/pip/constraints.txt"]
    # no user configuration: the torch index alone, as pip is given it
    assert installers.uv_index_args(TORCH, {}, {}) == ["--index-url", TORCH]
    # uv's own variables: the torch index still first and the default (as pip's --index-url)
    with_uv = installers.uv_index_args(TORCH, {}, {"UV_INDEX_URL": "file:///m", "UV_EXTRA_INDEX_URL": "file:///x"})
    assert with_uv == ["--extra-index-url", TORCH, "--extra-index-url", "file:///x", "--index-url", TORCH]


def test_pip_settings_uv_reads_elsewhere_become_variables():
    env = installers.uv_env(installers.parse_pip_config_list(CAPTURED), {"PATH": "/bin"})
    assert env["SSL_CERT_FILE"] == "/etc/ssl/certs/ca-certificates.crt" and env["UV_HTTP_TIMEOUT"] == "180"


# ---------------------------------------------------------------- real installs


@pytest.fixture
def venv(tmp_path: Path) -> Path:
    return support.make_venv(tmp_path / "venv")


def _env(torch_index: str, **extra: str) -> dict[str, str]:
    return {**os.environ, "TORCH_INDEX_URL": torch_index, **extra}


def _pin(tasks, venv: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return tasks("pin", "--python", str(venv), "--json", *args, env=env)


def _file(venv: Path, relative: str) -> Path:
    return next((venv.parent.parent / "lib").glob(f"python3.*/site-packages/{relative}"))


@pytest.fixture(scope="session")
def wrong_index(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A user's index that also has triton 3.4.0 (and torch 2.8.0+cu128), but not the right files."""
    root = tmp_path_factory.mktemp("wrong")
    wheels = [
        support.make_wheel(root / "w", "triton", "3.4.0", {"triton/__init__.py": "WRONG_INDEX = True\n"}),
        support.make_wheel(root / "w", "torch", "2.8.0+cu128", {"torch/__init__.py": "WRONG_INDEX = True\n"}),
    ]
    return support.build_simple_index(root / "simple", wheels)


@pytest.mark.slow
@pytest.mark.parametrize("variable", ["PIP_EXTRA_INDEX_URL", "PIP_INDEX_URL"])
def test_uv_takes_the_stack_from_the_torch_index_not_the_users(tasks, venv, torch_index, wrong_index, variable):
    result = _pin(tasks, venv, _env(torch_index, **{variable: wrong_index}), "--installer", "uv")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["installer"]["tool"] == "uv"
    assert "WRONG_INDEX" not in _file(venv, "triton/__init__.py").read_text()
    assert "WRONG_INDEX" not in _file(venv, "torch/__init__.py").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_a_failed_download_leaves_the_previous_stack(tasks, venv, torch_index, tmp_path, installer):
    """torchvision's file is gone from the index: the install fails, the old torch stays."""
    subprocess.run(
        [str(venv), "-m", "pip", "install", "-q", "--index-url", torch_index, "torch==2.8.0+cpu"],
        check=True,
        env=support.offline_pip_env(os.environ),
    )
    broken = tmp_path / "broken" / "whl" / "cu128"  # still a cu128 index: torch itself is replaced
    broken.parent.mkdir(parents=True)
    index_root = Path(torch_index.removeprefix("file://"))
    subprocess.run(["cp", "-r", str(index_root), str(broken)], check=True)
    for wheel in (broken / "torchvision").glob("*.whl"):
        wheel.unlink()
    result = _pin(tasks, venv, _env(broken.as_uri()), "--installer", installer)
    assert result.returncode == 10, result.stderr
    assert "torch==2.8.0+cu128" in result.stderr  # torch was among the packages to install
    assert support.installed_version(venv, "torch") == "2.8.0+cpu"
    assert support.installed_version(venv, "triton") is None


@pytest.mark.slow
def test_pip_fallback_installs_and_verifies(tasks, venv, torch_index):
    result = _pin(tasks, venv, _env(torch_index, SAGE_INSTALLER="pip"))
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["installer"]["tool"] == "pip"
    assert "download" in record["command"] and "--no-index" in record["command"]
    assert record["installed"]["torch"] == "2.8.0+cu128"


@pytest.mark.slow
def test_an_interrupted_install_is_repaired_by_the_next_pin(tasks, venv, torch_index):
    env = _env(torch_index)
    assert _pin(tasks, venv, env).returncode == 0
    # what a kill -9 in the middle leaves: the mark, and a package whose files are half there
    version_py = _file(venv, "torch/version.py")
    version_py.unlink()
    marker = version_py.parent.parent / ".sage-tasks" / "pin-in-progress.json"
    marker.parent.mkdir(exist_ok=True)
    marker.write_text('{"packages": ["torch"]}')
    check = tasks("pin", "--python", str(venv), "--check", env=env)
    assert check.returncode == 10 and "interrupted" in check.stderr
    repaired = _pin(tasks, venv, env)
    assert repaired.returncode == 0, repaired.stderr
    assert version_py.is_file() and not marker.exists()
    assert tasks("pin", "--python", str(venv), "--check", env=env).returncode == 0


@pytest.mark.slow
def test_keep_stack_never_replaces_an_installed_torch(tasks, venv, torch_index):
    subprocess.run(
        [str(venv), "-m", "pip", "install", "-q", "--index-url", torch_index, "torch==2.8.0+cpu"],
        check=True,
        env=support.offline_pip_env(os.environ),
    )
    result = _pin(tasks, venv, _env(torch_index, SAGE_KEEP_STACK="1"))
    assert result.returncode == 0, result.stderr
    assert support.installed_version(venv, "torch") == "2.8.0+cpu"
    assert support.installed_version(venv, "torchvision") == "0.23.0+cu128"  # missing ones are added
    replaced = _pin(tasks, venv, _env(torch_index))
    assert "pin replaces torch 2.8.0+cpu with 2.8.0+cu128" in replaced.stderr
    assert support.installed_version(venv, "torch") == "2.8.0+cu128"


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("script") is None, reason="needs script(1) for a terminal")
def test_installer_output_shows_on_a_terminal_and_not_in_ci_or_json(venv, torch_index, tmp_path):
    def on_a_terminal(*args: str, **extra: str) -> str:
        command = [sys.executable, "-m", "invoke", "--search-root", str(support.REPO), "pin", "--python", str(venv)]
        env = _env(torch_index, **extra)
        for name in ("CI", "GITHUB_ACTIONS"):  # CI itself runs this test with CI=true: a terminal is asked for here
            if name not in extra:
                env.pop(name, None)
        done = subprocess.run(
            ["script", "-qec", shlex.join([*command, *args]), os.devnull],
            env=env,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stdout[-2000:]
        return done.stdout

    quiet = on_a_terminal("--installer", "pip", CI="true")
    assert "Saved" not in quiet and "Successfully installed" not in quiet
    site = next((venv.parent.parent / "lib").glob("python3.*/site-packages"))
    for name in ("torch", "torchvision", "torchaudio", "triton"):
        for path in site.glob(f"{name}*"):
            shutil.rmtree(path)
    shown = on_a_terminal("--installer", "pip")
    assert "Successfully installed" in shown and "installed in" in shown
    for path in site.glob("torch*"):
        shutil.rmtree(path)
    as_json = on_a_terminal("--installer", "pip", "--json")
    assert "Successfully installed" not in as_json and json.loads(as_json[as_json.index("{") :])["changed"]


def test_pip_configuration_for_uv_keeps_pips_best_match_across_indexes():
    settings = {"index-url": "https://a.example/simple", "extra-index-url": "file:///one file:///two"}
    wanted = installers.uv_variables(settings, {})
    assert wanted["UV_EXTRA_INDEX_URL"] == "file:///one file:///two"
    assert wanted["UV_INDEX_STRATEGY"] == "unsafe-best-match"  # uv would stop at the first index with the project
    assert "UV_INDEX_STRATEGY" not in installers.uv_variables({"index-url": "https://a.example/simple"}, {})
    assert "UV_INDEX_STRATEGY" not in installers.uv_variables(settings, {"UV_INDEX_STRATEGY": "first-index"})
