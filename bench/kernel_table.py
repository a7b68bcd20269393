"""Render a kernel-check report (JSON from `invoke test-kernel --report`) as Markdown tables.

python bench/kernel_table.py REPORT.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def tables(report: dict) -> str:
    lines = [f"GPU: {report.get('gpu')} (cc {report.get('compute_capability')}), torch {report.get('torch')} "
             f"(CUDA {report.get('torch_cuda')}), sageattention {report.get('sageattention')}, mode {report.get('mode')}, "
             f"seed {report.get('seed')}", "",
             "| kernel path | cases | failed | min cos | max rel L1 | max abs err |", "| --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    paths: dict[str, list[dict]] = {}
    for check in report.get("checks", []):
        paths.setdefault(check["path"], []).append(check)
    for path, rows in paths.items():
        ran = [r for r in rows if r.get("ok") is not None]
        if not ran:
            lines.append(f"| {path} | 0 | - | skipped: {rows[0].get('skipped')} | | |")
            continue
        good = [r for r in ran if r.get("finite")]
        lines.append(
            f"| {path} | {len(ran)} | {sum(not r['ok'] for r in ran)} | "
            f"{min((r['cos'] for r in good), default=float('nan')):.5f} | "
            f"{max((r['rel_l1'] for r in good), default=float('nan')):.4f} | "
            f"{max((r['max_abs'] for r in good), default=float('nan')):.4f} |"
        )
    lines += ["", "| garbage control | cos | rel L1 | rejected |", "| --- | --- | --- | --- |"]
    for c in report.get("controls", []):
        lines.append(f"| {c['control']} | {c['cos']:.4f} | {c['rel_l1']:.4f} | {c['rejected']} |")
    if report.get("speed"):
        lines += ["", "| shape | dtype | sageattn ms | SDPA ms | sageattn TOPS | SDPA TOPS | speedup |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
        for s in report["speed"]:
            lines.append(f"| {s['shape']} | {s['dtype']} | {s['sage_ms']:.3f} | {s['sdpa_ms']:.3f} | "
                         f"{s['sage_tops']} | {s['sdpa_tops']} | {s['speedup']:.3f} |")  # fmt: skip
    if report.get("speed_note"):
        lines += ["", f"note: {report['speed_note']}"]
    lines += ["", f"summary: {report.get('summary')}", f"thresholds: {report.get('thresholds')}"]
    return "\n".join(lines)


if __name__ == "__main__":
    print(tables(json.loads(Path(sys.argv[1]).read_text())))
