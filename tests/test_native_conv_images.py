"""conv2d one image at a time on the native pool (kernels/cpu/conv_images.cpp), against the
im2col reference (backend/reference_conv.py) computed in float64.

Each task fuses an image's im2col with its GEMM against NCHW; backward-weight adds per-range
sums. The bound on the difference is the one a sum of m products guarantees whatever its
order, m * eps * (the same sum of absolute values), so it holds for any BLAS kernel, blocking
and number of ranges.
"""

from __future__ import annotations

import numpy as np
import pytest

from tinygrad_like.backend import cpu_conv, native, native_blas, reference_conv

pytestmark = pytest.mark.skipif(not native_blas.available(), reason=native_blas.status())

RNG = np.random.default_rng(5)

# (input shape, weight shape, stride, padding, dilation): the CNN benchmark's two layers,
# strided and dilated, padded, a 1x1, and one image
GEOMETRIES = [
    ((8, 1, 28, 28), (32, 1, 3, 3), (1, 1), (0, 0), (1, 1)),
    ((6, 32, 13, 13), (64, 32, 3, 3), (1, 1), (0, 0), (1, 1)),
    ((5, 3, 9, 7), (4, 3, 3, 2), (2, 1), (1, 1), (1, 2)),
    ((3, 2, 6, 8), (5, 2, 5, 4), (3, 1), (2, 3), (1, 1)),
    ((4, 6, 5, 5), (7, 6, 1, 1), (1, 1), (0, 0), (1, 1)),
    ((1, 3, 9, 9), (2, 3, 3, 3), (1, 1), (1, 1), (1, 1)),
]


def randn(shape, dtype):
    return RNG.standard_normal(shape).astype(dtype)


def assert_within_rounding(ours, exact, magnitude, terms: int, dtype):
    """|ours - exact| <= terms * eps * magnitude, elementwise (exact and magnitude float64)."""
    assert ours.shape == exact.shape and ours.dtype == dtype
    eps = np.finfo(dtype).eps
    assert np.all(np.abs(ours - exact) <= (terms + 2) * eps * magnitude)


def wide(*arrays):
    return [a.astype(np.float64) for a in arrays]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "no-bias"])
@pytest.mark.parametrize("layout", ["contiguous", "noncontiguous"])
def test_conv2d_images_match_the_reference(dtype, geometry, with_bias, layout):
    x_shape, w_shape, *options = geometry
    x, weight = randn(x_shape, dtype), randn(w_shape, dtype)
    bias = randn(w_shape[0], dtype) if with_bias else None
    if layout == "noncontiguous":  # the same values, read through strides
        x = np.ascontiguousarray(x.swapaxes(2, 3)).swapaxes(2, 3)
    patch = int(np.prod(w_shape[1:]))
    out = native._C.conv2d_images(x, weight, bias, *options)
    exact_bias = None if bias is None else bias.astype(np.float64)
    exact = reference_conv.conv2d(*wide(x, weight), exact_bias, *options)
    magnitude = reference_conv.conv2d(*wide(np.abs(x), np.abs(weight)),
                                      None if bias is None else np.abs(exact_bias), *options)
    assert_within_rounding(out, exact, magnitude, patch + 1, dtype)

    grad = randn(out.shape, dtype)
    dx = native._C.conv2d_images_backward_input(grad, weight, x_shape, *options)
    exact = reference_conv.conv2d_backward_input(*wide(grad, weight), x_shape, *options)
    magnitude = reference_conv.conv2d_backward_input(*wide(np.abs(grad), np.abs(weight)),
                                                     x_shape, *options)
    assert_within_rounding(dx, exact, magnitude, w_shape[0] * w_shape[2] * w_shape[3], dtype)

    dweight = native._C.conv2d_images_backward_weight(grad, x, w_shape, *options)
    exact = reference_conv.conv2d_backward_weight(*wide(grad, x), w_shape, *options)
    magnitude = reference_conv.conv2d_backward_weight(*wide(np.abs(grad), np.abs(x)), w_shape,
                                                      *options)
    assert_within_rounding(dweight, exact, magnitude, x_shape[0] * out[0, 0].size, dtype)


def test_backward_weight_rounds_the_same_on_any_number_of_threads():
    """Its per-range sums follow the shapes alone, so 1 and 3 threads agree to the bit."""
    x, grad = randn((37, 8, 20, 20), np.float32), randn((37, 16, 18, 18), np.float32)
    results = []
    saved = native.get_num_threads()
    try:
        for threads in (1, 3):
            native.set_num_threads(threads)
            results.append(native._C.conv2d_images_backward_weight(
                grad, x, (16, 8, 3, 3), (1, 1), (0, 0), (1, 1)))
    finally:
        native.set_num_threads(saved)
    np.testing.assert_array_equal(*results)


@pytest.mark.parametrize("call, message", [
    (lambda: native._C.conv2d_images(np.ones((2, 3, 5, 5), np.float32),
                                     np.ones((4, 2, 3, 3), np.float32), None, (1, 1), (0, 0),
                                     (1, 1)),
     "conv2d_images: the weight's input channels differ"),
    (lambda: native._C.conv2d_images(np.ones((2, 3, 5, 5), np.float32),
                                     np.ones((4, 3, 3, 3), np.float32),
                                     np.ones(3, np.float32), (1, 1), (0, 0), (1, 1)),
     r"conv2d_images: the bias is not \(K,\)"),
    (lambda: native._C.conv2d_images_backward_input(np.ones((2, 4, 2, 2), np.float32),
                                                    np.ones((4, 3, 3, 3), np.float32),
                                                    (2, 3, 5, 5), (1, 1), (0, 0), (1, 1)),
     r"conv2d_images_backward_input: grad is not \(N, K, OH, OW\)"),
    (lambda: native._C.conv2d_images_backward_weight(np.ones((2, 4, 3, 3), np.float32),
                                                     np.ones((2, 3, 5, 5), np.float32),
                                                     (4, 3, 2, 2), (1, 1), (0, 0), (1, 1)),
     r"conv2d_images_backward_weight: grad is not \(N, K, OH, OW\)"),
])
def test_mismatched_shapes_are_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def recording_image_kernels(monkeypatch) -> list:
    """Records which of _C's per-image convolutions the next native_conv_kernels calls."""
    calls = []
    for name in ("conv2d_images", "conv2d_images_backward_input",
                 "conv2d_images_backward_weight"):
        run = getattr(native._C, name)
        monkeypatch.setattr(native._C, name,
                            lambda *args, name=name, run=run: calls.append(name) or run(*args))
    return calls


@pytest.mark.parametrize("images, threads, expected", [
    (4, 2, True), (3, 2, False), (2, 1, True), (1, 1, False)])
def test_a_batch_goes_one_image_at_a_time_with_enough_images_per_thread(monkeypatch, images,
                                                                        threads, expected):
    calls = recording_image_kernels(monkeypatch)
    monkeypatch.setattr(native, "get_num_threads", lambda: threads)
    kernels = cpu_conv.native_conv_kernels()
    x, weight = randn((images, 3, 9, 9), np.float32), randn((4, 3, 3, 3), np.float32)
    options = ((1, 1), (0, 0), (1, 1))  # unpadded: backward-data by col2im
    out = kernels["conv2d"](x, weight, None, *options)
    kernels["conv2d_backward_input"](out, weight, x.shape, *options)
    kernels["conv2d_backward_weight"](out, x, weight.shape, *options)
    assert calls == (["conv2d_images", "conv2d_images_backward_input",
                      "conv2d_images_backward_weight"] if expected else [])


def test_an_image_whose_cols_exceed_the_chunk_goes_to_the_chunks(monkeypatch):
    calls = recording_image_kernels(monkeypatch)
    kernels = cpu_conv.native_conv_kernels()
    x, weight = randn((8, 3, 9, 9), np.float32), randn((4, 3, 3, 3), np.float32)
    monkeypatch.setattr(cpu_conv, "CHUNK_BYTES", 3 * 9 * 49 * 4 - 1)  # one image's cols + 1
    kernels["conv2d"](x, weight, None, (1, 1), (0, 0), (1, 1))
    assert calls == []
