"""The tuned "cpu" attention (backend/cpu_attention.py) against the plain NumPy reference
(backend/reference_attention.py): tiled, online-softmax, threaded over heads, on NumPy steps
and on the "cpu" device's kernel table (the native steps where the extension is built)."""

from __future__ import annotations

import numpy as np
import pytest

from tinygrad_like.backend import cpu_attention, get_backend, reference_attention

TOLERANCE = {np.float32: {"rtol": 1e-4, "atol": 1e-5}, np.float64: {"rtol": 1e-10, "atol": 1e-12}}
MASKS = ["none", "additive", "hidden keys", "broadcast", "per key"]


def make_mask(kind, shape, dtype, rng):
    """An additive mask broadcastable to (Z, L, S); the hiding ones hide a whole query row."""
    z, length_q, length_k = shape
    if kind == "none":
        return None
    if kind == "additive":
        return rng.standard_normal(shape).astype(dtype)
    if kind == "broadcast":  # one bias for every head, as a stride-0 view
        return np.broadcast_to(rng.standard_normal((1, length_q, length_k)).astype(dtype), shape)
    if kind == "per key":  # a key-padding mask, (Z, 1, S)
        return np.where(np.arange(length_k) % 5 == 4, -np.inf, 0.0).astype(dtype)[None, None]
    mask = np.where(rng.random(shape) < 0.3, -np.inf, 0.5).astype(dtype)
    mask[0, length_q // 2] = -np.inf
    return mask


@pytest.fixture(params=["numpy steps", "cpu device"])
def tuned(request):
    """(attention, attention_backward) of the tuned path."""
    if request.param == "numpy steps":
        return cpu_attention.attention, cpu_attention.attention_backward
    kernels = get_backend("cpu").kernels
    return kernels.attention, kernels.attention_backward


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("lengths", [(37, 45), (45, 20), (1, 1), (70, 131)], ids=str)
@pytest.mark.parametrize("is_causal", [False, True])
@pytest.mark.parametrize("mask", MASKS)
# 3 heads in 16-row query blocks; 1 head, whose blocks widen to 4 x 16 rows (MIN_GROUP_HEADS)
@pytest.mark.parametrize("z, min_group_heads", [(3, 1), (1, 4)], ids=["3 heads", "widened"])
def test_tuned_attention_matches_the_reference(monkeypatch, tuned, dtype, lengths, is_causal,
                                               mask, z, min_group_heads):
    monkeypatch.setattr(cpu_attention, "QUERY_BLOCK", 16)  # several blocks, with odd tails
    monkeypatch.setattr(cpu_attention, "KEY_BLOCK", 8)
    monkeypatch.setattr(cpu_attention, "MIN_GROUP_HEADS", min_group_heads)
    rng = np.random.default_rng(sum(lengths))
    length_q, length_k = lengths
    q, k = (rng.standard_normal((z, n, 8)).astype(dtype) for n in lengths)
    v = rng.standard_normal((z, length_k, 5)).astype(dtype)
    grad = rng.standard_normal((z, length_q, 5)).astype(dtype)
    options = (make_mask(mask, (z, length_q, length_k), dtype, rng), is_causal, 8 ** -0.5)
    attention, attention_backward = tuned
    expected = reference_attention.attention(q, k, v, *options)
    got = attention(q, k, v, *options)
    for ours, reference in zip((*got, *attention_backward(grad, q, k, v, *got, *options)),
                               (*expected, *reference_attention.attention_backward(
                                   grad, q, k, v, *expected, *options)), strict=True):
        assert ours.dtype == reference.dtype and ours.shape == reference.shape
        np.testing.assert_allclose(ours, reference, **TOLERANCE[dtype])


def test_hidden_rows_give_zero_output_and_infinite_lse():
    q, k, v = (np.ones((2, 4, 3)) for _ in range(3))
    mask = np.zeros((2, 4, 4))
    mask[1, 2] = -np.inf
    out, lse = reference_attention.attention(q, k, v, mask, False, 1.0)
    assert not out[1, 2].any() and lse[1, 2] == np.inf and np.isfinite(lse[0]).all()
    grads = reference_attention.attention_backward(np.ones_like(out), q, k, v, out, lse, mask,
                                                   False, 1.0)
    assert not grads[0][1, 2].any()


def test_threaded_head_groups_match_the_reference(monkeypatch):
    monkeypatch.setattr(cpu_attention, "GROUP_SCORE_BYTES", 1)  # one head per group
    monkeypatch.setattr(cpu_attention, "PARALLEL_SCORES", 0)  # and threads from any size
    rng = np.random.default_rng(5)
    q, k, v, grad = (rng.standard_normal((5, 33, 8)) for _ in range(4))
    options = (None, True, 0.5)
    out, lse = cpu_attention.attention(q, k, v, *options)
    expected = reference_attention.attention(q, k, v, *options)
    for ours, reference in zip(
            (out, lse, *cpu_attention.attention_backward(grad, q, k, v, out, lse, *options)),
            (*expected, *reference_attention.attention_backward(grad, q, k, v, *expected,
                                                                *options)), strict=True):
        np.testing.assert_allclose(ours, reference, **TOLERANCE[np.float64])
