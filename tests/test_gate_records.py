"""What the kernel gate's verdicts become: per-arch records in manifests, fetch's proof line,
and which recipe `auto` builds on which arch (known-bad (source, arch) pairs)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sage_tasks.core import recipe, settings
from sage_tasks.core.errors import ConfigError, IntegrityError
from sage_tasks.stages import pipeline, selection, verify
from sage_tasks.store import manifest
from sage_tasks.store.manifest import Verification
from tests.support import entry, machine, want

MANIFESTS = Path(__file__).resolve().parent.parent / "manifests"
H100 = (("NVIDIA H100 80GB HBM3", "9.0"),)
RTX5090 = (("NVIDIA GeForce RTX 5090", "12.0"),)
NOW = "2026-11-30T05:00:00Z"


def verdict(cc: str, status: str, mode: str = "full") -> dict:
    return {"compute_capability": cc, "status": status, "gpu": "GPU", "mode": mode, "checked_at": NOW, "summary": None}


# ------------------------------------------------------------------------------- per-arch verdicts


def test_each_arch_run_is_recorded_and_the_wheels_other_archs_are_unverified():
    report = {"archs": [{"compute_capability": "9.0", "status": "passed", "gpu": "NVIDIA H100", "summary": "ok"}]}
    got = verify.arch_verdicts(report, "passed", False, NOW, ("sm_90a", "sm_120"))
    assert [(a["compute_capability"], a["status"]) for a in got] == [("9.0", "passed"), ("12.0", "unverified")]
    assert got[0]["gpu"] == "NVIDIA H100" and got[1]["summary"] == "no GPU of this arch here"


def test_two_archs_of_one_machine_get_a_verdict_each():
    report = {"archs": [verdict("12.0", "passed"), verdict("8.9", "failed")]}
    got = verify.arch_verdicts(report, "failed", False, NOW, ("sm_89", "sm_120"))
    assert [(a["compute_capability"], a["status"]) for a in got] == [("8.9", "failed"), ("12.0", "passed")]


def test_a_wheel_that_does_not_import_failed_on_every_arch_it_carries():
    report = {"summary": "sageattention does not import: ImportError: libcudart.so.13"}
    got = verify.arch_verdicts(report, "failed", False, NOW, ("sm_90a", "sm_120"))
    assert {a["status"] for a in got} == {"failed"}
    assert got[0]["summary"].startswith("sageattention does not import")


def test_earlier_verdicts_of_other_archs_are_kept_and_never_erased_by_weaker_news():
    earlier = (verdict("12.0", "passed"), verdict("9.0", "failed"))
    later = verify.arch_verdicts({"archs": [verdict("8.9", "passed")]}, "passed", False, NOW, (), earlier)
    assert [(a["compute_capability"], a["status"]) for a in later] == [
        ("8.9", "passed"),
        ("9.0", "failed"),
        ("12.0", "passed"),
    ]
    no_gpu = verify.arch_verdicts({}, "unverified", False, NOW, ("sm_120",), earlier)
    assert ("12.0", "passed") in [(a["compute_capability"], a["status"]) for a in no_gpu]
    quick = verify.arch_verdicts({"archs": [verdict("9.0", "passed")]}, "passed", True, NOW, (), earlier)
    assert ("9.0", "failed") in [(a["compute_capability"], a["status"]) for a in quick]


def test_the_manifest_carries_per_arch_verdicts_and_old_manifests_stay_readable():
    archs = (verdict("9.0", "passed"), verdict("12.0", "unverified"))
    new = entry(verification=Verification(status="passed", compute_capability="9.0", archs=archs))
    again = manifest.from_dict(json.loads(json.dumps(new.to_dict())))
    assert again == new and again.verification.proven_on() == ("9.0",)
    old = new.to_dict()
    del old["verification"]["archs"]
    legacy = manifest.from_dict(old)
    assert legacy.verification.archs == () and legacy.verification.proven_on() == ("9.0",)
    bad = new.to_dict()
    bad["verification"]["archs"][0]["status"] = "probably fine"
    with pytest.raises(IntegrityError):
        manifest.from_dict(bad)


# ------------------------------------------------------------------------------- fetch says what is proven


def test_fetch_says_when_this_arch_has_no_passing_verdict():
    proven_120 = Verification(status="passed", archs=(verdict("12.0", "passed"), verdict("8.9", "unverified")))
    wheel = entry(cuda_archs=("sm_89", "sm_120"), verification=proven_120)
    assert selection.proof_gap(wheel, ("8.9",)) == f"{wheel.wheel_file} is built for 8.9 but only proven on 12.0"
    assert selection.proof_gap(wheel, ("12.0",)) is None
    unverified = entry(verification=Verification(status="unverified"))
    assert selection.proof_gap(unverified, ("12.0",)).endswith("but not proven on any GPU (unverified)")
    chosen = selection.select_wheel([wheel], want(ccs=("8.9",)))
    assert chosen.chosen == wheel and chosen.unproven == selection.proof_gap(wheel, ("8.9",))


def test_a_wheel_proven_on_this_arch_beats_one_proven_elsewhere():
    elsewhere = entry(
        cuda_archs=("sm_89", "sm_120"),
        created_at="2026-11-30T04:00:00Z",
        verification=Verification(status="passed", archs=(verdict("12.0", "passed"),)),
    )
    here = entry(
        wheel_file="sageattention-2.2.0+cu128torch2.8.0-1-cp312-cp312-linux_x86_64.whl",
        cuda_archs=("sm_89", "sm_120"),
        created_at="2026-11-29T04:00:00Z",
        verification=Verification(status="passed", archs=(verdict("8.9", "passed"),)),
    )
    assert selection.select_wheel([elsewhere, here], want(ccs=("8.9",))).chosen == here


# ------------------------------------------------------------------------------- a source that passes here


def recipes():
    return [recipe.load_recipe(n, MANIFESTS) for n in ("sageattention-2.2.0", "sageattention-2.2.0-d1a57a5")]


def test_the_release_recipe_records_its_known_failure_on_hopper_with_evidence():
    release, fixed = recipes()
    [bad] = release.known_bad
    assert bad.arch == "9.0" and bad.fixed_by == "upstream commit d970424"
    assert any("issues/288" in e for e in bad.evidence) and any("issues/320" in e for e in bad.evidence)
    assert bad.use_instead == fixed.name and fixed.known_bad == ()


@pytest.mark.parametrize(
    ("ccs", "expected"),
    [
        (("9.0",), "sageattention-2.2.0-d1a57a5"),
        (("12.0",), "sageattention-2.2.0"),
        (("12.0", "9.0"), "sageattention-2.2.0-d1a57a5"),
        ((), "sageattention-2.2.0"),
    ],
)
def test_auto_without_a_recipe_takes_the_first_default_not_known_bad_here(ccs, expected):
    chosen, why = recipe.choose(None, recipes(), ccs)
    assert chosen.name == expected
    if expected.endswith("d1a57a5"):
        assert "sageattention-2.2.0 is known to fail on 9.0" in why and "d970424" in why


def test_an_explicit_known_bad_recipe_is_refused_unless_forced():
    release, _ = recipes()
    with pytest.raises(ConfigError) as refused:
        recipe.choose(release, [], ("9.0",))
    assert "known to fail the kernel gate on 9.0" in refused.value.message
    assert "--recipe sageattention-2.2.0-d1a57a5" in refused.value.hint and "--allow-known-bad" in refused.value.hint
    forced, why = recipe.choose(release, [], ("9.0",), allow_known_bad=True)
    assert forced is release and "forced with --allow-known-bad" in why and "gate still runs" in why
    assert recipe.choose(release, [], ("12.0",))[0] is release


def test_no_default_free_of_known_failures_is_refused_with_the_reason():
    release, _ = recipes()
    with pytest.raises(ConfigError) as refused:
        recipe.choose(None, [release], ("9.0",))
    assert "no default recipe is free of known failures on 9.0" in refused.value.message


def test_a_source_override_is_not_judged_by_the_pinned_commits_evidence():
    release, _ = recipes()
    moved = recipe.Recipe(**{**release.__dict__, "source": recipe.Source(release.source.repo, "main", None)})
    assert moved.known_bad_on(("9.0",)) == []


@pytest.mark.parametrize(
    ("gpus", "expected"), [(H100, "sageattention-2.2.0-d1a57a5"), (RTX5090, "sageattention-2.2.0")]
)
def test_pipeline_picks_the_recipe_for_the_gpus_present(gpus, expected):
    resolved = settings.resolve({}, os.environ)
    chosen, why = pipeline.choose_recipe(resolved, machine(gpus=gpus))
    assert chosen.recipe.name == expected and why.startswith(expected)
    targeted, _ = pipeline.choose_recipe(settings.resolve({"arch": "9.0"}, os.environ), machine(gpus=RTX5090))
    assert targeted.recipe.name == "sageattention-2.2.0-d1a57a5"
    with pytest.raises(ConfigError):
        pipeline.choose_recipe(settings.resolve({"recipe": "sageattention-2.2.0"}, os.environ), machine(gpus=H100))


def test_auto_refuses_a_known_bad_recipe_in_one_line(tasks, no_gpu_path):
    done = tasks("auto", "--recipe", "sageattention-2.2.0", "--arch", "9.0", "--dry-run")
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if "known to fail" in line]
    assert len(lines) == 1 and "--allow-known-bad" in lines[0]
    assert "Traceback" not in done.stderr


def test_the_manifest_keeps_each_checks_worst_values_not_where_they_were():
    check = {
        "path": "sageattn (auto)",
        "ok": False,
        "reasons": ["norm ratio 1.0200 off 1 by more than 0.012 in tile 3", "second"],
        "tile": {
            "min_cos": 0.9991,
            "worst_norm_ratio": 1.02,
            "where": {"cos": "tile 3 (rows 192-255) of batch 0 head 1"},
        },
        "rerun": "python kernel_check.py --seed 1 --case 2",
    }
    kept = verify._compact(check)
    assert kept["tile"] == {"min_cos": 0.9991, "worst_norm_ratio": 1.02}
    assert kept["reasons"] == check["reasons"][:1] and "rerun" not in kept
    assert check["tile"]["where"]  # the report itself keeps everything


def test_a_check_without_per_arch_rows_still_proves_the_arch_it_names():
    report = {"status": "passed", "compute_capability": "12.0", "gpu": "NVIDIA GeForce RTX 5090", "summary": "ok"}
    got = verify.arch_verdicts(report, "passed", False, NOW, ("sm_120",))
    assert [(a["compute_capability"], a["status"], a["gpu"]) for a in got] == [
        ("12.0", "passed", "NVIDIA GeForce RTX 5090")
    ]
    odd = verify.arch_verdicts({"archs": [verdict("sm_90; rm -rf", "passed")]}, "passed", False, NOW, ())
    assert odd == ()  # nothing the manifest schema would refuse on the next read
