"""tg.bfloat16 on "cuda" (issue 19): float32 arithmetic on 16-bit storage, rounded once.

Run on the launch-marshalling test device (tinygrad_like/backend/marshal_device.py): the
"cuda" backend's own code on a stand-in CuPy, the Triton kernels compiled for sm_90 and
interpreted. "cpu" computes bfloat16 with ml_dtypes, which also widens to float32 and rounds
each result once, so elementwise results must agree bit for bit; the Triton kernels
(matmul, softmax, cross-entropy) accumulate in another order, so they are compared closely.
"""

from __future__ import annotations

import numpy as np
import pytest

import tinygrad_like as tg
import tinygrad_like.nn.functional as F
from tinygrad_like import nn
from tinygrad_like.backend import marshal_device
from tinygrad_like.kernels.triton.bfloat16_array import (
    BFLOAT16,
    Bfloat16Array,
    Bfloat16Arrays,
    round_to_bfloat16,
    widen,
)


@pytest.fixture(scope="module")
def gpu():
    """The "cuda" device, as built by cuda_device.make_backend, on a stand-in GPU."""
    with marshal_device.as_cuda(device_count=1) as backend:
        yield backend


def _data(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _pair(x):
    """The same bfloat16 values on "cuda" and on "cpu"."""
    return tg.tensor(x, dtype=tg.bfloat16, device="cuda"), tg.tensor(x, dtype=tg.bfloat16)


def _same(on_cuda, on_cpu):
    """Bit for bit, with the same dtype; a bfloat16 result on "cuda" is 16-bit storage."""
    assert on_cuda.device == "cuda" and on_cuda.dtype == on_cpu.dtype
    if on_cuda.dtype == tg.bfloat16:
        assert type(on_cuda._array) is Bfloat16Array
    got, expected = on_cuda.numpy(), on_cpu.numpy()
    assert got.shape == expected.shape
    np.testing.assert_array_equal(np.ascontiguousarray(np.atleast_1d(got)).view(np.uint8),
                                  np.ascontiguousarray(np.atleast_1d(expected)).view(np.uint8))


def test_rounding_is_nearest_even_with_nan_kept():
    special = np.array([0x3F808000, 0x3F818000, 0x3F80C000, 0x7F7FFFFF, 0xFF7FFFFF, 0x7FFFFFFF,
                        0xFFC00001, 0x7F800000, 0x80000000, 0x00000001], np.uint32)
    values = np.concatenate([special.view(np.float32), _data(1000) * 1e3, _data(100) * 1e-38])
    got = round_to_bfloat16(values).bits
    np.testing.assert_array_equal(got, values.astype(BFLOAT16).view(np.uint16))
    np.testing.assert_array_equal(widen(got), got.view(BFLOAT16).astype(np.float32))
    wide = np.concatenate([values.astype(np.float64), [1 + 2**-8 + 2**-30, -(1 + 2**-8 + 2**-40),
                                                       1e39, 3e-45]])
    with np.errstate(over="ignore"):
        cast = Bfloat16Arrays(np).astype(wide, BFLOAT16)  # float64: no double rounding
        np.testing.assert_array_equal(cast.bits, wide.astype(BFLOAT16).view(np.uint16))


@pytest.mark.parametrize("name", ["add", "sub", "mul", "div"])
def test_arithmetic_with_tensors_and_scalars_matches_cpu_bitwise(gpu, name):
    (a, a_cpu), (b, b_cpu) = _pair(_data(6, 7, seed=1)), _pair(_data(7, seed=2))
    op = {"add": lambda x, y: x + y, "sub": lambda x, y: x - y, "mul": lambda x, y: x * y,
          "div": lambda x, y: x / y}[name]
    _same(op(a, b), op(a_cpu, b_cpu))
    for scalar in (0.3, 3, -1.7e-3):
        _same(op(a, scalar), op(a_cpu, scalar))
        _same(op(scalar, b), op(scalar, b_cpu))


@pytest.mark.parametrize("name", ["neg", "abs", "exp", "log", "sqrt", "relu", "sigmoid", "tanh"])
def test_unary_matches_cpu_bitwise(gpu, name):
    x = _data(5, 9, seed=3)
    if name in ("log", "sqrt"):
        x = np.abs(x) + 0.01
    on_cuda, on_cpu = _pair(x)
    _same(getattr(on_cuda, name)(), getattr(on_cpu, name)())


def test_reductions_match_cpu_bitwise(gpu):
    on_cuda, on_cpu = _pair(_data(8, 33, seed=4))
    for op in (lambda t: t.sum(), lambda t: t.sum(1), lambda t: t.mean(0), lambda t: t.mean(),
               lambda t: t.max(1).values, lambda t: t.max(), lambda t: t.argmax(1),
               lambda t: t.cumsum(1)):
        _same(op(on_cuda), op(on_cpu))


def test_comparisons_where_and_clamp_match_cpu_bitwise(gpu):
    (a, a_cpu), (b, b_cpu) = _pair(_data(4, 6, seed=5)), _pair(_data(4, 6, seed=6))
    for op in (lambda x, y: x > y, lambda x, y: x <= 0.3, lambda x, y: x == y,
               lambda x, y: tg.where(x > y, x, y), lambda x, y: tg.where(x > 0, x, 0.3),
               lambda x, y: x.clamp(-0.3, 0.7), lambda x, y: tg.maximum(x, y)):
        _same(op(a, b), op(a_cpu, b_cpu))


def test_triton_kernels_take_bfloat16_and_agree_with_cpu(gpu):
    (x, x_cpu), (w, w_cpu) = _pair(_data(16, 32, seed=7)), _pair(_data(24, 32, seed=8))
    bias, bias_cpu = _pair(_data(24, seed=9))
    target = tg.tensor(np.arange(16) % 24, device="cuda")
    for op in (lambda x, w, b: x @ w.T, lambda x, w, b: F.linear(x, w, b),
               lambda x, w, b: F.softmax(x, dim=-1)):
        got, expected = op(x, w, bias), op(x_cpu, w_cpu, bias_cpu)
        assert got.dtype == tg.bfloat16 and type(got._array) is Bfloat16Array
        np.testing.assert_allclose(got.float().numpy(), expected.float().numpy(), rtol=2e-2,
                                   atol=2e-2)
    loss = F.cross_entropy(F.linear(x, w, bias), target)
    expected = F.cross_entropy(F.linear(x_cpu, w_cpu, bias_cpu), target.to("cpu"))
    np.testing.assert_allclose(loss.float().item(), expected.float().item(), rtol=2e-2)


def test_casts_between_float32_bfloat16_and_float16_match_cpu_bitwise(gpu):
    x = np.concatenate([_data(50, seed=10) * 100, [np.nan, np.inf, -0.0, 1e-40]])
    wide, wide_cpu = tg.tensor(x, device="cuda"), tg.tensor(x)
    _same(wide.to(tg.bfloat16), wide_cpu.to(tg.bfloat16))
    _same(wide.to(tg.bfloat16).to(tg.float32), wide_cpu.to(tg.bfloat16).to(tg.float32))
    _same(wide.half().to(tg.bfloat16), wide_cpu.half().to(tg.bfloat16))
    _same(wide.to(tg.bfloat16).half(), wide_cpu.to(tg.bfloat16).half())
    _same(wide.double().to(tg.bfloat16), wide_cpu.double().to(tg.bfloat16))


def test_creation_with_dtype_bfloat16_matches_cpu_bitwise(gpu):
    for make in (lambda d: tg.zeros(3, 4, dtype=tg.bfloat16, device=d),
                 lambda d: tg.ones(3, 4, dtype=tg.bfloat16, device=d),
                 lambda d: tg.full((2, 5), 0.3, dtype=tg.bfloat16, device=d),
                 lambda d: tg.arange(0, 300, 7, dtype=tg.bfloat16, device=d)):
        _same(make("cuda"), make("cpu"))
    for device in ("cuda", "cpu"):
        tg.manual_seed(3)
        drawn = tg.rand(4, 5, dtype=tg.bfloat16, device=device)
        if device == "cuda":
            on_cuda = drawn
    _same(on_cuda, drawn)  # the stand-in's generator is NumPy's: the same draws


def test_indexing_and_setitem_act_on_the_bits_and_views_share_versions(gpu):
    on_cuda, on_cpu = _pair(_data(6, 5, seed=11))
    for index in ((slice(1, 4), 2), (tg.tensor([0, 3, 3]),), (Ellipsis, slice(None, None, 2))):
        cuda_index = tuple(i.to("cuda") if isinstance(i, tg.Tensor) else i for i in index)
        _same(on_cuda[cuda_index], on_cpu[index])
    _same(on_cuda.T.reshape(-1), on_cpu.T.reshape(-1))
    view, view_cpu = on_cuda[1:3], on_cpu[1:3]
    assert view._array.bits.base is not None  # a view of the same 16-bit memory
    view[0] = 0.3
    view_cpu[0] = 0.3
    view.add_(1.1)
    view_cpu.add_(1.1)
    assert view._version is on_cuda._version and on_cuda._version[0] == 2
    _same(on_cuda, on_cpu)


def _gradients(device: str):
    x = tg.tensor(_data(4, 6, seed=12), dtype=tg.bfloat16, device=device, requires_grad=True)
    y = tg.tensor(_data(6, seed=13), dtype=tg.bfloat16, device=device, requires_grad=True)
    ((x * y).sigmoid() * 0.5 + (x - y).tanh()).sum().backward()
    return x.grad, y.grad


def test_backward_gives_bfloat16_gradients_matching_cpu(gpu):
    for got, expected in zip(_gradients("cuda"), _gradients("cpu")):
        assert got.dtype == tg.bfloat16 and type(got._array) is Bfloat16Array
        np.testing.assert_allclose(got.float().numpy(), expected.float().numpy(), rtol=2e-2,
                                   atol=1e-2)


def _train(device: str, steps: int = 3) -> list[float]:
    tg.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4)).to(device)
    x = tg.tensor(_data(8, 16, seed=14), device=device)
    target = tg.tensor(np.arange(8) % 4, device=device)
    losses = []
    for _ in range(steps):
        with tg.autocast(device, dtype=tg.bfloat16):
            loss = F.cross_entropy(model(x), target)
        loss.backward()
        # plain SGD by hand: the optimizers' fused step is a CUDA C kernel, which the
        # stand-in GPU cannot compile (tests/test_cuda_kernels.py checks those on the CPU)
        for p in model.parameters():
            p.data.add_(p.grad, alpha=-0.1)
            p.grad = None
        losses.append(loss.item())
    return losses


def test_an_autocast_bfloat16_training_step_on_cuda_follows_cpu(gpu):
    marshal_device.LAUNCHES.clear()
    on_cuda, on_cpu = _train("cuda"), _train("cpu")
    bf16_matmuls = [launched for launched in marshal_device.LAUNCHES
                    if launched.kernel.startswith("matmul") and "*bf16" in
                    launched.signature.values()]
    assert bf16_matmuls  # the linear layers ran the Triton matmul on bfloat16
    assert on_cuda[-1] < on_cuda[0]
    np.testing.assert_allclose(on_cuda, on_cpu, rtol=3e-2)
