"""Where the quick kernel check's seconds go on a GPU machine (issue 13, point 4).

Runs in the interpreter that has torch and sageattention; stdlib + torch + sageattention only.
The parent starts fresh child interpreters, each timing, in order: interpreter start, `import
torch`, CUDA initialisation, `import sageattention`, the first `sageattn` call (Triton compiles
its quantisation kernels and CUDA loads the modules), the quick check's three cases (sageattn
vs fp32 SDPA, as in kernel_check's QUICK_CASES), and a warm call. Child 1 gets an empty
TRITON_CACHE_DIR (a fresh machine); child 2 reuses what child 1 compiled (what restoring a
stored Triton cache next to the wheel would give). With --check PATH it also times the real
check end to end (`python PATH --report FILE --quick`) in both cache states.

    python bench/quick_check_parts.py --json parts.json
    python bench/quick_check_parts.py --check sage_tasks/target/kernel_check.py --json parts.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# kernel_check.QUICK_CASES: bf16 d128 S1000 HND; fp16 d64 S1000 NHD causal; bf16 GQA 16/4 with sm_scale
CASES = [
    {
        "dtype": "bfloat16",
        "dim": 128,
        "seq": 1000,
        "layout": "HND",
        "causal": False,
        "heads": 8,
        "kv": 8,
        "scale": False,
    },
    {"dtype": "float16", "dim": 64, "seq": 1000, "layout": "NHD", "causal": True, "heads": 8, "kv": 8, "scale": False},
    {
        "dtype": "bfloat16",
        "dim": 128,
        "seq": 1024,
        "layout": "HND",
        "causal": False,
        "heads": 16,
        "kv": 4,
        "scale": True,
    },
]


def child(spawned_at: float) -> dict[str, object]:
    started = time.time()
    parts: dict[str, float] = {"interpreter start": started - spawned_at}

    def timed(name, fn):
        t = time.perf_counter()
        value = fn()
        parts[name] = time.perf_counter() - t
        return value

    torch = timed("import torch", lambda: __import__("torch"))

    def cuda_init():
        torch.cuda.init()
        torch.empty(1, device="cuda")
        torch.cuda.synchronize()

    timed("CUDA init", cuda_init)
    sa = timed("import sageattention", lambda: __import__("sageattention"))
    gen = torch.Generator(device="cuda").manual_seed(0)

    def inputs(case):
        shape = (2, case["heads"], case["seq"], case["dim"])
        kv_shape = (2, case["kv"], case["seq"], case["dim"])
        if case["layout"] == "NHD":
            shape, kv_shape = (2, case["seq"], case["heads"], case["dim"]), (2, case["seq"], case["kv"], case["dim"])
        dtype = getattr(torch, case["dtype"])

        def one(s):
            return torch.randn(s, generator=gen, device="cuda", dtype=torch.float32).to(dtype)

        return one(shape), one(kv_shape), one(kv_shape)

    def call(case, q, k, v):
        scale = 1.3 / math.sqrt(case["dim"]) if case["scale"] else None
        out = sa.sageattn(q, k, v, tensor_layout=case["layout"], is_causal=case["causal"], sm_scale=scale)
        torch.cuda.synchronize()
        return out

    first = CASES[0]
    q, k, v = inputs(first)
    timed("first sageattn call (Triton compile, module load)", lambda: call(first, q, k, v))
    timed("same call again (warm)", lambda: call(first, q, k, v))
    cos = []
    for n, case in enumerate(CASES):
        q, k, v = inputs(case)

        def one_case(case=case, q=q, k=k, v=v):
            out = call(case, q, k, v).float()
            qh, kh, vh = (t.float() if case["layout"] == "HND" else t.float().transpose(1, 2) for t in (q, k, v))
            if case["kv"] != case["heads"]:
                kh = kh.repeat_interleave(case["heads"] // case["kv"], dim=1)
                vh = vh.repeat_interleave(case["heads"] // case["kv"], dim=1)
            scale = 1.3 / math.sqrt(case["dim"]) if case["scale"] else None
            ref = torch.nn.functional.scaled_dot_product_attention(qh, kh, vh, is_causal=case["causal"], scale=scale)
            if case["layout"] == "NHD":
                ref = ref.transpose(1, 2)
            c = torch.nn.functional.cosine_similarity(out.flatten(), ref.flatten(), dim=0).item()
            torch.cuda.synchronize()
            return c

        cos.append(timed(f"case {n + 1}: {case['dtype']} d{case['dim']} S{case['seq']} {case['layout']}", one_case))
    cache = Path(os.environ.get("TRITON_CACHE_DIR", ""))
    return {
        "parts": parts,
        "total_s": time.time() - spawned_at,
        "cos": cos,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "gpu": torch.cuda.get_device_name(0),
        "triton_cache_files": sum(1 for p in cache.rglob("*") if p.is_file()) if cache.is_dir() else None,
    }


def run_child(triton_cache: Path) -> dict[str, object]:
    env = {**os.environ, "TRITON_CACHE_DIR": str(triton_cache)}
    spawned = time.time()
    done = subprocess.run(
        [sys.executable, __file__, "--child", repr(spawned)], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"child failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_check(check: str, triton_cache: Path) -> float:
    env = {**os.environ, "TRITON_CACHE_DIR": str(triton_cache)}
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        subprocess.run([sys.executable, check, "--report", f"{tmp}/r.json", "--quick"], env=env, check=False)
        return time.perf_counter() - start


def bare_start(runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument(
        "--check", help="also time this check program with --quick (e.g. sage_tasks/target/kernel_check.py)"
    )
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(float(args.child))))
        return 0
    with tempfile.TemporaryDirectory(prefix="triton-cache-") as cache_dir:
        cache = Path(cache_dir)
        cold = run_child(cache)  # an empty Triton cache: a fresh machine
        warm = run_child(cache)  # the cache the first child filled: as if restored next to the wheel
        result: dict[str, object] = {
            "python": platform.python_version(),
            "bare interpreter start (median of 5)": bare_start(),
            "empty Triton cache": cold,
            "Triton cache filled": warm,
        }
        if args.check:
            empty = Path(tempfile.mkdtemp(prefix="triton-cold-"))
            result["check --quick, empty Triton cache s"] = run_check(args.check, empty)
            result["check --quick, Triton cache filled s"] = run_check(args.check, empty)
    names = list(cold["parts"])  # type: ignore[index]
    print(f"GPU {cold['gpu']}, torch {cold['torch']} (CUDA {cold['cuda']}), Python {result['python']}")
    print(f"{'part':58} {'empty cache s':>14} {'cache filled s':>15}")
    for name in names:
        print(f"{name:58} {cold['parts'][name]:14.3f} {warm['parts'][name]:15.3f}")  # type: ignore[index]
    print(f"{'total (spawn to last case)':58} {cold['total_s']:14.3f} {warm['total_s']:15.3f}")
    print(
        f"bare interpreter start: {result['bare interpreter start (median of 5)']:.3f} s; cos per case: {cold['cos']}"
    )
    if args.check:
        print(
            f"real check --quick: {result['check --quick, empty Triton cache s']:.2f} s empty cache, "
            f"{result['check --quick, Triton cache filled s']:.2f} s filled"
        )
    print(json.dumps(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
