"""The Triton softmax, log-softmax and cross-entropy kernels (kernels/triton/softmax.py and
cross_entropy.py), run through Triton's interpreter on the "interp" device.

Every test builds the same graph on "interp" and on "cpu" (the NumPy reference kernels) and
compares outputs and gradients. Rows stay few where they are wide: the interpreter is slow.
"""

from __future__ import annotations

import numpy as np
import pytest

import tinygrad_like as tg
import tinygrad_like.nn.functional as F
from tinygrad_like.backend import cpu, get_backend

pytest.importorskip("triton")
pytest.importorskip("torch")  # the interpreter's carrier for NumPy memory

from tinygrad_like.kernels.triton import catalog
from tinygrad_like.kernels.triton import cross_entropy as cross_entropy_kernels
from tinygrad_like.kernels.triton import softmax as softmax_kernels
from tinygrad_like.kernels.triton.launch import Launcher

SOFTMAXES = {"softmax": F.softmax, "log_softmax": F.log_softmax}
# float16 stores y with an 11-bit mantissa: a log-probability near -10 is off by up to 2**-7,
# which log-softmax's backward multiplies by exp(y) * sum(g)
TOLERANCE = {"float32": {"rtol": 1e-5, "atol": 1e-6}, "float16": {"rtol": 1e-2, "atol": 1e-2}}


def run_both(fn, arrays, dtype=tg.float32, upstream_seed=0):
    """fn(*tensors) forward and backward (random upstream gradient) on interp and on cpu.

    The cpu graph runs in float32 whatever `dtype` is, as the reference for half precision.
    Returns {device: (output, [input grads])} as float64 NumPy arrays.
    """
    results = {}
    for device, run_dtype in (("interp", dtype), ("cpu", tg.float32)):
        inputs = [tg.Tensor(a, dtype=run_dtype, device=device, requires_grad=True)
                  for a in arrays]
        out = fn(*inputs)
        upstream = np.random.default_rng(upstream_seed).standard_normal(out.shape)
        out.backward(tg.Tensor(upstream, dtype=run_dtype, device=device))
        results[device] = (out.detach().numpy().astype(np.float64),
                           [x.grad.numpy().astype(np.float64) for x in inputs])
    return results


def assert_same(results, dtype="float32"):
    (out, grads), (ref_out, ref_grads) = results["interp"], results["cpu"]
    np.testing.assert_allclose(out, ref_out, **TOLERANCE[dtype])
    for grad, ref_grad in zip(grads, ref_grads):
        np.testing.assert_allclose(grad, ref_grad, **TOLERANCE[dtype])


@pytest.fixture
def online_everywhere(monkeypatch):
    """Force the online (two-loop) kernels from 17 columns on, in steps of 16 columns."""
    monkeypatch.setattr(softmax_kernels, "SINGLE_PASS_MAX_COLS", 16)
    monkeypatch.setattr(softmax_kernels, "ONLINE_BLOCK", 16)


def test_interp_device_dispatches_to_these_kernels():
    table = get_backend("interp").kernels
    for module in (softmax_kernels, cross_entropy_kernels):
        for name in ("softmax", "log_softmax", "softmax_backward", "log_softmax_backward",
                     "cross_entropy", "cross_entropy_backward"):
            if hasattr(module, name):
                assert getattr(table, name).func is getattr(module, name)
                assert getattr(table, name).args[0].interpret


# ---- softmax / log_softmax -------------------------------------------------------------------
@pytest.mark.parametrize("name", SOFTMAXES)
@pytest.mark.parametrize("rows, width", [(3, 1), (4, 37), (2, 4097), (2, 50257)])
def test_softmax_rows_match_cpu(name, rows, width):
    # 4097 is one column past a power of two (masked tail); 50,257 exceeds SINGLE_PASS_MAX_COLS
    # and runs the online kernels, forward and backward
    x = np.random.default_rng(width).standard_normal((rows, width)) * 4
    assert_same(run_both(lambda t: SOFTMAXES[name](t, -1), [x]))


@pytest.mark.parametrize("name", SOFTMAXES)
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_softmax_3d_any_dim(name, dim):
    x = np.random.default_rng(1).standard_normal((4, 5, 6)) * 3
    assert_same(run_both(lambda t: SOFTMAXES[name](t, dim), [x]))


@pytest.mark.parametrize("name", SOFTMAXES)
@pytest.mark.parametrize("dim", [0, -1])
def test_softmax_online_kernels_any_dim(name, dim, online_everywhere):
    x = np.random.default_rng(2).standard_normal((17, 2, 18)) * 3  # 2 steps per row either way
    assert_same(run_both(lambda t: SOFTMAXES[name](t, dim), [x]))


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_online_kernels_skip_leading_minus_inf_blocks(name, online_everywhere):
    # masked logits: the first 16-column block of a row is all -inf, so the running max is
    # -inf for a whole step, which must not turn the running sum into NaN
    x = np.random.default_rng(3).standard_normal((2, 40))
    x[:, :20] = -np.inf
    launcher = Launcher(interpret=True)
    got = getattr(softmax_kernels, name)(launcher, x.astype(np.float32), 1)
    np.testing.assert_allclose(got, getattr(cpu, name)(x, 1), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", SOFTMAXES)
@pytest.mark.parametrize("width", [37, 4097])
def test_softmax_float16_computes_in_float32(name, width):
    x = np.random.default_rng(4).standard_normal((2, width)) * 4
    results = run_both(lambda t: SOFTMAXES[name](t, -1), [x], dtype=tg.float16)
    assert_same(results, "float16")


def test_softmax_outputs_keep_the_input_dtype():
    for dtype in (tg.float16, tg.float32, tg.float64):
        x = tg.randn(2, 3, dtype=dtype, device="interp")
        assert F.softmax(x, -1).dtype == dtype and F.log_softmax(x, 0).dtype == dtype


@pytest.mark.parametrize("layout", ["transposed", "sliced", "uncollapsible", "broadcast"])
def test_softmax_launchers_read_strided_arrays(layout):
    rng = np.random.default_rng(5)
    base = rng.standard_normal((6, 5, 8)).astype(np.float32)
    x, axis = {"transposed": (base.transpose(2, 0, 1), 0),  # rows strided, no copy
               "sliced": (base[:, ::2, ::-3], 1),  # a negative stride: copied
               "uncollapsible": (base.transpose(1, 0, 2), 2),  # leading dims need two strides
               "broadcast": (np.broadcast_to(base[:1, :1], (6, 5, 8)), 2)}[layout]  # stride 0
    launcher = Launcher(interpret=True)
    for name in ("softmax", "log_softmax"):
        got = getattr(softmax_kernels, name)(launcher, x, axis)
        assert got.shape == x.shape and got.flags.c_contiguous
        np.testing.assert_allclose(got, getattr(cpu, name)(x, axis), rtol=1e-5, atol=1e-6)
        y = getattr(cpu, name)(np.ascontiguousarray(x), axis)  # x doubles as a strided grad
        np.testing.assert_allclose(
            getattr(softmax_kernels, f"{name}_backward")(launcher, x, y, axis),
            getattr(cpu, f"{name}_backward")(x, y, axis), rtol=1e-5, atol=1e-5)


def test_softmax_edge_shapes():
    scalar = tg.Tensor(3.0, device="interp")
    assert F.softmax(scalar).item() == 1.0 and F.log_softmax(scalar).item() == 0.0
    assert F.softmax(tg.zeros(0, 5, device="interp"), -1).shape == (0, 5)
    assert F.log_softmax(tg.zeros(3, 0, device="interp"), 0).shape == (3, 0)


def test_softmax_launcher_errors_name_the_problem():
    launcher = Launcher(interpret=True)
    with pytest.raises(TypeError, match="softmax: expected a floating-point"):
        softmax_kernels.softmax(launcher, np.arange(4), 0)
    with pytest.raises(ValueError, match="axis 2 is out of range"):
        softmax_kernels.log_softmax(launcher, np.zeros((2, 2), np.float32), 2)
    with pytest.raises(ValueError, match="must match the saved output"):
        softmax_kernels.softmax_backward(launcher, np.zeros(3, np.float32),
                                         np.zeros(4, np.float32), 0)


# ---- cross-entropy ---------------------------------------------------------------------------
def class_targets(rows, classes, seed, ignored=(1,), ignore_index=-100):
    target = np.random.default_rng(seed).integers(0, classes, rows)
    target[list(ignored)] = ignore_index
    return target


@pytest.mark.parametrize("rows, classes", [(5, 1), (6, 37), (3, 4097), (3, 50257)])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy_rows_match_cpu(rows, classes, smoothing):
    logits = np.random.default_rng(classes).standard_normal((rows, classes)) * 3
    target = class_targets(rows, classes, seed=classes)
    results = {}
    for device in ("interp", "cpu"):
        x = tg.Tensor(logits, dtype=tg.float32, device=device, requires_grad=True)
        losses = F.cross_entropy(x, tg.Tensor(target, device=device), reduction="none",
                                 label_smoothing=smoothing)
        losses.backward(tg.Tensor(np.arange(1.0, rows + 1), dtype=tg.float32, device=device))
        results[device] = (losses.detach().numpy(), [x.grad.numpy()])
    assert_same(results)
    assert results["interp"][0][1] == 0 and not results["interp"][1][0][1].any()  # ignored row


@pytest.mark.parametrize("device", ["cpu", "interp"])
def test_cross_entropy_with_masked_logits_matches_torch(device):
    # -inf logits (masked classes) give a finite loss without smoothing, as in PyTorch, where
    # the smoothing term's 0 * -inf once made it NaN; with smoothing the loss is inf in both
    import torch

    logits = np.array([[0.5, -np.inf, 1.0, 2.0], [-np.inf, -np.inf, 3.0, 0.0]], np.float32)
    target = np.array([0, 3])
    for smoothing in (0.0, 0.1):
        x = tg.Tensor(logits, device=device, requires_grad=True)
        loss = F.cross_entropy(x, tg.Tensor(target, device=device), label_smoothing=smoothing)
        expected_x = torch.from_numpy(logits).requires_grad_()
        expected = torch.nn.functional.cross_entropy(expected_x, torch.from_numpy(target),
                                                     label_smoothing=smoothing)
        np.testing.assert_allclose(loss.item(), expected.item(), rtol=1e-6)
        if smoothing == 0.0:
            loss.backward()
            expected.backward()
            np.testing.assert_allclose(x.grad.numpy(), expected_x.grad.numpy(), rtol=1e-6,
                                       atol=1e-7)


@pytest.mark.parametrize("reduction", ["mean", "none", "sum"])
def test_functional_cross_entropy_on_4d_input(reduction):
    # (N, C, H, W) logits reach the kernel as transposed (N*H*W, C) rows
    rng = np.random.default_rng(6)
    logits, target = rng.standard_normal((2, 7, 3, 2)), rng.integers(0, 7, (2, 3, 2))
    target[0, 1] = 5
    def loss(x):
        return F.cross_entropy(x, tg.Tensor(target, device=x.device), ignore_index=5,
                               reduction=reduction, label_smoothing=0.2)

    assert_same(run_both(loss, [logits]))


def test_cross_entropy_float16_keeps_float32_lse():
    rng = np.random.default_rng(7)
    logits, target = rng.standard_normal((4, 300)).astype(np.float16), class_targets(4, 300, 7)
    launcher = Launcher(interpret=True)
    losses, lse = cross_entropy_kernels.cross_entropy(launcher, logits, target, -100, 0.1)
    ref_losses, ref_lse = cpu.cross_entropy(logits.astype(np.float32), target, -100, 0.1)
    assert losses.dtype == np.float16 and lse.dtype == np.float32
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-2, atol=2e-3)
    np.testing.assert_allclose(lse, ref_lse, rtol=1e-6)
    grad = np.linspace(-1, 1, 4).astype(np.float16)
    dlogits = cross_entropy_kernels.cross_entropy_backward(launcher, grad, logits, target, lse,
                                                           -100, 0.1)
    assert dlogits.dtype == np.float16
    np.testing.assert_allclose(dlogits, cpu.cross_entropy_backward(
        grad.astype(np.float32), logits.astype(np.float32), target, ref_lse, -100, 0.1),
        rtol=1e-2, atol=1e-4)


def test_cross_entropy_launcher_errors_name_the_problem():
    launcher = Launcher(interpret=True)
    logits = np.zeros((3, 4), np.float32)
    with pytest.raises(ValueError, match=r"cross_entropy: expected \(N, C\) logits"):
        cross_entropy_kernels.cross_entropy(launcher, logits, np.zeros(2, np.int64), -100, 0.0)
    with pytest.raises(TypeError, match="class indices"):
        cross_entropy_kernels.cross_entropy(launcher, logits, np.zeros(3, np.float32), -100, 0.0)
    with pytest.raises(ValueError, match="lse must have shape"):
        cross_entropy_kernels.cross_entropy_backward(launcher, np.ones(3, np.float32), logits,
                                                     np.zeros(3, np.int64),
                                                     np.zeros(2, np.float32), -100, 0.0)


# ---- float64 gradient checks through the interpreted kernels ---------------------------------
def interp64(shape, seed):
    data = np.random.default_rng(seed).standard_normal(shape)
    return tg.Tensor(data, dtype=tg.float64, device="interp", requires_grad=True)


@pytest.mark.parametrize("name", SOFTMAXES)
@pytest.mark.parametrize("dim", [0, -1])
def test_gradcheck_softmax_float64(name, dim):
    assert tg.gradcheck(lambda x: SOFTMAXES[name](x, dim), [interp64((2, 3, 3), 8)])


@pytest.mark.parametrize("name", SOFTMAXES)
def test_gradgradcheck_softmax_float64(name):
    assert tg.gradgradcheck(lambda x: SOFTMAXES[name](x, 1), [interp64((2, 5), 9)])


@pytest.mark.parametrize("smoothing", [0.0, 0.3])
def test_gradcheck_cross_entropy_float64(smoothing):
    target = tg.Tensor(class_targets(4, 6, seed=10), device="interp")
    assert tg.gradcheck(lambda x: F.cross_entropy(x, target, label_smoothing=smoothing),
                        [interp64((4, 6), 11)])


# ---- ahead-of-time variants (compiled and inspected by tests/test_kernel_compile.py) ---------
def test_compile_variants_cover_every_kernel_dtype_and_path():
    softmax_variants = catalog.softmax_variants()
    entropy_variants = catalog.cross_entropy_variants()
    assert len(softmax_variants) == 4 * 3 * 2 and len(entropy_variants) == 2 * 3
    assert len({(v.name, v.dtype) for v in softmax_variants + entropy_variants}) == 30
    for v in softmax_variants + entropy_variants:
        assert list(v.signature) == v.kernel.arg_names
        assert {k for k, t in v.signature.items() if t == "constexpr"} == set(v.constexprs)
        assert not v.tensor_cores and v.flops > 0 and v.bytes_moved >= v.ideal_bytes > 0
    online = [v for v in softmax_variants if v.name.endswith("_online")]
    assert all(v.bytes_moved > v.ideal_bytes for v in online)  # the second read of the row


# ---- the same kernels compiled, on a GPU -----------------------------------------------------
@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [tg.float32, tg.float16])
def test_cuda_softmax_and_cross_entropy_match_cpu(dtype):
    # the same launchers compiled: the single-pass kernels at 4096 columns, online at 50,257
    rng = np.random.default_rng(12)
    tolerance = TOLERANCE[dtype.name]
    for width in (4096, 50257):
        x = rng.standard_normal((64, width)) * 3
        for fn in SOFTMAXES.values():
            for dim in (-1, 0):
                got = fn(tg.Tensor(x, dtype=dtype, device="cuda"), dim).cpu().numpy()
                np.testing.assert_allclose(got.astype(np.float64), fn(tg.Tensor(x), dim).numpy(),
                                           **tolerance)
        target = class_targets(64, width, seed=width)
        results = {}
        for device, run_dtype in (("cuda", dtype), ("cpu", tg.float32)):
            logits = tg.Tensor(x, dtype=run_dtype, device=device, requires_grad=True)
            loss = F.cross_entropy(logits, tg.Tensor(target, device=device), label_smoothing=0.1)
            loss.backward()
            results[device] = (loss.item(), logits.grad.cpu().numpy().astype(np.float64))
        np.testing.assert_allclose(results["cuda"][0], results["cpu"][0], **tolerance)
        np.testing.assert_allclose(results["cuda"][1], results["cpu"][1], **tolerance)


# ---- online kernels: aligned row bodies, scalar label smoothing ------------------------------
def test_contiguous_rows_are_split_at_16_byte_boundaries():
    x = np.zeros((3, 50257), np.float32)
    assert softmax_kernels.alignment([x, np.empty_like(x)], [(50257, 1, 1)] * 2) == 4
    assert softmax_kernels.alignment([x.astype(np.float16)], [(50257, 1, 1)]) == 8
    # a strided column, or two arrays of different layouts, share no split
    assert softmax_kernels.alignment([x], [(1, 3, 1)]) == 1
    assert softmax_kernels.alignment([x, x], [(50257, 1, 1), (50260, 1, 1)]) == 1


@pytest.mark.parametrize("offset", [0, 1, 2, 3])
def test_online_softmax_rows_at_every_misalignment(offset, online_everywhere):
    # an aligned base (offset 0, ALIGN 4): 5 rows of 37 columns start at every element offset
    # mod 4, so rows have heads, bodies of whole 16-byte groups and tails; an unaligned base
    # (offsets 1 to 3) falls back to ALIGN 1
    base = np.random.default_rng(13).standard_normal(5 * 37 + 4).astype(np.float32) * 3
    x = base[offset:offset + 5 * 37].reshape(5, 37)
    grad = np.random.default_rng(14).standard_normal(5 * 37 + 4).astype(np.float32)
    grad = grad[offset:offset + 5 * 37].reshape(5, 37)
    launcher = Launcher(interpret=True)
    for name in ("softmax", "log_softmax"):
        y = getattr(softmax_kernels, name)(launcher, x, 1)
        np.testing.assert_allclose(y, getattr(cpu, name)(x, 1), rtol=1e-5, atol=1e-6)
        # the backward splits g, y and dx as the forward splits x (y here is freshly
        # allocated, so aligned: only g's offset decides between ALIGN 4 and 1)
        backward = f"{name}_backward"
        got = getattr(softmax_kernels, backward)(launcher, grad, y, 1)
        np.testing.assert_allclose(got, getattr(cpu, backward)(grad, y, 1), rtol=1e-5,
                                   atol=1e-6)


@pytest.mark.parametrize("offset", [0, 1, 2, 3])
def test_cross_entropy_backward_tiles_at_every_misalignment(offset, monkeypatch):
    # 16-column tiles over rows of 37 that start at every offset mod 4 (offset 0, ALIGN 4):
    # each row's body spans several tiles, and its first tile also does the head and tail,
    # where some targets lie; offsets 1 to 3 (an unaligned base) fall back to ALIGN 1
    monkeypatch.setattr(cross_entropy_kernels, "BLOCK_COLS", 16)
    base = np.random.default_rng(15).standard_normal(5 * 37 + 4).astype(np.float32) * 3
    logits = base[offset:offset + 5 * 37].reshape(5, 37)
    target = np.array([0, 36, 1, -100, 35])
    launcher = Launcher(interpret=True)
    losses, lse = cross_entropy_kernels.cross_entropy(launcher, logits, target, -100, 0.1)
    grad_loss = np.arange(1.0, 6.0, dtype=np.float32)
    got = cross_entropy_kernels.cross_entropy_backward(launcher, grad_loss, logits, target, lse,
                                                       -100, 0.1)
    want = cpu.cross_entropy_backward(grad_loss, logits, target, lse, -100, 0.1)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert not got[3].any()  # the ignored row


def test_label_smoothing_is_passed_as_scalars_exact_in_float64():
    high, low = cross_entropy_kernels._smoothing(0.1)
    assert isinstance(high, float) and np.float32(high) == high and high + low == 0.1
    rng = np.random.default_rng(14)
    logits, target = rng.standard_normal((4, 37)), class_targets(4, 37, 14)
    launcher = Launcher(interpret=True)
    losses, _ = cross_entropy_kernels.cross_entropy(launcher, logits, target, -100, 0.1)
    np.testing.assert_allclose(losses, cpu.cross_entropy(logits, target, -100, 0.1)[0],
                               rtol=1e-13)
