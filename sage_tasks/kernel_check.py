"""Does the installed SageAttention compute attention correctly on this GPU, and how fast?

Runs inside the target interpreter (stdlib + torch + sageattention; sage-tasks is not
installed there) following sage-tasks' check protocol::

    python kernel_check.py --report FILE [--quick]

Exit 0: every kernel path passed; 1: one failed (or crashed); 2: no GPU here (unverified).

Accuracy: every kernel path this GPU dispatches to is compared with fp32
``torch.nn.functional.scaled_dot_product_attention`` on fresh random inputs over a grid
(fp16/bf16, head_dim 64/128, a sequence length that is not a multiple of 128, HND/NHD,
causal/non-causal, grouped-query attention). A case passes when the output is finite and
cosine similarity >= MIN_COSINE, relative L1 <= MAX_REL_L1, and max abs error <= MAX_ABS_FRACTION
of the reference's largest magnitude. The same gate is applied to garbage outputs (zeros,
noise, permuted heads, attention over shuffled keys) which must all fail it: a gate that
passes garbage fails the check.

Speed: median time of ``sageattn`` and of torch's own SDPA (same dtype, same inputs) with CUDA
events after warm-up, as TOPS and speedup; a speedup below 1 is reported as it is.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
import traceback

# The gate. Healthy INT8-QK/FP8-PV attention on random inputs lands near cos 0.999 and rel-L1
# 0.02-0.05; garbage lands near cos 0 and rel-L1 ~1. Never loosen these to make a build pass.
MIN_COSINE = 0.99
MAX_REL_L1 = 0.10
MAX_ABS_FRACTION = 0.25

EXIT_PASSED, EXIT_FAILED, EXIT_NO_GPU = 0, 1, 2


def metrics(out, ref):
    """cosine similarity, relative L1, max abs error, finiteness (in float64)."""
    import torch

    o = out.detach().to(torch.float64).flatten()
    r = ref.detach().to(torch.float64).flatten()
    finite = bool(torch.isfinite(o).all())
    if not finite:
        return {
            "finite": False,
            "cos": float("nan"),
            "rel_l1": float("nan"),
            "max_abs": float("nan"),
            "ref_max": float(r.abs().max()),
        }
    denom = (o.norm() * r.norm()).item()
    cos = (o @ r).item() / denom if denom > 0 else 0.0
    rel_l1 = ((o - r).abs().sum() / r.abs().sum().clamp_min(1e-30)).item()
    return {
        "finite": True,
        "cos": cos,
        "rel_l1": rel_l1,
        "max_abs": (o - r).abs().max().item(),
        "ref_max": r.abs().max().item(),
    }


def passes(m):
    return (
        m["finite"]
        and m["cos"] >= MIN_COSINE
        and m["rel_l1"] <= MAX_REL_L1
        and m["max_abs"] <= MAX_ABS_FRACTION * m["ref_max"]
    )


def reference(q, k, v, layout, causal):
    """fp32 SDPA in HND layout, key/value heads repeated for grouped-query attention."""
    import torch.nn.functional as F

    if layout == "NHD":
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
    q, k, v = (t.float() for t in (q, k, v))
    groups = q.shape[1] // k.shape[1]
    if groups > 1:
        k = k.repeat_interleave(groups, dim=1)
        v = v.repeat_interleave(groups, dim=1)
    out = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    return out.transpose(1, 2) if layout == "NHD" else out


def make_inputs(gen, batch, heads, kv_heads, seq, dim, dtype, layout):
    import torch

    def one(h):
        shape = (batch, h, seq, dim) if layout == "HND" else (batch, seq, h, dim)
        return torch.randn(shape, generator=gen, device="cuda", dtype=torch.float32).to(dtype)

    return one(heads), one(kv_heads), one(kv_heads)


def kernel_paths(sa, cc):
    """(name, callable, why-skipped) for every path the package exposes for this GPU."""
    from sageattention import core

    major, minor = cc
    sm = major * 10 + minor
    paths = [("sageattn (auto)", lambda q, k, v, lay, c: sa.sageattn(q, k, v, tensor_layout=lay, is_causal=c), None)]
    triton_skip = "upstream: the Triton kernel is not usable on sm120" if major >= 12 else None
    paths.append(
        (
            "triton qk_int8_pv_fp16",
            lambda q, k, v, lay, c: sa.sageattn_qk_int8_pv_fp16_triton(q, k, v, tensor_layout=lay, is_causal=c),
            triton_skip,
        )
    )
    for accum in ("fp32", "fp16+fp32"):
        paths.append(
            (
                f"cuda qk_int8_pv_fp16 accum={accum}",
                lambda q, k, v, lay, c, a=accum: sa.sageattn_qk_int8_pv_fp16_cuda(
                    q, k, v, tensor_layout=lay, is_causal=c, pv_accum_dtype=a
                ),
                None if getattr(core, "SM80_ENABLED", False) else "module _qattn_sm80 missing",
            )
        )
    if sm >= 89:
        for accum in ("fp32+fp16", "fp32+fp32"):
            gran = "per_warp" if major >= 12 else "per_thread"
            paths.append(
                (
                    f"cuda qk_int8_pv_fp8 accum={accum} {gran}",
                    lambda q, k, v, lay, c, a=accum, g=gran: sa.sageattn_qk_int8_pv_fp8_cuda(
                        q, k, v, tensor_layout=lay, is_causal=c, pv_accum_dtype=a, qk_quant_gran=g
                    ),
                    None if getattr(core, "SM89_ENABLED", False) else "module _qattn_sm89 missing",
                )
            )
    if sm == 90:
        paths.append(
            (
                "cuda qk_int8_pv_fp8 sm90 accum=fp32+fp32",
                lambda q, k, v, lay, c: sa.sageattn_qk_int8_pv_fp8_cuda_sm90(q, k, v, tensor_layout=lay, is_causal=c),
                None if getattr(core, "SM90_ENABLED", False) else "module _qattn_sm90 missing",
            )
        )
    return paths


def grid(quick):
    """(dtype, head_dim, seq, layout, causal, heads, kv_heads) cases."""
    import torch

    if quick:
        return [
            (torch.bfloat16, 128, 1000, "HND", False, 8, 8),
            (torch.float16, 64, 1024, "NHD", True, 8, 8),
            (torch.bfloat16, 128, 1024, "HND", False, 16, 4),
        ]
    cases = []
    for dtype in (torch.float16, torch.bfloat16):
        for dim in (64, 128):
            for layout in ("HND", "NHD"):
                for causal in (False, True):
                    cases.append((dtype, dim, 1000, layout, causal, 8, 8))
                cases.append((dtype, dim, 2048, layout, False, 8, 8))
        cases.append((dtype, 128, 1024, "HND", False, 16, 4))
        cases.append((dtype, 128, 1024, "NHD", True, 16, 2))
    return cases


def garbage_controls(gen, ref, q, k, v, layout, causal):
    """Outputs that look plausible but are wrong: the gate must reject each."""
    import torch

    head_dim = 1 if layout == "HND" else 2
    seq_dim = 2 if layout == "HND" else 1
    perm = torch.randperm(
        k.shape[seq_dim], generator=torch.Generator().manual_seed(int(gen.initial_seed()) & 0xFFFF)
    ).to(k.device)
    shuffled = reference(q, k.index_select(seq_dim, perm), v, layout, causal)
    noise = torch.randn(ref.shape, generator=gen, device=ref.device) * ref.float().std()
    return {
        "zeros": torch.zeros_like(ref),
        "noise": noise,
        "heads rolled": ref.roll(1, dims=head_dim) if ref.shape[head_dim] > 1 else -ref,
        "shuffled keys": shuffled,
    }


def accuracy(sa, cc, quick, seed):
    import torch

    gen = torch.Generator(device="cuda").manual_seed(seed)
    checks, controls = [], []
    paths = kernel_paths(sa, cc)
    if quick:
        paths = paths[:1]
    for case_no, (dtype, dim, seq, layout, causal, heads, kv_heads) in enumerate(grid(quick)):
        q, k, v = make_inputs(gen, 2, heads, kv_heads, seq, dim, dtype, layout)
        ref = reference(q, k, v, layout, causal)
        for name, fn, skipped in paths:
            case = {
                "path": name,
                "dtype": str(dtype).replace("torch.", ""),
                "head_dim": dim,
                "seq_len": seq,
                "layout": layout,
                "causal": causal,
                "heads": heads,
                "kv_heads": kv_heads,
                "batch": 2,
            }
            if skipped:
                checks.append({**case, "ok": None, "skipped": skipped})
                continue
            try:
                out = fn(q, k, v, layout, causal)
                torch.cuda.synchronize()
                m = metrics(out, ref)
                checks.append({**case, **{k_: _round(v_) for k_, v_ in m.items()}, "ok": passes(m)})
            except Exception as exc:
                checks.append({**case, "ok": False, "error": f"{type(exc).__name__}: {str(exc)[:300]}"})
        if case_no == 0:
            for label, bad in garbage_controls(gen, ref, q, k, v, layout, causal).items():
                m = metrics(bad, ref)
                controls.append(
                    {"control": label, **{k_: _round(v_) for k_, v_ in m.items()}, "rejected": not passes(m)}
                )
    return checks, controls


def _round(value):
    return round(value, 6) if isinstance(value, float) and math.isfinite(value) else value


def timed_ms(fn, warmup, iters):
    import torch

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


SPEED_SHAPES = [
    # (label, batch, heads, seq, head_dim, causal)
    ("B2 H16 S4096 D128", 2, 16, 4096, 128, False),
    ("B1 H24 S32760 D128 (video-like)", 1, 24, 32760, 128, False),
]


def compare_speed(sa, q, k, v, causal, iters, rounds=2):
    """Median ms of sageattn and SDPA on the same inputs, interleaved so drift hits both alike."""
    import torch.nn.functional as F

    def sage():
        return sa.sageattn(q, k, v, tensor_layout="HND", is_causal=causal)

    def sdpa():
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal)

    samples = {"sage": [], "sdpa": []}
    medians = {"sage": [], "sdpa": []}
    for _ in range(rounds):
        for name, fn in (("sage", sage), ("sdpa", sdpa)):
            median, times = timed_ms(fn, 3, iters)
            samples[name] += times
            medians[name].append(median)
    return (
        statistics.median(samples["sage"]),
        statistics.median(samples["sdpa"]),
        {name: [round(m, 4) for m in values] for name, values in medians.items()},
    )


def speed(sa, quick, seed):
    import torch

    rows = []
    gen = torch.Generator(device="cuda").manual_seed(seed + 1)
    shapes = SPEED_SHAPES[:1] if quick else SPEED_SHAPES
    for label, batch, heads, seq, dim, causal in shapes:
        for dtype in (torch.bfloat16, torch.float16):
            q, k, v = make_inputs(gen, batch, heads, heads, seq, dim, dtype, "HND")
            flops = 4 * batch * heads * seq * seq * dim * (0.5 if causal else 1.0)
            iters = 5 if quick else (10 if seq > 16384 else 30)
            sage_ms, sdpa_ms, per_round = compare_speed(sa, q, k, v, causal, iters)
            rows.append(
                {
                    "shape": label,
                    "dtype": str(dtype).replace("torch.", ""),
                    "iters": iters,
                    "sage_ms": round(sage_ms, 4),
                    "sdpa_ms": round(sdpa_ms, 4),
                    "round_medians_ms": per_round,
                    "sage_tops": round(flops / sage_ms / 1e9, 1),
                    "sdpa_tops": round(flops / sdpa_ms / 1e9, 1),
                    "speedup": round(sdpa_ms / sage_ms, 3),
                }
            )
            torch.cuda.empty_cache()
    return rows


def print_table(report):
    checks = [c for c in report["checks"] if c.get("ok") is not None]
    by_path = {}
    for c in checks:
        by_path.setdefault(c["path"], []).append(c)
    print(f"{'path':44} {'cases':>5} {'fail':>4} {'min cos':>9} {'max relL1':>9} {'max abs':>9}")
    for path, rows in by_path.items():
        ok = [r for r in rows if "cos" in r and r.get("finite")]
        print(
            f"{path:44} {len(rows):5d} {sum(not r['ok'] for r in rows):4d} "
            f"{min((r['cos'] for r in ok), default=float('nan')):9.5f} "
            f"{max((r['rel_l1'] for r in ok), default=float('nan')):9.5f} "
            f"{max((r['max_abs'] for r in ok), default=float('nan')):9.5f}"
        )
    for c in report["checks"]:
        if c.get("ok") is None:
            print(f"{c['path']:44} skipped: {c['skipped']}")
            break
    for c in report["controls"]:
        print(
            f"control {c['control']:36} cos {c['cos']:.4f} relL1 {c['rel_l1']:.4f} -> {'rejected' if c['rejected'] else 'PASSED THE GATE'}"
        )
    for s in report["speed"]:
        print(
            f"speed {s['shape']:34} {s['dtype']:9} sage {s['sage_ms']:8.3f} ms {s['sage_tops']:7.1f} TOPS | "
            f"sdpa {s['sdpa_ms']:8.3f} ms {s['sdpa_tops']:7.1f} TOPS | speedup {s['speedup']:.3f}"
        )
    print(report["summary"])


def run(quick):
    started = time.perf_counter()
    report = {
        "status": "failed",
        "summary": "",
        "mode": "quick" if quick else "full",
        "thresholds": {
            "min_cosine": MIN_COSINE,
            "max_rel_l1": MAX_REL_L1,
            "max_abs_fraction_of_ref_max": MAX_ABS_FRACTION,
        },
        "python": platform.python_version(),
        "checks": [],
        "controls": [],
        "speed": [],
    }
    try:
        import torch
    except Exception as exc:
        report["summary"] = f"torch does not import: {exc}"
        return report, EXIT_FAILED
    report["torch"] = torch.__version__
    report["torch_cuda"] = torch.version.cuda
    try:
        from importlib import metadata

        import sageattention as sa

        report["sageattention"] = metadata.version("sageattention")
        from sageattention import core

        report["modules"] = {m: bool(getattr(core, f"{m}_ENABLED", False)) for m in ("SM80", "SM89", "SM90")}
    except Exception as exc:
        report["summary"] = f"sageattention does not import: {type(exc).__name__}: {exc}"
        code = EXIT_NO_GPU if not torch.cuda.is_available() else EXIT_FAILED
        report["status"] = "unverified" if code == EXIT_NO_GPU else "failed"
        return report, code
    if not torch.cuda.is_available():
        report["status"] = "unverified"
        report["summary"] = "no CUDA GPU visible to torch: imports fine, kernels not run"
        return report, EXIT_NO_GPU
    cc = torch.cuda.get_device_capability(0)
    report["gpu"] = torch.cuda.get_device_name(0)
    report["compute_capability"] = f"{cc[0]}.{cc[1]}"
    seed = int.from_bytes(os.urandom(4), "little")
    report["seed"] = seed
    try:
        report["checks"], report["controls"] = accuracy(sa, cc, quick, seed)
        report["speed"] = speed(sa, quick, seed) if not quick else []
    except Exception:
        report["summary"] = "the check crashed: " + traceback.format_exc(limit=3)[-600:]
        return report, EXIT_FAILED
    ran = [c for c in report["checks"] if c.get("ok") is not None]
    failed = [c for c in ran if not c["ok"]]
    if any(c["path"] == "sageattn (auto)" for c in failed):
        for row in report["speed"]:
            row["valid"] = False  # a kernel that computes the wrong thing is not fast, it is wrong
        report["speed_note"] = "sageattn (auto) failed the accuracy gate: its timings say nothing"
    leaky = [c for c in report["controls"] if not c["rejected"]]
    report["seconds"] = round(time.perf_counter() - started, 2)
    if failed:
        worst = failed[0]
        detail = (
            worst.get("error")
            or f"cos {worst.get('cos')}, rel L1 {worst.get('rel_l1')}, max abs {worst.get('max_abs')}"
        )
        report["summary"] = (
            f"{len(failed)}/{len(ran)} cases failed; first: {worst['path']} {worst['dtype']} d{worst['head_dim']} "
            f"S{worst['seq_len']} {worst['layout']} causal={worst['causal']} H{worst['heads']}/{worst['kv_heads']}: {detail} (seed {seed})"
        )
        return report, EXIT_FAILED
    if leaky:
        report["summary"] = f"the accuracy gate let garbage through ({leaky[0]['control']}): the check itself is broken"
        return report, EXIT_FAILED
    paths = len({c["path"] for c in ran})
    report["status"] = "passed"
    speedups = ", ".join(f"{s['speedup']:.2f}x" for s in report["speed"])
    report["summary"] = f"{len(ran)} cases over {paths} kernel path(s) passed on {report['gpu']}" + (
        f"; sageattn vs SDPA: {speedups}" if speedups else ""
    )
    return report, EXIT_PASSED


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", required=True, help="write the JSON report here")
    parser.add_argument("--quick", action="store_true", help="a handful of cases for the auto path, no timing")
    args = parser.parse_args(argv)
    report, code = run(args.quick)
    with open(args.report, "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=1)
    print_table(report)
    return code


if __name__ == "__main__":
    sys.exit(main())
