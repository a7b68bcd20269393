"""The transactional installer against real venvs: checks before unpacking, rollback byte for
byte, launchers, locks and signals (pip and importlib check what it left behind)."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
import zipfile
import zlib
from pathlib import Path

import pytest

from sage_tasks.core.errors import EnvironmentProblem, IntegrityError
from sage_tasks.environment import envlock, install
from sage_tasks.stages import probe
from tests import support, txn_support

pytestmark = pytest.mark.slow


def target(venv: Path, package: str = "demo-pkg") -> probe.TargetEnv:
    return probe.read_target(str(venv), extra=[package])


def install_and_commit(venv: Path, wheel: Path, package: str, version: str) -> None:
    with install.Change(target(venv, package), os.environ, command="test") as change:
        change.install(wheel, package, version)
        change.commit()


def files_of(venv: Path) -> set[str]:
    site = txn_support.site_packages(venv)
    return {str(p.relative_to(site)) for p in site.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


def snapshot(venv: Path) -> dict[str, str]:
    """Every file of the venv (site-packages and bin) with its hash; bytecode and our lock aside."""
    root = venv.parent.parent
    return {
        str(p.relative_to(root)): txn_support.file_hash(p)
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and ".sage-tasks" not in p.parts
    }


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
    install_and_commit(venv, new, "demo-pkg", "2.0")
    after = files_of(venv)
    assert "demo_pkg/gone.py" not in after and "demo_pkg/sub/new.py" in after
    assert not [f for f in after if "demo_pkg-1.0.dist-info" in f]
    assert not [f for f in after if ".sage-tasks" in f and not f.endswith("lock")]
    out = subprocess.run(
        [str(venv), "-c", "import demo_pkg; print(demo_pkg.V)"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "2"
    shown = subprocess.run([str(venv), "-m", "pip", "show", "demo-pkg"], capture_output=True, text=True).stdout
    assert "Version: 2.0" in shown
    subprocess.run([str(venv), "-m", "pip", "uninstall", "-y", "-q", "demo-pkg"], check=True)
    left = {f for f in files_of(venv) if ".sage-tasks" not in f}
    assert left == before - {f for f in before if f.startswith(("demo_pkg", "demo_pkg-1.0.dist-info"))}


def _setup_py_install(site: Path, legacy: str) -> None:
    """demo-pkg 1.0 as ``setup.py install`` left it: files beside an ``.egg-info`` that lists them,
    or a whole ``.egg`` folder put on sys.path by ``easy-install.pth``."""
    files = {"demo_pkg/__init__.py": "V = 1\n", "demo_pkg/gone.py": "x = 1\n"}
    pkg_info = "Metadata-Version: 1.1\nName: demo-pkg\nVersion: 1.0\n"
    if legacy == "egg-info":
        for relative, text in files.items():
            (site / relative).parent.mkdir(parents=True, exist_ok=True)
            (site / relative).write_text(text)
        info = site / "demo_pkg-1.0-py3.11.egg-info"
        info.mkdir()
        (info / "PKG-INFO").write_text(pkg_info)
        (info / "top_level.txt").write_text("demo_pkg\n")
        (info / "installed-files.txt").write_text("".join(f"../{r}\n" for r in files) + "PKG-INFO\ntop_level.txt\n")
    else:
        egg = site / "demo_pkg-1.0-py3.11.egg"
        for relative, text in files.items():
            (egg / relative).parent.mkdir(parents=True, exist_ok=True)
            (egg / relative).write_text(text)
        (egg / "EGG-INFO").mkdir()
        (egg / "EGG-INFO" / "PKG-INFO").write_text(pkg_info)
        (site / "easy-install.pth").write_text("./demo_pkg-1.0-py3.11.egg\n")


@pytest.mark.parametrize("legacy", ["egg-info", "egg"])
def test_a_setup_py_install_is_the_old_version_replaced_whole_and_restored_whole(tmp_path, legacy):
    venv = support.make_venv(tmp_path / "venv")
    _setup_py_install(txn_support.site_packages(venv), legacy)
    assert support.installed_version(venv, "demo-pkg") == "1.0"
    before = snapshot(venv)
    new = support.make_wheel(tmp_path / "w2", "demo-pkg", "2.0", {"demo_pkg/__init__.py": "V = 2\n"})
    with install.Change(target(venv), os.environ, command="test") as change:
        change.install(new, "demo-pkg", "2.0")  # read back, then left without a commit: rolled back
    assert change.restored and "demo-pkg 1.0" in change.restored
    assert snapshot(venv) == before
    install_and_commit(venv, new, "demo-pkg", "2.0")
    assert support.installed_version(venv, "demo-pkg") == "2.0"
    left = files_of(venv)
    assert not [f for f in left if "demo_pkg-1.0" in f or f.endswith("gone.py")], sorted(left)
    shown = subprocess.run([str(venv), "-c", "import demo_pkg; print(demo_pkg.V)"], capture_output=True, text=True)
    assert shown.stdout.strip() == "2", shown.stderr


def test_an_upgrade_where_platlib_is_a_link_to_purelib(tmp_path):
    """Fedora-style Pythons: ``platlibdir = lib64`` and the venv's ``lib64 -> lib``. Every file has
    two names; the install must journal and move each once."""
    venv = support.make_venv(tmp_path / "venv")
    old = support.make_wheel(tmp_path / "w1", "demo-pkg", "1.0", {"demo_pkg/__init__.py": "V = 1\n"})
    new = support.make_wheel(tmp_path / "w2", "demo-pkg", "2.0", {"demo_pkg/__init__.py": "V = 2\n"})
    subprocess.run([str(venv), "-m", "pip", "install", "-q", "--no-deps", str(old)], check=True)
    root = venv.parent.parent
    if not (root / "lib64").exists():
        (root / "lib64").symlink_to("lib")
    seen = target(venv)
    platlib = root / "lib64" / Path(seen.paths["purelib"]).relative_to(root / "lib")
    seen = dataclasses.replace(seen, paths={**seen.paths, "platlib": str(platlib)})
    with install.Change(seen, os.environ, command="test") as change:
        change.install(new, "demo-pkg", "2.0", target=seen)
        change.commit()
    assert support.installed_version(venv, "demo-pkg") == "2.0"
    assert not [f for f in files_of(venv) if "demo_pkg-1.0.dist-info" in f]


def test_scripts_and_console_entry_points_get_the_target_interpreter(tmp_path):
    venv = support.make_venv(tmp_path / "venv")
    wheel = support.make_wheel(tmp_path / "w", "demo-pkg", "1.0", {
        "demo_pkg/__init__.py": "def main():\n    print('main from', __import__('sys').executable)\n",
        "demo_pkg-1.0.data/scripts/demo-hello": "#!python\nprint('hello from', __import__('sys').executable)\n",
        "demo_pkg-1.0.dist-info/entry_points.txt": "[console_scripts]\ndemo-main = demo_pkg:main\n",
    })  # fmt: skip
    install_and_commit(venv, wheel, "demo-pkg", "1.0")
    script = venv.parent / "demo-hello"
    assert script.read_text().startswith(f"#!{venv}")
    out = subprocess.run([str(script)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"hello from {venv}"
    launcher = subprocess.run([str(venv.parent / "demo-main")], capture_output=True, text=True, check=True)
    assert launcher.stdout.strip() == f"main from {venv}"


@pytest.mark.parametrize(
    "member", ["../evil.py", "/abs/evil.py", "demo_pkg\\evil.py", "demo_pkg-1.0.data/unknown/x", "C:/evil.py"]
)
def test_hostile_members_are_refused_and_nothing_is_written(tmp_path, member, fault):
    fault("hostile wheel names (index, manifest, wheel members)")
    venv = support.make_venv(tmp_path / "venv")
    wheel = support.make_wheel(tmp_path / "w", "demo-pkg", "1.0", {"demo_pkg/__init__.py": ""})
    with zipfile.ZipFile(wheel, "a") as zf:
        zf.writestr(member, "print('pwned')\n")
    before = snapshot(venv)
    with pytest.raises(IntegrityError):
        install_and_commit(venv, wheel, "demo-pkg", "1.0")
    assert snapshot(venv) == before


PY_DIR = f"python{sys.version_info[0]}.{sys.version_info[1]}"  # the venvs here are made by this interpreter


@pytest.mark.parametrize(
    ("twin", "lands_on"),
    [
        ("demo_pkg-1.0.data/purelib/demo_pkg/__init__.py", "demo_pkg/__init__.py"),
        (f"demo_pkg-1.0.data/data/lib/{PY_DIR}/site-packages/demo_pkg/__init__.py", "__init__.py"),
        (f"demo_pkg-1.0.data/data/include/site/{PY_DIR}/demo-pkg/h.h", "h.h"),
        ("demo_pkg-1.0.data/data/bin/demo-tool", "demo-tool"),
    ],
    ids=["purelib", "data-into-site-packages", "data-onto-a-header", "data-onto-a-script"],
)
def test_two_members_landing_on_one_file_are_refused(tmp_path, twin, lands_on):
    """Staging writes into a fresh folder without a stat per file: a second write to one path
    (a member and its twin through another scheme) is caught by the writer instead."""
    venv = support.make_venv(tmp_path / "venv")
    twins = support.make_wheel(tmp_path / "w", "demo-pkg", "1.0", {
        "demo_pkg/__init__.py": "V = 1\n", "demo_pkg-1.0.data/headers/h.h": "int h;\n",
        "demo_pkg-1.0.data/scripts/demo-tool": "#!python\n", twin: "V = 'other'\n",
    })  # fmt: skip
    before = snapshot(venv)
    with pytest.raises(IntegrityError, match=rf"two members of the wheel land on .*{re.escape(lands_on)}"):
        install_and_commit(venv, twins, "demo-pkg", "1.0")
    assert snapshot(venv) == before


def test_a_launcher_name_is_normalised_as_installer_writes_it():
    """A launcher's name is no member name that wheelcheck saw: the staging writer compares the
    path installer writes (``x/../tool`` is ``tool``), so the twin is caught."""
    destination = install._staging_destination({"scripts": "/nowhere/bin"}, "/nowhere/bin/python")
    destination.written.add("/nowhere/bin/tool")
    with pytest.raises(ValueError, match="two members"):
        destination.write_to_fs("scripts", "x/../tool", None, False)


@pytest.mark.parametrize(
    ("entry_points", "why"),
    [
        ("[console_scripts]\nx/../pip = demo_pkg:main\n", "not a plain file name"),
        ("[gui_scripts]\n.. = demo_pkg:main\n", "not a plain file name"),
        ("[console_scripts]\ndemo = \n", "cannot be parsed"),
        ("[console_scripts\ndemo = demo_pkg:main\n", "cannot be parsed"),
    ],
    ids=["dot-dot-onto-pip", "dot-dot", "no-target", "broken-section"],
)
def test_launcher_names_and_entry_points_are_checked_before_unpacking(tmp_path, entry_points, why):
    venv = support.make_venv(tmp_path / "venv")
    wheel = support.make_wheel(tmp_path / "w", "demo-pkg", "1.0", {
        "demo_pkg/__init__.py": "def main():\n    pass\n", "demo_pkg-1.0.dist-info/entry_points.txt": entry_points,
    })  # fmt: skip
    before = snapshot(venv)
    with pytest.raises(IntegrityError, match=why):
        install_and_commit(venv, wheel, "demo-pkg", "1.0")
    assert snapshot(venv) == before


def test_data_files_are_upgraded_and_rolled_back_inside_the_environment(tmp_path):
    """``.data/data`` lands in the environment's prefix, the folder the staging tree mirrors."""
    venv = support.make_venv(tmp_path / "venv")
    unique = f"demo-{os.getpid()}-{time.monotonic_ns()}"  # a name no other run has left anywhere
    notes = f"demo_pkg-{{}}.data/data/share/{unique}/notes.txt"
    one = support.make_wheel(
        tmp_path / "w1", "demo-pkg", "1.0", {"demo_pkg/__init__.py": "V = 1\n", notes.format("1.0"): "one\n"}
    )
    two = support.make_wheel(
        tmp_path / "w2", "demo-pkg", "2.0", {"demo_pkg/__init__.py": "V = 2\n", notes.format("2.0"): "two\n"}
    )
    broken = support.make_wheel(
        tmp_path / "w3",
        "demo-pkg",
        "3.0",
        {"demo_pkg/__init__.py": "import nothing_here\n", notes.format("3.0"): "three\n"},
    )
    placed = venv.parent.parent / "share" / unique / "notes.txt"
    install_and_commit(venv, one, "demo-pkg", "1.0")
    install_and_commit(venv, two, "demo-pkg", "2.0")
    assert placed.read_text() == "two\n"
    before = snapshot(venv)
    with pytest.raises(EnvironmentProblem, match="import demo_pkg"):
        install_and_commit(venv, broken, "demo-pkg", "3.0")
    assert snapshot(venv) == before
    assert not Path("/share", unique).exists()


def test_an_interpreter_named_with_a_leading_double_slash(tmp_path):
    """POSIX lets ``//venv`` keep its two slashes through normpath; the environment's paths are
    spelled with one, so staging, the journal and the moves agree and nothing lands outside."""
    venv = support.make_venv(tmp_path / "venv")
    wheel = support.make_wheel(tmp_path / "w", "demo-pkg", "1.0", {"demo_pkg/__init__.py": "V = 1\n"})
    doubled = Path("/" + str(venv))
    install_and_commit(doubled, wheel, "demo-pkg", "1.0")
    assert txn_support.judge(venv, {"1.0": wheel}, "demo-pkg").holds == "1.0"
    assert not Path("/lib", PY_DIR, "site-packages", "demo_pkg").exists()


def test_the_old_versions_bytecode_goes_with_it(tmp_path):
    venv = support.make_venv(tmp_path / "venv")
    old = support.make_wheel(tmp_path / "w1", "demo-pkg", "1.0", {
        "demo_pkg/__init__.py": "V = 1\n", "demo_pkg/gone.py": "g = 1\n", "demo_pkg/kept.py": "k = 1\n",
        "demo_pkg/odd.name.py": "o = 1\n",
    })  # fmt: skip
    new = support.make_wheel(
        tmp_path / "w2", "demo-pkg", "2.0", {"demo_pkg/__init__.py": "V = 2\n", "demo_pkg/kept.py": "k = 2\n"}
    )
    install_and_commit(venv, old, "demo-pkg", "1.0")
    writes_bytecode = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    package = txn_support.site_packages(venv) / "demo_pkg"
    subprocess.run([str(venv), "-c", "import demo_pkg.gone, demo_pkg.kept"], check=True, env=writes_bytecode)
    subprocess.run([str(venv), "-m", "py_compile", str(package / "odd.name.py")], check=True, env=writes_bytecode)
    cache = package / "__pycache__"
    assert {p.name.rsplit(".", 2)[0] for p in cache.iterdir()} == {"__init__", "gone", "kept", "odd.name"}
    install_and_commit(venv, new, "demo-pkg", "2.0")
    # 1.0's bytecode went with its modules (the read-back may have written __init__'s anew)
    left = {p.name for p in cache.iterdir()} if cache.exists() else set()
    assert all(name.startswith("__init__.") for name in left), left


# ---------------------------------------------------------------- rollback


@pytest.mark.parametrize("had_old", [True, False], ids=["replacing", "fresh"])
def test_a_wheel_whose_import_raises_is_rolled_back_byte_for_byte(tmp_path, had_old, fault):
    fault("failed read-back (rolled back byte for byte)")
    venv = support.make_venv(tmp_path / "venv")
    old = support.make_wheel(tmp_path / "w1", "demo-pkg", "1.0", {
        "demo_pkg/__init__.py": "V = 1\n", "demo_pkg/kept.py": "k = 1\n", "demo_pkg/data/table.bin": os.urandom(4096),
    })  # fmt: skip
    broken = support.make_wheel(tmp_path / "w2", "demo-pkg", "2.0", {
        "demo_pkg/__init__.py": "from .missing import nothing\n", "demo_pkg/kept.py": "k = 2\n",
        "demo_pkg/new/deep/mod.py": "", "demo_pkg-2.0.data/scripts/demo-tool": "#!python\n",
    })  # fmt: skip
    if had_old:
        install_and_commit(venv, old, "demo-pkg", "1.0")
        writes_bytecode = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        subprocess.run([str(venv), "-c", "import demo_pkg.kept"], check=True, env=writes_bytecode)  # as in real use
    before = snapshot(venv)
    with pytest.raises(EnvironmentProblem, match="import demo_pkg"):
        install_and_commit(venv, broken, "demo-pkg", "2.0")
    assert snapshot(venv) == before
    site = txn_support.site_packages(venv)
    assert not (site / "demo_pkg" / "new").exists()
    if not had_old:
        assert not (site / "demo_pkg").exists(), "an empty folder would import as a namespace package"
    assert txn_support.imports_agree(venv, "demo-pkg")


def test_a_script_that_would_overwrite_another_distributions_launcher_is_refused(tmp_path):
    """Outside site-packages too: ``bin/pip`` is pip's (its RECORD says ``../../../bin/pip``)."""
    venv = support.make_venv(tmp_path / "venv")
    assert (venv.parent / "pip").is_file()
    before = snapshot(venv)
    hijack = support.make_wheel(
        tmp_path / "w", "demo-pkg", "1.0", {"demo_pkg/__init__.py": "", "demo_pkg-1.0.data/scripts/pip": "#!python\n"}
    )
    with pytest.raises(IntegrityError, match=r"would overwrite .*bin/pip, which belongs to pip"):
        install_and_commit(venv, hijack, "demo-pkg", "1.0")
    assert snapshot(venv) == before


def test_a_wheel_that_would_overwrite_torch_is_refused(tmp_path):
    venv = support.make_venv(tmp_path / "venv")
    torch = support.make_wheel(tmp_path / "t", "torch", "2.8.0", {"torch/__init__.py": "", "torch/version.py": ""})
    subprocess.run([str(venv), "-m", "pip", "install", "-q", "--no-deps", str(torch)], check=True)
    before = snapshot(venv)
    onto_torch = support.make_wheel(
        tmp_path / "a", "sageattention", "2.2.0", {"sageattention/__init__.py": "", "torch/version.py": "hijacked"}
    )
    # a wheel named sageattention whose metadata folder is torch's
    members = {"sageattention/__init__.py": b"", **txn_support.dist_info_files("torch", "2.8.0")}
    disguised = txn_support.write_wheel(tmp_path / "b" / "sageattention-2.2.0-py3-none-any.whl", members)
    offers = [
        (onto_torch, "2.2.0", "belongs to torch"),
        (disguised, "2.2.0", "torch"),
        (torch, "2.8.0", "not of sageattention"),  # and a torch wheel offered as the recipe's package
    ]
    refused, seen = [], []  # per offer: refused (the right IntegrityError, the venv unchanged); what it raised
    for wheel, version, match in offers:
        try:
            install_and_commit(venv, wheel, "sageattention", version)
        except IntegrityError as e:
            seen.append((match, str(e)))
            refused.append(re.search(match, str(e)) is not None and snapshot(venv) == before)
        else:
            seen.append((match, "installed"))
            refused.append(False)
    healthy = txn_support.pip_check(venv) == "No broken requirements found."
    support.count_fault(
        "wheel aimed at another distribution's files", injected=len(refused), survived=sum(refused) * healthy
    )
    assert all(refused), seen
    assert snapshot(venv) == before
    assert healthy


def _corrupt(wheel: Path, how: str) -> Path:
    data = bytearray(wheel.read_bytes())
    if how == "truncated":
        return _write(wheel, bytes(data[: len(data) // 2]))
    with zipfile.ZipFile(wheel) as zf:
        info = zf.getinfo("demo_pkg/big.py")
    start = info.header_offset + 30 + len(info.filename.encode())
    if how == "bad deflate data":
        data[start : start + 64] = b"\xff" * 64
    return _write(wheel, bytes(data))


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    "how",
    ["truncated", "bad deflate data", "undecodable name", "not in RECORD", "hash differs", "METADATA differs",
     "version differs"],
)  # fmt: skip
def test_broken_wheels_are_typed_errors(tmp_path, how, fault):
    fault("broken wheels (zip, deflate data, names, RECORD, METADATA)")
    venv = support.make_venv(tmp_path / "venv")
    body = "\n".join(f"x{i} = {i * 7919}" for i in range(5000))
    files = {"demo_pkg/__init__.py": "", "demo_pkg/big.py": body}
    wheel = support.make_wheel(tmp_path / "w", "demo-pkg", "1.0", files)
    if how in ("truncated", "bad deflate data"):
        _corrupt(wheel, how)
    elif how == "undecodable name":
        with zipfile.ZipFile(wheel) as zf:
            members = [(i.filename, zf.read(i), i.CRC) for i in zf.infolist()]
        raw = [(n.encode(), zlib.compress(d)[2:-4], crc, len(d), 8, 0x800) for n, d, crc in members]
        raw.append((b"demo_pkg/\xff\xfe.py", b"\x03\x00", 0, 0, 8, 0x800))
        txn_support.raw_zip(wheel, raw)
    elif how == "not in RECORD":
        with zipfile.ZipFile(wheel, "a") as zf:
            zf.writestr("demo_pkg/extra.py", "x = 1\n")
    else:
        info = "demo_pkg-1.0.dist-info"
        members = {k: v.encode() for k, v in files.items()} | {
            f"{info}/METADATA": b"Metadata-Version: 2.1\nName: demo-pkg\nVersion: 1.0\n",
            f"{info}/WHEEL": b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        }
        if how == "METADATA differs":
            members[f"{info}/METADATA"] = b"Metadata-Version: 2.1\nName: torch\nVersion: 1.0\n"
        if how == "version differs":
            members[f"{info}/METADATA"] = b"Metadata-Version: 2.1\nName: demo-pkg\nVersion: 9.9\n"
        txn_support.write_wheel(wheel, members)
        if how == "hash differs":  # RECORD lists the right size, the wrong hash
            with zipfile.ZipFile(wheel) as zf:
                content = {i.filename: zf.read(i) for i in zf.infolist()}
            record = content[f"{info}/RECORD"].decode().splitlines()
            record = [(line.split(",")[0] + ",sha256=" + "A" * 43 + "," + line.split(",")[2]) if line.startswith("demo_pkg/big.py") else line for line in record]  # fmt: skip
            content[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
            with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
                for name, data in content.items():
                    zf.writestr(name, data)
    before = snapshot(venv)
    with pytest.raises(IntegrityError):
        install_and_commit(venv, wheel, "demo-pkg", "1.0")
    assert snapshot(venv) == before


BOMB = """
import os, resource, sys, time
sys.path.insert(0, {repo!r})
from pathlib import Path
from sage_tasks.environment import install
from sage_tasks.stages import probe
from sage_tasks.core.errors import IntegrityError
target = probe.read_target(sys.argv[1], extra=["sageattention"])
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
try:
    with install.Change(target, os.environ, command="bomb") as change:
        change.install(Path(sys.argv[2]), "sageattention", "2.2.0")
        change.commit()
    print("installed")
except IntegrityError as e:
    print("refused", time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base, e.message)
"""


@pytest.mark.parametrize("lying", [False, True], ids=["honest-sizes", "lying-sizes"])
def test_a_zip_bomb_is_refused_fast_in_bounded_memory(tmp_path, lying, fault):
    fault("zip bomb (2 MB → 2 GiB)")
    venv = support.make_venv(tmp_path / "venv")
    bomb = txn_support.zip_bomb(tmp_path / "bomb", lying=lying)
    assert bomb.stat().st_size < 3 << 20
    done = subprocess.run(
        [sys.executable, "-c", BOMB.format(repo=str(support.REPO)), str(venv), str(bomb)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    word, seconds, extra_kib, message = done.stdout.split(" ", 3)
    print(f"\nzip bomb ({'lying' if lying else 'honest'} sizes): refused in {float(seconds):.3f} s, "
          f"{int(extra_kib) / 1024:.1f} MiB extra peak memory: {message.strip()}")  # fmt: skip
    assert word == "refused"
    assert float(seconds) < 2.0
    assert int(extra_kib) < 256 * 1024
    assert "kernels.bin" in message
    assert not list((txn_support.site_packages(venv) / ".sage-tasks").glob("txn-*"))


# ---------------------------------------------------------------- lock and signals


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "SAGE_TASKS_TEST_PAUSE_FILE": str(tmp_path / "paused"), **extra}


@pytest.fixture(scope="module")
def small_pair(tmp_path_factory):
    base = tmp_path_factory.mktemp("pair")
    a = txn_support.big_wheel(base / "a", "1.0", seed=1, modules=range(50), so_mb=1)
    b = txn_support.big_wheel(base / "b", "2.0", seed=2, modules=range(25, 80), so_mb=1)
    return {"1.0": a, "2.0": b}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_an_open_install_rolls_it_back(tmp_path, small_pair, sig, fault):
    fault(f"{signal.Signals(sig).name} during an open install (rolled back)")
    venv = support.make_venv(tmp_path / "venv")
    install_and_commit(venv, small_pair["1.0"], txn_support.PACKAGE, "1.0")
    before = snapshot(venv)
    proc = txn_support.harness(venv, small_pair["2.0"], "2.0", _env(tmp_path, SAGE_TASKS_TEST_PAUSE="read-back"))
    assert txn_support.wait_for(tmp_path / "paused", proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 10, err[-2000:]
    assert "restored bigdemo 1.0" in err and err.count("interrupted: interrupted by") == 1, err[-2000:]
    assert snapshot(venv) == before
    assert txn_support.judge(venv, small_pair).holds == "1.0"


def test_a_second_installer_waits_for_the_lock_and_takes_over_a_dead_ones(tmp_path, small_pair, fault):
    fault("lock held by a killed installer (taken over)")
    venv = support.make_venv(tmp_path / "venv")
    install_and_commit(venv, small_pair["1.0"], txn_support.PACKAGE, "1.0")
    first = txn_support.harness(venv, small_pair["2.0"], "2.0", _env(tmp_path, SAGE_TASKS_TEST_PAUSE="installed"))
    assert txn_support.wait_for(tmp_path / "paused", first)
    impatient = txn_support.harness(venv, small_pair["2.0"], "2.0", _env(tmp_path, SAGE_TASKS_LOCK_TIMEOUT="1"))
    _, err = impatient.communicate(timeout=60)
    assert impatient.returncode == 10, err[-2000:]
    assert f"waiting for PID {first.pid} (harness) to finish installing into {venv}" in err
    assert "environment busy:" in err and "SAGE_TASKS_LOCK_TIMEOUT" in err
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert txn_support.judge(venv, small_pair).holds == "broken"  # killed half-way: only recovery can tell
    second = txn_support.harness(venv, small_pair["2.0"], "2.0", _env(tmp_path))
    _, err = second.communicate(timeout=120)
    assert second.returncode == 0, err[-2000:]
    assert "rolled back an interrupted install (bigdemo 1.0 → 2.0): bigdemo 1.0 is back" in err
    assert txn_support.judge(venv, small_pair).holds == "2.0"


def test_two_concurrent_installers_into_one_venv_serialise(tmp_path, small_pair):
    venv = support.make_venv(tmp_path / "venv")
    # The first holds the lock (paused after installing) until the other three have started and
    # queued behind it; they overlap by construction, not by the luck of process start-up times.
    first = txn_support.harness(
        venv,
        small_pair["1.0"],
        "1.0",
        _env(tmp_path, SAGE_TASKS_TEST_PAUSE="installed", SAGE_TASKS_TEST_PAUSE_SECONDS="6"),
    )
    assert txn_support.wait_for(tmp_path / "paused", first)
    slow = _env(tmp_path, SAGE_TASKS_TEST_PAUSE="installed", SAGE_TASKS_TEST_PAUSE_SECONDS="1")  # each holds ≥ 1 s
    procs = [first, *(txn_support.harness(venv, small_pair[v], v, slow) for v in ("2.0", "1.0", "2.0"))]
    results = [(p.communicate(timeout=300), p.returncode) for p in procs]
    # survived: installers that finished (exit 0), provided the venv ends holding one whole version
    whole = txn_support.judge(venv, small_pair).holds in ("1.0", "2.0") and txn_support.imports_agree(venv)
    finished = sum(code == 0 for _, code in results)
    support.count_fault("concurrent installers into one venv", injected=len(procs), survived=finished * whole)
    assert all(code == 0 for _, code in results), [r[0][1][-1000:] for r in results]
    assert txn_support.judge(venv, small_pair).holds in ("1.0", "2.0")
    assert sum(f"waiting for PID {first.pid}" in err for (_, err), _ in results[1:]) >= 1  # they did overlap
    assert txn_support.imports_agree(venv)


def test_probe_reports_an_unfinished_install_and_the_next_command_finishes_it(tasks, tmp_path, small_pair):
    venv = support.make_venv(tmp_path / "venv")
    proc = txn_support.harness(venv, small_pair["1.0"], "1.0", _env(tmp_path, SAGE_TASKS_TEST_PAUSE="committed"))
    assert txn_support.wait_for(tmp_path / "paused", proc)
    running = tasks("probe", "--python", str(venv), "--json")
    assert running.returncode == 0, running.stderr[-2000:]
    seen = json.loads(running.stdout)["unfinished_install"]
    assert seen["state"] == "committed" and seen["owner_running"] is True
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    table = tasks("probe", "--python", str(venv))
    assert "unfinished install (bigdemo (none) → 1.0, committed): its process is gone" in table.stdout
    with install.Change(target(venv, txn_support.PACKAGE), os.environ, command="test") as change:
        assert change.recovered and "it had been committed" in change.recovered
    assert txn_support.judge(venv, small_pair).holds == "1.0"
    assert json.loads(tasks("probe", "--python", str(venv), "--json").stdout)["unfinished_install"] is None


def test_pin_waits_for_the_same_lock(tasks, tmp_path, small_pair, torch_index, no_gpu_path):
    venv = support.make_venv(tmp_path / "venv")
    proc = txn_support.harness(venv, small_pair["1.0"], "1.0", _env(tmp_path, SAGE_TASKS_TEST_PAUSE="installed"))
    assert txn_support.wait_for(tmp_path / "paused", proc)
    env = {**os.environ, "TORCH_INDEX_URL": torch_index, "SAGE_TASKS_LOCK_TIMEOUT": "1"}
    start = time.monotonic()
    pinned = tasks("pin", "--python", str(venv), env=env)
    assert pinned.returncode == 10, pinned.stderr[-2000:]
    assert "environment busy:" in pinned.stderr and f"PID {proc.pid}" in pinned.stderr
    assert time.monotonic() - start < 30
    assert support.installed_version(venv, "torch") is None  # pin changed nothing while the lock was held
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    pinned = tasks("pin", "--python", str(venv), env={**env, "SAGE_TASKS_LOCK_TIMEOUT": "60"})
    assert pinned.returncode == 0, pinned.stderr[-2000:]
    assert "rolled back an interrupted install (bigdemo (none) → 1.0)" in pinned.stderr
    assert txn_support.judge(venv, small_pair).holds == "none"


def test_build_finishes_an_interrupted_install_before_it_plans(tasks, tmp_path, small_pair):
    venv = support.make_venv(tmp_path / "venv")
    proc = txn_support.harness(venv, small_pair["1.0"], "1.0", _env(tmp_path, SAGE_TASKS_TEST_PAUSE="installed"))
    assert txn_support.wait_for(tmp_path / "paused", proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    recipe = support.write_demo_recipe(tmp_path / "demo.toml", "file:///nowhere", None)
    built = tasks("build", "--python", str(venv), "--recipe", str(recipe))
    assert built.returncode == 10, built.stderr[-2000:]  # the venv has no torch: the plan refuses...
    assert "rolled back an interrupted install (bigdemo (none) → 1.0)" in built.stderr  # ...after recovery
    assert txn_support.judge(venv, small_pair).holds == "none"


@pytest.mark.parametrize("bad", [{"placed": None}, {"replaced": 5}, {"pid": "7"}, {"folder": ["/"]}, {"base": 5}])
def test_a_journal_with_wrong_types_is_a_typed_error(tmp_path, bad):
    venv = support.make_venv(tmp_path / "venv")
    state = envlock.state_dir(target(venv).paths)
    state.mkdir(parents=True)
    journal = {"id": "x", "pid": 1, "package": "demo-pkg", "description": "d", "restores": "r",
               "folder": str(state / "txn-1"), "replaced": [], "placed": [], **bad}  # fmt: skip
    (state / "journal.json").write_text(json.dumps(journal))
    with pytest.raises(EnvironmentProblem, match="unreadable"), install.Change(target(venv), os.environ, command="t"):
        pass


@pytest.mark.parametrize("raw", ["nan", "inf", "-1", "soon"])
def test_a_lock_timeout_that_is_not_a_wait_is_refused(raw):
    with pytest.raises(EnvironmentProblem, match="SAGE_TASKS_LOCK_TIMEOUT"):
        envlock.timeout_from({"SAGE_TASKS_LOCK_TIMEOUT": raw})
    assert envlock.timeout_from({"SAGE_TASKS_LOCK_TIMEOUT": "0"}) == 0


def test_resource_limit_is_a_clean_error(tmp_path):
    """A file-size limit hit while unpacking changes nothing and says so."""
    venv = support.make_venv(tmp_path / "venv")
    wheel = support.make_wheel(tmp_path / "w", "demo-pkg", "1.0", {"demo_pkg/__init__.py": "", "demo_pkg/big.bin": os.urandom(8 << 20)})  # fmt: skip
    code = (
        f"import os, resource, sys; sys.path.insert(0, {str(support.REPO)!r})\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (4 << 20, 4 << 20))\n"
        "from pathlib import Path\nfrom sage_tasks.environment import install\nfrom sage_tasks.stages import probe\nfrom sage_tasks.core.errors import SageTasksError\n"
        f"t = probe.read_target({str(venv)!r}, extra=['demo-pkg'])\n"
        "try:\n"
        "    with install.Change(t, os.environ, command='t') as c:\n"
        f"        c.install(Path({str(wheel)!r}), 'demo-pkg', '1.0'); c.commit()\n"
        "except SageTasksError as e:\n    print(e.one_line()); sys.exit(int(e.code))\n"
    )
    before = snapshot(venv)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 10, done.stderr[-2000:]
    assert "File too large" in done.stdout and "nothing in" in done.stdout
    assert snapshot(venv) == before


def test_a_journal_written_before_staging_had_a_base_is_still_rolled_back(tmp_path):
    """Journals without ``base`` kept files under old/ and new/ by absolute path: a kill left by
    such a version (here: killed with the old files moved aside, nothing placed yet) is still
    rolled back to the old installation, byte for byte."""
    venv = support.make_venv(tmp_path / "venv")
    old = support.make_wheel(
        tmp_path / "w1", "demo-pkg", "1.0", {"demo_pkg/__init__.py": "V = 1\n", "demo_pkg/a.py": ""}
    )
    install_and_commit(venv, old, "demo-pkg", "1.0")
    before = snapshot(venv)
    site = txn_support.site_packages(venv)
    state = envlock.state_dir(target(venv).paths)
    folder = state / "txn-999999-0ld0ld00"
    replaced = sorted(str(p) for p in site.rglob("*") if p.is_file() and ".sage-tasks" not in p.parts)
    for path in replaced:  # moved aside as that version did: old/ + the absolute path
        keep = folder / "old" / path.lstrip(os.sep)
        keep.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, keep)
    journal = {"id": folder.name, "pid": 999999, "package": "demo-pkg", "description": "demo-pkg 1.0 → 2.0",
               "restores": "demo-pkg 1.0", "folder": str(folder), "replaced": replaced, "placed": [],
               "created_dirs": [], "roots": [str(site)]}  # fmt: skip
    (state / "journal.json").write_text(json.dumps(journal))
    with install.Change(target(venv), os.environ, command="t") as change:
        assert change.recovered and "demo-pkg 1.0 is back" in change.recovered
    assert snapshot(venv) == before
    assert txn_support.imports_agree(venv, "demo-pkg")


def test_a_journal_refuses_a_path_outside_the_folder_it_was_staged_for(tmp_path):
    """Staging and the journal must agree on where a file is kept: a path outside ``base`` would
    be kept somewhere a rollback does not look."""
    from sage_tasks.environment import transaction

    state, base = tmp_path / "state", tmp_path / "env"
    folder = transaction.new_folder(state)
    common = dict(package="p", description="d", restores="r", roots=[str(base)], env={}, base=str(base))
    with pytest.raises(EnvironmentProblem, match="outside"):
        transaction.begin(state, folder, replaced=[str(tmp_path / "elsewhere" / "f")], placed=[], **common)
    assert not (state / "journal.json").exists()
    transaction.begin(state, folder, replaced=[str(base / "lib" / "f")], placed=[str(base / "bin" / "g")], **common)
    assert json.loads((state / "journal.json").read_text())["base"] == str(base)


def test_where_a_file_is_kept_below_the_base():
    from sage_tasks.environment import transaction

    assert transaction._mirror("/t/new", "/env", "/env") == "/t/new"  # the data scheme is the prefix itself
    assert transaction._mirror("/t/new", "/env/lib/x.py", "/env") == "/t/new/lib/x.py"
    assert transaction._mirror("/t/new", "/env/lib/x.py") == "/t/new/env/lib/x.py"  # journals before base
    for outside in ("/envy/x", "/env//x", "/other/x"):
        with pytest.raises(ValueError, match="inside /env"):
            transaction._mirror("/t/new", outside, "/env")
