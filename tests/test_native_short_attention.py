"""_C's fused per-head attention for short key sequences (kernels/cpu/short_attention.cpp),
which the "cpu" device's attention entries take up to SHORT_ATTENTION_MAX_KEYS keys without a
mask (backend/native_kernels.py): against the plain reference in float64 and with bounds from
the arithmetic in float32, against PyTorch, by finite differences, and its routing."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

import tinygrad_like as tg
from tinygrad_like.backend import native, native_kernels, reference_attention

pytestmark = pytest.mark.skipif(not native.available(),
                                reason=f"tinygrad_like._C is not in use: {native.reason()}")

C = native._C
# Z, L, S, D, Dv: vectors' tails in every dimension, one or several 32-row blocks, L above
# and below S (a causal query past the last key sees them all)
SHAPES = [(3, 1, 1, 1, 1), (2, 5, 7, 3, 6), (3, 70, 45, 40, 24), (2, 33, 100, 17, 9),
          (4, 64, 64, 32, 32)]


def _operands(shape, dtype, seed=0):
    z, length_q, length_k, dim, dim_v = shape
    rng = np.random.default_rng(seed)
    q, k = (rng.standard_normal((z, n, dim)).astype(dtype) for n in (length_q, length_k))
    v = rng.standard_normal((z, length_k, dim_v)).astype(dtype)
    grad = rng.standard_normal((z, length_q, dim_v)).astype(dtype)
    return q, k, v, grad, dim ** -0.5


def _bound(reference, shape, dtype):
    """A few rounding errors per term of the longest sum behind each value (D for a score, S
    for a weighted sum, Dv for delta), relative to the largest value: float32 sums of this
    many terms, compared with float64, are no further off."""
    _, _, length_k, dim, dim_v = shape
    return 16 * np.finfo(dtype).eps * (dim + length_k + dim_v) * max(np.abs(reference).max(), 1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("is_causal", [False, True])
def test_short_attention_matches_the_reference(dtype, shape, is_causal):
    q, k, v, grad, scale = _operands(shape, dtype)
    out, lse = C.short_attention(q, k, v, is_causal, scale)
    grads = C.short_attention_backward(grad, q, k, v, out, lse, is_causal, scale)
    wide = [a.astype(np.float64) for a in (q, k, v, grad)]
    expected = reference_attention.attention(*wide[:3], None, is_causal, scale)
    expected_grads = reference_attention.attention_backward(wide[3], *wide[:3], *expected, None,
                                                            is_causal, scale)
    for ours, reference in zip((out, lse, *grads), (*expected, *expected_grads), strict=True):
        assert ours.dtype == dtype and ours.shape == reference.shape
        np.testing.assert_allclose(ours, reference, rtol=0, atol=_bound(reference, shape, dtype))


def test_every_head_is_one_tasks_so_the_thread_count_changes_no_bit():
    q, k, v, grad, scale = _operands((7, 40, 50, 20, 12), np.float32)
    results = []
    for threads in (1, 3):
        native.set_num_threads(threads)
        try:
            out, lse = C.short_attention(q, k, v, True, scale)
            results.append((out, lse, *C.short_attention_backward(grad, q, k, v, out, lse, True,
                                                                   scale)))
        finally:
            native.set_num_threads(0)
    for one, three in zip(*results, strict=True):
        np.testing.assert_array_equal(one, three)


@pytest.mark.parametrize("is_causal", [False, True])
def test_scaled_dot_product_attention_matches_pytorch(is_causal):
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal((2, 4, 48, 16)).astype(np.float32) for _ in range(3)]
    ours = [tg.from_numpy(a).requires_grad_() for a in arrays]
    theirs = [torch.from_numpy(a).requires_grad_() for a in arrays]
    out = tg.nn.functional.scaled_dot_product_attention(*ours, is_causal=is_causal)
    expected = torch.nn.functional.scaled_dot_product_attention(*theirs, is_causal=is_causal)
    weights = rng.standard_normal(out.shape).astype(np.float32)
    (out * tg.from_numpy(weights)).sum().backward()
    (expected * torch.from_numpy(weights)).sum().backward()
    np.testing.assert_allclose(out.detach().numpy(), expected.detach().numpy(), rtol=1e-4,
                               atol=1e-5)
    for mine, reference in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(mine.grad.numpy(), reference.grad.numpy(), rtol=1e-4,
                                   atol=1e-5)


@pytest.mark.parametrize("is_causal", [False, True])
def test_gradcheck_through_the_short_kernels_float64(monkeypatch, is_causal):
    calls = []
    monkeypatch.setattr(native_kernels, "_C", SimpleNamespace(
        **{name: lambda *args, name=name: calls.append(name) or getattr(C, name)(*args)
           for name in ("short_attention", "short_attention_backward")}))
    rng = np.random.default_rng(2)
    q, k, v = (tg.from_numpy(rng.standard_normal((1, 2, n, 3))).requires_grad_()
               for n in (5, 6, 6))
    assert tg.gradcheck(lambda q, k, v: tg.nn.functional.scaled_dot_product_attention(
        q, k, v, is_causal=is_causal), (q, k, v), eps=1e-6, atol=1e-7, rtol=1e-5)
    assert {"short_attention", "short_attention_backward"} <= set(calls)


@pytest.mark.parametrize("case, short", [
    ("no mask", True), ("a mask", False), ("more keys than the limit", False),
    ("float16", False), ("mixed dtypes", False)])
def test_the_cpu_device_routes_short_unmasked_float_attention_to_the_kernel(monkeypatch, case,
                                                                           short):
    monkeypatch.setattr(native_kernels, "SHORT_ATTENTION_MAX_KEYS", 16)
    calls = []
    monkeypatch.setattr(native_kernels, "_C", SimpleNamespace(
        online_softmax_step=C.online_softmax_step,
        attention_backward_step=C.attention_backward_step,
        **{name: lambda *args, name=name: calls.append(name) or getattr(C, name)(*args)
           for name in ("short_attention", "short_attention_backward")}))
    q, k, v, grad, scale = _operands((2, 8, 32 if case == "more keys than the limit" else 16,
                                      4, 4), np.float32)
    mask = np.zeros((2, 8, k.shape[1]), np.float32) if case == "a mask" else None
    if case == "float16":
        q, k, v, grad = (a.astype(np.float16) for a in (q, k, v, grad))
    if case == "mixed dtypes":
        v = v.astype(np.float64)
    kernels = tg.backend.get_backend("cpu").kernels
    out, lse = kernels.attention(q, k, v, mask, False, scale)
    kernels.attention_backward(grad, q, k, v, out, lse, mask, False, scale)
    assert calls == (["short_attention", "short_attention_backward"] if short else [])


def test_bad_shapes_name_the_kernel_and_the_shapes():
    q = np.zeros((2, 3, 4), np.float32)
    with pytest.raises(ValueError, match=r"short_attention: .*got q \(2, 3, 4\), k \(2, 5, 3\)"):
        C.short_attention(q, np.zeros((2, 5, 3), np.float32), np.zeros((2, 5, 2), np.float32),
                          False, 1.0)
    out, lse = C.short_attention(q, q, q, False, 1.0)
    with pytest.raises(ValueError, match=r"short_attention_backward: .*lse \(2, 2\)"):
        C.short_attention_backward(out, q, q, q, out, np.ascontiguousarray(lse[:, :2]), False,
                                   1.0)
