"""The transactional wheel installer against real venvs (pip checks what it left behind)."""

from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

import pytest

from sage_tasks import install, probe
from sage_tasks.errors import IntegrityError
from tests import support

pytestmark = pytest.mark.slow


def target(venv: Path, package: str = "demo-pkg") -> probe.TargetEnv:
    return probe.read_target(str(venv), extra=[package])


def files_of(venv: Path) -> set[str]:
    site = next((venv.parent.parent / "lib").glob("python3.*/site-packages"))
    return {str(p.relative_to(site)) for p in site.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


def test_replaces_a_pip_installed_version_and_pip_can_uninstall_it(tmp_path):
    venv = support.make_venv(tmp_path / "venv")
    old = support.make_wheel(
        tmp_path / "w1", "demo-pkg", "1.0", {"demo_pkg/__init__.py": "V = 1\n", "demo_pkg/gone.py": "x = 1\n"}
    )
    new = support.make_wheel(
        tmp_path / "w2", "demo-pkg", "2.0", {"demo_pkg/__init__.py": "V = 2\n", "demo_pkg/sub/new.py": "y = 2\n"}
    )
    subprocess.run([str(venv), "-m", "pip", "install", "-q", "--no-deps", str(old)], check=True)
    before = files_of(venv)
    result = install.install_wheel(new, target(venv), "demo-pkg")
    assert result.replaced == "1.0"
    after = files_of(venv)
    assert "demo_pkg/gone.py" not in after and "demo_pkg/sub/new.py" in after
    assert not [f for f in after if "demo_pkg-1.0.dist-info" in f]
    assert not [f for f in after if ".sage-tasks-" in f]
    out = subprocess.run(
        [str(venv), "-c", "import demo_pkg; print(demo_pkg.V)"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "2"
    shown = subprocess.run(
        [str(venv), "-m", "pip", "show", "demo-pkg"], capture_output=True, text=True, check=True
    ).stdout
    assert "Version: 2.0" in shown
    subprocess.run([str(venv), "-m", "pip", "uninstall", "-y", "-q", "demo-pkg"], check=True)
    assert files_of(venv) == before - {f for f in before if f.startswith(("demo_pkg", "demo_pkg-1.0.dist-info"))}


def test_scripts_get_the_target_interpreter(tmp_path):
    venv = support.make_venv(tmp_path / "venv")
    wheel = support.make_wheel(tmp_path / "w", "demo-pkg", "1.0", {
        "demo_pkg/__init__.py": "",
        "demo_pkg-1.0.data/scripts/demo-hello": "#!python\nprint('hello from', __import__('sys').executable)\n",
    })  # fmt: skip
    install.install_wheel(wheel, target(venv), "demo-pkg")
    script = venv.parent / "demo-hello"
    assert script.read_text().startswith(f"#!{venv}")
    out = subprocess.run([str(script)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"hello from {venv}"


@pytest.mark.parametrize("member", ["../evil.py", "/abs/evil.py", "demo_pkg\\evil.py", "demo_pkg-1.0.data/unknown/x"])
def test_hostile_members_are_refused_and_nothing_is_written(tmp_path, member):
    venv = support.make_venv(tmp_path / "venv")
    wheel = support.make_wheel(tmp_path / "w", "demo-pkg", "1.0", {"demo_pkg/__init__.py": ""})
    with zipfile.ZipFile(wheel, "a") as zf:
        zf.writestr(member, "print('pwned')\n")
    before = files_of(venv)
    with pytest.raises(IntegrityError):
        install.install_wheel(wheel, target(venv), "demo-pkg")
    assert files_of(venv) == before
    support.count_fault("hostile wheel names (index, manifest, wheel members)")


def test_console_script_entry_points_are_left_to_pip(tmp_path):
    venv = support.make_venv(tmp_path / "venv")
    wheel = support.make_wheel(tmp_path / "w", "demo-pkg", "1.0", {
        "demo_pkg/__init__.py": "def main():\n    pass\n",
        "demo_pkg-1.0.dist-info/entry_points.txt": "[console_scripts]\ndemo = demo_pkg:main\n",
    })  # fmt: skip
    with pytest.raises(install.Unsupported):
        install.install_wheel(wheel, target(venv), "demo-pkg")
