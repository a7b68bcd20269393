"""Relabelled wheels and plain twins are whole wheels: their ``.data`` folder follows the new
version (else an installer refuses them, or installs scripts under the old name)."""

from __future__ import annotations

import os
import subprocess
import zipfile

import pytest

from sage_tasks.wheel import wheelfile
from tests import support

SCRIPT = "#!python\nprint('hello')\n"


@pytest.mark.parametrize("how", ["relabel", "plain_twin"])
def test_the_data_folder_follows_the_new_version(tmp_path, how):
    files = {"demo_pkg/__init__.py": "", "demo_pkg-2.2.0+cu128.data/scripts/demo-hello": SCRIPT}
    src = support.make_wheel(tmp_path / "src", "demo-pkg", "2.2.0+cu128", files)
    if how == "relabel":
        out = wheelfile.relabel(src, tmp_path / "out", "cu128torch2.8.0")
        prefix = "demo_pkg-2.2.0+cu128torch2.8.0"
    else:
        out = wheelfile.plain_twin(src, tmp_path / "out", "1")
        prefix = "demo_pkg-2.2.0"
    with zipfile.ZipFile(out) as zf:
        names = zf.namelist()
    assert f"{prefix}.data/scripts/demo-hello" in names, names
    assert not [n for n in names if ".data/" in n and not n.startswith(f"{prefix}.data/")], names
    venv = support.make_venv(tmp_path / "venv")  # and pip installs it, script included
    done = subprocess.run(
        [str(venv), "-m", "pip", "install", "--no-deps", "--no-index", str(out)],
        capture_output=True, text=True, env=support.offline_pip_env(os.environ),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (venv.parent / "demo-hello").is_file()
