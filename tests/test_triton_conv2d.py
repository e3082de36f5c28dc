"""The Triton implicit-GEMM conv2d kernels (kernels/triton/conv2d.py) on "interp", against torch.

The "interp" device runs the very kernels and launchers that "cuda" uses through Triton's
interpreter. The oracle is torch.nn.functional.conv2d and its float64 autograd. Shapes are
small (the interpreter is slow) and chosen to leave tails in every tile: odd channel
counts, non-square and 1x1 kernels, stride, padding and dilation, 17 channels against
the interpreter's 16-wide reduction steps (the channels-last loops' channel counter wraps
mid-tap), and images of fewer output pixels than a step, so the backward-weight kernel's
carried pixel counters cross several images per step. Tests marked `cuda` repeat the
check compiled on a GPU and are skipped without one. What the compiled code must show
(cp.async gathers, no scalar 16-bit loads) is checked in tests/test_kernel_compile.py.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

import tinygrad_like as tg
import tinygrad_like.nn.functional as F
from tinygrad_like.backend import get_backend

pytest.importorskip("triton")
torch = pytest.importorskip("torch")  # the oracle, and the interpreter's carrier for NumPy memory

from tinygrad_like.kernels.triton import conv2d as conv_kernels  # noqa: E402 (after the importorskip above)
from tinygrad_like.kernels.triton import conv2d_passes  # noqa: E402 (after the importorskip above)
from tinygrad_like.kernels.triton.launch import Launcher, arch_for  # noqa: E402 (after the importorskip above)

KERNEL_NAMES = ("conv2d", "conv2d_backward_input", "conv2d_backward_weight")
TOLERANCE = {"float64": {"rtol": 1e-12, "atol": 1e-12},
             "float32": {"rtol": 1e-5, "atol": 1e-5},
             # float32 accumulation, one rounding to float16 at the store
             "float16": {"rtol": 2e-3, "atol": 2e-3}}
# input (N, C, H, W), weight (K, KH, KW), stride, padding, dilation
CASES = [
    pytest.param((2, 3, 9, 8), (5, 3, 3), (2, 2), (1, 1), (2, 2), id="3x3-stride2-pad1-dil2"),
    pytest.param((2, 3, 7, 6), (5, 3, 2), (1, 2), (1, 0), (1, 2), id="3x2-kernel"),
    pytest.param((2, 4, 5, 6), (3, 1, 1), (1, 1), (0, 0), (1, 1), id="1x1"),
    # stride beyond the kernel: some input pixels feed no output and get a zero gradient
    pytest.param((1, 5, 6, 7), (3, 1, 1), (2, 2), (1, 1), (1, 1), id="1x1-stride2-pad1"),
    pytest.param((1, 17, 5, 4), (33, 3, 3), (1, 1), (1, 1), (1, 1), id="several-tiles"),
    # 1x4 outputs: a 16-pixel step spans 4 images
    pytest.param((5, 4, 3, 4), (3, 3, 3), (1, 1), (0, 1), (1, 1), id="tiny-output"),
]


def kernels():
    return get_backend("interp").kernels


def arrays(*shapes, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(dtype) for shape in shapes]


def case_arrays(input_shape, weight_khw, stride, padding, dilation, dtype=np.float64):
    """x, weight, bias and an upstream gradient of the convolution's output shape."""
    k, kh, kw = weight_khw
    x, weight, bias = arrays(input_shape, (k, input_shape[1], kh, kw), (k,), dtype=dtype)
    out_shape = torch_conv(x, weight, None, stride, padding, dilation)[0].shape
    (grad,) = arrays(out_shape, seed=1, dtype=dtype)
    return x, weight, bias, grad


def torch_conv(x, weight, bias, stride, padding, dilation, grad=None):
    """(out, dx, dweight) in float64 by torch; the gradients only when `grad` is given."""
    x_t, w_t = (torch.tensor(np.array(a, np.float64), requires_grad=True) for a in (x, weight))
    b_t = None if bias is None else torch.tensor(np.array(bias, np.float64))
    out = torch.nn.functional.conv2d(x_t, w_t, b_t, stride, padding, dilation)
    if grad is None:
        return out.detach().numpy(), None, None
    out.backward(torch.tensor(np.array(grad, np.float64)))
    return out.detach().numpy(), x_t.grad.numpy(), w_t.grad.numpy()


def run_kernels(x, weight, bias, grad, stride, padding, dilation):
    table = kernels()
    geometry = stride, padding, dilation
    return (table.conv2d(x, weight, bias, *geometry),
            table.conv2d_backward_input(grad, weight, x.shape, *geometry),
            table.conv2d_backward_weight(grad, x, weight.shape, *geometry))


@pytest.mark.parametrize("input_shape, weight_khw, stride, padding, dilation", CASES)
def test_float64_matches_torch(input_shape, weight_khw, stride, padding, dilation):
    geometry = stride, padding, dilation
    x, weight, bias, grad = case_arrays(input_shape, weight_khw, *geometry)
    got = run_kernels(x, weight, bias, grad, *geometry)
    expected = torch_conv(x, weight, bias, *geometry, grad=grad)
    for out, reference in zip(got, expected):
        assert out.dtype == np.float64 and out.shape == reference.shape
        np.testing.assert_allclose(out, reference, **TOLERANCE["float64"])
    no_bias = kernels().conv2d(x, weight, None, *geometry)
    np.testing.assert_allclose(no_bias, torch_conv(x, weight, None, *geometry)[0],
                               **TOLERANCE["float64"])


@pytest.mark.parametrize("dtype", [
    "float32", "float16",
    pytest.param("bfloat16", marks=pytest.mark.skip(
        reason="NumPy has no bfloat16, so the interp device cannot hold bfloat16 arrays; the "
               "bf16 kernels are compile-checked for sm_80/sm_90 in test_kernel_compile.py"))])
@pytest.mark.parametrize("input_shape, weight_khw, stride, padding, dilation", CASES[:2])
def test_low_precision_accumulates_in_float32(dtype, input_shape, weight_khw, stride, padding,
                                             dilation):
    geometry = stride, padding, dilation
    x, weight, bias, grad = case_arrays(input_shape, weight_khw, *geometry, dtype=dtype)
    got = run_kernels(x, weight, bias, grad, *geometry)
    # the reference sees the same rounded inputs, in float64
    expected = torch_conv(x, weight, bias, *geometry, grad=grad)
    for out, reference in zip(got, expected):
        assert out.dtype == dtype
        np.testing.assert_allclose(out.astype(np.float64), reference, **TOLERANCE[dtype])


def test_strided_operands_are_read_in_place():
    """Channels-last, sliced and flipped views, a strided bias and a transposed gradient."""
    geometry = (2, 1), (1, 1), (1, 2)
    x_nhwc, weight_hwck, bias_wide, x_big = arrays((2, 7, 6, 3), (3, 2, 3, 5), (10,),
                                                   (2, 6, 14, 13))
    weight = weight_hwck.transpose(3, 2, 0, 1)  # (K, C, KH, KW), no unit stride
    bias = bias_wide[::-2]
    for x in (x_nhwc.transpose(0, 3, 1, 2), x_big[:, ::2, 1::2, ::-2]):
        out, _, _ = torch_conv(x, weight, bias, *geometry)
        (grad_nhwc,) = arrays(out.shape[:1] + out.shape[2:] + out.shape[1:2], seed=2)
        grad = grad_nhwc.transpose(0, 3, 1, 2)
        got = run_kernels(x, weight, bias, grad, *geometry)
        expected = torch_conv(x, weight, bias, *geometry, grad=grad)
        for out, reference in zip(got, expected):
            np.testing.assert_allclose(out, reference, **TOLERANCE["float64"])


def test_backward_weight_splits_the_reduction(monkeypatch):
    monkeypatch.setattr(conv_kernels, "MIN_SPLIT_PIXELS", 8)
    geometry = (1, 1), (1, 1), (1, 1)
    x, weight, _, grad = case_arrays((2, 3, 6, 5), (4, 3, 3), *geometry)
    splits, split_pixels = conv_kernels.backward_weight_splits(2 * 6 * 5, 9, 16)
    assert splits == 4 and split_pixels == 16  # 60 pixels in 16-pixel steps, none left empty
    dw = conv_kernels.conv2d_backward_weight(Launcher(interpret=True), grad, x, weight.shape,
                                             *geometry)
    np.testing.assert_allclose(dw, torch_conv(x, weight, None, *geometry, grad=grad)[2],
                               **TOLERANCE["float64"])


def test_empty_batch_gives_empty_output_and_zero_weight_gradient():
    geometry = (1, 1), (1, 1), (1, 1)
    x, weight, grad = np.ones((0, 3, 4, 4)), np.ones((2, 3, 3, 3)), np.ones((0, 2, 4, 4))
    out, dx, dw = run_kernels(x, weight, None, grad, *geometry)
    assert out.shape == (0, 2, 4, 4) and dx.shape == x.shape
    np.testing.assert_array_equal(dw, np.zeros(weight.shape))
    # no output channels: nothing flows back to x
    dx = kernels().conv2d_backward_input(np.ones((1, 0, 4, 4)), np.ones((0, 3, 3, 3)),
                                         (1, 3, 4, 4), *geometry)
    np.testing.assert_array_equal(dx, np.zeros((1, 3, 4, 4)))


def test_channels_last_copies_only_what_is_not_channels_last_already():
    """The launchers' NCHW -> NHWC pass: a view for channels-last memory, the Triton copy
    where H and W fold into one pixel axis, the array module's copy elsewhere."""
    launcher = Launcher(interpret=True)
    (x,) = arrays((2, 6, 5, 8))
    nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    assert conv2d_passes.to_channels_last(launcher, nhwc.transpose(0, 3, 1, 2)).base is nhwc
    # channel and row slices, one row, one column, every other column (still foldable),
    # then a column window and a flip (not foldable)
    for view in (x, x[:, ::2], x[:, :, 1:4], x[:, :, :1], x[..., :1], x[..., ::2],
                 x[..., 1:5], x[..., ::-1]):
        got = conv2d_passes.to_channels_last(launcher, view)
        assert got.flags.c_contiguous
        np.testing.assert_array_equal(got, view.transpose(0, 2, 3, 1))


@pytest.mark.parametrize("call, error, message", [
    (lambda k: k.conv2d(np.ones((1, 3, 5, 5)), np.ones((2, 4, 3, 3)), None, (1, 1), (0, 0),
                        (1, 1)),
     ValueError, (r"input of shape \(1, 3, 5, 5\) has 3 channels but the weight of shape "
                  r"\(2, 4, 3, 3\) expects 4")),
    (lambda k: k.conv2d(np.ones((1, 3, 2, 2)), np.ones((2, 3, 3, 3)), None, (1, 1), (0, 0),
                        (1, 1)),
     ValueError, r"does not fit the 2x2 input padded by \(0, 0\): the output would be 0x0"),
    (lambda k: k.conv2d(np.ones((1, 3, 5, 5)), np.ones((2, 3, 3, 3)), np.ones(3), (1, 1),
                        (0, 0), (1, 1)),
     ValueError, r"bias of shape \(2,\)"),
    (lambda k: k.conv2d(np.ones((1, 3, 5, 5)), np.ones((2, 3, 3, 3)), None, (0, 1), (0, 0),
                        (1, 1)),
     ValueError, r"stride must be a pair of ints >= 1, got \(0, 1\)"),
    (lambda k: k.conv2d(np.ones((1, 3, 5, 5), np.float32), np.ones((2, 3, 3, 3)), None, (1, 1),
                        (0, 0), (1, 1)),
     TypeError, "expected one dtype, got float32, float64"),
    (lambda k: k.conv2d(np.ones((1, 3, 5, 5), int), np.ones((2, 3, 3, 3), int), None, (1, 1),
                        (0, 0), (1, 1)),
     TypeError, "supports float16, bfloat16, float32, float64, got int64"),
    (lambda k: k.conv2d_backward_input(np.ones((1, 2, 4, 4)), np.ones((2, 3, 3, 3)),
                                       (1, 3, 5, 5), (1, 1), (0, 0), (1, 1)),
     ValueError, r"expected a gradient of shape \(1, 2, 3, 3\)"),
])
def test_launcher_errors_name_the_problem(call, error, message):
    with pytest.raises(error, match=message):
        call(kernels())


def huge(*shape):
    """An array of `shape` that takes one element of memory (all strides 0)."""
    return np.broadcast_to(np.ones((1,) * len(shape)), shape)


@pytest.mark.parametrize("call, message", [
    # 2**16 x 2**15 pixels of one channel: the pixel index of the kernels reaches 2**31
    (lambda k: k.conv2d(huge(1, 1, 2**16, 2**15), np.ones((1, 1, 1, 1)), None, (1, 1),
                        (0, 0), (1, 1)),
     r"conv2d: .*padded input pixels N\*\(H\+2\*pad_h\)\*\(W\+2\*pad_w\) = 2147483648; "
     r"output pixels N\*OH\*OW = 2147483648 reach 2\*\*31"),
    # the padding alone takes a 2**31 - 2 pixel image past the limit
    (lambda k: k.conv2d_backward_input(huge(1, 1, 2, 2**30 - 1), np.ones((1, 1, 1, 1)),
                                       (1, 1, 2, 2**30 - 1), (2, 1), (1, 0), (1, 1)),
     r"conv2d_backward_input: .*padded input pixels .* = 4294967292 reach 2\*\*31"),
    (lambda k: k.conv2d_backward_weight(huge(1, 2**16, 1, 1), huge(1, 2**15, 1, 1),
                                        (2**16, 2**15, 1, 1), (1, 1), (0, 0), (1, 1)),
     r"weight elements K\*C\*KH\*KW = 2147483648 reach 2\*\*31"),
])
def test_indices_past_32_bits_are_refused_before_any_copy(call, message):
    """The kernels' pixel and weight indices are int32; past them, a clear error (the arrays
    here are broadcasts of one element, so a copy or launch would not go unnoticed)."""
    with pytest.raises(ValueError, match=message):
        call(kernels())


def test_gradcheck_through_the_kernels_in_float64(monkeypatch):
    """tg's conv2d op on "interp" runs the three kernels, and its gradients are right."""
    table, calls = kernels(), Counter()

    def counted(name, kernel):
        def call(*args):
            calls[name] += 1
            return kernel(*args)
        return call

    for name in KERNEL_NAMES:
        monkeypatch.setattr(table, name, counted(name, getattr(table, name)))
    x, weight, bias = (tg.Tensor(a, dtype=tg.float64, device="interp", requires_grad=True)
                       for a in arrays((1, 2, 5, 4), (3, 2, 3, 2), (3,)))
    assert tg.gradcheck(lambda x, w, b: F.conv2d(x, w, b, stride=(2, 1), padding=1,
                                                 dilation=(1, 2)).tanh(), (x, weight, bias),
                         fast_mode=True)
    assert all(calls[name] > 0 for name in KERNEL_NAMES), calls


@pytest.fixture
def marshalled_cuda():
    """The "cuda" device on the launch-marshalling test device (backend/marshal_device.py):
    the real launchers, binder and sm_90 compile with the GPU tiles, interpreted arithmetic."""
    from tinygrad_like.backend import marshal_device

    marshal_device.LAUNCHES.clear()
    with marshal_device.as_cuda():
        yield marshal_device.LAUNCHES


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_gpu_tiles_through_the_cuda_launch_path(marshalled_cuda, dtype):
    """The 16-bit kernels with the GPU's 128x128x64 tiles, launched by "cuda"'s own code
    (channels-last copies, specialisation, grids): 16 channels fill a quarter of each
    channel step, and stride 2 exercises backward-input's phase mask."""
    geometry = (2, 1), (1, 1), (1, 2)
    x, weight, bias, grad = case_arrays((2, 16, 7, 6), (24, 3, 3), *geometry)
    x_t, w_t = (tg.tensor(a, dtype=getattr(tg, dtype), device="cuda", requires_grad=True)
                for a in (x, weight))
    out = F.conv2d(x_t, w_t, tg.tensor(bias, dtype=getattr(tg, dtype), device="cuda"),
                   *geometry)
    out.backward(tg.tensor(grad, dtype=getattr(tg, dtype), device="cuda"))
    kernels_launched = [launched.kernel for launched in marshalled_cuda]
    assert [name for name in kernels_launched if name.startswith("conv2d")] == [
        "conv2d_forward_kernel", "conv2d_backward_input_kernel", "conv2d_backward_weight_kernel"]
    # x for the forward, grad for backward-input, grad and x for backward-weight
    assert kernels_launched.count("channels_last_kernel") == 4
    assert marshalled_cuda[-1].signature["x_ptr"] == "*" + {"float16": "fp16",
                                                            "bfloat16": "bf16"}[dtype]
    # the reference takes the inputs rounded to the dtype, as the kernels did
    x, weight, bias, grad = (tg.tensor(a, dtype=getattr(tg, dtype)).float().numpy()
                             for a in (x, weight, bias, grad))
    expected = torch_conv(x, weight, bias, *geometry, grad=grad)
    for got, reference in zip((out, x_t.grad, w_t.grad), expected):
        scale = np.abs(reference).max()
        np.testing.assert_allclose(got.detach().float().numpy(), reference, rtol=2e-2,
                                   atol=1e-2 * scale)


@pytest.mark.parametrize("capability, arch", [(80, 80), (86, 80), (90, 90), (120, 90)])
def test_tiles_are_picked_by_compute_capability(capability, arch):
    assert arch_for("conv2d", capability, conv_kernels.ARCHS) == arch


@pytest.mark.cuda
def test_cuda_matches_torch_in_float16():
    import cupy

    geometry = (1, 1), (1, 1), (1, 1)
    x, weight, bias, grad = case_arrays((8, 64, 28, 28), (64, 3, 3), *geometry,
                                        dtype=np.float16)
    launcher = Launcher(interpret=False)
    x_d, weight_d, bias_d, grad_d = map(cupy.asarray, (x, weight, bias, grad))
    got = (conv_kernels.conv2d(launcher, x_d, weight_d, bias_d, *geometry),
           conv_kernels.conv2d_backward_input(launcher, grad_d, weight_d, x.shape, *geometry),
           conv_kernels.conv2d_backward_weight(launcher, grad_d, x_d, weight.shape, *geometry))
    expected = torch_conv(x, weight, bias, *geometry, grad=grad)
    for out, reference in zip(got, expected):
        assert out.dtype == np.float16
        scale = np.abs(reference).max()
        np.testing.assert_allclose(cupy.asnumpy(out).astype(np.float64), reference, rtol=2e-3,
                                   atol=1e-3 * scale)
