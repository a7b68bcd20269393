"""Living beside the bash installer (issue 11): its latest.json read as written, its store
adopted, latest.json only ever naming a wheel the installer accepts, round trips through a local
store and the loopback Hub (tests/hub_server.py) in which both tools publish."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import urllib.request
from pathlib import Path

import pytest

from sage_tasks.core.settings import StoreConfig
from sage_tasks.stages import publish
from sage_tasks.stages.selection import select_wheel
from sage_tasks.store import installer_rules, manifest
from sage_tasks.store.installer_rules import Expect
from sage_tasks.store.local import LocalStore
from sage_tasks.store.manifest import Index, Verification, WheelManifest
from sage_tasks.wheel import wheelfile
from tests import support
from tests.hub_server import HubServer

FOLDER = manifest.INSTALLER_FOLDER
REPO_ID = "tester/sage-wheels"
PLAIN_CP312 = "sageattention-2.2.0-cp312-cp312-linux_x86_64.whl"


# ---------------------------------------------------------------- helpers


def sage_wheel(dest: Path, version: str, tag: str = "cp312-cp312-linux_x86_64", so: bytes = b"\x7fELF sm_120") -> Path:
    return support.make_wheel(
        dest, "sageattention", version, {"sageattention/__init__.py": "", "sageattention/_qattn.so": so}, tag=tag
    )


def built(dest: Path, label: str = "cu128torch2.8.0.sm120", status: str = "passed", cc: str = "12.0", **changes):
    """A labelled wheel and its manifest as `invoke build` + `test-kernel` leave them in dist/."""
    tag = changes.pop("tag", "cp312-cp312-linux_x86_64")
    wheel = sage_wheel(dest, f"2.2.0+{label}", tag=tag, so=changes.pop("so", b"\x7fELF sm_120"))
    fields = {  # the demo's torch stack, with SageAttention's name, source and an RTX 5090 verdict
        "package": "sageattention",
        "recipe": None,
        "target_arch": "12.0",
        "cuda_archs": ("sm_120",),
        "source": {
            "repo": "https://github.com/thu-ml/SageAttention",
            "ref": "v2.2.0",
            "commit": "eb615cf6cf4d221338033340ee2de1c37fbdba4a",
        },
        "verification": Verification(status=status, gpu="NVIDIA GeForce RTX 5090", compute_capability=cc),
    }
    support.demo_manifest(wheel, **{**fields, **changes})
    return wheel, wheel.with_name(wheel.name + ".json")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def installer_files(wheel: Path, folder: str = FOLDER, **changes) -> dict[str, bytes]:
    """What the installer uploads: its wheel next to latest.json."""
    data = wheel.read_bytes()
    record = support.legacy_latest(wheel.name, sha(data), **changes)
    return {f"{folder}/{wheel.name}": data, f"{folder}/latest.json": json.dumps(record, indent=2).encode()}


def write_files(base: Path, files: dict[str, bytes]) -> None:
    for relative, data in files.items():
        (base / relative).parent.mkdir(parents=True, exist_ok=True)
        (base / relative).write_bytes(data)


def legacy(**changes) -> WheelManifest:
    record = support.legacy_latest(PLAIN_CP312, "b" * 64, **changes)
    return manifest.from_legacy_latest(record, "latest.json")


def installed_version_of(path: Path) -> str:
    return wheelfile.inspect(path).version


# ---------------------------------------------------------------- 1. read it as written (pure)


@pytest.mark.parametrize(
    "torch",
    [
        {"torch_version": "2.8.0", "torchvision_version": "0.23.0", "torchaudio_version": "2.8.0"},
        {"torch_version": "2.8.0+cu128", "torchvision_version": "0.23.0+cu128", "torchaudio_version": "2.8.0+cu128"},
    ],
    ids=["plain", "labelled"],
)
def test_installer_entry_fits_rtx5090_with_torch_cu128_in_both_forms(torch):
    entry = legacy(**torch)
    assert entry.torch_cuda == "12.8"
    assert entry.source == {
        "repo": "https://github.com/thu-ml/SageAttention",
        "ref": "v2.2.0",
        "commit": "eb615cf6cf4d221338033340ee2de1c37fbdba4a",
    }
    assert entry.build == {"gpu": "NVIDIA GeForce RTX 5090", "compute_capability": "12.0"}
    assert entry.python_tag == "cp312" and entry.cuda_archs == ("sm_120",)
    assert entry.installer == support.legacy_latest(PLAIN_CP312, "b" * 64, **torch)  # nothing dropped
    chosen = select_wheel([entry], support.want())
    assert chosen.chosen == entry, chosen.rejected
    assert chosen.notes == ()


def test_cuda_comes_from_the_index_url_before_required_min_cuda():
    entry = legacy(torch_index_url="https://download.pytorch.org/whl/cu126", required_min_cuda="12.8")
    assert entry.torch_cuda == "12.6"
    [rejection] = select_wheel([entry], support.want()).rejected
    assert any("CUDA 12.6" in r for r in rejection.reasons)
    assert legacy(torch_index_url=None, required_min_cuda="12.9").torch_cuda == "12.9"


def test_older_field_set_without_cuda_is_accepted_on_the_same_torch_with_one_line():
    entry = legacy(older=True, torch_index_url=None)
    assert entry.torch_cuda is None and entry.source["commit"] is None and entry.build is None
    selection = select_wheel([entry], support.want())
    assert selection.chosen == entry
    [note] = selection.notes
    assert "did not record" in note and "12.8" in note
    for other in (
        support.want(torch_version="2.8.0+cu130", torch_cuda="13.0"),  # another CUDA major
        support.want(torch_version="2.8.0+cu126", torch_cuda="12.6"),  # below the installer's 12.8
        support.want(torch_version="2.7.1+cu128"),  # another torch
    ):
        assert select_wheel([entry], other).chosen is None, other


# ---------------------------------------------------------------- the installer's rules (pure)


def test_installer_rules_as_documented():
    good = support.legacy_latest(PLAIN_CP312, "c" * 64)
    assert installer_rules.accepts(good, "2.2.0") == []
    assert (
        installer_rules.accepts({**good, "wheel_file": None, "hf_wheel_url": "https://h/x/" + PLAIN_CP312}, "2.2.0")
        == []
    )
    refused = {
        "names no wheel": {"wheel_file": None},
        "target_arch": {"target_arch": "9.0"},
        "sageattention_version": {"sageattention_version": "2.2.0+cu128torch2.8.0"},
        "built_from_repo": {"built_from_repo": "https://github.com/someone/fork"},
        "built_from_ref": {"built_from_ref": "main"},
    }
    for what, change in refused.items():
        reasons = installer_rules.manifest_reasons({**good, **change})
        assert len(reasons) == 1 and what in reasons[0], (what, reasons)
    assert installer_rules.accepts({**good, "target_arch": "120"}, "2.2.0") == []
    assert installer_rules.accepts(good, "2.2.0+cu128torch2.8.0")  # the version read back must be exact
    unsafe = Expect(allow_unsafe=True)
    assert installer_rules.manifest_reasons({**good, "target_arch": "9.0", "built_from_ref": "x"}, unsafe) == []
    assert installer_rules.accepts(good, "2.2.1", Expect(version="")) == []  # empty SAGE_EXPECT_VERSION
    labelled = "sageattention-2.2.0+cu128torch2.8.0-cp312-cp312-linux_x86_64.whl"
    assert installer_rules.install_reasons(labelled, "2.2.0")  # the local glob misses it


def twin_entry(**changes) -> WheelManifest:
    base = dict(
        version="2.2.0",
        wheel_file="sageattention-2.2.0-0cu128torch280sm120-cp312-cp312-linux_x86_64.whl",
        twin_of="sageattention-2.2.0+cu128torch2.8.0.sm120-cp312-cp312-linux_x86_64.whl",
        created_at="2026-11-20T00:00:00Z",
    )
    base.update(changes)
    return support.entry(**base)


def test_which_wheel_may_become_latest_json():
    pointer = legacy()
    index = Index(wheels=(pointer,), latest=pointer.wheel_file)
    assert installer_rules.pointer_reasons(twin_entry(), index) == []
    hopper = twin_entry(
        wheel_file="sageattention-2.2.0-0cu130torch2110sm90-cp312-cp312-linux_x86_64.whl",
        target_arch="9.0",
        cuda_archs=("sm_90a",),
        verification=Verification(status="passed", compute_capability="9.0"),
    )
    cases = {
        "another arch": hopper,
        "another Python": twin_entry(wheel_file="sageattention-2.2.0-0cu128torch280sm120-cp311-cp311-linux_x86_64.whl"),
        "failed": twin_entry(verification=Verification(status="failed", compute_capability="12.0")),
        "unverified": twin_entry(verification=Verification(status="unverified")),
        "passed elsewhere": twin_entry(verification=Verification(status="passed", compute_capability="8.9")),
        "passed, but 12.0 untested": twin_entry(
            verification=Verification(
                status="passed",
                compute_capability="9.0",
                archs=(
                    {"compute_capability": "9.0", "status": "passed"},
                    {"compute_capability": "12.0", "status": "unverified"},
                ),
            )
        ),
        "labelled version": support.entry(),
        "yanked": twin_entry(yanked={"reason": "bad", "at": "2026-11-21T00:00:00Z"}),
        # the installer reads only target_arch: a manifest that says 12.0 over binaries without
        # sm_120 code (PTX only, or another arch's SASS) passes its checks and fails at run time
        "says 12.0, carries no sm_120": twin_entry(cuda_archs=("sm_90a", "compute_120")),
    }
    for what, candidate in cases.items():
        moved, line = publish.move_pointer(index, candidate, allow_unverified=False)
        assert moved.latest == pointer.wheel_file, what
        assert line.startswith("latest.json stays at"), (what, line)
    no_sass = cases["says 12.0, carries no sm_120"]
    assert installer_rules.manifest_reasons(manifest.latest_record(no_sass)) == []  # the installer would take it
    assert installer_rules.pointer_reasons(no_sass, index) == ["no machine code for 12.0 (carries sm_90a, compute_120)"]
    unverified = cases["unverified"]
    assert publish.move_pointer(index, unverified, allow_unverified=True)[0].latest == unverified.wheel_file
    failed = cases["failed"]
    assert publish.move_pointer(index, failed, allow_unverified=True)[0].latest == pointer.wheel_file
    older = twin_entry(created_at="2020-01-01T00:00:00Z")
    assert publish.move_pointer(index, older, allow_unverified=False)[0].latest == pointer.wheel_file


def test_yank_takes_the_pointer_and_unyank_gives_it_back_unless_a_newer_one_took_it():
    twin = twin_entry()
    index = Index(wheels=(legacy(), twin), latest=twin.wheel_file)
    yanked, changed, line = publish.yank_change(index, twin.wheel_file, "nan on sm_120", "2026-11-22T00:00:00Z")
    assert changed and yanked.latest is None and "removed" in line
    assert yanked.get(twin.wheel_file).yanked["was_latest"] is True
    back, _, line = publish.yank_change(yanked, twin.wheel_file, None, "t")
    assert back.latest == twin.wheel_file and back.get(twin.wheel_file).yanked is None, line
    newer = twin_entry(wheel_file="sageattention-2.2.0-1cu128torch280sm120-cp312-cp312-linux_x86_64.whl",
                       created_at="2026-11-23T00:00:00Z")  # fmt: skip
    replaced = yanked.with_entry(newer).replace(latest=newer.wheel_file)
    kept, _, line = publish.yank_change(replaced, twin.wheel_file, None, "t")
    assert kept.latest == newer.wheel_file and "newer" in line


# ---------------------------------------------------------------- 2-5 in a local store


def test_local_round_trip_adopt_publish_yank_unyank(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    base = tmp_path / "store"
    theirs = installer_files(sage_wheel(tmp_path / "installer", "2.2.0"))
    write_files(base, theirs)
    store = LocalStore(base, "sageattention")  # the default REMOTE_DIR

    index = store.read_index()
    assert index.pending == (PLAIN_CP312,) and index.latest == PLAIN_CP312
    assert "REMOTE_DIR=sageattention220" in caplog.text and "invoke adopt" in caplog.text
    assert select_wheel(index.wheels, support.want()).chosen.wheel_file == PLAIN_CP312  # installer store → fetch

    adopted = publish.adopt(store)
    assert adopted.adopted == (PLAIN_CP312,) and adopted.latest == PLAIN_CP312
    for relative, data in theirs.items():  # its files and latest.json as they were
        assert (base / relative).read_bytes() == data
    assert not (base / "sageattention").exists()
    assert publish.adopt(store).adopted == ()

    wheel, meta = built(tmp_path / "dist")
    result = publish.publish(store, wheel, meta)
    assert result.twin is not None and result.latest == result.twin.wheel_file
    folder = base / FOLDER
    latest = json.loads((folder / "latest.json").read_text())
    twin_file = folder / result.twin.wheel_path
    assert installer_rules.accepts(latest, installed_version_of(twin_file)) == []
    assert latest["wheel_sha256"] == sha(twin_file.read_bytes()) == result.twin.wheel_sha256
    assert wheelfile.extension_bytes(twin_file) == wheelfile.extension_bytes(wheel)
    assert result.twin.verification.passed  # same .so bytes: the verdict carries over
    assert (folder / PLAIN_CP312).read_bytes() == theirs[f"{FOLDER}/{PLAIN_CP312}"]

    index = store.read_index()
    fits = select_wheel(index.wheels, support.want())
    assert fits.chosen.wheel_file == wheel.name  # the best of both: verified, labelled
    assert {PLAIN_CP312, result.twin.wheel_file} <= {w.wheel_file for w in fits.accepted}

    for other in (
        built(tmp_path / "h100", label="cu128torch2.8.0.sm90", cc="9.0", target_arch="9.0", cuda_archs=("sm_90a",),
              so=b"\x7fELF sm_90a"),
        built(tmp_path / "py311", tag="cp311-cp311-linux_x86_64", so=b"\x7fELF sm_120 cp311"),
    ):  # fmt: skip
        moved = publish.publish(store, *other)
        assert moved.latest == result.twin.wheel_file and moved.pointer.startswith("latest.json stays at"), moved
        assert json.loads((folder / "latest.json").read_text()) == latest

    yank = publish.set_yanked(store, result.twin.wheel_file, "nan on sm_120")
    assert not (folder / "latest.json").exists() and "removed" in yank.pointer
    publish.set_yanked(store, result.twin.wheel_file, None)
    assert json.loads((folder / "latest.json").read_text())["wheel_file"] == result.twin.wheel_file


def test_local_installer_uploads_after_adoption_are_offered(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    base = tmp_path / "store"
    write_files(base, installer_files(sage_wheel(tmp_path / "first", "2.2.0")))
    store = LocalStore(base, FOLDER)
    publish.adopt(store)
    # the installer on a cp311 machine uploads a new wheel and latest.json, and knows no index
    second = sage_wheel(tmp_path / "second", "2.2.0", tag="cp311-cp311-linux_x86_64", so=b"\x7fELF cp311")
    write_files(base, installer_files(second, created_at_utc="2026-11-25T00:00:00Z", python_tag="cp311"))
    index = store.read_index()
    assert index.pending == (second.name,) and index.latest == second.name
    assert {PLAIN_CP312, second.name} == {w.wheel_file for w in index.wheels}
    assert f"published {second.name}" in caplog.text
    # one it cannot use is listed with the reason
    (base / FOLDER / "latest.json").write_text(json.dumps({**support.legacy_latest(second.name, "nothex")}))
    assert store.read_index().pending == ()
    assert "cannot be used" in caplog.text and "wheel_sha256" in caplog.text


# ---------------------------------------------------------------- 2-5 on the loopback Hub


@pytest.fixture
def hub():
    with HubServer().start() as server:
        yield server


def hub_store(hub: HubServer, tmp_path: Path, remote_dir: str = "sageattention"):
    from sage_tasks.store.hub import HubStore

    config = StoreConfig(
        kind="hub", local_dir=tmp_path / "unused", remote_dir=remote_dir, repo_id=REPO_ID, endpoint=hub.url
    )
    return HubStore(config, {"HF_TOKEN": hub.token, "HF_ENDPOINT": hub.url, "SAGE_RETRY_BASE_S": "0.01"})


def installer_uploads(hub: HubServer, files: dict[str, bytes]) -> None:
    """The bash installer publishing: two plain uploads through the Hub API, wheel then latest.json."""
    from huggingface_hub import HfApi

    api = HfApi(endpoint=hub.url, token=hub.token)
    for path, data in files.items():
        api.upload_file(path_or_fileobj=data, path_in_repo=path, repo_id=REPO_ID, repo_type="dataset")


@pytest.mark.slow
def test_hub_round_trip_under_the_default_remote_dir(hub, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    theirs = installer_files(sage_wheel(tmp_path / "installer", "2.2.0"))
    hub.put_files(REPO_ID, theirs)
    store = hub_store(hub, tmp_path)

    assert store.read_index().pending == (PLAIN_CP312,)
    assert "REMOTE_DIR=sageattention220" in caplog.text
    commits = hub.commit_count(REPO_ID)
    assert publish.adopt(store).adopted == (PLAIN_CP312,)
    assert hub.commit_count(REPO_ID) == commits + 1  # one commit
    files = hub.repo_files(REPO_ID)
    assert {p: files[p] for p in theirs} == theirs and f"{FOLDER}/index.json" in files

    wheel, meta = built(tmp_path / "dist")
    result = publish.publish(store, wheel, meta)
    assert hub.commit_count(REPO_ID) == commits + 2
    files = hub.repo_files(REPO_ID)
    latest = json.loads(files[f"{FOLDER}/latest.json"])
    assert latest["wheel_file"] == result.twin.wheel_file
    with urllib.request.urlopen(latest["hf_wheel_url"]) as answer:  # what the installer downloads
        downloaded = answer.read()
    twin = hub.repo_files(REPO_ID)[f"{FOLDER}/{result.twin.wheel_path}"]
    assert sha(downloaded) == latest["wheel_sha256"] == sha(twin)
    local = tmp_path / "got" / result.twin.wheel_file
    local.parent.mkdir()
    local.write_bytes(downloaded)
    assert installer_rules.accepts(latest, installed_version_of(local)) == []
    assert files[f"{FOLDER}/{PLAIN_CP312}"] == theirs[f"{FOLDER}/{PLAIN_CP312}"]

    # yank and unyank of the installer's own wheel, still under the default REMOTE_DIR
    publish.set_yanked(store, result.twin.wheel_file, "bad")
    assert f"{FOLDER}/latest.json" not in hub.repo_files(REPO_ID)
    publish.set_yanked(store, result.twin.wheel_file, None)
    assert json.loads(hub.repo_files(REPO_ID)[f"{FOLDER}/latest.json"]) == latest


@pytest.mark.slow
def test_hub_yank_of_the_installers_wheel_restores_its_own_latest_json(hub, tmp_path):
    theirs = installer_files(sage_wheel(tmp_path / "installer", "2.2.0"))
    hub.put_files(REPO_ID, theirs)
    store = hub_store(hub, tmp_path)  # default REMOTE_DIR: the installer's folder is found
    yanked = publish.set_yanked(store, PLAIN_CP312, "segfaults")
    assert yanked.changed and "removed" in yanked.pointer
    files = hub.repo_files(REPO_ID)
    assert (
        f"{FOLDER}/latest.json" not in files and files[f"{FOLDER}/{PLAIN_CP312}"] == theirs[f"{FOLDER}/{PLAIN_CP312}"]
    )
    assert select_wheel(store.read_index().wheels, support.want()).chosen is None
    publish.set_yanked(store, PLAIN_CP312, None)
    restored = json.loads(hub.repo_files(REPO_ID)[f"{FOLDER}/latest.json"])
    assert restored == json.loads(theirs[f"{FOLDER}/latest.json"])


@pytest.mark.slow
def test_hub_two_machines_publish_into_one_folder_and_nobody_loses_a_wheel(hub, tmp_path):
    hub.put_files(REPO_ID, installer_files(sage_wheel(tmp_path / "first", "2.2.0")))
    store = hub_store(hub, tmp_path, FOLDER)
    publish.adopt(store)

    # the installer's machine uploads between our read of the index and our commit
    cp311 = sage_wheel(tmp_path / "installer311", "2.2.0", tag="cp311-cp311-linux_x86_64", so=b"\x7fELF cp311")
    theirs = installer_files(cp311, created_at_utc="2099-01-01T00:00:00Z", python_tag="cp311")
    hub.before_next("commit", lambda: installer_uploads(hub, theirs))
    wheel, meta = built(tmp_path / "dist")
    ours = publish.publish(store, wheel, meta)
    assert ours.attempts >= 2  # it had to re-read and merge

    files = hub.repo_files(REPO_ID)
    assert {p: files[p] for p in theirs} == theirs  # the installer's wheel and its latest.json
    names = {w["wheel_file"] for w in json.loads(files[f"{FOLDER}/index.json"])["wheels"]}
    assert {PLAIN_CP312, cp311.name, wheel.name, ours.twin.wheel_file} == names
    for name in names - {PLAIN_CP312, cp311.name}:
        assert f"{FOLDER}/wheels/{name}" in files

    # and the other order: ours first, then the installer's two uploads
    later = sage_wheel(tmp_path / "installer-later", "2.2.0", so=b"\x7fELF rebuilt")
    again = installer_files(later, created_at_utc="2099-02-01T00:00:00Z")
    installer_uploads(hub, again)
    index = store.read_index()
    assert index.pending == (PLAIN_CP312,) and index.latest == PLAIN_CP312
    assert {wheel.name, ours.twin.wheel_file, cp311.name} <= {w.wheel_file for w in index.wheels}
    assert index.get(PLAIN_CP312).wheel_sha256 == sha(later.read_bytes())


# ---------------------------------------------------------------- every command says so


@pytest.mark.slow
def test_every_command_points_at_the_installers_store(tasks, tmp_path, no_gpu_path):
    base = tmp_path / "store"
    theirs = installer_files(sage_wheel(tmp_path / "installer", "2.2.0"))
    write_files(base, theirs)
    env = {**os.environ, "SAGE_STORE": str(base), "SAGE_DIST": str(tmp_path / "dist")}
    demo = support.demo_wheel(tmp_path / "dist")
    support.demo_manifest(demo)
    commands = [
        ("fetch", "--dry-run"),
        ("pin", "--check"),
        ("adopt", "--json"),
        ("yank", PLAIN_CP312, "--reason", "segfaults"),
        ("unyank", PLAIN_CP312),
        ("publish", "--wheel", str(demo), "--allow-unverified"),
    ]
    outputs = {}
    for args in commands:
        done = tasks(*args, env=env)
        outputs[args[0]] = done
        assert "REMOTE_DIR=sageattention220" in done.stderr, (args, done.stderr[-2000:])
        assert "Traceback" not in done.stderr
    assert "invoke adopt" in outputs["fetch"].stderr and "invoke adopt" in outputs["pin"].stderr
    assert outputs["adopt"].returncode == 0 and json.loads(outputs["adopt"].stdout)["adopted"] == [PLAIN_CP312]
    assert "latest.json removed" in outputs["yank"].stdout
    assert f"latest.json restored to {PLAIN_CP312}" in outputs["unyank"].stdout
    assert outputs["publish"].returncode == 0, outputs["publish"].stderr[-2000:]
    assert "latest.json stays at" in outputs["publish"].stdout
    # the installer still finds what it found before (latest.json was removed and restored by the
    # yank and unyank: the same record, rewritten)
    assert (base / FOLDER / PLAIN_CP312).read_bytes() == theirs[f"{FOLDER}/{PLAIN_CP312}"]
    restored = json.loads((base / FOLDER / "latest.json").read_text())
    assert restored == json.loads(theirs[f"{FOLDER}/latest.json"])
    assert installer_rules.accepts(restored, "2.2.0") == []
    index = json.loads((base / FOLDER / "index.json").read_text())
    assert {PLAIN_CP312, demo.name} == {w["wheel_file"] for w in index["wheels"]}


def test_a_twin_keeps_the_verdict_only_when_its_extensions_are_byte_identical(tmp_path):
    wheel, meta = built(tmp_path / "dist")
    entry = manifest.read_manifest_file(meta)
    twin, _ = publish.make_twin(wheel, entry, tmp_path / "twin")
    assert twin.verification == entry.verification and twin.verification.passed
    # a plain wheel of the same name whose .so differs (stripped, rebuilt): the kernel test proved
    # the labelled wheel's binaries, not these
    other, _ = built(tmp_path / "other", so=b"\x7fELF sm_120, rebuilt")
    differing = wheelfile.plain_twin(other, tmp_path / "differing", installer_rules.twin_build_tag(entry))
    assert differing.name == twin.wheel_file
    verdict = publish.twin_verdict(entry, wheel, differing)
    assert verdict.status == "unverified" and entry.wheel_file in verdict.summary, verdict
    assert publish.twin_verdict(entry, wheel, tmp_path / "twin" / twin.wheel_file) == entry.verification
    # so such a twin does not become latest.json without --latest-unverified
    candidate = twin.replace(verification=verdict)
    moved, line = publish.move_pointer(Index(), candidate, allow_unverified=False)
    assert moved.latest is None and "unverified" in line, line
    assert publish.move_pointer(Index(), candidate, allow_unverified=True)[0].latest == twin.wheel_file


def test_twins_of_different_variants_never_collide_and_supersede_within_their_variant():
    cu128 = twin_entry()
    cu130 = twin_entry(
        wheel_file="sageattention-2.2.0-0cu130torch290sm120-cp312-cp312-linux_x86_64.whl", wheel_sha256="d" * 64
    )
    index, outcome, _ = publish.merge(Index(wheels=(cu128,)), cu130, replace=False)
    assert outcome == "published" and len(index.wheels) == len((cu128, cu130))
    rebuilt = twin_entry(wheel_sha256="e" * 64)
    index, outcome, stored = publish.merge(index, rebuilt, replace=True)
    assert outcome == "superseded"
    assert stored.wheel_file == "sageattention-2.2.0-1cu128torch280sm120-cp312-cp312-linux_x86_64.whl"
    assert index.get(cu128.wheel_file).yanked and index.get(cu130.wheel_file).yanked is None
    assert installer_rules.install_reasons(stored.wheel_file, stored.version) == []


def test_yanking_a_labelled_wheel_takes_its_twin_and_the_pointer_along():
    labelled = support.entry(wheel_file="sageattention-2.2.0+cu128torch2.8.0.sm120-cp312-cp312-linux_x86_64.whl")
    twin = twin_entry(twin_of=labelled.wheel_file)
    index = Index(wheels=(labelled, twin), latest=twin.wheel_file)
    yanked, _, line = publish.yank_change(index, labelled.wheel_file, "same binaries, same bug", "t")
    assert yanked.get(twin.wheel_file).yanked["reason"] == "same binaries, same bug"
    assert yanked.latest is None and "removed" in line
    assert select_wheel(yanked.wheels, support.want()).chosen is None
    back, _, _ = publish.yank_change(yanked, labelled.wheel_file, None, "t")
    assert back.latest == twin.wheel_file and not any(w.yanked for w in back.wheels)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["local", "hub"])
def test_a_store_in_another_folder_says_the_installers_wheel_is_beside_it(kind, hub, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    theirs = installer_files(sage_wheel(tmp_path / "installer", "2.2.0"))
    base = tmp_path / "store"
    if kind == "hub":
        hub.put_files(REPO_ID, theirs)
        store = hub_store(hub, tmp_path)
    else:
        write_files(base, theirs)
        store = LocalStore(base, "sageattention")
    # a store published into its own folder before sage-tasks knew better
    (base / "sageattention").mkdir(parents=True, exist_ok=True)
    if kind == "hub":
        hub.put_files(REPO_ID, {"sageattention/index.json": json.dumps({"schema_version": 1, "wheels": []}).encode()})
    else:
        (base / "sageattention" / "index.json").write_text(json.dumps({"schema_version": 1, "wheels": []}))
    caplog.clear()
    assert store.read_index().wheels == ()
    assert f"{PLAIN_CP312}) is not part of the store" in caplog.text and "REMOTE_DIR=sageattention220" in caplog.text
