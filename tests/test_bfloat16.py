"""tg.bfloat16 on the CPU (ml_dtypes' NumPy bfloat16) against torch.bfloat16 on the same data.

Ops whose float32 result is correctly rounded (+ - * /, sqrt, comparisons and selections)
round once to bfloat16 in both libraries and must agree bit for bit; transcendental
functions differ between libms in the last float32 bit, so they may round to neighbouring
bfloat16 values; sums, products and softmax accumulate in float32 in both and agree to
bfloat16 precision.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
import torch

import tinygrad_like as tg
from tinygrad_like.nn import functional as F

BF16 = np.dtype(ml_dtypes.bfloat16)
RNG = np.random.default_rng(19)
A = RNG.standard_normal((64, 48)).astype(np.float32) * 3
B = RNG.standard_normal((64, 48)).astype(np.float32) * 3


def ours(array):
    return tg.tensor(array).to(tg.bfloat16)


def theirs(array):
    return torch.tensor(array).to(torch.bfloat16)


def as_float32(result) -> np.ndarray:
    if isinstance(result, torch.Tensor):
        return result.detach().float().numpy()
    return np.asarray(result.detach().float().numpy())


def bits(result) -> np.ndarray:
    """The bfloat16 bit patterns (equal NaNs compare equal as bits)."""
    if isinstance(result, torch.Tensor):
        return result.detach().view(torch.int16).numpy()
    return result.detach().numpy().view(np.int16)


def run_both(program, *arrays):
    mine, reference = program(tg, F, *map(ours, arrays)), program(torch, torch.nn.functional,
                                                                   *map(theirs, arrays))
    assert mine.dtype is tg.bfloat16 and reference.dtype is torch.bfloat16, (mine.dtype,
                                                                             reference.dtype)
    assert mine.shape == tuple(reference.shape)
    return mine, reference


EXACT = {
    "add": lambda lib, F, a, b: a + b,
    "sub": lambda lib, F, a, b: a - b,
    "mul": lambda lib, F, a, b: a * b,
    "div": lambda lib, F, a, b: a / b,
    "add scalar": lambda lib, F, a, b: a + 1.7,
    "sub scalar": lambda lib, F, a, b: a - 0.3,
    "rsub scalar": lambda lib, F, a, b: 0.3 - a,
    "mul scalar": lambda lib, F, a, b: a * 0.3,
    "rmul scalar": lambda lib, F, a, b: 1.3 * a,
    "div scalar": lambda lib, F, a, b: a / 3.0,
    "neg": lambda lib, F, a, b: -a,
    "abs": lambda lib, F, a, b: a.abs(),
    "square": lambda lib, F, a, b: a * a,
    "pow 2": lambda lib, F, a, b: a ** 2,
    "sqrt": lambda lib, F, a, b: a.abs().sqrt(),
    "relu": lambda lib, F, a, b: F.relu(a),
    "maximum": lambda lib, F, a, b: lib.maximum(a, b),
    "minimum": lambda lib, F, a, b: lib.minimum(a, b),
    "where": lambda lib, F, a, b: lib.where(a > b, a, b),
    "where scalar": lambda lib, F, a, b: lib.where(a > 0, a, 0.1),
    "clamp": lambda lib, F, a, b: a.clamp(-0.7, 1.1),
    "amax": lambda lib, F, a, b: a.amax(1),
    "transpose + add": lambda lib, F, a, b: a.T + b.T,
}

TRANSCENDENTAL = {
    "exp": lambda lib, F, a, b: a.exp(),
    "log": lambda lib, F, a, b: a.abs().log(),
    "rsqrt": lambda lib, F, a, b: a.abs().rsqrt(),
    "tanh": lambda lib, F, a, b: a.tanh(),
    "sin": lambda lib, F, a, b: a.sin(),
    "cos": lambda lib, F, a, b: a.cos(),
    "erf": lambda lib, F, a, b: a.erf(),
    "softplus": lambda lib, F, a, b: F.softplus(a),
    "sigmoid": lambda lib, F, a, b: a.sigmoid(),
}

ACCUMULATING = {
    "sum": lambda lib, F, a, b: a.sum(),
    "sum dim": lambda lib, F, a, b: a.sum(1),
    "var": lambda lib, F, a, b: a.var(1),
    "matmul": lambda lib, F, a, b: a @ b.T,
    "linear": lambda lib, F, a, b: F.linear(a, b[:10], b[10, :10]),
    "softmax": lambda lib, F, a, b: F.softmax(a, -1),
    "layer_norm": lambda lib, F, a, b: F.layer_norm(a, (48,)),
    "cross_entropy": lambda lib, F, a, b: F.cross_entropy(a, lib.tensor(np.arange(64) % 48)),
    "conv2d": lambda lib, F, a, b: F.conv2d(a.reshape(4, 3, 16, 16), b[:, :27].reshape(
        64, 3, 3, 3), padding=1),
    "avg_pool2d": lambda lib, F, a, b: F.avg_pool2d(a.reshape(4, 3, 16, 16), 2),
    "max_pool2d": lambda lib, F, a, b: F.max_pool2d(a.reshape(4, 3, 16, 16), 2),
    "attention": lambda lib, F, a, b: F.scaled_dot_product_attention(
        a.reshape(4, 16, 48), b.reshape(4, 16, 48), a.reshape(4, 16, 48), is_causal=True),
}


@pytest.mark.parametrize("name", EXACT)
def test_correctly_rounded_ops_match_torch_bit_for_bit(name):
    mine, reference = run_both(EXACT[name], A, B)
    np.testing.assert_array_equal(bits(mine), bits(reference), err_msg=name)


@pytest.mark.parametrize("name", TRANSCENDENTAL)
def test_transcendental_ops_match_torch_to_one_bfloat16_step(name):
    mine, reference = run_both(TRANSCENDENTAL[name], A, B)
    steps = np.abs(bits(mine).astype(np.int32) - bits(reference).astype(np.int32))
    assert steps.max() <= 1, f"{name}: {steps.max()} bfloat16 steps apart"
    assert (steps == 0).mean() > 0.97, f"{name}: only {(steps == 0).mean():.3f} identical"


@pytest.mark.parametrize("name", ACCUMULATING)
def test_accumulating_ops_match_torch_at_bfloat16_precision(name):
    mine, reference = run_both(ACCUMULATING[name], A, B)
    expected = as_float32(reference)
    # float32 accumulation in both: a result within a couple of bfloat16 roundings (2^-8)
    np.testing.assert_allclose(as_float32(mine), expected, rtol=2 ** -7,
                               atol=2 ** -7 * np.abs(expected).max(), err_msg=name)


def test_sums_accumulate_in_float32_not_bfloat16():
    # 4096 ones plus a tail: a bfloat16 accumulator stops growing at 256
    x = np.ones(4097, np.float32)
    assert ours(x).sum().item() == theirs(x).sum().item() == 4096.0
    assert ours(x).cumsum(0)[-1].item() >= 4096


def test_numpy_gives_an_ml_dtypes_bfloat16_array_that_round_trips():
    t = ours(A)
    array = t.numpy()
    assert array.dtype == BF16 and isinstance(array, np.ndarray)
    np.testing.assert_array_equal(array.view(np.int16), bits(theirs(A)))
    assert tg.from_numpy(array).dtype is tg.bfloat16
    assert tg.tensor(array).dtype is tg.bfloat16
    np.testing.assert_array_equal(as_float32(t.float()), theirs(A).float().numpy())


@pytest.mark.parametrize("make", [
    lambda lib: lib.zeros(2, 3, dtype=lib.bfloat16),
    lambda lib: lib.ones(2, 3, dtype=lib.bfloat16),
    lambda lib: lib.full((2, 3), 1.3, dtype=lib.bfloat16),
    lambda lib: lib.arange(6, dtype=lib.bfloat16),
    lambda lib: lib.eye(3, dtype=lib.bfloat16),
    lambda lib: lib.tensor([[1.1, 2.2, 1e38]], dtype=lib.bfloat16),
    lambda lib: lib.tensor([0.1, 300.7]).to(lib.bfloat16),
    lambda lib: lib.tensor([1, 7, 255]).to(lib.bfloat16),
    lambda lib: lib.tensor([0.1, 300.7]).half().to(lib.bfloat16),
    lambda lib: lib.tensor([0.1, 300.7], dtype=lib.float64).to(lib.bfloat16),
], ids=["zeros", "ones", "full", "arange", "eye", "tensor", "from float32",
        "from int64", "from float16", "from float64"])
def test_creation_and_casts_match_torch(make):
    mine, reference = make(tg), make(torch)
    assert mine.dtype is tg.bfloat16
    np.testing.assert_array_equal(bits(mine), bits(reference))


def test_casts_out_of_bfloat16_match_torch():
    mine, reference = ours(A), theirs(A)
    for ours_dtype, torch_dtype in ((tg.float32, torch.float32), (tg.float16, torch.float16),
                                    (tg.float64, torch.float64), (tg.int64, torch.int64),
                                    (tg.bool, torch.bool)):
        np.testing.assert_array_equal(mine.to(ours_dtype).numpy(),
                                      reference.to(torch_dtype).numpy())


def test_random_creation_in_bfloat16():
    tg.manual_seed(0)
    for t in (tg.randn(100, dtype=tg.bfloat16), tg.rand(100, dtype=tg.bfloat16),
              tg.randn_like(tg.ones(100, dtype=tg.bfloat16))):
        assert t.dtype is tg.bfloat16 and t.numpy().dtype == BF16
        assert np.isfinite(as_float32(t)).all() and as_float32(t).std() > 0.1


@pytest.mark.parametrize("other", ["float16", "float32", "float64", "int64", "int32", "uint8",
                                   "bool", "bfloat16"])
def test_promotion_follows_torch(other):
    torch_other = getattr(torch, other)
    tg_other = getattr(tg, other)
    x, y = ours(A[:2, :2]), tg.ones(2, 2, dtype=tg_other)
    expected = torch.result_type(theirs(A[:2, :2]), torch.ones(2, 2, dtype=torch_other))
    for result in (x + y, y + x, x * y):
        assert result.dtype.name == str(expected).removeprefix("torch."), (other, result.dtype)
    zero_dim = tg.tensor(2, dtype=tg_other)
    expected = torch.result_type(theirs(A[:2, :2]), torch.tensor(2, dtype=torch_other))
    assert (x * zero_dim).dtype.name == str(expected).removeprefix("torch.")


def test_python_scalars_keep_bfloat16():
    x = ours(A)
    for result in (x + 1, x * 2.5, 3 - x, x / 7, x ** 2, -x, x.clamp(min=0)):
        assert result.dtype is tg.bfloat16


def test_gradients_in_bfloat16_match_torch():
    x_mine = ours(A[:8, :6]).requires_grad_()
    w_mine = ours(B[:5, :6]).requires_grad_()
    x_ref = theirs(A[:8, :6]).requires_grad_()
    w_ref = theirs(B[:5, :6]).requires_grad_()
    target = np.arange(8) % 5
    for x, w, lib, module in ((x_mine, w_mine, F, tg), (x_ref, w_ref, torch.nn.functional,
                                                       torch)):
        lib.cross_entropy(lib.linear(x, w).tanh() * 2, module.tensor(target)).backward()
    for mine, reference in ((x_mine.grad, x_ref.grad), (w_mine.grad, w_ref.grad)):
        assert mine.dtype is tg.bfloat16
        expected = as_float32(reference)
        np.testing.assert_allclose(as_float32(mine), expected, rtol=2 ** -6,
                                   atol=2 ** -6 * np.abs(expected).max())


def test_large_bfloat16_arrays_stay_off_the_native_float_kernels():
    # above the native kernels' size thresholds: they must hand bfloat16 to NumPy
    big = RNG.standard_normal((512, 512)).astype(np.float32)
    x = ours(big)
    for result in (x + x, x * x, x * 0.5, x.sum(), x @ x, F.relu(x), F.softmax(x, -1),
                   F.layer_norm(x, (512,)), F.linear(x, x)):
        assert result.dtype is tg.bfloat16
        assert np.isfinite(as_float32(result)).all()
    np.testing.assert_array_equal(bits(x * x), bits(theirs(big) * theirs(big)))


def test_repr_and_item():
    x = tg.tensor([1.5, -2.0], dtype=tg.bfloat16)
    assert repr(x) == "tensor([ 1.5, -2. ], dtype=tinygrad_like.bfloat16)"  # as float32 prints
    assert x[0].item() == 1.5 and x.tolist() == [1.5, -2.0]


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_bfloat16_checkpoints_round_trip_and_torch_reads_them(tmp_path, suffix):
    x = tg.tensor([1.5, -2.0, 3e5, 1e-3], dtype=tg.bfloat16)
    path = tmp_path / f"x{suffix}"
    tg.save({"x": x}, path)
    loaded = tg.load(path)["x"]
    assert loaded.dtype is tg.bfloat16
    np.testing.assert_array_equal(bits(loaded), bits(x))
    if suffix == ".pt":
        theirs = torch.load(path, weights_only=True)["x"]
    else:
        from safetensors.torch import load_file

        theirs = load_file(path)["x"]
    assert theirs.dtype == torch.bfloat16
    np.testing.assert_array_equal(theirs.view(torch.int16).numpy(), bits(x))


def test_interp_device_refuses_bfloat16_kernels_clearly():
    pytest.importorskip("triton")
    x = tg.ones(4, 4, device="interp").to(tg.bfloat16)
    assert (x + 1).dtype is tg.bfloat16  # NumPy ops work
    with pytest.raises(TypeError, match="interpreter cannot run bfloat16"):
        x @ x
