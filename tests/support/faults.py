"""Fault counts for RELIABILITY.md, from observed outcomes."""

from __future__ import annotations

FAULTS: dict[str, dict[str, int]] = {}


def count_fault(kind: str, *, injected: int, survived: int, lost: int = 0) -> None:
    """Record faults a test injected and how many it saw survived (printed at the end of the run).

    A test that injects one fault uses the ``fault`` fixture instead: its survival is the test's
    own outcome, read by conftest after the test ran."""
    entry = FAULTS.setdefault(kind, {"injected": 0, "survived": 0, "lost": 0})
    entry["injected"] += injected
    entry["survived"] += survived
    entry["lost"] += lost
