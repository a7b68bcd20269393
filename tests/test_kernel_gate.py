"""The accuracy gate of kernel_check: healthy quantized-attention-like errors pass, garbage fails.

Runs wherever torch is importable (the device machine always; CPU machines when torch is
installed): the gate's arithmetic does not need a GPU.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from sage_tasks import kernel_check as kc  # noqa: E402


@pytest.fixture
def case():
    gen = torch.Generator().manual_seed(1234)
    q, k, v = (torch.randn(1, 4, 300, 64, generator=gen) for _ in range(3))
    return gen, q, k, v, kc.reference(q, k, v, "HND", False)


def test_exact_and_slightly_noisy_outputs_pass(case):
    gen, _, _, _, ref = case
    assert kc.passes(kc.metrics(ref, ref))
    noisy = ref + 0.02 * ref.std() * torch.randn(ref.shape, generator=gen)  # ~2% error, like int8/fp8
    m = kc.metrics(noisy, ref)
    assert m["cos"] > 0.999 and m["rel_l1"] < 0.05
    assert kc.passes(m)


def test_every_garbage_control_is_rejected(case):
    gen, q, k, v, ref = case
    for label, bad in kc.garbage_controls(gen, ref, q, k, v, "HND", False).items():
        m = kc.metrics(bad, ref)
        assert not kc.passes(m), (label, m)


def test_nan_or_inf_fails_whatever_else(case):
    _, _, _, _, ref = case
    broken = ref.clone()
    broken[0, 0, 0, 0] = float("nan")
    assert not kc.passes(kc.metrics(broken, ref))
    broken[0, 0, 0, 0] = float("inf")
    assert not kc.passes(kc.metrics(broken, ref))


def test_one_wrong_tile_fails_on_max_abs(case):
    _, _, _, _, ref = case
    tile = ref.clone()
    tile[0, 0, :16, :] += 3 * ref.abs().max()  # one 16-row tile badly wrong, the rest exact
    m = kc.metrics(tile, ref)
    assert m["max_abs"] > kc.MAX_ABS_FRACTION * m["ref_max"]
    assert not kc.passes(m)


def test_reference_handles_nhd_and_grouped_query_heads():
    gen = torch.Generator().manual_seed(7)
    q = torch.randn(1, 50, 8, 64, generator=gen)  # NHD, 8 query heads
    k = torch.randn(1, 50, 2, 64, generator=gen)  # 2 key/value heads
    v = torch.randn(1, 50, 2, 64, generator=gen)
    out = kc.reference(q, k, v, "NHD", True)
    assert out.shape == q.shape
    expanded = kc.reference(q, k.repeat_interleave(4, dim=2), v.repeat_interleave(4, dim=2), "NHD", True)
    assert torch.allclose(out, expanded)
