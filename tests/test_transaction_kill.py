"""SIGKILL at every step boundary of an install transaction and at random moments, with a wheel
shaped like SageAttention's (≥ 16 MB incompressible, several ``.so`` files, > 1,000 members);
after each kill the next command's recovery must leave exactly the old or exactly the new
installation (every file's hash against the RECORDs of both wheels; ``pip check`` and
``pip list`` against ``import`` every tenth kill). The counts come from what was judged."""

from __future__ import annotations

import zipfile

import pytest

from tests import support, txn_support

pytestmark = pytest.mark.slow

BOUNDARY_KILLS = 2 * len(txn_support.BOUNDARIES)  # every boundary twice (both directions)
RANDOM_KILLS = 100 - BOUNDARY_KILLS


@pytest.fixture(scope="module")
def real_shaped(tmp_path_factory):
    base = tmp_path_factory.mktemp("real-shaped")
    a = txn_support.big_wheel(base / "a", "1.0", seed=1, modules=range(1000))
    b = txn_support.big_wheel(base / "b", "2.0", seed=2, modules=range(300, 1300))
    return {"1.0": a, "2.0": b}


def test_the_wheels_are_shaped_like_the_real_one(real_shaped):
    for wheel in real_shaped.values():
        with zipfile.ZipFile(wheel) as zf:
            names = zf.namelist()
            assert len(names) >= 1000
            assert sum(n.endswith(".so") for n in names) >= 4
        assert wheel.stat().st_size >= 16 << 20


def test_kill_9_at_every_step_boundary_and_at_random_moments(tmp_path, real_shaped):
    lines: list[str] = []
    boundaries, moments = txn_support.parallel_campaigns(
        tmp_path, real_shaped, lanes=2, boundary_kills=BOUNDARY_KILLS, random_kills=RANDOM_KILLS, log=lines.append
    )
    for tally, what in ((boundaries, "kill -9 at step boundaries (install)"), (moments, "kill -9 at random moments (install)")):  # fmt: skip
        print("\n" + tally.line(what))
        support.count_fault(what, injected=tally.injected, survived=tally.consistent, lost=tally.broken)
    print("\n".join(lines))
    assert boundaries.injected == BOUNDARY_KILLS, lines
    assert moments.injected == RANDOM_KILLS, "random kills kept landing after the install had finished"
    assert boundaries.broken == 0 and moments.broken == 0, (boundaries.examples, moments.examples)
    assert boundaries.rolled_back and boundaries.rolled_forward, "the boundaries never reached both outcomes"
