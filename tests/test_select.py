"""Selection: each kind of mismatch is rejected with its reason; verified wheels win."""

from __future__ import annotations

import pytest

from sage_tasks.stages.selection import select_wheel as select
from sage_tasks.store.manifest import Verification
from tests.support import entry, want


def only_reasons(candidate, wanted):
    result = select([candidate], wanted)
    assert result.chosen is None
    [rejection] = result.rejected
    return rejection.reasons


def test_a_matching_wheel_is_chosen():
    result = select([entry()], want())
    assert result.chosen == entry()
    assert result.rejected == ()


@pytest.mark.parametrize(
    ("candidate", "wanted", "fragment"),
    [
        (
            entry(wheel_file="sageattention-2.2.0+cu128torch2.8.0-cp311-cp311-linux_x86_64.whl"),
            want(),
            "does not fit this interpreter",
        ),
        (entry(torch_version="2.7.1+cu128"), want(), "built against torch 2.7.1+cu128"),
        (entry(torch_cuda="12.6"), want(), "CUDA 12.6"),
        (entry(torch_cxx11_abi=False), want(), "C++11 ABI 0 in the wheel, 1 in installed torch"),
        (entry(cuda_archs=("sm_90a",)), want(), "no machine code for compute capability 12.0 (wheel carries sm_90a)"),
        (
            entry(verification=Verification(status="failed", gpu="RTX 5090", summary="cos 0.2 on sm89 fp8")),
            want(),
            "failed its kernel test on RTX 5090",
        ),
        (entry(yanked={"reason": "bad numbers", "at": "2026-11-02T00:00:00Z"}), want(), "yanked"),
        (entry(), want(driver_cuda="11.8"), "the driver supports CUDA 11.8"),
        (
            entry(
                version="2.1.1+cu128torch2.8.0",
                wheel_file="sageattention-2.1.1+cu128torch2.8.0-cp312-cp312-linux_x86_64.whl",
            ),
            want(),
            "version 2.1.1, not 2.2.0",
        ),
        (entry(source={"repo": "r", "ref": "v2.2.0", "commit": "0" * 40}), want(), "the recipe pins"),
        (entry(), want(ccs=()), "pass --arch"),
        (entry(), want(torch_version=None), "torch is not installed"),
    ],
)
def test_each_mismatch_is_rejected_with_its_reason(candidate, wanted, fragment):
    reasons = only_reasons(candidate, wanted)
    assert any(fragment in r for r in reasons), reasons


def test_several_reasons_are_all_listed():
    reasons = only_reasons(entry(torch_version="2.7.0+cu126", torch_cuda="12.6", cuda_archs=("sm_89",)), want())
    assert len(reasons) == 3


def test_sm90a_code_fits_only_hopper():
    hopper = entry(cuda_archs=("sm_90a",), target_arch="9.0")
    assert select([hopper], want(ccs=("9.0",))).chosen == hopper
    assert select([hopper], want(ccs=("8.9",))).chosen is None


def test_verified_beats_unverified_and_newer_beats_older():
    unverified_new = entry(
        wheel_file="sageattention-2.2.0+cu128torch2.8.0-cp312-abi3-linux_x86_64.whl",
        verification=Verification(status="unverified"),
        created_at="2026-11-05T00:00:00Z",
    )
    passed_old = entry(created_at="2026-10-01T00:00:00Z")
    assert select([unverified_new, passed_old], want()).chosen == passed_old
    passed_new = entry(
        wheel_file="sageattention-2.2.0+cu128torch2.8.0-cp312-abi3-linux_x86_64.whl", created_at="2026-11-05T00:00:00Z"
    )
    assert select([passed_old, passed_new], want()).chosen == passed_new


def test_two_published_in_the_same_second_the_higher_version_wins_whatever_the_index_order():
    fix1, fix2 = (
        entry(
            version=f"2.2.0+cu128torch2.8.0.fix{n}",
            wheel_file=f"sageattention-2.2.0+cu128torch2.8.0.fix{n}-cp312-cp312-linux_x86_64.whl",
        )
        for n in (1, 2)
    )
    assert fix1.created_at == fix2.created_at
    assert select([fix1, fix2], want()).chosen == fix2
    assert select([fix2, fix1], want()).chosen == fix2


def test_gpu_without_torch_check_for_recipes_that_do_not_link_torch():
    assert select([entry(torch_version="9.9.9")], want(check_torch=False)).chosen is not None
