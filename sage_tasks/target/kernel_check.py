"""Does the installed SageAttention compute attention correctly on every GPU here, and how fast?

Runs inside the target interpreter (stdlib + torch + sageattention; sage-tasks is not installed
there), copied by sage_tasks/environment/scripts.py into a folder of its own together with gate_metrics.py,
the gate's arithmetic, which it imports from beside itself. The check protocol::

    python kernel_check.py --report FILE [--quick] [--seed N] [--case N --path NAME --arch CC]
    python kernel_check.py --report FILE --calibrate --seeds 20 [--controls]

Exit 0: every kernel path passed on every arch; 1: one failed, crashed, or sageattention does
not import (with or without a GPU); 2: imports fine but no GPU here (unverified).

Accuracy: on one device of each distinct compute capability, every kernel path that arch
dispatches to is compared with fp32 ``torch.nn.functional.scaled_dot_product_attention``
(taken before sageattention is imported; the check refuses to run if it was replaced) over a
grid: fp16/bf16, head_dim 64/128, sequence lengths with and without a remainder tile, HND/NHD,
causal and not, grouped-query heads, default and explicit ``sm_scale``. A case is judged on
the API contract (dtype, shape in the given layout, device, finiteness), on the whole tensor
and on its worst (batch, head) and worst 64-row query tile: cosine, relative L1 and the norm
ratio ||out||/||ref|| (which sees scale errors that cosine cannot; for FP8 P·V paths taken
against attention on V rounded to FP8 as the kernel rounds it, so that rounding cancels), against
THRESHOLDS in gate_metrics.py.

Self-test: in every case of the grid, a clean "realistic" output (attention from INT8-per-block
q/k and, for FP8 families, FP8-e4m3 v, plus noise at the measured level) must pass, and every
control must fail: garbage (zeros, noise, rolled heads, shuffled keys) and near misses, one
defect each (2 % scale everywhere / in one tile / one head / one batch element, a corrupted
tile or head, masking errors, softmax-scale errors, the wrong output dtype). A control that
passes fails the check: "the gate is blind to ...". ``--quick`` (install time) runs none.

Speed: ``sageattn`` vs torch's SDPA (CUDA events, medians, interleaved), only on an arch where
``sageattn`` passed; a figure above the GPU's dense peak (PEAK_TFLOPS) is a measurement error.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import statistics
import sys
import time
import traceback

if __package__:  # imported as sage_tasks.kernel_check (the tests)
    from . import gate_metrics as gm
else:  # run as a script from its own folder, gate_metrics.py beside it (scripts.py copies both)
    # named explicitly: with PYTHONSAFEPATH (or -P) Python does not put the script's folder on sys.path
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import gate_metrics as gm

EXIT_PASSED, EXIT_FAILED, EXIT_NO_GPU = 0, 1, 2
EXPLICIT_SCALE = 0.75  # explicit sm_scale cases pass EXPLICIT_SCALE / sqrt(head_dim)

# Dense tensor-core peaks (TFLOPS/TOPS, no sparsity) per GPU, by a substring of the name,
# most specific first. "fp16" bounds SDPA (bf16/fp16); "fp8"/"int8" bound SageAttention,
# which computes in INT8 and FP8. Where a vendor lists a lower figure for FP32 accumulation
# (GeForce), the higher one is used: this is a ceiling to flag impossible numbers, not a goal.
PEAK_TFLOPS = (
    ("H100 PCIe", {"fp16": 756, "fp8": 1513, "int8": 1513}),
    ("H100 NVL", {"fp16": 835, "fp8": 1671, "int8": 1671}),
    ("H100", {"fp16": 989, "fp8": 1979, "int8": 1979}),
    ("H200", {"fp16": 989, "fp8": 1979, "int8": 1979}),
    ("H20", {"fp16": 148, "fp8": 296, "int8": 296}),
    ("A100", {"fp16": 312, "int8": 624}),
    ("L40S", {"fp16": 362, "fp8": 733, "int8": 733}),
    ("RTX 5090", {"fp16": 419, "fp8": 838, "int8": 838}),
    ("RTX 4090", {"fp16": 330, "fp8": 661, "int8": 661}),
)

SPEED_SHAPES = [
    # (label, batch, heads, seq, head_dim, causal)
    ("B2 H16 S4096 D128", 2, 16, 4096, 128, False),
    ("B1 H24 S32760 D128 (video-like)", 1, 24, 32760, 128, False),
]


# ------------------------------------------------------------------------------------------------
# the grid


def grid():
    """Every case of the full grid, in a fixed order (a case's number is its index here)."""
    cases = []
    for dtype in ("float16", "bfloat16"):
        for dim in (64, 128):
            for layout in ("HND", "NHD"):
                for causal in (False, True):
                    explicit = (dim == 64) != causal
                    cases.append(_case(dtype, dim, 1000, layout, causal, 8, 8, explicit))
                cases.append(_case(dtype, dim, 2048, layout, False, 8, 8, layout == "NHD"))
        cases.append(_case(dtype, 128, 1024, "HND", False, 16, 4, True))
        cases.append(_case(dtype, 128, 1000, "NHD", True, 16, 2, False))
    return cases


# numbers in grid(): bf16 d128 S1000 HND; fp16 d64 S1000 NHD causal; bf16 GQA 16/4 with sm_scale
QUICK_CASES = (20, 4, 26)


def _case(dtype, dim, seq, layout, causal, heads, kv_heads, explicit_scale):
    return {
        "dtype": dtype,
        "head_dim": dim,
        "seq_len": seq,
        "layout": layout,
        "causal": causal,
        "batch": 2,
        "heads": heads,
        "kv_heads": kv_heads,
        "sm_scale": round(EXPLICIT_SCALE / math.sqrt(dim), 8) if explicit_scale else None,
    }


def make_inputs(case, seed, case_no, device="cpu"):
    import torch

    gen = torch.Generator(device=device).manual_seed(gm.case_seed(seed, case_no))
    dtype = getattr(torch, case["dtype"])

    def one(h):
        b, s, d = case["batch"], case["seq_len"], case["head_dim"]
        shape = (b, h, s, d) if case["layout"] == "HND" else (b, s, h, d)
        return torch.randn(shape, generator=gen, device=device, dtype=torch.float32).to(dtype)

    return one(case["heads"]), one(case["kv_heads"]), one(case["kv_heads"])


# ------------------------------------------------------------------------------------------------
# the kernel paths


def family_of_auto(cc):
    """What ``sageattn`` dispatches to: FP16 PV on sm80/86/87; FP8 PV accumulated in fp32 on
    sm90 (its own kernel), in fp16 on sm89 and sm120/121 (pv_accum_dtype fp32+fp16)."""
    major, minor = cc
    if major == 8 and minor < 9:
        return "fp16_pv"
    return "fp8_pv" if (major, minor) == (9, 0) else "fp8_pv_fp16acc"


def kernel_paths(sa, cc):
    """(name, family, callable(q, k, v, layout, causal, sm_scale), why-skipped) for this arch."""
    from sageattention import core

    major, minor = cc
    sm = major * 10 + minor
    sm80 = None if getattr(core, "SM80_ENABLED", False) else "module _qattn_sm80 missing"
    sm89 = None if getattr(core, "SM89_ENABLED", False) else "module _qattn_sm89 missing"
    sm90 = None if getattr(core, "SM90_ENABLED", False) else "module _qattn_sm90 missing"

    def call(fn, **fixed):
        def run(q, k, v, lay, c, scale):
            extra = {} if scale is None else {"sm_scale": scale}
            return fn(q, k, v, tensor_layout=lay, is_causal=c, **extra, **fixed)

        return run

    paths = [("sageattn (auto)", family_of_auto(cc), call(sa.sageattn), None)]
    triton_skip = "upstream: the Triton kernel is not usable on sm120" if major >= 12 else None
    paths.append(("triton qk_int8_pv_fp16", "fp16_pv", call(sa.sageattn_qk_int8_pv_fp16_triton), triton_skip))
    for accum in ("fp32", "fp16+fp32"):
        fn = call(sa.sageattn_qk_int8_pv_fp16_cuda, pv_accum_dtype=accum)
        paths.append((f"cuda qk_int8_pv_fp16 accum={accum}", "fp16_pv", fn, sm80))
    if sm >= 89:
        grans = ("per_warp",) if major >= 12 else ("per_thread", "per_warp")
        for gran in grans:
            for accum in ("fp32+fp16", "fp32+fp32"):
                label = f"cuda qk_int8_pv_fp8 accum={accum} {gran}"
                if gran == "per_warp" and major < 12:
                    label += " (stand-in for the 12.0 family)"
                fn = call(sa.sageattn_qk_int8_pv_fp8_cuda, pv_accum_dtype=accum, qk_quant_gran=gran)
                family = "fp8_pv_fp16acc" if accum == "fp32+fp16" else "fp8_pv"
                paths.append((label, family, fn, sm89))
    if sm == 90:
        paths.append(
            ("cuda qk_int8_pv_fp8 sm90 accum=fp32+fp32", "fp8_pv", call(sa.sageattn_qk_int8_pv_fp8_cuda_sm90), sm90)
        )
    return paths


# ------------------------------------------------------------------------------------------------
# running it on the GPUs


def devices_by_arch(torch):
    """{compute capability "major.minor": (device index, name)}: one device of each arch."""
    found = {}
    for i in range(torch.cuda.device_count()):
        major, minor = torch.cuda.get_device_capability(i)
        found.setdefault(f"{major}.{minor}", (i, torch.cuda.get_device_name(i)))
    return found


def rerun_command(seed, case_no, path, arch):
    script = os.path.abspath(__file__)
    return shlex.join(
        [
            sys.executable,
            script,
            "--report",
            "case.json",
            "--seed",
            str(seed),
            "--case",
            str(case_no),
            "--path",
            path,
            "--arch",
            arch,
        ]
    )


def accuracy(sa, arch, device, seed, case_numbers, path_filter=None, control_cases=(), collect=None):
    """Checks and control rows for one arch. ``collect``: {path: {level: {metric: [tensors]}}}
    gathers every local value (calibration)."""
    import torch

    cc = tuple(int(x) for x in arch.split("."))
    paths = [p for p in kernel_paths(sa, cc) if path_filter is None or p[0] in path_filter]
    families = sorted({fam for _, fam, _, skip in paths if skip is None})
    all_cases = grid()
    checks, control_rows = [], []
    for case_no in case_numbers:
        case = all_cases[case_no]
        q, k, v = make_inputs(case, seed, case_no, device)
        ref = gm.reference(q, k, v, case["layout"], case["causal"], case["sm_scale"])
        scale_refs = {}  # family: the reference its norm ratio is taken against, made when first needed
        for name, family, fn, skipped in paths:
            row = {"arch": arch, "path": name, "family": family, "case": case_no, **case}
            if skipped:
                checks.append({**row, "ok": None, "skipped": skipped})
                continue
            try:
                out = fn(q, k, v, case["layout"], case["causal"], case["sm_scale"])
                if str(device).startswith("cuda"):
                    torch.cuda.synchronize(device)
            except Exception as exc:
                checks.append(
                    {
                        **row,
                        "ok": False,
                        "error": f"{type(exc).__name__}: {str(exc)[:300]}",
                        "rerun": rerun_command(seed, case_no, name, arch),
                    }
                )
                continue
            if family not in scale_refs:
                scale_refs[family] = gm.scale_reference(
                    q, k, v, case["layout"], case["causal"], case["sm_scale"], family, ref
                )
            scale_ref = scale_refs[family]
            ok, reasons, summary = gm.judge(
                out, ref, q, case["layout"], gm.THRESHOLDS[family], case["causal"], scale_ref
            )
            metrics = summary.pop("metrics", None)
            tensor = summary.get("tensor", {})
            row.update(
                ok=ok,
                reasons=reasons[:4],
                finite=summary.get("finite"),
                cos=tensor.get("min_cos"),
                rel_l1=tensor.get("max_rel_l1"),
                norm_ratio=tensor.get("worst_norm_ratio"),
                max_abs=gm._round(summary.get("max_abs")),
                head=summary.get("head"),
                tile=summary.get("tile"),
                edge_tile=summary.get("edge_tile"),
            )
            if not ok:
                row["rerun"] = rerun_command(seed, case_no, name, arch)
            checks.append(row)
            if collect is not None and metrics is not None:
                gm._collect(collect.setdefault(name, {"family": family}), metrics)
                if case_no in control_cases:  # calibration: a real kernel's output + one defect
                    control_rows += _on_kernel_output(out, ref, scale_ref, q, case, (name, family), arch, case_no)
            del out, metrics
        if case_no in control_cases:
            for r in gm.self_test(q, k, v, case["layout"], case["causal"], case["sm_scale"], families, seed, case_no):
                control_rows.append({"arch": arch, "case": case_no, **r})
        del q, k, v, ref, scale_refs
    return checks, control_rows


def _on_kernel_output(out, ref, scale_ref, q, case, path, arch, case_no):
    """The output defects applied to a real kernel's output (calibration only, not fatal).
    ``path``: (name, family) of the kernel path that returned ``out``."""
    name, family = path
    rows = []
    for label, bad in gm.output_defects(out, case["layout"]).items():
        ok, reasons, _ = gm.judge(bad, ref, q, case["layout"], gm.THRESHOLDS[family], case["causal"], scale_ref)
        rows.append(
            {
                "arch": arch,
                "case": case_no,
                "family": f"{family} on the output of {name}",
                "control": label,
                "gate_passed": ok,
                "as_expected": not ok,
                "on_kernel_output": True,
                "reasons": reasons[:2],
            }
        )
    return rows


def timed_ms(torch, fn, warmup, iters):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times), times


def peak_for(gpu_name):
    for key, peaks in PEAK_TFLOPS:
        if key.lower() in (gpu_name or "").lower():
            return key, peaks
    return None, None


def speed_problems(row, gpu_name):
    """Why a speed row is not a result (a figure above the GPU's dense peak), or []."""
    key, peaks = peak_for(gpu_name)
    if peaks is None:
        return []
    problems = []
    sage_peak = max(peaks.get("fp8", 0), peaks.get("int8", 0), peaks.get("fp16", 0))
    if row["sage_tops"] > sage_peak:
        problems.append(f"sageattn {row['sage_tops']} TOPS is above the {key}'s dense INT8/FP8 peak of {sage_peak}")
    if row["sdpa_tops"] > peaks["fp16"]:
        problems.append(f"SDPA {row['sdpa_tops']} TFLOPS is above the {key}'s dense fp16/bf16 peak of {peaks['fp16']}")
    return problems


def speed(sa, device, gpu_name, quick, seed):
    import torch

    sdpa = gm.reference_sdpa()
    rows = []
    gen = torch.Generator(device=device).manual_seed(gm.case_seed(seed, 10_000))
    for label, batch, heads, seq, dim, causal in SPEED_SHAPES[:1] if quick else SPEED_SHAPES:
        for dtype in (torch.bfloat16, torch.float16):
            q, k, v = (torch.randn((batch, heads, seq, dim), generator=gen, device=device).to(dtype) for _ in range(3))
            flops = 4 * batch * heads * seq * seq * dim * (0.5 if causal else 1.0)
            iters = 5 if quick else (10 if seq > 16384 else 30)
            samples = {"sage": [], "sdpa": []}
            fns = {
                "sage": lambda q=q, k=k, v=v, c=causal: sa.sageattn(q, k, v, tensor_layout="HND", is_causal=c),
                "sdpa": lambda q=q, k=k, v=v, c=causal: sdpa(q, k, v, is_causal=c),
            }
            for _ in range(2):  # interleaved rounds: drift hits both alike
                for name, fn in fns.items():
                    samples[name] += timed_ms(torch, fn, 3, iters)[1]
            sage_ms, sdpa_ms = statistics.median(samples["sage"]), statistics.median(samples["sdpa"])
            row = {
                "shape": label,
                "dtype": str(dtype).replace("torch.", ""),
                "iters": iters,
                "sage_ms": round(sage_ms, 4),
                "sdpa_ms": round(sdpa_ms, 4),
                "sage_tops": round(flops / sage_ms / 1e9, 1),
                "sdpa_tops": round(flops / sdpa_ms / 1e9, 1),
                "speedup": round(sdpa_ms / sage_ms, 3),
            }
            problems = speed_problems(row, gpu_name)
            if problems:
                row["valid"] = False
                row["measurement_error"] = "; ".join(problems)
            rows.append(row)
            del fns, q, k, v
            torch.cuda.empty_cache()
    return rows


# ------------------------------------------------------------------------------------------------
# the run


def _sdpa_replaced(torch_module):
    import torch.nn.functional as F

    return F.scaled_dot_product_attention is not gm.reference_sdpa() or torch_module.nn.functional is not F


def run(args):
    started = time.perf_counter()
    report = {
        "status": "failed",
        "summary": "",
        "mode": "calibrate" if args.calibrate else ("quick" if args.quick else "full"),
        "thresholds": gm.THRESHOLDS,
        "detection_floor": gm.FLOOR,
        "python": platform.python_version(),
        "archs": [],
        "checks": [],
        "controls": [],
        "speed": [],
    }
    try:
        import torch
        import torch.nn.functional as F
    except Exception as exc:
        report["summary"] = f"torch does not import: {type(exc).__name__}: {exc}"
        return report, EXIT_FAILED
    gm.pin_reference_sdpa(F.scaled_dot_product_attention)  # before sageattention can touch it
    report["torch"] = torch.__version__
    report["torch_cuda"] = torch.version.cuda
    try:
        from importlib import metadata

        import sageattention as sa
        from sageattention import core

        report["sageattention"] = metadata.version("sageattention")
        report["modules"] = {m: bool(getattr(core, f"{m}_ENABLED", False)) for m in ("SM80", "SM89", "SM90")}
    except BaseException as exc:  # an import that raises anything is a broken wheel, GPU or not
        if isinstance(exc, KeyboardInterrupt):
            raise
        report["summary"] = f"sageattention does not import: {type(exc).__name__}: {str(exc)[:500]}"
        return report, EXIT_FAILED
    if _sdpa_replaced(torch):
        report["summary"] = (
            "torch.nn.functional.scaled_dot_product_attention was replaced when sageattention was imported: the reference would not be torch's"
        )
        return report, EXIT_FAILED
    if not torch.cuda.is_available():
        report["status"] = "unverified"
        report["summary"] = "no CUDA GPU visible to torch: imports fine, kernels not run"
        return report, EXIT_NO_GPU
    archs = devices_by_arch(torch)
    if args.arch:
        if args.arch not in archs:
            report["status"] = "unverified"
            report["summary"] = f"no GPU of compute capability {args.arch} here (found {', '.join(archs)})"
            return report, EXIT_NO_GPU
        archs = {args.arch: archs[args.arch]}
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "little")
    report["seed"] = seed
    first_arch = next(iter(archs))
    report["gpu"], report["compute_capability"] = archs[first_arch][1], first_arch
    if args.case is not None:
        cases = [args.case]
    elif args.quick:
        cases = list(QUICK_CASES)
    else:
        cases = list(range(len(grid())))
    path_filter = set(args.path) if args.path else None
    if args.quick and not path_filter:
        path_filter = {"sageattn (auto)"}
    try:
        if args.calibrate:
            return calibrate(sa, torch, report, archs, seed, args.seeds, args.controls, started), EXIT_PASSED
        for arch, (index, name) in archs.items():
            device = f"cuda:{index}"
            with torch.cuda.device(index):
                # --quick (install time, a budget of seconds) runs no controls: they test the gate,
                # which the full check (before any publish) and the CPU tests in CI have proven
                control_cases = () if args.quick else cases
                checks, control_rows = accuracy(sa, arch, device, seed, cases, path_filter, control_cases)
                report["checks"] += checks
                report["controls"] += control_rows
                auto_failed = any(c["path"] == "sageattn (auto)" and c["ok"] is False for c in checks)
                verdict = _arch_verdict(arch, index, name, checks, control_rows)
                if not args.quick and args.case is None and not args.path:
                    if auto_failed:
                        report["speed"].append(
                            {"arch": arch, "gpu": name, "path": "sageattn (auto)", "status": "failed — not timed"}
                        )
                    else:
                        report["speed"] += [
                            {"arch": arch, "gpu": name, **r} for r in speed(sa, device, name, args.quick, seed)
                        ]
                report["archs"].append(verdict)
    except Exception:
        report["summary"] = "the check crashed: " + traceback.format_exc(limit=3)[-600:]
        return report, EXIT_FAILED
    if _sdpa_replaced(torch):
        report["summary"] = (
            "torch.nn.functional.scaled_dot_product_attention was replaced while the kernels ran: the verdict is void"
        )
        return report, EXIT_FAILED
    report["seconds"] = round(time.perf_counter() - started, 2)
    return _verdict(report, seed)


def _arch_verdict(arch, index, name, checks, control_rows):
    ran = [c for c in checks if c.get("ok") is not None]
    failed = [c for c in ran if not c["ok"]]
    blind = [r for r in control_rows if not r["as_expected"]]
    status = "failed" if failed or blind or not ran else "passed"
    if failed:
        summary = f"{len(failed)}/{len(ran)} cases failed"
    elif blind:
        summary = (
            f"the gate is blind to {blind[0]['control']}"
            if blind[0]["control"] != "clean"
            else "the gate rejects a clean realistic output"
        )
    else:
        summary = f"{len(ran)} cases over {len({c['path'] for c in ran})} kernel path(s) passed"
    return {
        "compute_capability": arch,
        "device": index,
        "gpu": name,
        "status": status,
        "summary": summary,
        "cases": len(ran),
        "failed": len(failed),
    }


def _describe(case):
    scale = f" sm_scale={case['sm_scale']}" if case.get("sm_scale") is not None else ""
    return (
        f"{case['path']} on {case['arch']}, case {case['case']} ({case['dtype']} d{case['head_dim']} S{case['seq_len']} "
        f"{case['layout']} causal={case['causal']} H{case['heads']}/{case['kv_heads']}{scale})"
    )


def _verdict(report, seed):
    ran = [c for c in report["checks"] if c.get("ok") is not None]
    failed = [c for c in ran if not c["ok"]]
    blind = [r for r in report["controls"] if r["control"] != "clean" and not r["as_expected"]]
    clean_failed = [r for r in report["controls"] if r["control"] == "clean" and not r["as_expected"]]
    if failed:
        worst = failed[0]
        detail = worst.get("error") or "; ".join(worst.get("reasons", [])[:2])
        report["summary"] = (
            f"{len(failed)}/{len(ran)} cases failed; first: {_describe(worst)}: {detail} (seed {seed}); re-run it: {worst['rerun']}"
        )
        return report, EXIT_FAILED
    if blind:
        b = blind[0]
        report["summary"] = (
            f"the gate is blind to {b['control']} ({b['family']}, case {b['case']} on {b['arch']}): the check itself is broken"
        )
        return report, EXIT_FAILED
    if clean_failed:
        c = clean_failed[0]
        report["summary"] = (
            f"the gate rejects a clean realistic {c['family']} output (case {c['case']}: {'; '.join(c['reasons'][:2])}): the thresholds are too tight for the controls"
        )
        return report, EXIT_FAILED
    if not ran:
        report["summary"] = "no kernel path ran"
        return report, EXIT_FAILED
    report["status"] = "passed"
    gpus = ", ".join(f"{a['gpu']} ({a['compute_capability']})" for a in report["archs"])
    speedups = ", ".join(f"{s['speedup']:.2f}x" for s in report["speed"] if s.get("speedup") and s.get("valid", True))
    report["summary"] = f"{len(ran)} cases over {len({c['path'] for c in ran})} kernel path(s) passed on {gpus}" + (
        f"; sageattn vs SDPA: {speedups}" if speedups else ""
    )
    return report, EXIT_PASSED


def calibrate(sa, torch, report, archs, seed, seeds, show_controls, started):
    """Accuracy only, every case of the grid for ``seeds`` seeds: the distribution of each local
    metric per path (no speed; a failure is data, not fatal)."""
    report["status"] = "calibration"
    report["seeds"] = [seed + i for i in range(seeds)]
    report["distributions"] = {}
    cases = list(range(len(grid())))
    for arch, (index, _name) in archs.items():
        collected = {}
        failures = {}
        with torch.cuda.device(index):
            for i in range(seeds):
                shown = cases if show_controls and i == 0 else ()
                checks, control_rows = accuracy(sa, arch, f"cuda:{index}", seed + i, cases, None, shown, collected)
                for c in checks:
                    if c.get("ok") is False:
                        failures.setdefault(c["path"], []).append(
                            f"seed {seed + i} case {c['case']}: {c.get('error') or '; '.join(c['reasons'][:2])}"
                        )
                report["controls"] += control_rows
        report["distributions"][arch] = gm.distributions(collected)
        report.setdefault("calibration_failures", {})[arch] = {
            p: [*v[:5], f"... {len(v)} in all"] for p, v in failures.items()
        }
        report["archs"].append({"compute_capability": arch, "device": index, "gpu": _name, "status": "calibration"})
    report["seconds"] = round(time.perf_counter() - started, 2)
    report["summary"] = (
        f"calibration: {seeds} seed(s) x {len(cases)} cases on {', '.join(archs)} in {report['seconds']} s (no verdict)"
    )
    return report


def print_table(report):
    checks = [c for c in report["checks"] if c.get("ok") is not None]
    by_path = {}
    for c in checks:
        by_path.setdefault((c["arch"], c["path"]), []).append(c)
    if by_path:
        print(f"{'arch':5} {'path':62} {'cases':>5} {'fail':>4} {'tile cos':>9} {'tile rL1':>8} {'tile nrm':>8}")
    for (arch, path), rows in by_path.items():
        tiles = [r["tile"] for r in rows if r.get("tile")]
        print(
            f"{arch:5} {path:62} {len(rows):5d} {sum(not r['ok'] for r in rows):4d} "
            f"{min((t['min_cos'] for t in tiles), default=float('nan')):9.5f} "
            f"{max((t['max_rel_l1'] for t in tiles), default=float('nan')):8.4f} "
            f"{max((t['worst_norm_ratio'] for t in tiles), key=lambda x: abs(x - 1), default=float('nan')):8.4f}"
        )
    for c in report["checks"]:
        if c.get("ok") is False:
            print(
                f"FAILED {_describe(c)}: {c.get('error') or '; '.join(c.get('reasons', [])[:2])}\n  re-run: {c['rerun']}"
            )
    if report["controls"]:
        per = {}
        for r in report["controls"]:
            per.setdefault((r["family"], r["control"]), []).append(r)
        print(f"self-test: {len(report['controls'])} verdicts on {len(per)} (family, control) pairs")
        for (family, control), rows in per.items():
            bad = [r for r in rows if not r["as_expected"]]
            verdict = (
                ("PASSES" if control == "clean" else "rejected")
                if not bad
                else ("REJECTED" if control == "clean" else "PASSED THE GATE")
            )
            why = "" if control == "clean" or bad else f" ({rows[0]['reasons'][0] if rows[0]['reasons'] else ''})"
            print(f"  {family:14} {control:56} {verdict} in {len(rows) - len(bad)}/{len(rows)} case(s){why[:110]}")
    for s in report["speed"]:
        if "status" in s:
            print(f"speed {s['arch']:5} {s['path']}: {s['status']}")
        elif s.get("valid", True) is False:
            print(
                f"speed {s['arch']:5} {s['shape']:34} {s['dtype']:9} MEASUREMENT ERROR, not a result: {s['measurement_error']}"
            )
        else:
            print(
                f"speed {s['arch']:5} {s['shape']:34} {s['dtype']:9} sage {s['sage_ms']:8.3f} ms {s['sage_tops']:7.1f} TOPS | "
                f"sdpa {s['sdpa_ms']:8.3f} ms {s['sdpa_tops']:7.1f} TOPS | speedup {s['speedup']:.3f}"
            )
    for arch, paths in report.get("distributions", {}).items():
        for path, entry in paths.items():
            for level in ("tensor", "head", "tile", "edge_tile"):
                for metric, d in entry.get(level, {}).items():
                    print(
                        f"calib {arch} {path[:48]:48} {level:6} {metric:8} min {d['min']:.6f} p1 {d['p1']:.6f} p50 {d['p50']:.6f} p99 {d['p99']:.6f} max {d['max']:.6f}"
                    )
    print(report["summary"])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", required=True, help="write the JSON report here")
    parser.add_argument("--quick", action="store_true", help="three cases of the grid on sageattn only, no timing")
    parser.add_argument("--seed", type=int, help="inputs from this seed (default: random, recorded in the report)")
    parser.add_argument(
        "--case", type=int, help="run only this case number of the grid (with --seed: re-run a failure)"
    )
    parser.add_argument("--path", action="append", help="run only this kernel path (repeatable)")
    parser.add_argument("--arch", help="run only on the GPU of this compute capability (e.g. 9.0)")
    parser.add_argument(
        "--calibrate",
        "--accuracy-only",
        action="store_true",
        help="accuracy only, distributions of every local metric per path, no verdict",
    )
    parser.add_argument("--seeds", type=int, default=20, help="seeds for --calibrate (default 20)")
    parser.add_argument(
        "--controls",
        action="store_true",
        help="with --calibrate: also run the self-test controls on the first seed's real inputs",
    )
    args = parser.parse_args(argv)
    if args.case is not None and not 0 <= args.case < len(grid()):
        parser.error(f"--case must be 0..{len(grid()) - 1}")
    report, code = run(args)
    with open(args.report, "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=1)
    print_table(report)
    return code


if __name__ == "__main__":
    sys.exit(main())
