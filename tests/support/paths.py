"""Where the checkout and the recorded tool outputs are."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


CAPTURES = REPO / "tests" / "captures"
