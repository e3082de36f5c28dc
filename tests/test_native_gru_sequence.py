"""The whole-sequence GRU on the native pool (kernels/cpu/recurrent.cpp `gru_sequence` and
`gru_sequence_backward`, backend/native_recurrent.py) against the Python loop it replaces
(backend/reference_rnn.py's, on NumPy's gates and np.matmul).

The native loop cuts each step's hidden units into one block per thread and runs the steps
in stages; blocks of uneven width (3 threads), one block (small steps, or 1 thread), both
directions and no bias are covered, in float32 and float64. Errors are measured against
the largest value: float32's grow with the steps, each step adding a dot product's rounding.
"""

from __future__ import annotations

import numpy as np
import pytest

from tinygrad_like.backend import get_backend, native, native_blas, reference_rnn

pytestmark = pytest.mark.skipif(not native_blas.available(), reason=native_blas.status())

RNG = np.random.default_rng(17)
KERNELS = get_backend("cpu").kernels
EPS = {np.float32: np.finfo(np.float32).eps, np.float64: np.finfo(np.float64).eps}


def inputs(length, rows, hidden, dtype, bias=True):
    x_proj = RNG.standard_normal((length, rows, 3 * hidden)).astype(dtype)
    h0 = RNG.standard_normal((rows, hidden)).astype(dtype)
    weight = (RNG.standard_normal((3 * hidden, hidden)) / np.sqrt(hidden)).astype(dtype)
    return x_proj, h0, weight, RNG.standard_normal(3 * hidden).astype(dtype) if bias else None


def assert_close_to_max(ours, reference, dtype, steps: int, terms: int):
    """Within steps * terms * eps of the largest value: each step's dot products of `terms`
    products round by at most terms * eps of their magnitudes, and carry into the next."""
    assert ours.shape == reference.shape and ours.dtype == reference.dtype
    scale = max(np.abs(reference).max(initial=0.0), 1.0)
    np.testing.assert_allclose(ours, reference, rtol=0,
                               atol=steps * (terms + 2) * EPS[dtype] * scale)


def on_threads(threads: int, call):
    saved = native.get_num_threads()
    native.set_num_threads(threads)
    try:
        return call()
    finally:
        native.set_num_threads(saved)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("length, rows, hidden", [(12, 16, 256), (7, 5, 37), (1, 3, 4)],
                         ids=["blocks", "one block", "one step"])
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_native_gru_sequence_matches_the_python_loop(dtype, length, rows, hidden, reverse,
                                                     threads):
    x_proj, h0, weight, bias = inputs(length, rows, hidden, dtype, bias=not reverse)
    out, saved = on_threads(threads, lambda: KERNELS.gru_sequence(x_proj, h0, weight, bias,
                                                                  reverse))
    expected_out, expected_saved = reference_rnn.gru_sequence(x_proj, h0, weight, bias, reverse)
    assert_close_to_max(out, expected_out, dtype, length, hidden)
    assert_close_to_max(saved[0], expected_saved[0], dtype, length, hidden)  # the gates

    grad = RNG.standard_normal(out.shape).astype(dtype)
    ours = on_threads(threads, lambda: KERNELS.gru_sequence_backward(grad, saved))
    expected = reference_rnn.gru_sequence_backward(grad, expected_saved)
    for mine, reference, terms in zip(ours, expected, (hidden, 3 * hidden, length * rows,
                                                      length * rows), strict=True):
        assert_close_to_max(mine, reference, dtype, length, terms)


def test_the_native_calls_take_the_sequence(monkeypatch):
    calls = []
    for name in ("gru_sequence", "gru_sequence_backward"):
        run = getattr(native._C, name)
        monkeypatch.setattr(native._C, name,
                            lambda *args, name=name, run=run: calls.append(name) or run(*args))
    out, saved = KERNELS.gru_sequence(*inputs(3, 2, 8, np.float32), False)
    KERNELS.gru_sequence_backward(np.ones_like(out), saved)
    assert calls == ["gru_sequence", "gru_sequence_backward"]


def test_other_dtypes_and_empty_sequences_take_the_python_loop(monkeypatch):
    monkeypatch.setattr(native._C, "gru_sequence", None)  # would fail if called
    monkeypatch.setattr(native._C, "gru_sequence_backward", None)
    x_proj, h0, weight, bias = inputs(3, 2, 8, np.float16)
    out, saved = KERNELS.gru_sequence(x_proj, h0, weight, bias, False)
    assert out.dtype == np.float16
    KERNELS.gru_sequence_backward(np.ones_like(out), saved)
    empty, _ = KERNELS.gru_sequence(*inputs(0, 2, 8, np.float32), False)
    assert empty.shape == (0, 2, 8)


@pytest.mark.parametrize("call, message", [
    (lambda: native._C.gru_sequence(np.ones((3, 2, 9), np.float32), np.ones((2, 4), np.float32),
                                    np.ones((12, 4), np.float32)),
     r"gru_sequence: x_proj is not \(L, N, 3H\)"),
    (lambda: native._C.gru_sequence(np.ones((3, 2, 12), np.float32),
                                    np.ones((2, 4), np.float32), np.ones((12, 5), np.float32)),
     r"gru_sequence: weight_hh: expected \(12, 4\), got \(12, 5\)"),
    (lambda: native._C.gru_sequence_backward(
        np.ones((3, 2, 4), np.float32), np.ones((4, 2, 2, 4), np.float32),
        np.ones((2, 4), np.float32), np.ones((3, 2, 4), np.float32),
        np.ones((12, 4), np.float32)),
     r"gru_sequence_backward: gates are not \(4, L, N, H\)"),
])
def test_bad_shapes_are_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()
