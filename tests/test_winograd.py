"""Winograd F(4x4, 3x3) convolution (backend/cpu_winograd.py, kernels/cpu/winograd.cpp).

The NumPy transforms are checked against direct convolution and their adjoints against the
dot-product identity; the native transforms against the NumPy ones (ragged tiles, every
padding the transforms take, non-contiguous input, float32 and float64); the batched GEMM on
the extension's pool (backend/native_blas.py) against np.matmul, with the BLAS kept to one
thread while it runs; the conv2d kernels that use them against im2col + GEMM; and F.conv2d
on that path is gradchecked in float64 and compared with PyTorch. The size limits are
lowered where a test needs the path on small inputs, and a spy on the transforms and the
GEMM proves the path was taken.
"""

from __future__ import annotations

import ctypes
import functools

import numpy as np
import pytest
import torch

import tinygrad_like as tg
import tinygrad_like.nn.functional as F
from tinygrad_like.backend import cpu_conv, cpu_winograd, native, native_blas, reference_conv

RNG = np.random.default_rng(3)
DTYPES = [np.float32, np.float64]
# float32 Winograd rounds more than a direct sum (the transforms' coefficients reach 8 and
# 1/24): errors are measured against the largest value, as cuDNN's and oneDNN's are
RELATIVE_TO_MAX = {np.float32: 3e-5, np.float64: 1e-12}

needs_native = pytest.mark.skipif(
    not native.available(), reason=f"tinygrad_like._C is not in use: {native.reason()}")

# (input shape, padding): whole tiles, ragged last tiles, and paddings 0-2 on either axis
GEOMETRIES = [((2, 3, 8, 8), (1, 1)), ((1, 2, 11, 13), (0, 0)), ((2, 3, 9, 6), (2, 1)),
              ((1, 1, 5, 7), (1, 2))]


def randn(shape, dtype=np.float64):
    return RNG.standard_normal(shape).astype(dtype)


def assert_close_to_max(ours, reference, dtype):
    assert ours.shape == reference.shape and ours.dtype == reference.dtype
    scale = max(np.abs(reference).max(initial=0.0), 1.0)
    np.testing.assert_allclose(ours, reference, rtol=0, atol=RELATIVE_TO_MAX[dtype] * scale)


def direct_conv(x, weight, padding):
    return torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(weight),
                                      padding=tuple(padding)).numpy()


def reference_winograd_conv(x, weight, padding):
    """The NumPy transforms and 36 GEMMs, as the native path runs them."""
    oh, ow = (x.shape[2 + a] + 2 * padding[a] - 2 for a in (0, 1))
    tiles = cpu_winograd.tile_counts((oh, ow))
    m = cpu_winograd.filter_transform(weight) @ cpu_winograd.input_transform(x, padding, tiles)
    return cpu_winograd.output_transform(m, (x.shape[0], weight.shape[0], oh, ow))


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
def test_numpy_winograd_equals_direct_convolution(geometry):
    shape, padding = geometry
    x, weight = randn(shape), randn((4, shape[1], 3, 3))
    np.testing.assert_allclose(reference_winograd_conv(x, weight, padding),
                               direct_conv(x, weight, padding), rtol=1e-12, atol=1e-12)


def test_adjoint_transforms_satisfy_the_dot_product_identity():
    """<T a, b> = <a, T* b> for the output and filter transforms and their adjoints."""
    weight, grad_u = randn((4, 3, 3, 3)), randn((cpu_winograd.POINTS, 4, 3))
    np.testing.assert_allclose(np.vdot(cpu_winograd.filter_transform(weight), grad_u),
                               np.vdot(weight, cpu_winograd.filter_transform_adjoint(grad_u)))
    output_shape = (2, 4, 7, 9)  # ragged: tiles cover 8 x 12
    tiles = cpu_winograd.tile_counts(output_shape[2:])
    m = randn((cpu_winograd.POINTS, 4, 2 * tiles[0] * tiles[1]))
    grad = randn(output_shape)
    np.testing.assert_allclose(np.vdot(cpu_winograd.output_transform(m, output_shape), grad),
                               np.vdot(m, cpu_winograd.output_transform_adjoint(grad)))


def test_applies_only_to_3x3_stride_1_undilated_filters():
    assert cpu_winograd.applies((8, 8, 3, 3), (1, 1), (1, 1))
    assert not cpu_winograd.applies((8, 8, 3, 3), (2, 2), (1, 1))
    assert not cpu_winograd.applies((8, 8, 3, 3), (1, 1), (2, 2))
    assert not cpu_winograd.applies((8, 8, 5, 5), (1, 1), (1, 1))


# ---- native transforms -------------------------------------------------------------------------
@needs_native
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
@pytest.mark.parametrize("layout", ["contiguous", "noncontiguous"])
def test_native_transforms_match_numpy(dtype, geometry, layout):
    shape, padding = geometry
    x = randn(shape, dtype)
    if layout == "noncontiguous":
        x = np.ascontiguousarray(x.swapaxes(-1, -2)).swapaxes(-1, -2)
    out_hw = tuple(shape[2 + a] + 2 * padding[a] - 2 for a in (0, 1))
    tiles = cpu_winograd.tile_counts(out_hw)
    transformed = native._C.winograd_input_transform(x, padding, tiles)
    assert_close_to_max(transformed, cpu_winograd.input_transform(x, padding, tiles), dtype)

    output_shape = (shape[0], 5) + out_hw
    m = randn((cpu_winograd.POINTS, 5, transformed.shape[2]), dtype)
    bias = randn(5, dtype)
    for shift in (None, bias):
        assert_close_to_max(native._C.winograd_output_transform(m, output_shape, shift),
                            cpu_winograd.output_transform(m, output_shape, shift), dtype)
    grad = randn(output_shape, dtype)
    assert_close_to_max(native._C.winograd_output_transform_adjoint(grad),
                        cpu_winograd.output_transform_adjoint(grad), dtype)


@needs_native
@pytest.mark.parametrize("dtype", DTYPES)
def test_native_output_transform_writes_into_the_given_array(dtype):
    output_shape = (2, 3, 7, 9)
    tiles = cpu_winograd.tile_counts(output_shape[2:])
    m = randn((cpu_winograd.POINTS, 3, 2 * tiles[0] * tiles[1]), dtype)
    out = np.full((4,) + output_shape[1:], np.nan, dtype)  # images 1-2 are the target
    result = native._C.winograd_output_transform(m, output_shape, None, out[1:3])
    assert np.shares_memory(result, out) and np.isnan(out[[0, 3]]).all()
    assert_close_to_max(out[1:3], cpu_winograd.output_transform(m, output_shape), dtype)
    with pytest.raises(ValueError, match="winograd_output_transform: `into`"):
        native._C.winograd_output_transform(m, output_shape, None, out[:1])
    with pytest.raises(TypeError):  # a non-contiguous target would be written as a copy
        native._C.winograd_output_transform(m, output_shape, None, out[1:3, :, :, ::-1])


@needs_native
def test_native_transforms_reject_bad_shapes_by_name():
    m = np.zeros((cpu_winograd.POINTS, 2, 3), np.float32)
    with pytest.raises(ValueError, match="winograd_output_transform"):
        native._C.winograd_output_transform(m, (1, 2, 8, 8), None)  # 8x8 needs 4 tiles
    with pytest.raises(ValueError, match="winograd_input_transform"):
        native._C.winograd_input_transform(np.zeros((2, 8, 8), np.float32), (1, 1), (2, 2))


# ---- the GEMMs on the extension's pool (native_blas.py, kernels/cpu/blas.cpp) -------------------
GEMM_SHAPES = [  # (batch, M, K, N): the Winograd points, single matrices cut into row blocks,
    (36, 64, 64, 300), (1, 64, 9, 70), (3, 5, 7, 2), (2, 1, 1, 1), (4, 33, 17, 40),  # odd
    (2, 3, 0, 4), (2, 0, 3, 4), (0, 2, 3, 4)]  # empty


@needs_native
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch, m, k, n", GEMM_SHAPES)
@pytest.mark.parametrize("transpose_b", [False, True])
def test_batched_gemm_matches_numpy(dtype, batch, m, k, n, transpose_b):
    assert native_blas.available(), native_blas.status()
    a = randn((batch, m, k), dtype)
    b = randn((batch, n, k) if transpose_b else (batch, k, n), dtype)
    expected = cpu_winograd.batched_gemm(a, b, transpose_b)
    assert_close_to_max(native_blas.batched_gemm(a, b, transpose_b), expected, dtype)
    into = randn((batch, m, n), dtype)
    total = into + expected
    assert native_blas.batched_gemm(a, b, transpose_b, into) is into
    assert_close_to_max(into, total, dtype)


@pytest.fixture
def recorded_thread_controls():
    """_C given thread controls that record their calls (a library at 3 threads), in place of
    the BLAS libraries' own; the real ones are handed back afterwards."""
    assert native_blas.available(), native_blas.status()
    calls, counts = [], [3]
    get_count = ctypes.CFUNCTYPE(ctypes.c_int)(lambda: calls.append("get") or counts[0])
    set_count = ctypes.CFUNCTYPE(None, ctypes.c_int)(
        lambda threads: calls.append(("set", threads)) or counts.__setitem__(0, threads))
    address = functools.partial(ctypes.cast, typ=ctypes.c_void_p)
    sgemm, dgemm, ilp64, _ = native_blas._scipy_gemms()
    native._C.set_blas(sgemm, dgemm, ilp64, [(address(set_count).value, address(get_count).value)])
    yield calls
    native_blas._single_threaded_blas.cache_clear()
    assert native_blas.available()  # the real controls again


@needs_native
@pytest.mark.parametrize("call", ["batched_gemm", "matmul"])
def test_native_gemms_keep_blas_to_one_thread_while_they_run(recorded_thread_controls, call):
    a, b = randn((2, 64, 64)), randn((2, 64, 64))
    np.testing.assert_allclose(getattr(native._C, call)(a, b), np.matmul(a, b), rtol=1e-4,
                               atol=1e-4)
    assert recorded_thread_controls == ["get", ("set", 1), ("set", 3)]


@needs_native
def test_native_gemms_restore_the_blas_thread_counts():
    from threadpoolctl import threadpool_info, threadpool_limits

    def blas_threads():
        return [info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"]

    with threadpool_limits(limits=3, user_api="blas"):
        native_blas.batched_gemm(randn((2, 3, 4)), randn((2, 4, 5)))
        native_blas.matmul(randn((300, 200)), randn((200, 100)))
        assert blas_threads() == [3] * len(blas_threads())


@needs_native
def test_batched_gemm_leaves_what_c_cannot_take_to_numpy(monkeypatch):
    calls = []
    monkeypatch.setattr(native._C, "batched_gemm", lambda *args: calls.append(args))
    a, b = randn((2, 3, 4), np.float32), randn((2, 4, 5), np.float32)
    strided_into = np.zeros((2, 3, 10), np.float32)[:, :, ::2]
    for args in [(a, b.astype(np.float64)), (a.astype(np.float16), b.astype(np.float16)),
                 (a, b, False, strided_into)]:
        np.testing.assert_allclose(native_blas.batched_gemm(*args),
                                   np.matmul(*args[:2]).astype(args[0].dtype), rtol=2e-3)
    assert not calls
    np.testing.assert_allclose(strided_into, np.matmul(a, b), rtol=1e-6)


@needs_native
def test_batched_gemm_without_a_blas_to_limit_stays_with_numpy(monkeypatch):
    monkeypatch.setattr(native_blas, "_single_threaded_blas",
                        lambda: (None, "threadpoolctl finds no BLAS library"))
    monkeypatch.setattr(native._C, "batched_gemm", None)  # would fail if called
    a, b = randn((2, 3, 4)), randn((2, 4, 5))
    np.testing.assert_array_equal(native_blas.batched_gemm(a, b), np.matmul(a, b))
    assert native_blas.status() == "NumPy's matmul (threadpoolctl finds no BLAS library)"


@needs_native
def test_batched_gemm_names_itself_on_bad_shapes():
    native_blas.batched_gemm(randn((1, 2, 2)), randn((1, 2, 2)))  # hands SciPy's BLAS to _C
    with pytest.raises(ValueError, match="batched_gemm: the inner sizes differ"):
        native._C.batched_gemm(randn((2, 3, 4)), randn((2, 5, 6)))
    with pytest.raises(ValueError, match="batched_gemm: expected a"):
        native._C.batched_gemm(randn((2, 3, 4)), randn((3, 4, 6)))
    with pytest.raises(ValueError, match="batched_gemm: `into` is not"):
        native._C.batched_gemm(randn((2, 3, 4)), randn((2, 4, 6)), False, randn((2, 3, 5)))


# ---- the conv2d kernels on the Winograd path ---------------------------------------------------
@pytest.fixture
def spied_kernels():
    """cpu_conv's kernels on the native im2col and on native transforms and batched GEMM
    that count calls."""
    if not native.available():
        pytest.skip(f"tinygrad_like._C is not in use: {native.reason()}")
    calls = {name: 0 for name in cpu_conv.WINOGRAD_TRANSFORMS}
    calls["batched_gemm"] = 0

    def spy(name, piece):
        def counted(*args, **kwargs):
            calls[name] += 1
            return piece(*args, **kwargs)
        return counted

    pieces = {name: getattr(native._C, f"winograd_{name}") for name in cpu_conv.WINOGRAD_TRANSFORMS}
    pieces["batched_gemm"] = native_blas.batched_gemm
    kernels = cpu_conv.make_conv_kernels(cpu_conv.native_im2col(reference_conv.im2col),
                                         cpu_conv.native_col2im(reference_conv.col2im),
                                         {name: spy(name, piece) for name, piece in pieces.items()})
    return kernels, calls


@pytest.fixture
def small_inputs_take_winograd(monkeypatch):
    monkeypatch.setattr(cpu_conv, "WINOGRAD_LIMITS", ((1, 1),))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, filters, padding", [
    ((3, 16, 32, 32), 16, (1, 1)),  # the first limits exactly
    ((2, 16, 33, 35), 20, (0, 2)),  # ragged, asymmetric
    ((7, 16, 32, 32), 20, (1, 1)),  # several chunks
    ((2, 128, 12, 12), 128, (1, 1)),  # the second limits exactly
])
def test_conv2d_kernels_by_winograd_match_im2col(spied_kernels, monkeypatch, dtype, shape,
                                                filters, padding):
    kernels, calls = spied_kernels
    reference = vars(reference_conv)  # the plain im2col kernels every device is tested against
    if shape[0] == 7:  # chunks of 2-3 images
        monkeypatch.setattr(cpu_conv, "CHUNK_BYTES", 3 * cpu_conv._winograd_bytes(
            shape, (32, 32), np.dtype(dtype).itemsize) - 1)
    x, weight = randn(shape, dtype), randn((filters, shape[1], 3, 3), dtype)
    bias = randn(filters, dtype)
    options = ((1, 1), padding, (1, 1))
    out = kernels["conv2d"](x, weight, bias, *options)
    assert_close_to_max(out, reference["conv2d"](x, weight, bias, *options), dtype)
    grad = randn(out.shape, dtype)
    assert_close_to_max(kernels["conv2d_backward_weight"](grad, x, weight.shape, *options),
                        reference["conv2d_backward_weight"](grad, x, weight.shape, *options),
                        dtype)
    assert_close_to_max(kernels["conv2d_backward_input"](grad, weight, x.shape, *options),
                        reference["conv2d_backward_input"](grad, weight, x.shape, *options),
                        dtype)
    chunks = 3 if shape[0] == 7 else 1
    # forward and backward-weight each transform the input; "same" backward-data is one more
    # Winograd convolution (of grad)
    same = padding == (1, 1)
    assert calls["input_transform"] == chunks * (3 if same else 2)
    assert calls["output_transform"] == chunks * (2 if same else 1)
    assert calls["output_transform_adjoint"] == chunks
    # a GEMM per chunk and per Winograd pass, and the filter transform and its adjoint
    assert calls["batched_gemm"] == chunks * (3 if same else 2) + (3 if same else 2)


@pytest.mark.parametrize("x_shape, weight_shape, stride, weight_dtype", [
    ((1, 16, 31, 32), (16, 16, 3, 3), (1, 1), np.float32),  # output planes below 32 * 32
    ((1, 15, 32, 32), (16, 15, 3, 3), (1, 1), np.float32),  # too few input channels
    ((1, 16, 32, 32), (15, 16, 3, 3), (1, 1), np.float32),  # too few output channels
    ((1, 128, 11, 12), (128, 128, 3, 3), (1, 1), np.float32),  # planes below 12 * 12
    ((1, 127, 31, 31), (128, 127, 3, 3), (1, 1), np.float32),  # below 32 * 32, 127 < 128
    ((1, 16, 64, 64), (16, 16, 3, 3), (2, 2), np.float32),  # strided
    ((1, 16, 32, 32), (16, 16, 5, 5), (1, 1), np.float32),  # not 3x3
    ((1, 16, 32, 32), (16, 16, 3, 3), (1, 1), np.float64),  # mixed dtypes
], ids=["small planes", "few input channels", "few output channels", "small wide planes",
        "fewer wide channels", "strided", "5x5", "mixed dtypes"])
def test_conv2d_kernels_outside_the_limits_keep_im2col(spied_kernels, x_shape, weight_shape,
                                                       stride, weight_dtype):
    kernels, calls = spied_kernels
    x, weight = randn(x_shape, np.float32), randn(weight_shape, weight_dtype)
    padding = (weight_shape[2] // 2,) * 2
    out = kernels["conv2d"](x, weight, None, stride, padding, (1, 1))
    kernels["conv2d_backward_weight"](np.ones_like(out), x, weight.shape, stride, padding,
                                      (1, 1))
    assert not any(calls.values())


# ---- F.conv2d on the Winograd path -------------------------------------------------------------
@needs_native
def test_conv2d_by_winograd_passes_gradcheck(small_inputs_take_winograd):
    x = tg.from_numpy(randn((2, 2, 5, 6))).requires_grad_()
    weight = tg.from_numpy(randn((3, 2, 3, 3))).requires_grad_()
    bias = tg.from_numpy(randn(3)).requires_grad_()
    assert tg.gradcheck(lambda *xs: F.conv2d(*xs, padding=1), (x, weight, bias))


@needs_native
@pytest.mark.parametrize("dtype", DTYPES)
def test_conv2d_by_winograd_matches_torch(dtype):
    """At the size the limits take (no lowering): forward and both gradients."""
    arrays = [randn((2, 16, 32, 32), dtype), randn((16, 16, 3, 3), dtype), randn(16, dtype),
              randn((2, 16, 32, 32), dtype)]
    ours = [tg.from_numpy(a).requires_grad_() for a in arrays[:3]]
    theirs = [torch.from_numpy(a).requires_grad_() for a in arrays[:3]]
    out = F.conv2d(*ours, padding=1)
    (out * tg.from_numpy(arrays[3])).sum().backward()
    expected = torch.nn.functional.conv2d(*theirs, padding=1)
    (expected * torch.from_numpy(arrays[3])).sum().backward()
    for got, want in [(out, expected)] + [(a.grad, b.grad) for a, b in zip(ours, theirs)]:
        assert_close_to_max(got.detach().numpy(), want.detach().numpy(), dtype)
