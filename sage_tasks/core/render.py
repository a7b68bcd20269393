"""Human tables and JSON for the tasks' results (stdout); progress goes to stderr via logging."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TextIO

from . import redaction

if TYPE_CHECKING:  # only for annotations: rendering a probe must not import the pipeline
    from ..stages.pipeline import RunReport
    from ..stages.probe import Machine


def table(rows: Sequence[Sequence[Any]], header: Sequence[str] | None = None) -> str:
    cells = [[("" if c is None else str(c)) for c in row] for row in ([header] if header else []) + list(rows)]
    if not cells:
        return ""
    widths = [max(len(r[i]) for r in cells if i < len(r)) for i in range(max(len(r) for r in cells))]
    lines = ["  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip() for r in cells]
    if header:
        lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def emit(text: str, out: TextIO | None = None) -> None:
    print(redaction.redact(text), file=out or sys.stdout)


def emit_json(data: Any, out: TextIO | None = None) -> None:
    # redacted as data, not as text: redacting JSON text can break it (see redaction.redact_data)
    plain = json.loads(json.dumps(data, default=str))
    print(json.dumps(redaction.redact_data(plain), indent=2), file=out or sys.stdout)


def probe_table(m: Machine) -> str:
    t = m.target
    gpus = "; ".join(f"#{g.index} {g.name} (cc {g.compute_capability or '?'})" for g in m.gpus) or "absent"
    torch = t.version_of("torch")
    rows = [
        ("GPUs", gpus),
        ("driver", f"{m.driver_version} (CUDA {m.driver_cuda or '?'})" if m.driver_version else "absent"),
        ("nvcc", f"{m.nvcc.version} ({m.nvcc.path})" if m.nvcc else "absent"),
        ("platform", f"{m.system} {m.arch}, {m.libc or 'libc ?'}, kernel {m.kernel}"),
        ("cpu / memory", f"{m.cpu_count} cores, {_gib(m.mem_total_mib)} total, {_gib(m.mem_available_mib)} available"),
        ("python", f"{t.version} {t.implementation} ({t.python})"),
        ("wheel tags", ", ".join(t.tags[:3]) + (f" … ({len(t.tags)} in all)" if len(t.tags) > 3 else "")),
        (
            "torch",
            f"{torch} (CUDA {t.torch_cuda or 'none'}, C++11 ABI {_abi(t.torch_cxx11_abi)})" if torch else "absent",
        ),
    ]
    rows += [(name, t.version_of(name) or "absent") for name in ("torchvision", "torchaudio", "triton")]
    if t.torch_imported:
        rows.append(("torch (imported)", json.dumps(t.torch_imported)))
    rows += [("note", n) for n in m.notes]
    rows.append(("probed in", f"{m.seconds:.2f} s"))
    return table(rows)


def _gib(mib: int | None) -> str:
    return f"{mib / 1024:.1f} GiB" if mib else "?"


def _abi(value: bool | None) -> str:
    return "?" if value is None else str(int(value))


def run_summary(report: RunReport) -> str:
    rows = [(s.stage, s.outcome, f"{s.seconds:.1f}", s.detail[:110]) for s in report.stages]
    text = table(rows, ("stage", "outcome", "seconds", "detail"))
    total = sum(s.seconds for s in report.stages)
    verdict = "dry run, nothing changed" if report.dry_run else ("ok" if report.error is None else "FAILED")
    return f"{text}\n{'total':<{len('stage')}}  {verdict}, {total:.1f} s"


def markdown_wheels(entries: Sequence[Any]) -> str:
    """A Markdown table of wheel manifests (for a CI job summary)."""
    lines = [
        "| wheel | torch | CUDA | archs | verification | speedup vs SDPA |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for e in entries:
        speed = ", ".join(f"{s.get('speedup')}x" for s in e.verification.speed if isinstance(s, dict)) or "-"
        lines.append(
            f"| `{e.wheel_file}` | {e.torch_version} | {e.torch_cuda or '-'} | {' '.join(e.cuda_archs) or '-'} "
            f"| {e.verification.status} ({e.verification.gpu or 'no GPU'}) | {speed} |"
        )
    return "\n".join(lines)
