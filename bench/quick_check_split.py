"""Where the quick check's own seconds go, step by step, inside one interpreter (issue 10's budget).

bench/quick_check_parts.py times the quick check from outside (a fresh interpreter per part);
this one loads kernel_check.py (gate_metrics.py beside it) and runs the quick check's steps one
by one as ``accuracy()`` does, synchronising the GPU around each: for every quick case, making
the inputs, the fp32 reference, the kernel, the scale reference and the verdict (``judge``).
Each step is timed twice in a row on the same tensors, so a first-use cost (a CUDA module
loaded, a Triton kernel compiled) shows up as the difference between the two. With --cpu-metrics
it also times the verdict computed on CPU copies (the alternative to the GPU's first-use costs).
Stdlib + torch + sageattention only; runs in the target interpreter.

    python bench/quick_check_split.py --check sage_tasks/target/kernel_check.py --json split.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path


def load(check: Path):
    sys.path.insert(0, str(check.parent))
    spec = importlib.util.spec_from_file_location("kernel_check_under_test", check)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", type=Path, required=True, help="kernel_check.py (gate_metrics.py beside it)")
    parser.add_argument("--json", type=Path, help="write the split here")
    parser.add_argument("--cpu-metrics", action="store_true", help="also time the verdict on CPU copies")
    args = parser.parse_args(argv)

    steps: list[dict[str, object]] = []
    t0 = time.perf_counter()
    import torch

    steps.append({"step": "import torch", "s": time.perf_counter() - t0})
    kc = load(args.check)
    gm = kc.gm
    gm.pin_reference_sdpa(torch.nn.functional.scaled_dot_product_attention)

    def timed(name, fn, twice=True):
        values = []
        for _attempt in range(2 if twice else 1):
            torch.cuda.synchronize()
            start = time.perf_counter()
            value = fn()
            torch.cuda.synchronize()
            values.append(time.perf_counter() - start)
        row = {"step": name, "s": values[0]}
        if twice:
            row["again_s"] = values[1]
        steps.append(row)
        return value

    timed("CUDA init", lambda: torch.empty(1, device="cuda"), twice=False)
    sa = timed("import sageattention", lambda: __import__("sageattention"), twice=False)
    cc = torch.cuda.get_device_capability(0)
    family = kc.family_of_auto(cc)
    path = next(p for p in kc.kernel_paths(sa, cc) if p[0] == "sageattn (auto)")
    fn = path[2]
    all_cases = kc.grid()
    limits = gm.THRESHOLDS[family]
    for case_no in kc.QUICK_CASES:
        case = all_cases[case_no]
        tag = f"case {case_no} ({case['dtype']} d{case['head_dim']} S{case['seq_len']} {case['layout']}"
        tag += f"{' causal' if case['causal'] else ''} H{case['heads']}/{case['kv_heads']})"
        lay, causal, scale = case["layout"], case["causal"], case["sm_scale"]
        q, k, v = timed(f"{tag}: inputs", lambda: kc.make_inputs(case, 1, case_no, "cuda"))  # noqa: B023
        ref = timed(f"{tag}: fp32 reference", lambda: gm.reference(q, k, v, lay, causal, scale))  # noqa: B023
        out = timed(f"{tag}: kernel", lambda: fn(q, k, v, lay, causal, scale))  # noqa: B023
        sref = timed(
            f"{tag}: scale reference",
            lambda: gm.scale_reference(q, k, v, lay, causal, scale, family, ref),  # noqa: B023
        )
        verdict = timed(f"{tag}: judge", lambda: gm.judge(out, ref, q, lay, limits, causal, sref))  # noqa: B023
        steps[-1]["ok"] = verdict[0]
        if args.cpu_metrics:
            copies = timed(f"{tag}: copy to CPU", lambda: (out.cpu(), ref.cpu(), q.cpu(), sref.cpu()))  # noqa: B023
            o_c, r_c, q_c, s_c = copies
            timed(f"{tag}: judge on CPU", lambda: gm.judge(o_c, r_c, q_c, lay, limits, causal, s_c))  # noqa: B023
    total = time.perf_counter() - t0
    width = max(len(s["step"]) for s in steps)
    for s in steps:
        again = f"   again {s['again_s']:.4f} s" if "again_s" in s else ""
        print(f"{s['step']:<{width}}  {s['s']:.4f} s{again}")
    print(f"{'total in process':<{width}}  {total:.3f} s")
    if args.json:
        args.json.write_text(json.dumps({"steps": steps, "total_s": total, "torch": torch.__version__}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
