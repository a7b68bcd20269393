"""The end every benchmark script shares: a Markdown table of medians and spreads, the whole
result as JSON on stdout, and (with --out) the same JSON in a file."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any


def emit(
    result: Mapping[str, Any],
    medians: Mapping[str, float],
    columns: tuple[str, ...],
    cells: Callable[[str, float, float, float], tuple[str, ...]],
    out: str | None,
) -> None:
    """One row per command: ``cells(name, median, low, high)`` gives the cells after the name."""
    print("| " + " | ".join(columns) + " |\n" + "| --- " * len(columns) + "|")
    for name, value in medians.items():
        low, high = result["spread_s"][name]
        print("| " + " | ".join((f"`{name}`", *cells(name, value, low, high))) + " |")
    text = json.dumps(result, indent=1)
    print(text)
    if out:
        Path(out).write_text(text)
