"""The accuracy gate of kernel_check on CPU tensors: its metrics, its verdicts and its controls.

The gate's arithmetic needs no GPU. CI installs torch for these tests (nox's ``tests`` session
on Python 3.11) and sets ``SAGE_TESTS_REQUIRE_TORCH=1``, which turns a missing torch into a
failure instead of a skip: a weakened gate must fail CI, not vanish from it.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import torch
except ImportError:
    if os.environ.get("SAGE_TESTS_REQUIRE_TORCH") == "1":
        raise
    pytest.skip("torch is not installed (CI sets SAGE_TESTS_REQUIRE_TORCH=1 to fail instead)", allow_module_level=True)

from sage_tasks.environment import scripts
from sage_tasks.target import gate_metrics as gm
from sage_tasks.target import kernel_check as kc

pytestmark = pytest.mark.torch

FAMILIES = sorted(gm.THRESHOLDS)


def smaller(case: dict, divisor: int = 4) -> dict:
    """The same grid case with fewer heads (the CPU's budget); sequence lengths stay real."""
    return {**case, "heads": max(1, case["heads"] // divisor), "kv_heads": max(1, case["kv_heads"] // divisor)}


def rows_by_control(rows):
    return {(r["family"], r["control"]): r for r in rows}


# ------------------------------------------------------------------------------- self-test


@pytest.mark.parametrize("case_no", range(len(kc.grid())))
def test_every_grid_case_passes_clean_output_and_rejects_every_control(case_no):
    case = smaller(kc.grid()[case_no])
    q, k, v = kc.make_inputs(case, 11, case_no)
    rows = gm.self_test(q, k, v, case["layout"], case["causal"], case["sm_scale"], FAMILIES, 11, case_no)
    wrong = [(r["family"], r["control"], r["reasons"][:1]) for r in rows if not r["as_expected"]]
    assert not wrong, f"the gate is wrong about: {wrong}"
    assert {r["family"] for r in rows} == set(FAMILIES)


def test_the_controls_cover_every_class_of_near_miss():
    case = smaller(kc.grid()[13])  # causal, grouped-query heads
    q, k, v = kc.make_inputs(case, 3, 13)
    noise = torch.randn(q.shape)
    causal = set(gm.controls(q, k, v, case["layout"], True, 0.1, "fp8_pv", noise))
    plain = set(gm.controls(q, k, v, case["layout"], False, None, "fp8_pv", noise))
    for wanted in (
        "clean",
        "scale +2% everywhere",
        "scale -2% in one middle query tile of one head",
        "scale +2% in the last query tile of one head",
        "scale +2% in one head",
        "scale -2% in one batch element",
        "2 rows of one middle tile wrong",
        "every 40th row of one head wrong",
        "masking: causal off by one (row i sees key i+1)",
        "masking: the last query tile unmasked",
        "softmax scale 10% too large",
        "explicit sm_scale ignored (1/sqrt(d) used)",
        "output as float32 (the input is float16)",
        "garbage: zeros",
        "garbage: attention over shuffled keys",
    ):
        assert wanted in causal, wanted
    assert any(label.startswith("masking: the last") and "keys" in label for label in plain)


def test_local_defects_pass_the_whole_tensor_and_are_caught_per_tile_and_head():
    """At the grid's real size, these defects hide in whole-tensor numbers: only the local
    metrics see them (the issue's point), and the reason names where."""
    case = kc.grid()[21]  # bf16, d128, S1000 causal, 8 heads, batch 2
    q, k, v = kc.make_inputs(case, 5, 21)
    ref = gm.reference(q, k, v, case["layout"], case["causal"], case["sm_scale"])
    noise = torch.randn(ref.shape, generator=torch.Generator().manual_seed(9))
    outs = gm.controls(q, k, v, case["layout"], case["causal"], case["sm_scale"], "fp8_pv", noise)
    limits = gm.THRESHOLDS["fp8_pv"]
    scale_ref = gm.scale_reference(q, k, v, case["layout"], case["causal"], case["sm_scale"], "fp8_pv", ref)
    for label, level in (
        ("scale -2% in one middle query tile of one head", "tile 8 (rows 512-575) of batch 0 head 7"),
        ("scale +2% in the last query tile of one head", "tile 15 (rows 960-999) of batch 1 head 0"),
        ("2 rows of one middle tile wrong", "tile 8 (rows 512-575)"),
        ("last query tile not written (zeros)", "tile 15"),
        ("scale +2% in one head", "batch 0 head 7"),
    ):
        ok, reasons, summary = gm.judge(outs[label], ref, q, case["layout"], limits, case["causal"], scale_ref)
        whole = summary["tensor"]
        assert whole["min_cos"] >= limits["tensor"]["min_cos"], (label, whole)
        assert whole["max_rel_l1"] <= limits["tensor"]["max_rel_l1"], (label, whole)
        assert not ok, label
        assert any(level in r for r in reasons), (label, reasons)


def test_a_scale_error_at_the_detection_floor_is_caught_in_every_family():
    case = smaller(kc.grid()[0], 2)
    q, k, v = kc.make_inputs(case, 8, 0)
    ref = gm.reference(q, k, v, case["layout"], case["causal"], case["sm_scale"])
    noise = torch.randn(ref.shape, generator=torch.Generator().manual_seed(2))
    for family in FAMILIES:
        clean = gm.realistic(q, k, v, case["layout"], case["causal"], case["sm_scale"], family, noise)
        scale_ref = gm.scale_reference(q, k, v, case["layout"], case["causal"], case["sm_scale"], family, ref)
        assert gm.judge(clean, ref, q, case["layout"], gm.THRESHOLDS[family], False, scale_ref)[0], family
        for factor in (1 + gm.FLOOR["scale_error"], 1 - gm.FLOOR["scale_error"]):
            bad = (clean.float() * factor).to(clean.dtype)
            ok, reasons, _ = gm.judge(bad, ref, q, "HND", gm.THRESHOLDS[family], False, scale_ref)
            assert not ok and any("norm ratio" in r for r in reasons), (family, factor, reasons)


def test_the_threshold_table_keeps_the_detection_floor():
    for family, table in gm.THRESHOLDS.items():
        for level in ("tensor", "head", "tile", "edge_tile"):
            floor = gm.FLOOR["scale_error"]  # uniform, one head, one batch element or one tile alike
            assert floor <= 0.02, (family, level)
            assert table[level]["min_cos"] >= gm.FLOOR["local_cos"], (family, level)
            assert table[level]["max_norm_dev"] < floor / 1.5, (family, level)
            assert 0 < table[level]["max_rel_l1"] <= (0.12 if level == "edge_tile" else 0.10), (family, level)
        assert table["tensor"]["max_abs_fraction"] <= 0.25


def test_fp8_norm_ratios_are_taken_against_v_as_the_kernel_rounds_it_and_accuracy_against_fp32():
    """For FP8 P·V the norm ratio's reference has V rounded as the kernels round it (e4m3 per
    channel, scale amax / 448 or / 2.25), so V's rounding cancels from the scale; cosine and
    relative L1 stay against fp32 attention, so that rounding still counts as inaccuracy."""
    case = smaller(kc.grid()[1])  # fp16 d64 S1000 HND causal
    q, k, v = kc.make_inputs(case, 4, 1)
    ref = gm.reference(q, k, v, "HND", True)
    assert gm.scale_reference(q, k, v, "HND", True, None, "fp16_pv", ref) is ref
    refs = {f: gm.scale_reference(q, k, v, "HND", True, None, f, ref) for f in ("fp8_pv", "fp8_pv_fp16acc")}
    assert not torch.equal(refs["fp8_pv"], refs["fp8_pv_fp16acc"])  # two grids: two different roundings
    for family, scale_ref in refs.items():
        out = scale_ref.to(q.dtype)  # a kernel exact but for V's rounding
        ok, reasons, summary = gm.judge(out, ref, q, "HND", gm.THRESHOLDS[family], True, scale_ref)
        assert ok, (family, reasons)
        for level in ("tensor", "head", "tile", "edge_tile"):
            assert abs(summary[level]["worst_norm_ratio"] - 1) < 2e-3, (family, level, summary[level])
        assert summary["tensor"]["min_cos"] < 0.9999, family  # V's rounding is seen by cosine
    fp8 = gm.quantize_v_fp8(v.float(), 448.0)
    amax = v.float().abs().amax(dim=2)
    assert torch.allclose(fp8.abs().amax(dim=2), amax, rtol=1e-6)  # amax maps onto the grid's end
    steps = (fp8 * (448.0 / amax.unsqueeze(2))).to(torch.float8_e4m3fn).float()
    assert torch.allclose(steps * (amax.unsqueeze(2) / 448.0), fp8, rtol=1e-6)  # values on the e4m3 grid


def test_each_kernel_path_is_judged_as_the_family_it_quantizes_v_like():
    assert [kc.family_of_auto(cc) for cc in ((8, 0), (8, 6), (8, 9), (9, 0), (12, 0), (12, 1))] == [
        "fp16_pv",
        "fp16_pv",
        "fp8_pv_fp16acc",
        "fp8_pv",
        "fp8_pv_fp16acc",
        "fp8_pv_fp16acc",
    ]
    assert gm.V_FP8_SCALE_MAX == {"fp16_pv": None, "fp8_pv": 448.0, "fp8_pv_fp16acc": 2.25}
    assert set(gm.V_FP8_SCALE_MAX) == set(gm.THRESHOLDS)


# ------------------------------------------------------------------------------- metrics


def test_local_metrics_follow_their_definitions_with_a_remainder_tile():
    gen = torch.Generator().manual_seed(4)
    ref = torch.randn(2, 3, 150, 16, generator=gen)  # tiles of 64, 64 and 22 rows
    out = ref + 0.3 * torch.randn(ref.shape, generator=gen)
    out[1, 2, 128:] *= 1.5
    m = gm.local_metrics(out, ref, "HND")
    assert m["tile"]["cos"].shape == (2, 3, 3) and m["head"]["cos"].shape == (2, 3)
    for b, h, t in ((0, 0, 0), (1, 2, 2), (0, 1, 1)):
        o = out[b, h, t * 64 : (t + 1) * 64].double().flatten()
        r = ref[b, h, t * 64 : (t + 1) * 64].double().flatten()
        assert math.isclose(float(m["tile"]["cos"][b, h, t]), float(o @ r / (o.norm() * r.norm())), rel_tol=1e-12)
        assert math.isclose(
            float(m["tile"]["rel_l1"][b, h, t]), float((o - r).abs().sum() / r.abs().sum()), rel_tol=1e-12
        )
        assert math.isclose(float(m["tile"]["norm_ratio"][b, h, t]), float(o.norm() / r.norm()), rel_tol=1e-12)
    o, r = out[1, 2].double().flatten(), ref[1, 2].double().flatten()
    assert math.isclose(float(m["head"]["norm_ratio"][1, 2]), float(o.norm() / r.norm()), rel_tol=1e-12)
    o, r = out.double().flatten(), ref.double().flatten()
    assert math.isclose(m["tensor"]["cos"], float(o @ r / (o.norm() * r.norm())), rel_tol=1e-12)
    # NHD is read in its own layout
    nhd = gm.local_metrics(out.transpose(1, 2), ref.transpose(1, 2), "NHD")
    assert torch.equal(nhd["tile"]["cos"], m["tile"]["cos"])


def test_the_api_contract_is_part_of_the_verdict():
    gen = torch.Generator().manual_seed(1)
    q = torch.randn(1, 2, 100, 32, generator=gen).to(torch.bfloat16)
    ref = gm.reference(q, q, q, "HND", False)
    limits = gm.THRESHOLDS["fp16_pv"]
    assert gm.judge(ref.to(torch.bfloat16), ref, q, "HND", limits)[0]
    ok, reasons, _ = gm.judge(ref.float(), ref, q, "HND", limits)
    assert not ok and reasons == ["output dtype float32, the input is bfloat16"]
    ok, reasons, _ = gm.judge(ref.to(torch.bfloat16).transpose(1, 2), ref, q, "HND", limits)
    assert not ok and "output shape" in reasons[0]
    ok, reasons, _ = gm.judge(torch.empty(q.shape, dtype=q.dtype, device="meta"), ref, q, "HND", limits)
    assert not ok and "output on meta" in reasons[0]


def test_nan_or_inf_fails_whatever_else():
    gen = torch.Generator().manual_seed(2)
    q = torch.randn(1, 2, 100, 32, generator=gen)
    ref = gm.reference(q, q, q, "HND", False)
    for bad in (float("nan"), float("inf")):
        broken = ref.clone()
        broken[0, 0, 0, 0] = bad
        ok, reasons, _ = gm.judge(broken, ref, q, "HND", gm.THRESHOLDS["fp8_pv"])
        assert not ok and "output has NaN or Inf" in reasons


def test_reference_handles_nhd_grouped_query_heads_and_sm_scale():
    gen = torch.Generator().manual_seed(7)
    q = torch.randn(1, 50, 8, 64, generator=gen)  # NHD, 8 query heads
    k = torch.randn(1, 50, 2, 64, generator=gen)  # 2 key/value heads
    v = torch.randn(1, 50, 2, 64, generator=gen)
    out = gm.reference(q, k, v, "NHD", True)
    assert out.shape == q.shape
    expanded = gm.reference(q, k.repeat_interleave(4, dim=2), v.repeat_interleave(4, dim=2), "NHD", True)
    assert torch.allclose(out, expanded)
    scaled = gm.reference(q, k, v, "NHD", False, sm_scale=0.05)
    qh, kh, vh = q.transpose(1, 2), k.repeat_interleave(4, 2).transpose(1, 2), v.repeat_interleave(4, 2).transpose(1, 2)
    manual = torch.softmax(qh @ kh.transpose(-1, -2) * 0.05, dim=-1) @ vh
    assert torch.allclose(scaled, manual.transpose(1, 2), atol=1e-5)


# ------------------------------------------------------------------------------- grid, seeds, speed


def test_the_grid_covers_the_api_users_pass():
    cases = kc.grid()
    assert {c["layout"] for c in cases} == {"HND", "NHD"}
    assert {c["causal"] for c in cases} == {True, False}
    assert {c["dtype"] for c in cases} == {"float16", "bfloat16"}
    assert any(c["sm_scale"] is not None for c in cases) and any(c["sm_scale"] is None for c in cases)
    assert any(c["heads"] > c["kv_heads"] for c in cases)
    assert any(c["seq_len"] % gm.TILE_ROWS for c in cases) and any(c["seq_len"] % gm.TILE_ROWS == 0 for c in cases)
    assert all(c["seq_len"] <= 2048 and c["batch"] == 2 and 8 <= c["heads"] <= 16 for c in cases)
    quick = [cases[i] for i in kc.QUICK_CASES]
    assert len(quick) == 3 and any(c["causal"] for c in quick) and any(c["heads"] > c["kv_heads"] for c in quick)


def test_a_case_re_runs_with_the_same_inputs_alone():
    case = smaller(kc.grid()[4])
    again = [kc.make_inputs(case, 123, 4) for _ in range(2)]
    assert all(torch.equal(a, b) for a, b in zip(*again, strict=True))
    other_case = kc.make_inputs(case, 123, 5)
    other_seed = kc.make_inputs(case, 124, 4)
    assert not torch.equal(again[0][0], other_case[0]) and not torch.equal(again[0][0], other_seed[0])
    command = kc.rerun_command(123, 4, "sageattn (auto)", "9.0")
    assert "--seed 123 --case 4 --path 'sageattn (auto)' --arch 9.0" in command


def test_speed_above_the_dense_peak_is_a_measurement_error():
    row = {"sage_tops": 8199.0, "sdpa_tops": 420.0}
    problems = kc.speed_problems(row, "NVIDIA H100 80GB HBM3")
    assert problems and "above the H100's dense INT8/FP8 peak of 1979" in problems[0]
    assert kc.speed_problems({"sage_tops": 600.0, "sdpa_tops": 420.0}, "NVIDIA H100 80GB HBM3") == []
    assert kc.speed_problems({"sage_tops": 600.0, "sdpa_tops": 420.0}, "NVIDIA GeForce RTX 4090")  # SDPA > 330
    assert kc.peak_for("NVIDIA H100 PCIe")[0] == "H100 PCIe"
    assert kc.speed_problems(row, "Some Future GPU") == []


# ------------------------------------------------------------------------------- the script, end to end


def fake_sageattention(root: Path, body: str) -> dict[str, str]:
    """A stand-in ``sageattention`` package on PYTHONPATH (the process boundary of the check)."""
    package = root / "sageattention"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(body)
    (package / "core.py").write_text("SM80_ENABLED = SM89_ENABLED = SM90_ENABLED = False\n")
    dist = root / "sageattention-2.2.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: sageattention\nVersion: 2.2.0\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SAGE_", "PYTHON"))}
    # PYTHONSAFEPATH: the user's environment reaches the check; the script's own folder is then
    # not on sys.path, and the check must still find gate_metrics beside it
    return {**env, "PYTHONPATH": str(root), "PYTHONSAFEPATH": "1", "CUDA_VISIBLE_DEVICES": ""}


def run_check(tmp_path: Path, body: str, *args: str) -> tuple[int, dict, str]:
    """Run the check as sage-tasks does: copied with its companions into a folder of its own."""
    env = fake_sageattention(tmp_path / "site", body)
    report = tmp_path / "report.json"
    check = scripts.path("kernel_check", tmp_path / "cache")
    done = subprocess.run(
        [sys.executable, str(check), "--report", str(report), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    return done.returncode, json.loads(report.read_text()), done.stdout + done.stderr


def test_the_check_is_copied_with_its_metrics_and_a_change_to_either_makes_a_new_folder(tmp_path, monkeypatch):
    check = scripts.path("kernel_check", tmp_path)
    assert sorted(p.name for p in check.parent.iterdir()) == ["gate_metrics.py", "kernel_check.py"]
    assert (check.parent / "gate_metrics.py").read_bytes() == Path(gm.__file__).read_bytes()
    assert scripts.path("kernel_check", tmp_path) == check
    changed = tmp_path / "src"
    changed.mkdir()
    (changed / "gate_metrics.py").write_bytes(Path(gm.__file__).read_bytes() + b"# changed\n")
    monkeypatch.setitem(scripts.SCRIPTS, "kernel_check", (Path(kc.__file__), changed / "gate_metrics.py"))
    again = scripts.path("kernel_check", tmp_path)
    assert again.parent != check.parent and (again.parent / "gate_metrics.py").read_text().endswith("# changed\n")


def test_a_wheel_that_does_not_import_is_failed_even_without_a_gpu(tmp_path):
    code, report, _ = run_check(tmp_path, "raise ImportError('libcudart.so.13: cannot open shared object file')\n")
    assert code == kc.EXIT_FAILED
    assert report["status"] == "failed"
    assert report["summary"].startswith("sageattention does not import: ImportError: libcudart.so.13")


def test_an_import_that_raises_anything_is_failed(tmp_path):
    code, report, _ = run_check(tmp_path, "raise RuntimeError('CUDA driver version is insufficient')\n")
    assert (code, report["status"]) == (kc.EXIT_FAILED, "failed")
    assert "RuntimeError" in report["summary"]


def test_imports_fine_without_a_gpu_is_unverified(tmp_path):
    code, report, _ = run_check(tmp_path, "def sageattn(*a, **k):\n    raise AssertionError\n")
    assert (code, report["status"]) == (kc.EXIT_NO_GPU, "unverified")
    assert report["thresholds"] == json.loads(json.dumps(gm.THRESHOLDS))


def test_a_package_that_replaces_torch_sdpa_is_refused(tmp_path):
    body = "import torch.nn.functional as F\nF.scaled_dot_product_attention = lambda *a, **k: None\n"
    code, report, _ = run_check(tmp_path, body)
    assert (code, report["status"]) == (kc.EXIT_FAILED, "failed")
    assert "scaled_dot_product_attention was replaced" in report["summary"]


def test_a_head_wide_defect_within_the_tile_limits_fails_at_the_head_level():
    """Heads have more rows than tiles, hence less noise and tighter limits: a defect spread
    evenly over one head, inside every tile limit, is still caught at the head level."""
    gen = torch.Generator().manual_seed(6)
    q = torch.randn(2, 4, 640, 64, generator=gen)
    ref = gm.reference(q, q, q, "HND", False)
    for family, limits in gm.THRESHOLDS.items():
        head, tile = limits["head"], limits["tile"]
        out = ref.clone()
        if head["max_norm_dev"] < tile["max_norm_dev"]:  # a bias between the two limits
            out[1, 2] *= 1 + (head["max_norm_dev"] + tile["max_norm_dev"]) / 2
        else:  # noise whose relative L1 lies between the two limits
            assert head["max_rel_l1"] < tile["max_rel_l1"], family
            sigma = (head["max_rel_l1"] + tile["max_rel_l1"]) / 2
            rms = ref[1, 2].pow(2).mean(-1, keepdim=True).sqrt()
            out[1, 2] += sigma * rms * torch.randn(ref[1, 2].shape, generator=gen)
        ok, reasons, _ = gm.judge(out, ref, q, "HND", limits)
        assert not ok and reasons, family
        assert all(r.endswith("in batch 1 head 2") for r in reasons), (family, reasons)


STAND_IN_KERNELS = '''
"""Stand-in SageAttention for the gate's own test: exact attention on V rounded to FP8 as the
real kernels do (fp16 PV paths: V as given) plus 1 % noise; the sm90 kernel is 2 % too large
(a wrong dequantisation scale)."""
import torch
import torch.nn.functional as F


def _attention(q, k, v, tensor_layout="HND", is_causal=False, sm_scale=None, v_max=None, **_):
    if tensor_layout == "NHD":
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
    if v_max:
        amax = v.float().abs().amax(dim=2, keepdim=True)
        v = (v.float() * (v_max / amax)).to(torch.float8_e4m3fn).float() * (amax / v_max)
    g = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(g, 1), v.repeat_interleave(g, 1)
    o = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), is_causal=is_causal, scale=sm_scale)
    o = o + 0.01 * o.pow(2).mean(-1, keepdim=True).sqrt() * torch.randn(o.shape, generator=torch.Generator().manual_seed(5))
    o = o.to(q.dtype)
    return o.transpose(1, 2) if tensor_layout == "NHD" else o


sageattn_qk_int8_pv_fp16_triton = sageattn_qk_int8_pv_fp16_cuda = _attention


def sageattn(q, k, v, **kw):  # on 9.0: the sm90 kernel's V, without its defect
    return _attention(q, k, v, v_max=448.0, **kw)


def sageattn_qk_int8_pv_fp8_cuda(q, k, v, pv_accum_dtype="fp32+fp32", **kw):
    return _attention(q, k, v, v_max=2.25 if pv_accum_dtype == "fp32+fp16" else 448.0, **kw)


def sageattn_qk_int8_pv_fp8_cuda_sm90(q, k, v, **kw):
    return (_attention(q, k, v, v_max=448.0, **kw).float() * 1.02).to(q.dtype)
'''


def test_the_gate_runs_every_path_and_names_the_broken_one(tmp_path, monkeypatch, capsys):
    package = tmp_path / "sageattention"
    package.mkdir()
    (package / "__init__.py").write_text(STAND_IN_KERNELS)
    (package / "core.py").write_text("SM80_ENABLED = SM89_ENABLED = SM90_ENABLED = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    sa = importlib.import_module("sageattention")
    for name in ("sageattention", "sageattention.core"):  # gone again after the test
        monkeypatch.setitem(sys.modules, name, importlib.import_module(name))

    collected = {}
    checks, controls = kc.accuracy(sa, "9.0", "cpu", 77, [4], None, [4], collected)
    paths = {c["path"] for c in checks}
    assert len(paths) == 9 and any("stand-in for the 12.0 family" in p for p in paths)
    family = {c["path"]: c["family"] for c in checks}
    assert {p for p, f in family.items() if f == "fp8_pv_fp16acc"} == {
        "cuda qk_int8_pv_fp8 accum=fp32+fp16 per_thread",
        "cuda qk_int8_pv_fp8 accum=fp32+fp16 per_warp (stand-in for the 12.0 family)",
    }
    assert family["sageattn (auto)"] == family["cuda qk_int8_pv_fp8 sm90 accum=fp32+fp32"] == "fp8_pv"
    failed = [c for c in checks if c["ok"] is False]
    assert [c["path"] for c in failed] == ["cuda qk_int8_pv_fp8 sm90 accum=fp32+fp32"]
    assert any("norm ratio 1.02" in r for r in failed[0]["reasons"])
    assert failed[0]["rerun"].endswith(
        "--seed 77 --case 4 --path 'cuda qk_int8_pv_fp8 sm90 accum=fp32+fp32' --arch 9.0"
    )
    assert controls and all(r["as_expected"] for r in controls)
    assert {r["family"] for r in controls if not r.get("on_kernel_output")} == {"fp16_pv", "fp8_pv", "fp8_pv_fp16acc"}
    on_output = {(r["family"], r["control"]) for r in controls if r.get("on_kernel_output")}
    for path in paths - {"cuda qk_int8_pv_fp8 sm90 accum=fp32+fp32"}:
        family = next(c["family"] for c in checks if c["path"] == path)
        for control in ("scale +2% everywhere", "scale -2% in one middle query tile of one head"):
            assert (f"{family} on the output of {path}", control) in on_output
    spread = gm.distributions(collected)
    auto = spread["sageattn (auto)"]
    assert auto["family"] == "fp8_pv" and {"tensor", "head", "tile", "edge_tile"} <= set(auto)
    assert auto["tile"]["norm_dev"]["max"] < 0.01 and auto["tile"]["cos"]["min"] > 0.999
    report = {"checks": checks, "controls": controls, "speed": [], "archs": [], "summary": ""}
    report, code = kc._verdict(report, 77)
    assert code == kc.EXIT_FAILED and "re-run it:" in report["summary"] and "case 4" in report["summary"]
    report["distributions"] = {"9.0": spread}
    report["speed"] = [{"arch": "9.0", "path": "sageattn (auto)", "status": "failed — not timed"}]
    kc.print_table(report)
    printed = capsys.readouterr().out
    assert "FAILED cuda qk_int8_pv_fp8 sm90" in printed and "failed — not timed" in printed
    assert "PASSED THE GATE" not in printed and "calib 9.0" in printed


def test_thresholds_too_tight_for_a_healthy_kernel_fail_the_self_test():
    """The self-test guards both ways: limits that reject a clean realistic output are broken too."""
    case = smaller(kc.grid()[3])
    q, k, v = kc.make_inputs(case, 2, 3)
    tight = {
        "fp8_pv": {**gm.THRESHOLDS["fp8_pv"], "tile": {"min_cos": 0.99999, "max_rel_l1": 0.001, "max_norm_dev": 0.0001}}
    }
    rows = gm.self_test(q, k, v, case["layout"], case["causal"], case["sm_scale"], ["fp8_pv"], 2, 3, limits=tight)
    [clean] = [r for r in rows if r["control"] == "clean"]
    assert not clean["gate_passed"] and not clean["as_expected"]
    report, code = kc._verdict(
        {
            "checks": [{"ok": True, "path": "p"}],
            "controls": [{**clean, "case": 3, "arch": "9.0"}],
            "speed": [],
            "archs": [],
        },
        2,
    )
    assert code == kc.EXIT_FAILED and "rejects a clean realistic fp8_pv output" in report["summary"]
