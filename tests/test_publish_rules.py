"""What publishing does to an index (pure): nothing published is ever overwritten."""

from __future__ import annotations

import pytest

from sage_tasks.core import redaction, settings
from sage_tasks.core.errors import ConfigError, ConflictError
from sage_tasks.stages import publish, verify
from sage_tasks.store.manifest import Index, Verification
from tests.support import entry, machine

NAME = "sageattention-2.2.0+cu128torch2.8.0-cp312-cp312-linux_x86_64.whl"


def test_new_wheel_is_published():
    index, outcome, stored = publish.merge(Index(), entry(), replace=False)
    assert outcome == "published" and index.wheels == (stored,)


def test_same_bytes_keep_their_yank_and_their_full_verdict():
    yanked = entry(yanked={"reason": "bad", "at": "2026-11-01T00:00:00Z"})
    _, outcome, stored = publish.merge(
        Index(wheels=(yanked,)), entry(verification=Verification(status="unverified")), replace=False
    )
    assert outcome == "unchanged"
    assert stored.yanked == yanked.yanked and stored.verification.passed


def test_different_bytes_for_a_live_wheel_conflict():
    with pytest.raises(ConflictError, match="already published with different contents"):
        publish.merge(Index(wheels=(entry(),)), entry(wheel_sha256="b" * 64), replace=False)


def test_new_bytes_for_a_yanked_variant_go_in_under_a_build_tag():
    yanked = entry(yanked={"reason": "bad", "at": "2026-11-01T00:00:00Z"})
    index, outcome, stored = publish.merge(Index(wheels=(yanked,)), entry(wheel_sha256="b" * 64), replace=False)
    assert outcome == "superseded"
    assert stored.wheel_file == "sageattention-2.2.0+cu128torch2.8.0-1-cp312-cp312-linux_x86_64.whl"
    assert stored.wheel_path == f"wheels/{stored.wheel_file}"
    assert {w.wheel_file for w in index.wheels} == {NAME, stored.wheel_file}
    again, _, third = publish.merge(index, entry(wheel_sha256="c" * 64), replace=True)
    assert third.wheel_file.split("-")[2] == "2"
    assert again.get(stored.wheel_file).yanked["reason"] == f"superseded by {third.wheel_file}"


def test_replace_keeps_the_old_file_and_yanks_it():
    index, outcome, stored = publish.merge(Index(wheels=(entry(),)), entry(wheel_sha256="b" * 64), replace=True)
    assert outcome == "superseded"
    old = index.get(NAME)
    assert old is not None and old.wheel_sha256 == "a" * 64
    assert old.yanked["reason"] == f"superseded by {stored.wheel_file}"


def test_a_quick_pass_never_overwrites_a_full_verdict():
    full = Verification(status="passed", mode="full")
    assert verify.keeps_full_verdict(full, Verification(status="passed", mode="quick"))
    assert not verify.keeps_full_verdict(full, Verification(status="failed", mode="quick"))
    assert not verify.keeps_full_verdict(
        Verification(status="unverified", mode="full"), Verification(status="passed", mode="quick")
    )


def test_credentials_in_urls_never_leave_the_process():
    text = "pip install --index-url https://bob:s3cr3t@mirror.example/simple x && curl https://h/w.whl?sig=abc&n=1"
    shown = redaction.redact(text)
    assert "s3cr3t" not in shown and "abc" not in shown and "mirror.example/simple" in shown
    assert (
        redaction.public_url("https://bob:s3cr3t@mirror.example/whl/cu128?token=t&x=1")
        == "https://mirror.example/whl/cu128?x=1"
    )
    assert "HF_TOKEN" not in redaction.without_secrets({"HF_TOKEN": "hf_x", "PATH": "/bin"})


def test_remote_dir_must_be_a_plain_folder():
    for bad in ("../../..", "a/../b", "with space", "x/.hidden"):
        with pytest.raises(ConfigError, match="REMOTE_DIR"):
            settings.resolve({}, {"HOME": "/home/u", "REMOTE_DIR": bad})


def test_an_exported_arch_list_does_not_replace_the_live_gpu_when_fetching():
    from sage_tasks.stages import fetch

    on_h100 = machine(gpus=(("NVIDIA H100 80GB HBM3", "9.0"),), nvcc="13.0")
    exported = settings.resolve({}, {"HOME": "/home/u", "TORCH_CUDA_ARCH_LIST": "12.0"})
    assert fetch.want_for(exported, on_h100).ccs == ("9.0",)
    asked = settings.resolve({"arch": "12.0"}, {"HOME": "/home/u"})
    assert fetch.want_for(asked, on_h100).ccs == ("12.0",)
    assert fetch.want_for(exported, machine(gpus=())).ccs == ("12.0",)
