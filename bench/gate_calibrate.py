"""Measure how far real SageAttention kernels land from fp32 attention, locally: the data the
kernel gate's thresholds come from.

Runs inside an interpreter that has torch (CUDA) and sageattention installed, stdlib otherwise::

    python bench/gate_calibrate.py --seeds 20 --out calib.json

For every kernel path this GPU exposes and every case of the grid (fp16/bf16, head_dim 64/128,
sequence lengths with and without a remainder tile, HND/NHD, causal or not, grouped-query heads,
default and explicit ``sm_scale``), over ``--seeds`` seeds, it computes, in float64:

- per (batch, head): cosine, relative L1 (sum|o-r| / sum|r|) and the norm ratio ||o|| / ||r||;
- per 64-row query tile of each (batch, head), the remainder rows as a tile of their own: the same;
- the whole tensor: the same.

It prints, per path, the distribution (min, 0.1 %, 1 %, median, max) of each case's worst tile and
worst head, and writes every case's worst values as JSON. Accuracy only: nothing is timed, nothing
is judged. The FP8 per-warp path on a 9.0 GPU is the same kernel family the 12.0 dispatch uses and
is labelled as the stand-in for it.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time

TILE = 64


def local_metrics(out, ref, layout):
    """Worst tile / worst head / whole-tensor metrics of one case (float64)."""
    import torch

    o, r = out.detach().to(torch.float64), ref.detach().to(torch.float64)
    if layout == "NHD":
        o, r = o.transpose(1, 2), r.transpose(1, 2)
    b, h, s, d = r.shape
    full = (s // TILE) * TILE
    groups = []
    if full:
        groups.append(
            (o[:, :, :full].reshape(b, h, s // TILE, TILE * d), r[:, :, :full].reshape(b, h, s // TILE, TILE * d))
        )
    if s > full:
        groups.append(
            (o[:, :, full:].reshape(b, h, 1, (s - full) * d), r[:, :, full:].reshape(b, h, 1, (s - full) * d))
        )

    def stats(x, y):  # reduce the last dim
        dot = (x * y).sum(-1)
        nx, ny = x.norm(dim=-1), y.norm(dim=-1)
        cos = dot / (nx * ny).clamp_min(1e-300)
        rel = (x - y).abs().sum(-1) / y.abs().sum(-1).clamp_min(1e-300)
        ratio = nx / ny.clamp_min(1e-300)
        return cos, rel, ratio

    tiles = [stats(x, y) for x, y in groups]
    tile_cos = torch.cat([t[0].flatten() for t in tiles])
    tile_rel = torch.cat([t[1].flatten() for t in tiles])
    tile_ratio = torch.cat([t[2].flatten() for t in tiles])
    rem = tiles[-1] if s > full else None
    head_cos, head_rel, head_ratio = stats(o.reshape(b, h, s * d), r.reshape(b, h, s * d))
    whole = stats(o.reshape(1, -1), r.reshape(1, -1))
    finite = bool(torch.isfinite(o).all())
    return {
        "finite": finite,
        "tile_cos_min": tile_cos.min().item(),
        "tile_rel_l1_max": tile_rel.max().item(),
        "tile_ratio_min": tile_ratio.min().item(),
        "tile_ratio_max": tile_ratio.max().item(),
        "rem_cos_min": rem[0].min().item() if rem else None,
        "rem_rel_l1_max": rem[1].max().item() if rem else None,
        "head_cos_min": head_cos.min().item(),
        "head_rel_l1_max": head_rel.max().item(),
        "head_ratio_min": head_ratio.min().item(),
        "head_ratio_max": head_ratio.max().item(),
        "cos": whole[0].item(),
        "rel_l1": whole[1].item(),
        "ratio": whole[2].item(),
        "dtype_ok": out.dtype == ref.dtype,
        "shape_ok": tuple(out.shape) == tuple(ref.shape),
    }


def reference(sdpa, q, k, v, layout, causal, scale):
    if layout == "NHD":
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
    q, k, v = (t.float() for t in (q, k, v))
    groups = q.shape[1] // k.shape[1]
    if groups > 1:
        k, v = k.repeat_interleave(groups, 1), v.repeat_interleave(groups, 1)
    o = sdpa(q, k, v, is_causal=causal, scale=scale)
    return o.transpose(1, 2) if layout == "NHD" else o


def paths(sa, cc):
    from sageattention import core

    major, minor = cc
    sm = major * 10 + minor
    found = [
        ("sageattn (auto)", lambda q, k, v, lay, c, s: sa.sageattn(q, k, v, tensor_layout=lay, is_causal=c, sm_scale=s))
    ]
    if major < 12:
        found.append(
            (
                "triton qk_int8_pv_fp16",
                lambda q, k, v, lay, c, s: sa.sageattn_qk_int8_pv_fp16_triton(
                    q, k, v, tensor_layout=lay, is_causal=c, sm_scale=s
                ),
            )
        )
    if getattr(core, "SM80_ENABLED", False):
        for acc in ("fp32", "fp16+fp32"):
            found.append(
                (
                    f"cuda qk_int8_pv_fp16 accum={acc}",
                    lambda q, k, v, lay, c, s, a=acc: sa.sageattn_qk_int8_pv_fp16_cuda(
                        q, k, v, tensor_layout=lay, is_causal=c, sm_scale=s, pv_accum_dtype=a
                    ),
                )
            )
    if sm >= 89 and getattr(core, "SM89_ENABLED", False):
        for acc in ("fp32+fp16", "fp32+fp32"):
            for gran in ("per_thread", "per_warp"):
                label = f"cuda qk_int8_pv_fp8 accum={acc} {gran}"
                if gran == "per_warp" and major < 12:
                    label += " (stand-in for the 12.0 family)"
                found.append(
                    (
                        label,
                        lambda q, k, v, lay, c, s, a=acc, g=gran: sa.sageattn_qk_int8_pv_fp8_cuda(
                            q, k, v, tensor_layout=lay, is_causal=c, sm_scale=s, pv_accum_dtype=a, qk_quant_gran=g
                        ),
                    )
                )
    if sm == 90 and getattr(core, "SM90_ENABLED", False):
        found.append(
            (
                "cuda qk_int8_pv_fp8 sm90",
                lambda q, k, v, lay, c, s: sa.sageattn_qk_int8_pv_fp8_cuda_sm90(
                    q, k, v, tensor_layout=lay, is_causal=c, sm_scale=s
                ),
            )
        )
    return found


def grid():
    import torch

    cases = []
    for dtype in (torch.float16, torch.bfloat16):
        for dim in (64, 128):
            for layout in ("HND", "NHD"):
                for causal in (False, True):
                    cases.append((dtype, dim, 1000, layout, causal, 8, 8, None))
                cases.append((dtype, dim, 2048, layout, False, 8, 8, None))
            cases.append((dtype, dim, 777, "HND", True, 16, 4, None))
            cases.append((dtype, dim, 1024, "NHD", False, 16, 2, 0.5 / math.sqrt(dim)))
            cases.append((dtype, dim, 1000, "HND", False, 8, 8, 1.5 / math.sqrt(dim)))
    return cases


def quantiles(values):
    v = sorted(values)
    pick = lambda p: v[min(len(v) - 1, int(p * (len(v) - 1)))]  # noqa: E731
    return {
        "n": len(v),
        "min": v[0],
        "p0.1": pick(0.001),
        "p1": pick(0.01),
        "p50": statistics.median(v),
        "p99": pick(0.99),
        "max": v[-1],
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--first-seed", type=int, default=1000)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    import torch
    import torch.nn.functional as F

    sdpa = F.scaled_dot_product_attention  # taken before sageattention is imported
    import sageattention as sa

    cc = torch.cuda.get_device_capability(0)
    rows = []
    started = time.perf_counter()
    found = paths(sa, cc)
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        gen = torch.Generator(device="cuda").manual_seed(seed)
        for dtype, dim, seq, layout, causal, heads, kv, scale in grid():
            shapes = [(2, h, seq, dim) if layout == "HND" else (2, seq, h, dim) for h in (heads, kv, kv)]
            q, k, v = (torch.randn(s, generator=gen, device="cuda", dtype=torch.float32).to(dtype) for s in shapes)
            ref = reference(sdpa, q, k, v, layout, causal, scale).to(dtype)
            ref32 = reference(sdpa, q, k, v, layout, causal, scale)
            for name, fn in found:
                case = {
                    "path": name,
                    "seed": seed,
                    "dtype": str(dtype)[6:],
                    "head_dim": dim,
                    "seq": seq,
                    "layout": layout,
                    "causal": causal,
                    "heads": heads,
                    "kv_heads": kv,
                    "sm_scale": scale,
                }
                try:
                    out = fn(q, k, v, layout, causal, scale)
                    torch.cuda.synchronize()
                    m = local_metrics(out, ref32, layout)
                    m["dtype_ok"] = out.dtype == ref.dtype
                    rows.append({**case, **m})
                except Exception as exc:  # recorded, not fatal: this is a measurement
                    rows.append({**case, "error": f"{type(exc).__name__}: {str(exc)[:200]}"})
    seconds = time.perf_counter() - started
    summary = {}
    for name, _ in found:
        mine = [r for r in rows if r["path"] == name and "error" not in r]
        errors = [r for r in rows if r["path"] == name and "error" in r]
        summary[name] = {
            "cases": len(mine),
            "errors": len(errors),
            "first_error": errors[0]["error"] if errors else None,
            **{
                key: quantiles([r[key] for r in mine if r.get(key) is not None])
                for key in (
                    "tile_cos_min",
                    "tile_rel_l1_max",
                    "tile_ratio_min",
                    "tile_ratio_max",
                    "rem_cos_min",
                    "head_cos_min",
                    "head_rel_l1_max",
                    "head_ratio_min",
                    "head_ratio_max",
                    "cos",
                    "rel_l1",
                )
                if any(r.get(key) is not None for r in mine)
            },
            "all_dtype_ok": all(r["dtype_ok"] for r in mine),
            "all_shape_ok": all(r["shape_ok"] for r in mine),
            "all_finite": all(r["finite"] for r in mine),
        }
    report = {
        "gpu": torch.cuda.get_device_name(0),
        "compute_capability": f"{cc[0]}.{cc[1]}",
        "torch": torch.__version__,
        "seeds": [args.first_seed, args.first_seed + args.seeds - 1],
        "cases_per_seed": len(grid()),
        "seconds": round(seconds, 1),
        "summary": summary,
        "rows": rows,
    }
    with open(args.out, "w", encoding="utf-8") as handle:
        json.dump(report, handle)
    print(
        f"{report['gpu']} (cc {report['compute_capability']}), torch {report['torch']}, seeds {report['seeds']}, "
        f"{len(grid())} cases per seed, {seconds:.0f} s"
    )
    print(
        f"{'path':58} {'n':>5} {'tile cos min':>12} {'p0.1':>8} {'p1':>8} {'tile rL1 max':>12} {'ratio min':>9} {'ratio max':>9} {'head cos':>9} {'err':>4}"
    )
    for name, s in summary.items():
        if not s["cases"]:
            print(f"{name:58} no cases ran: {s['first_error']}")
            continue
        tc, tr = s["tile_cos_min"], s["tile_rel_l1_max"]
        print(
            f"{name:58} {s['cases']:5d} {tc['min']:12.5f} {tc['p0.1']:8.5f} {tc['p1']:8.5f} {tr['max']:12.5f} "
            f"{s['tile_ratio_min']['min']:9.5f} {s['tile_ratio_max']['max']:9.5f} {s['head_cos_min']['min']:9.5f} {s['errors']:4d}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
