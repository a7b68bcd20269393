"""The fetch path's shortcuts give the answers of the slow ways they replace: ``_target_facts``
finds distributions without importing ``importlib.metadata`` and agrees with it (falling back to
it where it cannot); the read-back and the facts after it are one interpreter start."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

from sage_tasks.core.errors import EnvironmentProblem
from sage_tasks.environment import install
from sage_tasks.stages import probe
from sage_tasks.target import facts as _target_facts
from sage_tasks.wheel.wheelfile import sha256_file
from tests import support, txn_support


def test_the_finder_agrees_with_importlib_metadata_on_this_environment():
    names = sorted({dist.metadata["Name"] for dist in metadata.distributions()})
    assert len(names) > 20
    for name in names:
        dist = metadata.distribution(name)
        assert _target_facts._version(name) == metadata.version(name), name
        files = _target_facts.installed_files(name)
        assert files is not None
        assert files["files"] == [str(f) for f in dist.files or []], name
        assert files["site"] == str(dist.locate_file("")), name
        assert files["direct_url"] == dist.read_text("direct_url.json"), name
    assert _target_facts._version("surely-not-installed-anywhere") is None


def _dist(root: Path, folder: str, metadata_text: str, name: str = "METADATA") -> None:
    (root / folder).mkdir(parents=True)
    (root / folder / name).write_text(metadata_text)


COMPARE = """
import json, sys
sys.path[:0] = json.loads(sys.argv[1])
from importlib import metadata
import facts as tf
out = {}
for name in json.loads(sys.argv[2]):
    try:
        slow = metadata.version(name)
    except metadata.PackageNotFoundError:
        slow = None
    out[name] = [tf._version(name), slow, type(tf.find(name)).__name__ == "Dist"]
print(json.dumps(out))
"""


def test_eggs_zips_twins_and_odd_headers_give_importlib_metadata_s_answer(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    _dist(first, "Odd_Case-1.0.dist-info", "Metadata-Version: 2.1\nName: Odd.Case\nversion:   1.0 \n\nVersion: 9\n")
    _dist(first, "eggy-2.0.egg-info", "Metadata-Version: 1.1\nName: eggy\nVersion: 2.0\n", name="PKG-INFO")
    _dist(second, "eggy-3.0.dist-info", "Metadata-Version: 2.1\nName: eggy\nVersion: 3.0\n")  # shadowed by the egg
    _dist(first, "twin-1.0.dist-info", "Metadata-Version: 2.1\nName: twin\nVersion: 1.0\n")
    _dist(first, "twin-2.0.dist-info", "Metadata-Version: 2.1\nName: twin\nVersion: 2.0\n")
    _dist(first, "nometa-1.0.dist-info", "", name="RECORD")
    _dist(second, "later-5.0.dist-info", "Metadata-Version: 2.1\nName: later\nVersion: 5.0\n")
    zipped = tmp_path / "zipped.zip"
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.writestr("zipped-4.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: zipped\nVersion: 4.0\n")
        zf.writestr("later-6.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: later\nVersion: 6.0\n")
    names = ["odd-case", "Odd_Case", "eggy", "twin", "nometa", "zipped", "later", "absent"]
    for path in ([first, second], [first, zipped, second]):
        done = subprocess.run(
            [sys.executable, "-c", COMPARE, json.dumps([str(p) for p in path]), json.dumps(names)],
            cwd=Path(_target_facts.__file__).parent,
            env={**os.environ, "PYTHONPATH": str(Path(_target_facts.__file__).parent)},
            capture_output=True,
            text=True,
            check=True,
        )
        answers = json.loads(done.stdout)
        for name, (fast, slow, _) in answers.items():
            assert fast == slow, (path, name, fast, slow)
        shortcut = {name for name, (_, _, used) in answers.items() if used}
        assert shortcut == ({"odd-case", "Odd_Case"} if zipped in path else {"odd-case", "Odd_Case", "later"})
    assert answers["later"][:2] == ["6.0", "6.0"] and answers["odd-case"][0] == "1.0 "


_RECORDING: list[list[object]] = []


def _audit(event: str, args: tuple[object, ...]) -> None:
    if event == "subprocess.Popen" and _RECORDING:
        _RECORDING[-1].append(args[1])


sys.addaudithook(_audit)


@pytest.mark.slow
def test_the_read_back_is_one_interpreter_start_that_tolerates_output_and_records_the_given_hash(tmp_path):
    venv = support.make_venv(tmp_path / "venv")
    noisy = support.make_wheel(tmp_path / "w", "demo-pkg", "1.0", {
        "demo_pkg/__init__.py": "import sys\nprint('hello', end='')\nsys.stdout.flush()\nV = 1\n",
    })  # fmt: skip
    sha = sha256_file(noisy)
    before = probe.read_target(str(venv), extra=["demo-pkg"])
    starts: list[object] = []
    with install.Change(before, os.environ, command="test") as change:
        _RECORDING.append(starts)  # processes started, seen by an audit hook (nothing of ours replaced)
        try:
            after = change.install(noisy, "demo-pkg", "1.0", sha256=sha)
        finally:
            _RECORDING.remove(starts)
        change.commit()
    assert len(starts) == 1, starts
    assert after.version_of("demo-pkg") == "1.0"
    assert install.installed_sha256(after, "demo-pkg") == sha


@pytest.mark.slow
def test_an_import_that_kills_the_interpreter_is_a_failed_read_back(tmp_path):
    venv = support.make_venv(tmp_path / "venv")
    dying = support.make_wheel(tmp_path / "w", "demo-pkg", "1.0", {"demo_pkg/__init__.py": "import os\nos._exit(3)\n"})
    before = probe.read_target(str(venv), extra=["demo-pkg"])
    with (
        pytest.raises(EnvironmentProblem, match=r"import demo_pkg.*exited with 3"),
        install.Change(before, os.environ, command="test") as change,
    ):
        change.install(dying, "demo-pkg", "1.0")
        change.commit()
    assert not (txn_support.site_packages(venv) / "demo_pkg").exists()
