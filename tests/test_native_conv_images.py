"""conv2d one image at a time on the native pool: im2col fused with each image's GEMM
(kernels/cpu/conv_images.cpp) and Winograd's transforms and GEMMs per image
(kernels/cpu/winograd.cpp), against the references computed in float64, and the rule that
sends a batch there (backend/cpu_conv.py).

Each task fuses an image's im2col with its GEMM against NCHW; backward-weight adds per-range
sums. The bound on the im2col path's difference is the one a sum of m products guarantees
whatever its order, m * eps * (the same sum of absolute values), so it holds for any BLAS
kernel, blocking and number of ranges. Winograd's are measured against the largest value, as
in test_winograd.py (its transforms' coefficients, up to 8 and 1/24, round more).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tinygrad_like as tg
import tinygrad_like.nn.functional as F
from tinygrad_like.backend import cpu_conv, cpu_winograd, native, native_blas, reference_conv

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


def on_threads(call, counts=(1, 3)) -> list:
    """call() on each number of native threads, in turn."""
    results, saved = [], native.get_num_threads()
    try:
        for threads in counts:
            native.set_num_threads(threads)
            results.append(call())
    finally:
        native.set_num_threads(saved)
    return results


def test_backward_weight_rounds_the_same_on_any_number_of_threads():
    """Its per-range sums follow the shapes alone, so 1 and 3 threads agree to the bit."""
    x, grad = randn((37, 8, 20, 20), np.float32), randn((37, 16, 18, 18), np.float32)
    np.testing.assert_array_equal(*on_threads(lambda: native._C.conv2d_images_backward_weight(
        grad, x, (16, 8, 3, 3), (1, 1), (0, 0), (1, 1))))


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


def recording(monkeypatch, names) -> list:
    """The names of the _C functions among `names` that are called from now on, in order
    (native_conv_kernels built afterwards reads the recording ones)."""
    calls = []
    for name in names:
        run = getattr(native._C, name)
        monkeypatch.setattr(native._C, name,
                            lambda *args, name=name, run=run: calls.append(name) or run(*args))
    return calls


def recording_image_kernels(monkeypatch) -> list:
    return recording(monkeypatch, ("conv2d_images", "conv2d_images_backward_input",
                                   "conv2d_images_backward_weight"))


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


# ---- Winograd one image at a time ------------------------------------------------------------
# (input shape, filters, padding): whole tiles, ragged last tiles, paddings 0-2 on either axis
WINOGRAD_GEOMETRIES = [((3, 4, 8, 8), 5, (1, 1)), ((2, 2, 11, 13), 3, (0, 0)),
                       ((4, 3, 9, 6), 2, (2, 1)), ((1, 1, 5, 7), 4, (1, 2))]
RELATIVE_TO_MAX = {np.float32: 3e-5, np.float64: 1e-12}


def assert_close_to_max(ours, reference, dtype):
    assert ours.shape == reference.shape and ours.dtype == dtype
    scale = max(np.abs(reference).max(initial=0.0), 1.0)
    np.testing.assert_allclose(ours, reference, rtol=0, atol=RELATIVE_TO_MAX[dtype] * scale)


def output_hw(shape, padding):
    return tuple(shape[2 + a] + 2 * padding[a] - 2 for a in (0, 1))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("geometry", WINOGRAD_GEOMETRIES, ids=str)
@pytest.mark.parametrize("layout", ["contiguous", "noncontiguous"])
def test_winograd_by_image_matches_the_reference(dtype, geometry, layout):
    shape, filters, padding = geometry
    x, weight = randn(shape, dtype), randn((filters, shape[1], 3, 3), dtype)
    bias, out_hw = randn(filters, dtype), output_hw(shape, padding)
    if layout == "noncontiguous":
        x = np.ascontiguousarray(x.swapaxes(2, 3)).swapaxes(2, 3)
    options = ((1, 1), padding, (1, 1))
    u = cpu_winograd.filter_transform(weight)
    out = native._C.winograd_conv2d_images(x, u, bias, padding, out_hw)
    exact = reference_conv.conv2d(*wide(x, weight), bias.astype(np.float64), *options)
    assert_close_to_max(out, exact, dtype)

    grad = randn(out.shape, dtype)
    grad_u = native._C.winograd_backward_weight_images(grad, x, padding)
    exact = reference_conv.conv2d_backward_weight(*wide(grad, x), weight.shape, *options)
    assert_close_to_max(cpu_winograd.filter_transform_adjoint(grad_u), exact, dtype)


def test_winograd_backward_weight_rounds_the_same_on_any_number_of_threads():
    x, grad = randn((11, 4, 12, 12), np.float32), randn((11, 6, 12, 12), np.float32)
    np.testing.assert_array_equal(*on_threads(
        lambda: native._C.winograd_backward_weight_images(grad, x, (1, 1))))


def test_winograd_by_image_names_bad_shapes():
    x = np.ones((2, 3, 8, 8), np.float32)
    with pytest.raises(ValueError, match=r"winograd_conv2d_images: expected x \(N, C, H, W\)"):
        native._C.winograd_conv2d_images(x, np.ones((36, 4, 2), np.float32), None, (1, 1),
                                         (8, 8))
    with pytest.raises(ValueError, match="winograd_conv2d_images: bias must have K elements"):
        native._C.winograd_conv2d_images(x, np.ones((36, 4, 3), np.float32),
                                         np.ones(3, np.float32), (1, 1), (8, 8))
    with pytest.raises(ValueError, match=r"winograd_backward_weight_images: expected grad"):
        native._C.winograd_backward_weight_images(np.ones((3, 4, 8, 8), np.float32), x, (1, 1))


def recording_winograd(monkeypatch) -> list:
    return recording(monkeypatch, ("winograd_conv2d_images", "winograd_backward_weight_images",
                                   "winograd_input_transform"))


@pytest.mark.parametrize("images, expected", [(4, True), (3, False)])
def test_a_winograd_batch_goes_one_image_at_a_time_with_enough_images(monkeypatch, images,
                                                                      expected):
    """On 2 threads: 4 images do, 3 stay with the chunks (their transforms on the pool)."""
    calls = recording_winograd(monkeypatch)
    monkeypatch.setattr(native, "get_num_threads", lambda: 2)
    monkeypatch.setattr(cpu_conv, "WINOGRAD_LIMITS", ((1, 1),))
    kernels = cpu_conv.native_conv_kernels()
    x, weight = randn((images, 3, 8, 8), np.float32), randn((4, 3, 3, 3), np.float32)
    options = ((1, 1), (1, 1), (1, 1))
    out = kernels["conv2d"](x, weight, None, *options)
    kernels["conv2d_backward_weight"](out, x, weight.shape, *options)
    if expected:
        assert calls == ["winograd_conv2d_images", "winograd_backward_weight_images"]
    else:
        assert calls == ["winograd_input_transform"] * 2


@pytest.mark.parametrize("layer", ["im2col", "winograd"])
def test_conv2d_one_image_at_a_time_passes_gradcheck(monkeypatch, layer):
    """F.conv2d in float64 with 4 images on 2 threads, through each per-image path."""
    if layer == "winograd":
        monkeypatch.setattr(cpu_conv, "WINOGRAD_LIMITS", ((1, 1),))
    calls = []
    for record in (recording_image_kernels, recording_winograd):
        calls.append(record(monkeypatch))
    monkeypatch.setattr(native, "get_num_threads", lambda: 2)
    table = tg.backend.get_backend("cpu").kernels
    for name, kernel in cpu_conv.native_conv_kernels().items():
        monkeypatch.setattr(table, name, kernel)
    x = tg.from_numpy(randn((4, 2, 5, 6), np.float64)).requires_grad_()
    weight = tg.from_numpy(randn((3, 2, 3, 3), np.float64)).requires_grad_()
    bias = tg.from_numpy(randn(3, np.float64)).requires_grad_()
    assert tg.gradcheck(lambda *xs: F.conv2d(*xs, padding=1), (x, weight, bias))
    im2col_calls, winograd_calls = calls
    if layer == "winograd":
        assert set(winograd_calls) == {"winograd_conv2d_images",
                                       "winograd_backward_weight_images"}
    else:
        assert set(im2col_calls) == {"conv2d_images", "conv2d_images_backward_weight"}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape, weight_shape, padding", [
    ((8, 16, 32, 32), (16, 16, 3, 3), 1),  # Winograd at the limits' size
    ((8, 32, 13, 13), (64, 32, 3, 3), 0),  # the CNN's second layer: im2col
], ids=["winograd", "im2col"])
def test_conv2d_one_image_at_a_time_matches_torch(monkeypatch, dtype, x_shape, weight_shape,
                                                  padding):
    """F.conv2d and both gradients against PyTorch, on the per-image paths (8 images, 2
    threads: however many CPUs this machine has)."""
    monkeypatch.setattr(native, "get_num_threads", lambda: 2)
    table = tg.backend.get_backend("cpu").kernels
    for name, kernel in cpu_conv.native_conv_kernels().items():
        monkeypatch.setattr(table, name, kernel)
    arrays = [randn(x_shape, dtype), randn(weight_shape, dtype), randn(weight_shape[0], dtype)]
    ours = [tg.from_numpy(a).requires_grad_() for a in arrays]
    theirs = [torch.from_numpy(a).requires_grad_() for a in arrays]
    out = F.conv2d(*ours, padding=padding)
    expected = torch.nn.functional.conv2d(*theirs, padding=padding)
    weights = randn(out.shape, dtype)
    (out * tg.from_numpy(weights)).sum().backward()
    (expected * torch.from_numpy(weights)).sum().backward()
    assert_close_to_max(out.detach().numpy(), expected.detach().numpy(), dtype)
    for mine, reference in zip(ours, theirs):
        assert_close_to_max(mine.grad.numpy(), reference.grad.numpy(), dtype)
