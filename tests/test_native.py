"""The native extension tinygrad_like._C against the NumPy references, on the same inputs.

Each native kernel is compared with the NumPy kernel it replaces (backend/cpu.py, the
reference_*.py files, cpu_conv.py's NumPy path), in float32 and float64, on odd sizes and
non-contiguous inputs; "cpu"'s conv2d, NumPy and native, is compared with reference_conv.py,
and attention on the native steps with reference_attention.py.
The ops that use them are gradchecked by tests/test_ops.py, which runs on the native path
whenever the extension is built. The last tests check the switch itself: the environment
variable forces NumPy, backend_info reports it, and the package works without _C at all.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from tinygrad_like.backend import (cpu, cpu_attention, cpu_conv, native, native_kernels,
                                   native_recurrent, reference_attention, reference_conv)

RNG = np.random.default_rng(0)
DTYPES = [np.float32, np.float64]
TOLERANCE = {np.float32: {"rtol": 2e-5, "atol": 2e-6}, np.float64: {"rtol": 1e-12, "atol": 1e-12}}

needs_native = pytest.mark.skipif(
    not native.available(), reason=f"tinygrad_like._C is not in use: {native.reason()}")

REFERENCE = SimpleNamespace(**cpu.numpy_kernels())  # what TINYGRAD_LIKE_NUMPY=1 runs
NATIVE = SimpleNamespace(**cpu.native_kernels(vars(REFERENCE)))
_C_MODULE = native._C


def randn(shape, dtype):
    return RNG.standard_normal(shape).astype(dtype)


def noncontiguous(array):
    """The same values as a transposed view of a copy (C-contiguous it is not)."""
    return np.ascontiguousarray(array.swapaxes(-1, -2)).swapaxes(-1, -2)


def assert_close(ours, reference, dtype):
    assert ours.shape == reference.shape and ours.dtype == reference.dtype
    np.testing.assert_allclose(ours, reference, **TOLERANCE[dtype])


# (input shape, kernel, stride, padding, dilation)
CONV_GEOMETRIES = [
    ((2, 3, 7, 5), (3, 3), (1, 1), (1, 1), (1, 1)),
    ((1, 2, 9, 11), (3, 2), (2, 3), (1, 0), (1, 2)),
    ((3, 1, 5, 5), (1, 1), (1, 1), (0, 0), (1, 1)),
    ((1, 4, 6, 8), (5, 4), (3, 1), (2, 3), (1, 1)),
]


@needs_native
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("geometry", CONV_GEOMETRIES, ids=str)
@pytest.mark.parametrize("layout", ["contiguous", "noncontiguous"])
def test_im2col_and_col2im_match_numpy(dtype, geometry, layout):
    shape, kernel, stride, padding, dilation = geometry
    x = randn(shape, dtype)
    x = noncontiguous(x) if layout == "noncontiguous" else x
    # not entries of the kernel table: the pieces native conv2d is built on
    im2col = cpu_conv.native_im2col(reference_conv.im2col)
    col2im = cpu_conv.native_col2im(reference_conv.col2im)
    cols = im2col(x, kernel, stride, padding, dilation)
    assert cols.flags.c_contiguous
    assert_close(cols, reference_conv.im2col(x, kernel, stride, padding, dilation), dtype)
    grad = randn(cols.shape, dtype)
    grad = noncontiguous(grad) if layout == "noncontiguous" else grad
    assert_close(col2im(grad, shape, kernel, stride, padding, dilation),
                 reference_conv.col2im(grad, shape, kernel, stride, padding, dilation), dtype)


@needs_native
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernel, options", [
    ((3, 2), ((2, 1), (1, 1), (1, 2))),  # strided: backward-data by col2im
    ((3, 3), ((1, 1), (1, 1), (1, 1))),  # "same" at stride 1: by the full convolution
    ((3, 3), ((1, 1), (0, 0), (1, 1))),  # unpadded at stride 1: by col2im again
], ids=["strided", "same", "valid"])
def test_conv2d_on_native_im2col_matches_numpy(dtype, kernel, options):
    x, weight, bias = randn((2, 3, 9, 7), dtype), randn((4, 3, *kernel), dtype), randn(4, dtype)
    out = NATIVE.conv2d(x, weight, bias, *options)
    assert_close(out, REFERENCE.conv2d(x, weight, bias, *options), dtype)
    grad = randn(out.shape, dtype)
    assert_close(NATIVE.conv2d_backward_input(grad, weight, x.shape, *options),
                 REFERENCE.conv2d_backward_input(grad, weight, x.shape, *options), dtype)
    assert_close(NATIVE.conv2d_backward_weight(grad, x, weight.shape, *options),
                 REFERENCE.conv2d_backward_weight(grad, x, weight.shape, *options), dtype)


@pytest.mark.parametrize("kernels", ["numpy", pytest.param("native", marks=needs_native)])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape, kernel, options", [
    ((2, 3, 9, 7), (3, 2), ((2, 1), (1, 1), (1, 2))),  # strided, dilated
    ((2, 3, 9, 7), (3, 3), ((1, 1), (1, 1), (1, 1))),  # "same" at stride 1
    ((2, 3, 9, 7), (3, 3), ((1, 1), (0, 0), (1, 1))),  # unpadded at stride 1
    ((1, 2, 5, 5), (1, 1), ((1, 1), (0, 0), (1, 1))),  # 1x1
], ids=["strided", "same", "valid", "1x1"])
def test_cpu_conv2d_matches_the_reference(kernels, dtype, x_shape, kernel, options):
    """"cpu"'s tuned conv2d (cpu_conv.py, on NumPy or _C) against the plain im2col reference."""
    table = NATIVE if kernels == "native" else REFERENCE
    x, weight, bias = randn(x_shape, dtype), randn((4, x_shape[1], *kernel), dtype), randn(4, dtype)
    out = table.conv2d(x, weight, bias, *options)
    assert_close(out, reference_conv.conv2d(x, weight, bias, *options), dtype)
    grad = randn(out.shape, dtype)
    assert_close(table.conv2d_backward_input(grad, weight, x.shape, *options),
                 reference_conv.conv2d_backward_input(grad, weight, x.shape, *options), dtype)
    assert_close(table.conv2d_backward_weight(grad, x, weight.shape, *options),
                 reference_conv.conv2d_backward_weight(grad, x, weight.shape, *options), dtype)


@pytest.mark.parametrize("kernels", ["numpy", pytest.param("native", marks=needs_native)])
@pytest.mark.parametrize("kernel, options", [
    ((3, 3), ((1, 1), (1, 1), (1, 1))),  # backward-data by the full convolution
    ((3, 3), ((1, 1), (0, 0), (1, 1))),  # by col2im
], ids=["same", "valid"])
def test_conv2d_in_chunks_of_several_images_matches_one_chunk(monkeypatch, kernels, kernel,
                                                              options):
    """Seven images in chunks of 2-3 (each one GEMM) give the one-chunk results, in float64."""
    table = NATIVE if kernels == "native" else REFERENCE
    x, weight, bias = randn((7, 3, 9, 8), np.float64), randn((4, 3, *kernel), np.float64), \
        randn(4, np.float64)
    out = table.conv2d(x, weight, bias, *options)
    grad = randn(out.shape, np.float64)
    whole = (out, table.conv2d_backward_input(grad, weight, x.shape, *options),
             table.conv2d_backward_weight(grad, x, weight.shape, *options))
    per_image = x.itemsize * 3 * 9 * out[0, 0].size  # of the forward's cols
    monkeypatch.setattr(cpu_conv, "CHUNK_BYTES", 3 * per_image - 1)
    assert [s.stop - s.start for s in cpu_conv._image_chunks(x.shape, kernel, out.shape[2:],
                                                             x.itemsize)] == [2, 2, 3]
    chunked = (table.conv2d(x, weight, bias, *options),
               table.conv2d_backward_input(grad, weight, x.shape, *options),
               table.conv2d_backward_weight(grad, x, weight.shape, *options))
    for ours, reference in zip(chunked, whole):
        assert_close(ours, reference, np.float64)


# (input shape, kernel, stride, padding, dilation)
POOL_GEOMETRIES = [
    ((2, 3, 8, 8), (2, 2), (2, 2), (0, 0), (1, 1)),
    ((2, 2, 7, 41), (2, 2), (2, 2), (0, 0), (1, 1)),  # odd sizes: a run of 16 and 4 more
    ((1, 2, 4, 64), (2, 2), (2, 2), (0, 0), (1, 1)),  # rows of whole runs only
    ((1, 2, 7, 9), (3, 2), (2, 3), (1, 1), (1, 1)),
    ((2, 1, 9, 6), (3, 3), (1, 2), (1, 0), (2, 1)),
    ((1, 1, 1, 1), (1, 1), (1, 1), (0, 0), (1, 1)),
]


@needs_native
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("geometry", POOL_GEOMETRIES, ids=str)
@pytest.mark.parametrize("values", ["random", "ties", "nan"])
def test_max_pool2d_matches_numpy(dtype, geometry, values):
    shape, kernel, stride, padding, dilation = geometry
    if values == "random":
        x = noncontiguous(randn(shape, dtype))
    else:  # few distinct values: ties everywhere, where the first tap must win
        x = RNG.integers(-2, 2, shape).astype(dtype)
        if values == "nan":
            x.flat[::3] = np.nan
    out, indices = NATIVE.max_pool2d(x, kernel, stride, padding, dilation)
    expected_out, expected_indices = REFERENCE.max_pool2d(x, kernel, stride, padding, dilation)
    assert_close(out, expected_out, dtype)
    np.testing.assert_array_equal(indices, expected_indices)
    grad = noncontiguous(randn(out.shape, dtype))
    assert_close(NATIVE.max_pool2d_backward(grad, indices, shape),
                 REFERENCE.max_pool2d_backward(grad, expected_indices, shape), dtype)


@needs_native
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("geometry", POOL_GEOMETRIES, ids=str)
@pytest.mark.parametrize("count_include_pad", [True, False])
def test_avg_pool2d_matches_numpy(dtype, geometry, count_include_pad):
    shape, kernel, stride, padding, _ = geometry
    x = noncontiguous(randn(shape, dtype))
    options = (kernel, stride, padding, count_include_pad)
    out = NATIVE.avg_pool2d(x, *options)
    assert_close(out, REFERENCE.avg_pool2d(x, *options), dtype)
    grad = noncontiguous(randn(out.shape, dtype))
    assert_close(NATIVE.avg_pool2d_backward(grad, shape, *options),
                 REFERENCE.avg_pool2d_backward(grad, shape, *options), dtype)


@needs_native
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rows,dim,num_weights,padding_idx",
                         [(37, 5, 7, -1), (300, 130, 11, 3), (1, 1, 1, -1), (0, 4, 3, -1)])
def test_embedding_backward_matches_numpy(dtype, rows, dim, num_weights, padding_idx):
    grad = noncontiguous(randn((rows, dim), dtype))
    indices = RNG.integers(0, num_weights, rows)  # repeats: the adds must accumulate
    assert_close(NATIVE.embedding_backward(grad, indices, num_weights, padding_idx),
                 REFERENCE.embedding_backward(grad, indices, num_weights, padding_idx), dtype)


@needs_native
def test_embedding_backward_rejects_an_index_out_of_range():
    with pytest.raises(IndexError, match="out of range"):
        NATIVE.embedding_backward(np.ones((2, 3), np.float32), np.array([0, 5]), 4, -1)


@needs_native
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(5, 7), (1, 1), (33, 130), (0, 4)])
@pytest.mark.parametrize("affine", ["weight+bias", "weight", "none"])
def test_layer_norm_matches_numpy(dtype, shape, affine):
    x = noncontiguous(randn(shape, dtype) * 3 + 1)
    weight = randn(shape[1], dtype) if affine != "none" else None
    bias = randn(shape[1], dtype) if affine == "weight+bias" else None
    outputs = NATIVE.layer_norm(x, weight, bias, 1e-5)
    expected = REFERENCE.layer_norm(x, weight, bias, 1e-5)
    for ours, reference in zip(outputs, expected):
        assert_close(ours, reference, dtype)
    grad = noncontiguous(randn(shape, dtype))
    _, mean, rstd = expected
    grads = NATIVE.layer_norm_backward(grad, x, mean, rstd, weight)
    expected_grads = REFERENCE.layer_norm_backward(grad, x, mean, rstd, weight)
    for ours, reference in zip(grads, expected_grads):
        if reference is None:
            assert ours is None
        else:
            assert_close(ours, reference, dtype)


@needs_native
def test_layer_norm_in_half_precision_uses_the_reference():
    x = randn((4, 6), np.float16)
    for ours, reference in zip(NATIVE.layer_norm(x, None, None, 1e-5),
                               REFERENCE.layer_norm(x, None, None, 1e-5)):
        np.testing.assert_array_equal(ours, reference)


@needs_native
def test_vector_exp_is_accurate_to_about_an_ulp():
    """The float32 exp of the softmax kernels against the exact exp (float64), over every
    input whose exp is a normal float32, then subnormals, overflow and the special values."""
    normal = np.concatenate([np.linspace(-87.33, 88.72, 3_000_001, dtype=np.float32),
                             RNG.uniform(-1, 1, 100_000).astype(np.float32)])
    exact = np.exp(normal.astype(np.float64))
    relative = np.abs(native._C.vector_exp(normal) - exact) / exact
    assert relative.max() < 4e-7, f"max relative error {relative.max():.3g}"
    subnormal = np.linspace(-103.9, -87.34, 100_001, dtype=np.float32)
    ulp = np.float64(2.0**-149)
    error = np.abs(native._C.vector_exp(subnormal) - np.exp(subnormal.astype(np.float64)))
    assert error.max() <= ulp, f"max error {error.max() / ulp:.3g} subnormal ulps"
    special = np.array([-np.inf, -1e30, -104, 0, 88.73, 89, 1e30, np.inf, np.nan], np.float32)
    np.testing.assert_array_equal(native._C.vector_exp(special),
                                  [0, 0, 0, 1, np.inf, np.inf, np.inf, np.inf, np.nan])


@needs_native
def test_vector_tanh_is_accurate_to_about_an_ulp():
    """The float32 tanh of the recurrent kernels against the exact tanh (float64), in ulps of
    the float32 result, then the special values (signed zeros kept)."""
    x = np.concatenate([np.linspace(-12, 12, 2_000_001, dtype=np.float32),
                        RNG.uniform(-1e-3, 1e-3, 100_000).astype(np.float32)])
    exact = np.tanh(x.astype(np.float64))
    ulps = np.abs(native._C.vector_tanh(x) - exact) / np.spacing(np.abs(exact).astype(np.float32))
    assert ulps[exact != 0].max() <= 2, f"max error {ulps[exact != 0].max():.3g} ulps"
    special = np.array([0.0, -0.0, 1e-30, -1e-30, 44.0, 50.0, -1e30, np.inf, -np.inf, np.nan],
                       np.float32)
    got = native._C.vector_tanh(special)
    np.testing.assert_array_equal(got, np.tanh(special))
    np.testing.assert_array_equal(np.signbit(got), np.signbit(np.tanh(special)))


def _gate_inputs(name, shape, dtype, values):
    rows, hidden = shape
    width = (3 if name == "gru" else 4) * hidden
    scale = 30.0 if values == "saturating" else 1.0  # sigmoid and tanh at 0 and +-1
    x_proj, h_proj = (randn((rows, width), dtype) * scale for _ in range(2))
    return x_proj, h_proj, randn((rows, hidden), dtype)


@needs_native
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (32, 256), (7, 1000)], ids=str)
@pytest.mark.parametrize("values", ["random", "saturating"])
@pytest.mark.parametrize("name", ["gru", "lstm"])
def test_recurrent_gates_forward_and_backward_match_numpy(dtype, shape, values, name):
    x_proj, h_proj, state = _gate_inputs(name, shape, dtype, values)
    gates, backward = f"{name}_gates", f"{name}_gates_backward"
    out, saved = getattr(NATIVE, gates)(x_proj, h_proj, state)
    expected_out, expected_saved = getattr(REFERENCE, gates)(x_proj, h_proj, state)
    assert_close(out, expected_out, dtype)
    for ours, reference in zip(saved, expected_saved, strict=True):
        assert_close(ours, reference, dtype)
    grad = randn(out.shape, dtype)
    for ours, reference in zip(getattr(NATIVE, backward)(grad, saved),
                               getattr(REFERENCE, backward)(grad, expected_saved), strict=True):
        # saturated gates make sigma (1 - sigma) a rounding-sized number, which the kernel's
        # 1 / (1 + exp(-x)) and the reference's (tanh(x / 2) + 1) / 2 round differently:
        # absolute differences of a few float32 ulps of 1 (the gradients here are O(1))
        atol = {np.float32: 1e-5, np.float64: 1e-12}[dtype] if values == "saturating" else 0
        np.testing.assert_allclose(ours, reference, rtol=TOLERANCE[dtype]["rtol"],
                                   atol=max(atol, TOLERANCE[dtype]["atol"]))
        assert ours.dtype == reference.dtype


@needs_native
@pytest.mark.parametrize("name", ["gru", "lstm"])
@pytest.mark.parametrize("case", ["noncontiguous", "float16", "mixed dtypes", "3-d"])
def test_recurrent_gates_other_layouts_and_dtypes(monkeypatch, name, case):
    x_proj, h_proj, state = _gate_inputs(name, (4, 6), np.float32, "random")
    if case == "noncontiguous":  # a time step of an (N, L, 3H) projection, as a view
        x_proj = np.stack([x_proj, x_proj], axis=1)[:, 0]
    elif case == "float16":
        x_proj, h_proj, state = (a.astype(np.float16) for a in (x_proj, h_proj, state))
    elif case == "mixed dtypes":
        state = state.astype(np.float64)
    else:
        x_proj, h_proj, state = (a[None] for a in (x_proj, h_proj, state))
    gates, backward = f"{name}_gates", f"{name}_gates_backward"
    expected_out, expected_saved = getattr(REFERENCE, gates)(x_proj, h_proj, state)
    grad = np.ones_like(expected_out)
    expected_grads = getattr(REFERENCE, backward)(grad, expected_saved)
    if case != "noncontiguous":  # everything else is the reference's
        monkeypatch.setattr(native_recurrent, "_C", None)
    out, saved = getattr(NATIVE, gates)(x_proj, h_proj, state)
    np.testing.assert_allclose(out, expected_out, rtol=1e-5, atol=1e-6)
    for ours, reference in zip(getattr(NATIVE, backward)(grad, saved), expected_grads,
                               strict=True):
        assert ours.dtype == reference.dtype
        np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-6)


@needs_native
def test_recurrent_gates_name_the_mismatched_shape():
    h = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match=r"gru_gates: h_proj: expected \(2, 9\), got \(2, 6\)"):
        _C_MODULE.gru_gates(np.zeros((2, 9), np.float32), np.zeros((2, 6), np.float32), h)
    with pytest.raises(ValueError, match=r"lstm_gates: x_proj: expected \(2, 12\), got \(3, 12\)"):
        _C_MODULE.lstm_gates(np.zeros((3, 12), np.float32), np.zeros((2, 12), np.float32), h)


@needs_native
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reverse", [False, True])
def test_gru_sequence_on_native_gates_matches_numpy(dtype, reverse):
    length, rows, hidden = 9, 4, 16
    x_proj = randn((length, rows, 3 * hidden), dtype)
    h0, weight, bias = randn((rows, hidden), dtype), randn((3 * hidden, hidden), dtype) * 0.3, \
        randn((3 * hidden,), dtype)
    out, saved = NATIVE.gru_sequence(x_proj, h0, weight, bias, reverse)
    expected_out, expected_saved = REFERENCE.gru_sequence(x_proj, h0, weight, bias, reverse)
    assert_close(out, expected_out, dtype)
    grad = randn(out.shape, dtype)
    for ours, reference in zip(NATIVE.gru_sequence_backward(grad, saved),
                               REFERENCE.gru_sequence_backward(grad, expected_saved), strict=True):
        np.testing.assert_allclose(ours, reference, rtol=TOLERANCE[dtype]["rtol"] * 10,
                                   atol=TOLERANCE[dtype]["atol"] * 10)  # 9 steps compound


def _softmax_inputs(shape, dtype, values):
    x = randn(shape, dtype) * 4
    if values == "masked":  # -inf entries, a fully masked row (NaN, as in NumPy) and a +inf
        x[..., ::3] = -np.inf
        x[(0,) * (x.ndim - 1)] = -np.inf
        x[(-1,) * x.ndim] = np.inf
    elif values == "large":  # exp(x) alone would overflow
        x *= 1e3
    return x


@needs_native
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(5, 1), (3, 7), (2, 3, 1000), (3, 4097)], ids=str)
@pytest.mark.parametrize("values", ["random", "masked", "large"])
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_forward_and_backward_match_numpy(dtype, shape, values, name):
    x = _softmax_inputs(shape, dtype, values)
    axis = x.ndim - 1
    backward = name + "_backward"
    grad = randn(shape, dtype)
    with np.errstate(invalid="ignore"):  # NumPy's -inf - -inf in the fully masked row
        expected = getattr(REFERENCE, name)(x, axis)
        expected_grad = getattr(REFERENCE, backward)(grad, expected, axis)
    out = getattr(NATIVE, name)(x, axis)
    assert_close(out, expected, dtype)
    if values == "masked" and name == "softmax":
        assert (out[np.isneginf(x) & np.isfinite(expected)] == 0).all()
    assert_close(getattr(NATIVE, backward)(grad, expected, axis), expected_grad, dtype)


@needs_native
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(3, 7), (5, 4097), (64, 1024)], ids=str)
def test_softmax_backward_streamed_gives_the_plain_loops_bits(stores, dtype, shape):
    grad, probabilities = randn(shape, dtype), _C_MODULE.softmax(randn(shape, dtype))
    got = _C_MODULE.softmax_backward(grad, probabilities)
    native.set_streaming_min_bytes(1 << 62)
    np.testing.assert_array_equal(got, _C_MODULE.softmax_backward(grad, probabilities))


@needs_native
def test_streaming_threshold_defaults_to_8_mib_and_resets_with_0():
    assert native.build_info()["streaming_stores"] == (platform.machine() in ("x86_64", "AMD64"))
    try:
        native.set_streaming_min_bytes(1)
        assert native.streaming_min_bytes() == 1
    finally:
        native.set_streaming_min_bytes(0)
    assert native.streaming_min_bytes() == 8 << 20


@needs_native
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("case", ["noncontiguous", "first axis", "float16", "0-d"])
def test_softmax_outside_the_contiguous_last_axis_uses_the_reference(monkeypatch, name, case):
    dtype = np.float16 if case == "float16" else np.float32
    x = randn(() if case == "0-d" else (6, 5), dtype)
    axis = {"first axis": 0, "0-d": None}.get(case, 1)
    x, grad = (noncontiguous(a) if case == "noncontiguous" else a
               for a in (x, randn(x.shape, dtype)))
    expected = getattr(REFERENCE, name)(x, axis)
    expected_grad = getattr(REFERENCE, name + "_backward")(grad, expected, axis)
    monkeypatch.setattr(native_kernels, "_C", None)  # any call into the extension would fail
    np.testing.assert_array_equal(getattr(NATIVE, name)(x, axis), expected)
    np.testing.assert_array_equal(getattr(NATIVE, name + "_backward")(grad, expected, axis),
                                  expected_grad)
    mixed = grad.astype(np.float64)  # a float64 grad of a float32 output
    np.testing.assert_array_equal(getattr(NATIVE, name + "_backward")(mixed, expected, axis),
                                  getattr(REFERENCE, name + "_backward")(mixed, expected, axis))


def _cross_entropy_inputs(shape, dtype, values, smoothing):
    rows, classes = shape
    logits = randn(shape, dtype) * 3
    target = RNG.integers(0, classes, rows)
    target[::4] = -100  # ignored rows
    if values == "masked":  # masked classes, but never a row's target
        logits[:, 1::2] = -np.inf
        target[target % 2 == 1] = 0
    elif values == "large":
        logits *= 1e3
    grad = randn((rows,), dtype)
    return logits, target, grad, smoothing


@needs_native
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(5, 1), (6, 37), (3, 4097), (2048, 100)], ids=str)
@pytest.mark.parametrize("values", ["random", "masked", "large"])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy_forward_and_backward_match_numpy(dtype, shape, values, smoothing):
    logits, target, grad, smoothing = _cross_entropy_inputs(shape, dtype, values, smoothing)
    if values == "masked" and shape[1] == 1:
        pytest.skip("one class: nothing to mask")
    losses, lse = NATIVE.cross_entropy(logits, target, -100, smoothing)
    expected_losses, expected_lse = REFERENCE.cross_entropy(logits, target, -100, smoothing)
    # the loss is a difference of logit-sized terms: the reference's rounding (it sums in the
    # logits' dtype, the kernel in double) grows with the logits' size
    magnitude = np.abs(logits[np.isfinite(logits)]).max()
    np.testing.assert_allclose(losses, expected_losses, rtol=TOLERANCE[dtype]["rtol"],
                               atol=8 * np.finfo(dtype).eps * magnitude)
    assert losses.dtype == expected_losses.dtype
    assert_close(lse, expected_lse, dtype)
    assert (losses[::4] == 0).all()
    if values == "masked" and smoothing == 0.0:
        assert np.isfinite(losses).all()
    dx = NATIVE.cross_entropy_backward(grad, logits, target, lse, -100, smoothing)
    expected_dx = REFERENCE.cross_entropy_backward(grad, logits, target, expected_lse, -100,
                                                   smoothing)
    assert_close(dx, expected_dx, dtype)
    assert not dx[::4].any()


@needs_native
def test_cross_entropy_rejects_a_target_out_of_range():
    logits = randn((3, 4), np.float32)
    for bad in (4, -1):
        target = np.array([0, bad, 2])
        with pytest.raises(IndexError, match=f"cross_entropy: target {bad} is out of range"):
            NATIVE.cross_entropy(logits, target, -100, 0.0)
        with pytest.raises(IndexError, match="cross_entropy_backward: target"):
            NATIVE.cross_entropy_backward(np.ones(3, np.float32), logits, target,
                                          np.zeros(3, np.float32), -100, 0.0)


@needs_native
@pytest.mark.parametrize("case", ["noncontiguous", "float16", "int32 target", "broadcast grad",
                                  "float64 grad"])
def test_cross_entropy_other_layouts_and_dtypes(monkeypatch, case):
    logits, target, grad, _ = _cross_entropy_inputs((6, 5), np.float32, "random", 0.1)
    if case == "noncontiguous":
        logits = noncontiguous(logits)
    elif case == "float16":
        logits, grad = logits.astype(np.float16), grad.astype(np.float16)
    elif case == "int32 target":
        target = target.astype(np.int32)
    elif case == "broadcast grad":
        grad = np.broadcast_to(np.float32(0.5), (6,))
    else:
        grad = grad.astype(np.float64)
    expected_losses, expected_lse = REFERENCE.cross_entropy(logits, target, -100, 0.1)
    expected_dx = REFERENCE.cross_entropy_backward(grad, logits, target, expected_lse, -100, 0.1)
    if case in ("float16", "float64 grad"):
        # the reference's: the extension is not called
        monkeypatch.setattr(native_kernels, "_C", None)
    tolerance = {"rtol": 1e-2, "atol": 1e-3} if case == "float16" else TOLERANCE[np.float32]
    if case != "float64 grad":
        losses, lse = NATIVE.cross_entropy(logits, target, -100, 0.1)
        np.testing.assert_allclose(losses, expected_losses, **tolerance)
        assert losses.dtype == expected_losses.dtype and lse.dtype == expected_lse.dtype
    dx = NATIVE.cross_entropy_backward(grad, logits, target, expected_lse, -100, 0.1)
    assert dx.dtype == expected_dx.dtype
    np.testing.assert_allclose(dx, expected_dx, **tolerance)


BINARY_UFUNCS = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.true_divide}
LARGE = (700, 400)  # above the pool's grain, so these go to the extension


@pytest.fixture(params=["plain stores", "streaming stores", "streaming, unaligned outputs"])
def stores(request):
    """How large outputs are written: with ordinary stores, or every one with streaming
    stores, and then also with the buffer cache off, so that outputs come from malloc, aligned
    to 16 bytes rather than to a vector, and the streaming loops' scalar ends run too."""
    limit = native.cache_limit()
    native.set_streaming_min_bytes(1 << 62 if request.param == "plain stores" else 1)
    if request.param == "streaming, unaligned outputs":
        native.set_cache_limit(0)
    yield request.param
    native.set_streaming_min_bytes(0)
    native.set_cache_limit(limit)


def _binary_operands(case, dtype):
    a, b = randn(LARGE, dtype), randn(LARGE, dtype)
    b[0, :4] = [0.0, np.inf, np.nan, -0.0]  # IEEE edge cases: x / 0, inf, nan, signed zero
    return {"arrays": (a, b), "array, float": (a, 2.5), "int, array": (3, b),
            "array, broadcast value": (a, np.broadcast_to(dtype(-1.5), LARGE)),
            "broadcast value, array": (np.broadcast_to(dtype(0.25), LARGE), b)}[case]


def _online_softmax_state(shape, dtype, values):
    """Scores (Z, bq, bk) and a running (max, sum) as tiled attention hands them to the step."""
    scores = randn(shape, dtype) * 4
    row_max = randn(shape[:2], dtype) * 4
    row_sum = RNG.random(shape[:2]).astype(dtype) * 10
    if values == "masked":  # hidden keys, a row hidden in this block, a row with none so far
        scores[RNG.random(shape) < 0.3] = -np.inf
        scores[0, 0] = -np.inf
        row_max[-1, -1], row_sum[-1, -1] = -np.inf, 0
        scores[-1, -1, 1:] = -np.inf
    return scores, row_max, row_sum


@needs_native
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 5, 7), (2, 64, 64), (4, 3, 130)], ids=str)
@pytest.mark.parametrize("values", ["random", "masked"])
def test_online_softmax_step_matches_numpy(dtype, shape, values):
    ours = _online_softmax_state(shape, dtype, values)
    reference = tuple(a.copy() for a in ours)
    rescale = native_kernels._online_softmax_step(*ours)
    expected = cpu_attention.online_softmax_step(*reference)
    assert_close(rescale, expected, dtype)
    for updated, expected_update in zip(ours, reference, strict=True):  # all three in place
        assert_close(updated, expected_update, dtype)


def test_online_softmax_step_on_a_view_updates_it_in_place():
    scores, row_max, row_sum = _online_softmax_state((3, 5, 8), np.float32, "random")
    view = noncontiguous(scores)
    expected = tuple(a.copy() for a in (view, row_max, row_sum))
    rescale = native_kernels._online_softmax_step(view, row_max, row_sum)
    expected_rescale = cpu_attention.online_softmax_step(*expected)
    for ours, reference in zip((rescale, view, row_max, row_sum), (expected_rescale, *expected)):
        assert_close(ours, reference, np.float32)


@needs_native
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 5, 7), (2, 64, 64), (4, 3, 130)], ids=str)
@pytest.mark.parametrize("values", ["random", "masked"])
def test_attention_backward_step_matches_numpy(dtype, shape, values):
    scores, dscores = randn(shape, dtype) * 3, randn(shape, dtype)
    lse = (scores.max(axis=2) + 1).astype(dtype)
    delta = randn(shape[:2], dtype)
    if values == "masked":  # hidden keys, and a row with no visible key (lse = +inf)
        scores[RNG.random(shape) < 0.3] = -np.inf
        scores[-1, -1], lse[-1, -1] = -np.inf, np.inf
    ours, reference = (scores, dscores), (scores.copy(), dscores.copy())
    native_kernels._attention_backward_step(ours[0], lse, ours[1], delta)
    cpu_attention.probabilities_and_score_grads(reference[0], lse, reference[1], delta)
    for updated, expected in zip(ours, reference, strict=True):
        assert_close(updated, expected, dtype)
    if values == "masked":
        assert (ours[0][-1, -1] == 0).all() and (ours[1][-1, -1] == 0).all()


@needs_native
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mask", ["causal", "additive", "none"])
def test_attention_on_the_native_steps_matches_the_reference(monkeypatch, dtype, mask):
    monkeypatch.setattr(cpu_attention, "QUERY_BLOCK", 16)
    monkeypatch.setattr(cpu_attention, "MIN_GROUP_HEADS", 1)  # blocks exactly as set
    monkeypatch.setattr(cpu_attention, "KEY_BLOCK", 8)
    q, k, v = randn((6, 37, 8), dtype), randn((6, 45, 8), dtype), randn((6, 45, 5), dtype)
    additive = None
    if mask == "additive":  # a fully hidden query row included
        additive = np.where(RNG.random((6, 37, 45)) < 0.3, -np.inf, 0.5).astype(dtype)
        additive[:, 3] = -np.inf
    options = (additive, mask == "causal", 8 ** -0.5)
    out, lse = reference_attention.attention(q, k, v, *options)
    for ours, expected in zip(NATIVE.attention(q, k, v, *options), (out, lse), strict=True):
        assert_close(ours, expected, dtype)
    grad = noncontiguous(randn(out.shape, dtype))
    for ours, expected in zip(
            NATIVE.attention_backward(grad, q, k, v, out, lse, *options),
            reference_attention.attention_backward(grad, q, k, v, out, lse, *options),
            strict=True):
        assert_close(ours, expected, dtype)


@needs_native
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", ["arrays", "array, float", "int, array",
                                  "array, broadcast value", "broadcast value, array"])
@pytest.mark.parametrize("name", BINARY_UFUNCS)
def test_binary_ops_on_the_pool_give_numpys_bits(monkeypatch, stores, dtype, case, name):
    a, b = _binary_operands(case, dtype)
    calls = []
    monkeypatch.setattr(native_kernels, "_C", SimpleNamespace(
        parallel_grain=native._C.parallel_grain,
        **{name: lambda *args: calls.append(args) or getattr(_C_MODULE, name)(*args)}))
    with np.errstate(all="ignore"):
        got, expected = getattr(NATIVE, name)(a, b), BINARY_UFUNCS[name](a, b)
    assert calls, "the extension was not used"
    assert got.dtype == expected.dtype and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)


@needs_native
@pytest.mark.parametrize("case", ["small", "broadcasting", "noncontiguous", "float16", "int64",
                                  "mixed dtypes", "numpy scalar", "two broadcast values"])
def test_binary_ops_leave_everything_else_to_numpy(monkeypatch, case):
    a, b = randn(LARGE, np.float32), randn(LARGE, np.float32)
    a, b = {"small": (a[:3], b[:3]), "broadcasting": (a, b[:1]),
            "noncontiguous": (a, noncontiguous(b)),
            "float16": (a.astype(np.float16), b.astype(np.float16)),
            "int64": (a.astype(np.int64), b.astype(np.int64)),
            "mixed dtypes": (a, b.astype(np.float64)), "numpy scalar": (a, np.float64(2.0)),
            "two broadcast values": (np.broadcast_to(np.float32(1), LARGE),
                                     np.broadcast_to(np.float32(2), LARGE))}[case]
    monkeypatch.setattr(native_kernels, "_C", SimpleNamespace(parallel_grain=1 << 18))  # no kernels
    for name, ufunc in BINARY_UFUNCS.items():
        with np.errstate(all="ignore"):  # float16 and int64 division overflow or divide by 0
            np.testing.assert_array_equal(getattr(NATIVE, name)(a, b), ufunc(a, b))


@needs_native
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [LARGE, (3, 7)], ids=["pool", "small"])
def test_relu_and_its_backward_natively_give_numpys_bits(monkeypatch, stores, dtype, shape):
    x, grad = randn(shape, dtype), randn(shape, dtype)
    x[0, :5] = [np.nan, -0.0, 0.0, np.inf, -np.inf]
    grad[1, :3] = [np.nan, np.inf, -np.inf]
    x[1, :3] = [-1.0, 0.0, 2.0]  # a NaN and an inf grad behind inactive units stay out
    calls = []
    monkeypatch.setattr(native_kernels, "_C", SimpleNamespace(
        parallel_grain=native._C.parallel_grain,
        **{name: lambda *args, name=name: calls.append(name) or getattr(_C_MODULE, name)(*args)
           for name in ("relu", "relu_backward")}))
    out, expected = NATIVE.relu(x), cpu.relu(x)
    assert out.dtype == expected.dtype and np.array_equal(np.signbit(out), np.signbit(expected))
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(NATIVE.relu_backward(grad, x), cpu.relu_backward(grad, x))
    assert calls == ["relu", "relu_backward"]
    assert (cpu.relu_backward(grad, x)[1, :3] == [0, 0, -np.inf]).all()


@needs_native
@pytest.mark.parametrize("case", ["noncontiguous", "float16", "int64", "mixed dtypes",
                                  "broadcast grad"])
def test_relu_leaves_everything_else_to_numpy(monkeypatch, case):
    x, grad = randn(LARGE, np.float32), randn(LARGE, np.float32)
    x, grad = {"noncontiguous": (noncontiguous(x), grad),
               "float16": (x.astype(np.float16), grad.astype(np.float16)),
               "int64": (x.astype(np.int64), grad.astype(np.int64)),
               "mixed dtypes": (x, grad.astype(np.float64)),
               "broadcast grad": (x, np.broadcast_to(np.float32(1), LARGE))}[case]
    monkeypatch.setattr(native_kernels, "_C", SimpleNamespace(parallel_grain=1 << 18))  # no kernels
    if case not in ("mixed dtypes", "broadcast grad"):  # there x alone is the pool's to take
        np.testing.assert_array_equal(NATIVE.relu(x), cpu.relu(x))
    np.testing.assert_array_equal(NATIVE.relu_backward(grad, x), cpu.relu_backward(grad, x))


@needs_native
@pytest.mark.parametrize("shape", [LARGE, (3, 100_003), (280_001,)], ids=str)
@pytest.mark.parametrize("keepdims", [False, True])
def test_whole_float32_sum_on_the_pool_matches_a_float64_sum(monkeypatch, shape, keepdims):
    x = randn(shape, np.float32) + np.float32(0.25)  # a mean away from 0: cancellation is mild
    calls = []
    monkeypatch.setattr(native_kernels, "_C", SimpleNamespace(
        parallel_grain=native._C.parallel_grain,
        sum_all=lambda x: calls.append(x.shape) or _C_MODULE.sum_all(x)))
    axes = tuple(range(x.ndim))
    got = NATIVE.sum(x, axes, keepdims)
    expected = x.astype(np.float64).sum(axis=axes, keepdims=keepdims)
    assert calls == [shape], "the extension was not used"
    assert got.dtype == np.float32 and got.shape == expected.shape
    assert got == np.float32(expected)  # summed in double (as exact here), rounded once


@needs_native
@pytest.mark.parametrize("shape, axes", [
    ((64, 32, 26, 26), (0, 2, 3)),  # a conv bias gradient
    ((2048, 128), (0,)),  # a linear bias gradient
    ((300, 1001), (0,)),  # columns, ragged against the 16-row blocks
    ((300, 1001), (1,)),  # rows
    ((3, 5, 7, 11, 50), (0, 4)),  # kept axes in the middle
    ((2, 3, 4, 2048), (2, 3)),
], ids=str)
@pytest.mark.parametrize("keepdims", [False, True])
def test_float32_sum_around_kept_axes_matches_a_float64_sum(monkeypatch, shape, axes, keepdims):
    x = randn(shape, np.float32) + np.float32(0.25)
    calls = []
    monkeypatch.setattr(native_kernels, "_C", SimpleNamespace(
        sum_outer_inner=lambda x: calls.append(x.shape) or _C_MODULE.sum_outer_inner(x)))
    got = NATIVE.sum(x, axes, keepdims)
    expected = x.astype(np.float64).sum(axis=axes, keepdims=keepdims)
    assert calls, "the extension was not used"
    assert got.dtype == np.float32 and got.shape == expected.shape
    if axes == tuple(range(len(axes))):  # column sums: 16-row blocks in float, then double
        np.testing.assert_allclose(got, expected, rtol=2e-6)
    else:
        np.testing.assert_array_equal(got, expected.astype(np.float32))  # summed in double


@needs_native
@pytest.mark.parametrize("shape, axes", [((512, 4800), (0, 1)), ((512, 16, 300), (0, 2))])
def test_float32_sums_do_not_depend_on_the_thread_count(shape, axes):
    x = randn(shape, np.float32)  # above the sums' parallel grain: two threads share it
    threads = native.get_num_threads()
    try:
        native.set_num_threads(1)
        one = NATIVE.sum(x, axes, False)
        native.set_num_threads(2)
        two = NATIVE.sum(x, axes, False)
    finally:
        native.set_num_threads(threads)
    np.testing.assert_array_equal(one, two)


@needs_native
@pytest.mark.parametrize("case", ["small", "kept axes apart", "few rows of columns",
                                  "noncontiguous", "float64", "float16", "int64",
                                  "int64 accumulator"])
def test_sum_leaves_everything_else_to_numpy(monkeypatch, case):
    x = randn(LARGE, np.float32)
    axes, dtype = (0, 1), None
    if case == "small":
        x = x[:3]
    elif case == "kept axes apart":
        x, axes = x.reshape(70, 10, 400), (1,)
    elif case == "few rows of columns":  # below native_kernels.COLUMN_SUM_MIN_ROWS
        x, axes = x.reshape(70, 4000), (0,)
    elif case == "noncontiguous":
        x = noncontiguous(x)
    elif case in ("float64", "float16", "int64"):
        x = x.astype(case)
    else:
        x, dtype = (x > 0), np.int64
    monkeypatch.setattr(native_kernels, "_C", SimpleNamespace(parallel_grain=1 << 18))  # no kernels
    for keepdims in (False, True):
        got, expected = NATIVE.sum(x, axes, keepdims, dtype), cpu.reduce_sum(x, axes, keepdims,
                                                                              dtype)
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)


def _optimizer_arrays(dtypes, states: int):
    """Parameters of odd sizes and the given dtypes, their gradients (one non-contiguous,
    which the kernel hands back to the reference) and `states` state arrays each."""
    shapes = [(3, 5), (7,), (1,), (40, 33)][:len(dtypes)]
    params = [randn(shape, dtype) for shape, dtype in zip(shapes, dtypes)]
    grads = [randn(p.shape, p.dtype) for p in params]
    grads[0] = noncontiguous(grads[0])
    state = [[np.abs(randn(p.shape, p.dtype)) for p in params] for _ in range(states)]
    return params, grads, state


def _copies(arrays):
    return [[a.copy() for a in group] for group in arrays]


SGD_OPTIONS = [  # momentum, dampening, nesterov, weight_decay, maximize, first_step
    (0.0, 0.0, False, 0.0, False, False), (0.9, 0.0, False, 0.0, False, True),
    (0.9, 0.5, False, 0.1, False, False), (0.8, 0.0, True, 0.0, True, False),
]
ADAM_OPTIONS = [  # weight_decay, decoupled, amsgrad, maximize
    (0.0, False, False, False), (0.1, False, True, False), (0.01, True, False, True),
    (0.01, True, True, False),
]
MIXED = [np.float32, np.float64, np.float16, np.float32]


@needs_native
@pytest.mark.parametrize("dtypes", [[np.float32] * 4, [np.float64] * 4, MIXED], ids=str)
@pytest.mark.parametrize("options", SGD_OPTIONS, ids=str)
def test_sgd_step_matches_numpy(dtypes, options):
    params, grads, (buffers,) = _optimizer_arrays(dtypes, 1)
    expected_params, expected_buffers = _copies([params, buffers])
    NATIVE.sgd_step(params, grads, buffers, 0.05, *options)
    REFERENCE.sgd_step(expected_params, grads, expected_buffers, 0.05, *options)
    for ours, reference in zip(params + buffers, expected_params + expected_buffers):
        assert_close(ours, reference, np.float32 if ours.dtype != np.float64 else np.float64)


@needs_native
@pytest.mark.parametrize("dtypes", [[np.float32] * 4, [np.float64] * 4, MIXED], ids=str)
@pytest.mark.parametrize("options", ADAM_OPTIONS, ids=str)
def test_adam_step_matches_numpy(dtypes, options):
    weight_decay, decoupled, amsgrad, maximize = options
    params, grads, (exp_avgs, exp_avg_sqs, max_sqs) = _optimizer_arrays(dtypes, 3)
    expected = _copies([params, exp_avgs, exp_avg_sqs, max_sqs])
    arguments = (7, 1e-2, 0.9, 0.99, 1e-8, weight_decay, decoupled, amsgrad, maximize)
    NATIVE.adam_step(params, grads, exp_avgs, exp_avg_sqs, max_sqs if amsgrad else None,
                     *arguments)
    REFERENCE.adam_step(expected[0], grads, expected[1], expected[2],
                        expected[3] if amsgrad else None, *arguments)
    expected_arrays = [array for group in expected for array in group]
    for ours, reference in zip(params + exp_avgs + exp_avg_sqs + max_sqs, expected_arrays):
        assert_close(ours, reference, np.float32 if ours.dtype != np.float64 else np.float64)


# ---- the switch between the native and the NumPy path ----------------------------------
def _run(code: str, **environment) -> str:
    """`code` in a fresh interpreter, with `environment` added (a None value removes a name)."""
    env = {name: value for name, value in dict(os.environ, **environment).items()
           if value is not None}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


# ---- the cache of freed output blocks --------------------------------------------------------
CACHED_SHAPE = (512, 1024)  # float32: 2 MiB, above the cache's 1 MiB floor


@pytest.fixture
def fresh_cache():
    """An empty cache with the default limit, restored afterwards."""
    limit = native.cache_limit()
    native.empty_cache()
    yield
    native.set_cache_limit(limit)
    native.empty_cache()


@needs_native
def test_a_freed_output_block_is_reused(fresh_cache):
    x = randn(CACHED_SHAPE, np.float32)
    first = _C_MODULE.softmax(x)
    address = first.ctypes.data
    assert native.cached_bytes() == 0
    del first
    assert native.cached_bytes() >= x.nbytes
    second = _C_MODULE.softmax(x)
    assert second.ctypes.data == address and native.cached_bytes() == 0
    assert second.flags.c_contiguous and second.flags.writeable and second.flags.aligned
    assert_close(second, cpu.softmax(x, -1), np.float32)


@needs_native
def test_a_view_keeps_its_block_out_of_the_cache(fresh_cache):
    x = randn(CACHED_SHAPE, np.float32)
    view = _C_MODULE.softmax(x)[1:]
    expected = view.copy()
    assert native.cached_bytes() == 0
    other = _C_MODULE.mul(x, 3.0)  # the same size class: must not get the view's block
    np.testing.assert_array_equal(view, expected)
    np.testing.assert_array_equal(other, x * np.float32(3.0))
    del view
    assert native.cached_bytes() >= x.nbytes


@needs_native
def test_small_outputs_and_a_zero_limit_bypass_the_cache(fresh_cache):
    small = _C_MODULE.softmax(randn((4, 8), np.float32))
    del small
    assert native.cached_bytes() == 0
    native.set_cache_limit(0)
    large = _C_MODULE.softmax(randn(CACHED_SHAPE, np.float32))
    del large
    assert native.cached_bytes() == 0


@needs_native
def test_the_limit_caps_the_cached_bytes_and_empty_cache_frees_them(fresh_cache):
    x = randn(CACHED_SHAPE, np.float32)
    native.set_cache_limit(3 * x.nbytes)
    outputs = [_C_MODULE.mul(x, 2.0) for _ in range(5)]
    del outputs
    assert x.nbytes <= native.cached_bytes() <= 3 * x.nbytes
    native.empty_cache()
    assert native.cached_bytes() == 0


MALLOC_PROBE = """
import resource
import numpy as np
from tinygrad_like.backend import native
print(native.build_info()["malloc"])
arrays = [np.ones(1 << 18) for _ in range(8)]  # 2 MiB each: mmap'd below the raised threshold
del arrays
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    arrays = [np.ones(1 << 18) for _ in range(8)]
    del arrays
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@needs_native
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's thresholds")
def test_loading_the_extension_keeps_mid_sized_arrays_off_mmap():
    setting, faults = _run(MALLOC_PROBE, MALLOC_MMAP_THRESHOLD_=None,
                           MALLOC_TRIM_THRESHOLD_=None, GLIBC_TUNABLES=None).split("\n")[:2]
    assert setting.endswith("(set by _C)")
    assert int(faults) < 100  # 20 rounds of 16 MiB would be ~80,000 faults through mmap


@needs_native
def test_malloc_thresholds_set_in_the_environment_are_left_alone():
    out = _run(MALLOC_PROBE, MALLOC_TRIM_THRESHOLD_="131072")
    assert out.startswith("glibc malloc thresholds as the environment sets them")


PROBE = """
import tinygrad_like as tg
from tinygrad_like.backend import native
kernels = tg.backend.get_backend("cpu").kernels
print(native.available(), kernels.layer_norm.__module__, repr(native.reason()))
print(tg.backend_info(devices=("cpu",), print_table=False))
"""


def test_the_environment_variable_forces_the_numpy_path():
    out = _run(PROBE, TINYGRAD_LIKE_NUMPY="1")
    assert out.startswith(
        "False tinygrad_like.backend.reference_norm 'disabled by TINYGRAD_LIKE_NUMPY=1'")
    assert "native extension _C not loaded: disabled by TINYGRAD_LIKE_NUMPY=1" in out
    assert "native _C" not in out


@needs_native
def test_backend_info_reports_the_native_kernels():
    out = _run(PROBE, TINYGRAD_LIKE_NUMPY="0")
    assert out.startswith("True tinygrad_like.backend.native")
    rows = {tuple(line.split()[:2]): line for line in out.splitlines()}
    assert "native extension _C loaded" in out
    assert "native _C" in rows[("cpu", "layer_norm")]
    assert "native _C" in rows[("cpu", "softmax")]
    assert "NumPy" in rows[("cpu", "cross_entropy")]


def test_the_numpy_path_works_without_the_extension():
    """With _C unimportable (as after an install without a compiler) every op still runs."""
    code = """
import sys
sys.modules["tinygrad_like._C"] = None  # makes `from tinygrad_like import _C` fail
import tinygrad_like as tg
from tinygrad_like.backend import native
assert not native.available() and "not built" in native.reason(), native.reason()
tg.manual_seed(0)
model = tg.nn.Sequential(tg.nn.Conv2d(2, 3, 3, padding=1), tg.nn.MaxPool2d(2), tg.nn.Flatten(),
                         tg.nn.LayerNorm(12))
optimizer = tg.optim.Adam(model.parameters())
model(tg.randn(2, 2, 4, 4)).sum().backward()
optimizer.step()
print("ok", "not loaded" in tg.backend_info(devices=("cpu",), print_table=False))
"""
    assert _run(code).split() == ["ok", "True"]


THREADS_PROBE = """
import os
import torch  # loads libgomp first, with its default (spinning) wait policy
from tinygrad_like.backend import native
print(native.get_num_threads() == len(os.sched_getaffinity(0)), repr(native.reason()))
"""


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="counts the CPUs we may use")
@needs_native
def test_native_kernels_use_every_cpu_even_after_torch_loaded_openmp():
    """The pool is the extension's own, so whatever OpenMP runtime came first does not matter."""
    assert _run(THREADS_PROBE).split() == ["True", "''"]


@pytest.fixture
def native_threads():
    """Yields native.set_num_threads and restores the thread count afterwards."""
    before = native.get_num_threads()
    yield native.set_num_threads
    native.set_num_threads(before)


@needs_native
def test_thread_count_changes_nothing_but_speed(native_threads):
    """Kernels split rows, planes and parameter chunks over the pool; every thread count gives
    the one-thread result (layer norm's weight gradient sums per-range partials, so to
    rounding) and repeated runs at one count give the same bits."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((600, 700))  # above the parallel grain
    grad = rng.standard_normal(x.shape)
    weight, bias = rng.standard_normal(700), rng.standard_normal(700)
    images = rng.standard_normal((4, 8, 130, 130))
    params = [rng.standard_normal(size) for size in (300_000, 7, 50_000)]

    def run_kernels():
        out, mean, rstd = native._C.layer_norm(x, weight, bias, 1e-5)
        dx, dweight, dbias = native._C.layer_norm_backward(grad, x, mean, rstd, weight)
        pooled, _ = native._C.max_pool2d(images, (2, 2), (2, 2), (0, 0), (1, 1))
        stepped, buffers = [p.copy() for p in params], [np.zeros_like(p) for p in params]
        NATIVE.sgd_step(stepped, [p * 0.5 for p in params], buffers, 0.1, 0.9, 0.0, False,
                        0.01, False, True)
        return [native._C.softmax(x), out, dx, dweight, dbias, pooled, *stepped, *buffers,
                native._C.im2col(images, (3, 3), (1, 1), (1, 1), (1, 1))]

    native_threads(1)
    serial = run_kernels()
    for threads in (2, 3, 8):
        native_threads(threads)
        assert native.get_num_threads() == threads
        parallel = run_kernels()
        for got, want in zip(parallel, serial, strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
        for got, again in zip(parallel, run_kernels(), strict=True):
            np.testing.assert_array_equal(got, again)


FORK_PROBE = """
import multiprocessing as mp
import numpy as np
from tinygrad_like.backend import native

native.set_num_threads(2)
x = np.random.default_rng(0).standard_normal((1024, 1024))
expected = native._C.softmax(x)  # the parent's pool has started its worker

def child(queue):
    queue.put(bool(np.array_equal(native._C.softmax(x), expected)))

context = mp.get_context("fork")
queue = context.Queue()
process = context.Process(target=child, args=(queue,))
process.start()
print(queue.get(timeout=60))
process.join()
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forks")
@needs_native
def test_a_forked_child_starts_its_own_pool():
    """A child forked after the parent used the pool has none of its threads; it must not
    hang waiting for them."""
    assert _run(FORK_PROBE).strip() == "True"


@needs_native
def test_the_best_instruction_set_level_the_cpu_runs_is_loaded():
    levels = native.cpu_isa_levels()
    assert levels[-1] == "baseline" and set(levels) <= set(native.ISA_MODULES)
    if os.environ.get(native.ENV_ISA):
        assert native.build_info()["isa"] == os.environ[native.ENV_ISA]
    else:
        assert native.build_info()["isa"] == levels[0]
    if not os.path.exists("/proc/cpuinfo"):
        return
    with open("/proc/cpuinfo") as cpuinfo:
        flags = next((set(line.split(":", 1)[1].split()) for line in cpuinfo
                      if line.startswith("flags")), set())
    if flags:  # the kernel's view of the CPU agrees with the loader's
        assert ("x86-64-v4" in levels) == ({"avx512f", "avx512bw", "avx512vl"} <= flags)
        assert ("x86-64-v3" in levels) == ({"avx2", "fma", "bmi2"} <= flags)


ISA_PROBE = "from tinygrad_like.backend import native; print(native.build_info()['isa'])"


@needs_native
@pytest.mark.parametrize("level", list(native.ISA_MODULES))
def test_tinygrad_like_isa_forces_a_level_or_says_why_it_cannot(level):
    env = {**os.environ, native.ENV_ISA: level}
    result = subprocess.run([sys.executable, "-c", ISA_PROBE], env=env, capture_output=True,
                            text=True, timeout=120)
    if level in native.cpu_isa_levels():
        assert result.returncode == 0 and result.stdout.strip() == level, result.stderr
    else:
        assert f"{native.ENV_ISA}={level}: this CPU cannot run it" in result.stderr


@needs_native
def test_tinygrad_like_isa_rejects_an_unknown_level():
    env = {**os.environ, native.ENV_ISA: "avx9000"}
    result = subprocess.run([sys.executable, "-c", ISA_PROBE], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode != 0
    assert "TINYGRAD_LIKE_ISA='avx9000': expected one of x86-64-v4, x86-64-v3, baseline" in (
        result.stderr)
