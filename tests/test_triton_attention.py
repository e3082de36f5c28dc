"""The Triton FlashAttention kernels (kernels/triton/attention.py and
attention_backward.py), run through Triton's interpreter on the "interp" device.

The kernels are called as the kernel table's `attention` and `attention_backward` entries,
with raw NumPy arrays, and compared with PyTorch in float64: the scores, softmax and
products written out (so that fully masked rows give 0, where PyTorch's fused attention
gives NaN) and differentiated by torch.autograd. Sequences stay short (37 tokens, two
blocks of the interpreter's 32): the interpreter runs every program in Python.
"""

from __future__ import annotations

import numpy as np
import pytest

import tinygrad_like as tg
import tinygrad_like.nn.functional as F
from tinygrad_like.backend import get_backend

pytest.importorskip("triton")
torch = pytest.importorskip("torch")  # the interpreter's carrier for NumPy memory, and the oracle

from tinygrad_like.kernels.triton import attention as attention_kernels  # noqa: E402 (after the importorskip above)
from tinygrad_like.kernels.triton import attention_backward  # noqa: E402 (after the importorskip above)
from tinygrad_like.kernels.triton import catalog  # noqa: E402 (after the importorskip above)
from tinygrad_like.backend import marshal_device  # noqa: E402 (marshal_device needs torch)

# half precision rounds P to 11 bits before the P v product and stores out in fp16
TOLERANCE = {"float64": {"rtol": 1e-10, "atol": 1e-12}, "float32": {"rtol": 1e-4, "atol": 2e-5},
             "float16": {"rtol": 2e-2, "atol": 5e-3}}


@pytest.fixture(scope="module")
def kernels():
    return get_backend("interp").kernels


def make_inputs(Z, L, S, D, DV=None, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    DV = D if DV is None else DV
    return [rng.standard_normal(shape).astype(dtype)
            for shape in ((Z, L, D), (Z, S, D), (Z, S, DV), (Z, L, DV))]  # q, k, v, grad_out


def torch_reference(q, k, v, grad_out, mask, is_causal, scale):
    """(out, lse, dq, dk, dv) in float64; rows with every key hidden give 0 and lse = +inf."""
    q, k, v = (torch.tensor(np.asarray(x, np.float64), requires_grad=True) for x in (q, k, v))
    scores = q @ k.transpose(-1, -2) * scale
    if mask is not None:
        scores = scores + torch.from_numpy(np.array(mask, np.float64))
    if is_causal:  # top-left aligned: key j is visible to query i iff j <= i
        visible = torch.ones(scores.shape[-2:], dtype=torch.bool).tril()
        scores = scores.masked_fill(~visible, float("-inf"))
    any_visible = (scores > float("-inf")).any(-1, keepdim=True)
    scores = torch.where(any_visible, scores, 0.0)
    out = torch.where(any_visible, torch.softmax(scores, -1), 0.0) @ v
    lse = torch.where(any_visible[..., 0], torch.logsumexp(scores, -1), float("inf"))
    out.backward(torch.from_numpy(np.asarray(grad_out, np.float64)))
    return [t.detach().numpy() for t in (out, lse, q.grad, k.grad, v.grad)]


def check_attention(kernels, q, k, v, grad_out, mask=None, is_causal=False, scale=None):
    """Forward and backward through the interp kernel table against the float64 oracle."""
    scale = 1.0 / np.sqrt(q.shape[-1]) if scale is None else scale
    out, lse = kernels.attention(q, k, v, mask, is_causal, scale)
    grads = kernels.attention_backward(grad_out, q, k, v, out, lse, mask, is_causal, scale)
    expected = torch_reference(q, k, v, grad_out, mask, is_causal, scale)
    assert out.dtype == q.dtype and out.shape == (q.shape[0], q.shape[1], v.shape[2])
    assert lse.dtype == (np.float64 if q.dtype == np.float64 else np.float32)
    for grad, x in zip(grads, (q, k, v)):
        assert grad.dtype == x.dtype and grad.shape == x.shape
    tolerance = TOLERANCE[q.dtype.name]
    got = [out, lse] + list(grads)
    for name, value, reference in zip(("out", "lse", "dq", "dk", "dv"), got, expected):
        assert not np.isnan(value).any(), f"NaN in {name}"
        np.testing.assert_allclose(value.astype(np.float64), reference, **tolerance,
                                   err_msg=name)
    return got


def test_interp_device_dispatches_to_these_kernels(kernels):
    for name, module in (("attention", attention_kernels),
                         ("attention_backward", attention_backward)):
        assert getattr(kernels, name).func is getattr(module, name)
        assert getattr(kernels, name).args[0].interpret


@pytest.mark.parametrize("head_dim", [16, 64])
@pytest.mark.parametrize("is_causal", [False, True])
def test_attention_matches_torch(kernels, head_dim, is_causal):
    # 37 tokens: one full block of 32 and a masked tail of 5, for queries and keys
    check_attention(kernels, *make_inputs(2, 37, 37, head_dim, seed=head_dim),
                    is_causal=is_causal)


@pytest.mark.parametrize("L, S", [(37, 45), (45, 20)])
@pytest.mark.parametrize("is_causal", [False, True])
def test_lengths_and_head_dims_differ(kernels, L, S, is_causal):
    # D = 24 and Dv = 40 pad to 32 and 64; with L > S the causal rows past S see every key
    check_attention(kernels, *make_inputs(2, L, S, 24, 40, seed=L), is_causal=is_causal,
                    scale=0.3)


@pytest.mark.parametrize("block_m, block_n", [(16, 32), (32, 16)])
def test_causal_block_skipping_with_unequal_blocks(kernels, monkeypatch, block_m, block_n):
    # the dk/dv kernel starts at the query block holding its first key, rounded down to
    # BLOCK_M; with BLOCK_M != BLOCK_N that block is not the key block's own index
    monkeypatch.setattr(attention_kernels, "INTERP_CONFIG", {"BLOCK_M": block_m,
                                                             "BLOCK_N": block_n})
    check_attention(kernels, *make_inputs(1, 37, 41, 16, seed=3), is_causal=True)


@pytest.mark.parametrize("L, S", [(64, 64), (40, 64), (70, 32)])
@pytest.mark.parametrize("is_causal", [False, True])
def test_even_key_counts_run_without_the_tail_block(kernels, L, S, is_causal):
    # S a multiple of BLOCK_N (EVEN_N): no key is tested against S; the causal diagonal
    # blocks are still masked, also when L > S (rows past S see every key)
    check_attention(kernels, *make_inputs(2, L, S, 32, seed=L + S), is_causal=is_causal)


@pytest.mark.parametrize("is_causal", [False, True])
def test_negative_and_zero_scales(kernels, is_causal):
    # the loop takes its row max on the unscaled products: the launcher folds a negative
    # scale's sign into q, and a zero scale gives uniform weights
    inputs = make_inputs(2, 37, 41, 16, seed=23)
    check_attention(kernels, *inputs, is_causal=is_causal, scale=-0.7)
    check_attention(kernels, *inputs, is_causal=is_causal, scale=0.0)


class RecordingLauncher:
    """The interp launcher, recording every kernel launch's positional arguments."""

    def __init__(self, launcher):
        self.inner, self.launches = launcher, []
        self.interpret, self.xp = launcher.interpret, launcher.xp
        self.arg, self.empty = launcher.arg, launcher.empty

    def kernel(self, jit_function):
        runnable = self.inner.kernel(jit_function)

        def at(grid):
            def launch(*args, **kwargs):
                self.launches.append((jit_function, args))
                return runnable[grid](*args, **kwargs)

            return launch

        return type("Kernel", (), {"__getitem__": lambda _, grid: at(grid)})()


def test_scale_is_a_scalar_argument_not_an_uploaded_array(kernels):
    # a one-element array would be a host-to-device copy on every call on "cuda"; the
    # kernels take the scale as an fp64 scalar, so float64 keeps every digit
    launcher = RecordingLauncher(kernels.attention.args[0])
    q, k, v, grad_out = make_inputs(1, 37, 37, 16, dtype=np.float64, seed=24)
    out, lse = attention_kernels.attention(launcher, q, k, v, None, True, 0.3)
    attention_backward.attention_backward(launcher, grad_out, q, k, v, out, lse, None, True,
                                          0.3)
    assert len(launcher.launches) == 3  # forward, dq, dk/dv
    for kernel, args in launcher.launches:
        position = kernel.arg_names.index("scale")
        assert type(args[position]) is float and args[position] == 0.3
        assert kernel.params[position].annotation in ("tl.float64", "fp64")
        assert not any(getattr(a, "numel", lambda: 2)() == 1 for a in args)


def test_padding_mask_with_a_fully_masked_row(kernels):
    # a boolean key-padding mask (True = keep) becomes an additive 0 / -inf mask; query row 4
    # of z = 1 sees no key at all: out 0, lse +inf, and it adds nothing to any gradient
    Z, L, S = 2, 37, 37
    q, k, v, grad_out = make_inputs(Z, L, S, 16, seed=5)
    keep = np.ones((Z, L, S), dtype=bool)
    keep[0, :, 30:] = False  # z = 0: the last 7 keys are padding
    keep[1, 4, :] = False
    mask = np.where(keep, 0.0, -np.inf).astype(np.float32)
    out, lse, dq, dk, dv = check_attention(kernels, q, k, v, grad_out, mask)
    assert not out[1, 4].any() and lse[1, 4] == np.inf and not dq[1, 4].any()
    assert not dk[0, 30:].any() and not dv[0, 30:].any()  # padding keys get no gradient


@pytest.mark.parametrize("is_causal", [False, True])
def test_broadcast_float_mask_with_zero_strides(kernels, is_causal):
    # an ALiBi-like bias shared by every z (stride 0), plus a per-key mask over queries too
    Z, L, S = 3, 37, 33
    q, k, v, grad_out = make_inputs(Z, L, S, 16, seed=7)
    bias = -0.1 * np.abs(np.arange(L)[:, None] - np.arange(S)[None, :]).astype(np.float32)
    mask = np.broadcast_to(bias, (Z, L, S))
    assert mask.strides[0] == 0
    check_attention(kernels, q, k, v, grad_out, mask, is_causal=is_causal)
    per_key = np.broadcast_to(np.where(np.arange(S) % 5 == 0, -np.inf, 0.5), (Z, L, S))
    assert per_key.strides[:2] == (0, 0)
    check_attention(kernels, q, k, v, grad_out, per_key.astype(np.float32))


def test_non_contiguous_heads_layout(kernels):
    # (L, H, D) projections viewed as (H, L, D): the head is the z axis, rows are H*D apart
    H, L, S, D = 3, 37, 29, 16
    rng = np.random.default_rng(9)
    q, k, v, grad_out = (rng.standard_normal((n, H, D)).astype(np.float32).transpose(1, 0, 2)
                         for n in (L, S, S, L))
    assert not q.flags.c_contiguous and q.strides[1] == H * D * 4
    check_attention(kernels, q, k, v, grad_out, is_causal=True)
    flipped = k[:, ::-1]  # negative strides: copied by the launcher, not misread
    check_attention(kernels, q, flipped, v, grad_out)


def test_float16_accumulates_in_float32(kernels):
    check_attention(kernels, *make_inputs(2, 37, 37, 64, dtype=np.float16, seed=11),
                    is_causal=True)


def test_bfloat16_is_left_to_the_gpu():
    pytest.skip("NumPy has no bfloat16, so the interp device cannot hold bf16 arrays; the bf16 "
                "kernels are compiled for sm_80/sm_90 in tests/test_kernel_compile.py")


@pytest.mark.parametrize("is_causal", [False, True])
def test_float64_is_exact_to_rounding(kernels, is_causal):
    q, k, v, grad_out = make_inputs(2, 37, 45, 16, 24, dtype=np.float64, seed=13)
    mask = np.random.default_rng(14).standard_normal((1, 37, 45))
    check_attention(kernels, q, k, v, grad_out, np.broadcast_to(mask, (2, 37, 45)), is_causal)


def test_empty_sequences(kernels):
    q, k, v, grad_out = make_inputs(2, 5, 0, 16)
    out, lse = kernels.attention(q, k, v, None, False, 0.25)  # no keys: every row hidden
    assert not out.any() and (lse == np.inf).all()
    dq, dk, dv = kernels.attention_backward(grad_out, q, k, v, out, lse, None, False, 0.25)
    assert not dq.any() and dk.shape == (2, 0, 16) and dv.shape == (2, 0, 16)
    q, k, v, grad_out = make_inputs(2, 0, 5, 16)
    out, lse = kernels.attention(q, k, v, None, True, 0.25)
    assert out.shape == (2, 0, 16) and lse.shape == (2, 0)
    dq, dk, dv = kernels.attention_backward(grad_out, q, k, v, out, lse, None, True, 0.25)
    assert not dk.any() and not dv.any()


def test_launcher_errors_name_the_problem(kernels):
    q, k, v, grad_out = make_inputs(1, 4, 6, 16)
    with pytest.raises(ValueError, match="need one Z"):
        kernels.attention(q, k[:, :, :8], v, None, False, 1.0)
    with pytest.raises(TypeError, match="expected one dtype"):
        kernels.attention(q, k.astype(np.float64), v, None, False, 1.0)
    with pytest.raises(ValueError, match="head dims from 1 to 128"):
        big = np.zeros((1, 4, 160), np.float32)
        kernels.attention(big, np.zeros((1, 6, 160), np.float32), v, None, False, 1.0)
    with pytest.raises(ValueError, match=r"expected a mask of shape \(1, 4, 6\)"):
        kernels.attention(q, k, v, np.zeros((4, 6), np.float32), False, 1.0)
    with pytest.raises(TypeError, match="additive float mask"):
        kernels.attention(q, k, v, np.ones((1, 4, 6), bool), False, 1.0)
    out, lse = kernels.attention(q, k, v, None, False, 1.0)
    with pytest.raises(ValueError, match=r"lse must have shape \(1, 4\)"):
        kernels.attention_backward(grad_out, q, k, v, out, lse[:, :2], None, False, 1.0)


# ---- float64 gradient checks through the op and the interpreted kernels ----------------------
def interp64(shape, seed):
    data = np.random.default_rng(seed).standard_normal(shape)
    return tg.Tensor(data, dtype=tg.float64, device="interp", requires_grad=True)


@pytest.fixture
def kernel_calls(kernels, monkeypatch):
    """Counts the interp kernel table's attention calls, to prove the op went through them."""
    calls = {"attention": 0, "attention_backward": 0}
    for name in calls:
        original = getattr(kernels, name)

        def counted(*args, _name=name, _original=original):
            calls[_name] += 1
            return _original(*args)

        monkeypatch.setattr(kernels, name, counted)
    return calls


def test_gradcheck_scaled_dot_product_attention_float64(kernel_calls):
    # every element perturbed (two interpreted forwards each): kept to 26 elements
    q, k, v = interp64((1, 1, 3, 2), 15), interp64((1, 1, 4, 2), 16), interp64((1, 1, 4, 3), 17)
    assert tg.gradcheck(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
                        [q, k, v])
    if not (kernel_calls["attention"] and kernel_calls["attention_backward"]):
        pytest.xfail(f"the op did not call the interp attention kernels: {kernel_calls}")


def test_gradcheck_with_a_float_mask_fast_mode(kernel_calls):
    q, k, v = (interp64(shape, seed) for shape, seed in (((2, 2, 37, 16), 18),
                                                         ((2, 2, 33, 16), 19), ((2, 2, 33, 8), 20)))
    bias = np.random.default_rng(21).standard_normal((1, 1, 37, 33))
    bias[..., 3, :] = -np.inf  # a fully hidden row: zero output, zero gradient
    mask = tg.Tensor(bias, dtype=tg.float64, device="interp")
    assert tg.gradcheck(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, mask),
                        [q, k, v], fast_mode=True)
    if not (kernel_calls["attention"] and kernel_calls["attention_backward"]):
        pytest.xfail(f"the op did not call the interp attention kernels: {kernel_calls}")


# ---- the sm_90 TMA forward (attention_tma.py), run by the interpreter ------------------------
@pytest.fixture
def tma_everywhere(monkeypatch):
    """Send every forward to the TMA path, as a compiled sm_90 launch of fp16/bf16 would,
    recording whether each launch took the TMA kernel (True) or fell back (False)."""
    launches = []
    real = attention_kernels._forward_tma
    monkeypatch.setattr(attention_kernels, "_uses_tma", lambda launcher, dtype: True)
    monkeypatch.setattr(attention_kernels, "_forward_tma",
                        lambda *args: launches.append(real(*args)) or launches[-1])
    return launches


@pytest.mark.parametrize("L, S, D, DV", [(37, 37, 64, 64), (37, 45, 24, 40), (45, 20, 16, 16),
                                         (40, 64, 32, 32)])
@pytest.mark.parametrize("is_causal", [False, True])
def test_tma_forward_matches_torch(kernels, tma_everywhere, L, S, D, DV, is_causal):
    # boxes past L, S and the head dims are zero-filled by the descriptor loads; uneven S
    # and the causal diagonal go through the masked loop; 40 x 64 has no tail block (EVEN_N)
    inputs = make_inputs(2, L, S, D, DV, dtype=np.float16, seed=L + D)
    check_attention(kernels, *inputs, is_causal=is_causal, scale=0.3 if D != DV else None)
    assert tma_everywhere == [True]


def test_tma_forward_with_a_mask_and_a_negative_scale(kernels, tma_everywhere):
    # the mask stays a pointer operand (broadcast, stride 0); a negated q is a fresh array
    Z, L, S = 3, 37, 33
    q, k, v, grad_out = make_inputs(Z, L, S, 16, dtype=np.float16, seed=8)
    bias = -0.1 * np.abs(np.arange(L)[:, None] - np.arange(S)[None, :]).astype(np.float16)
    mask = np.broadcast_to(np.where(np.arange(S) % 5 == 0, -np.inf, bias), (Z, L, S))
    check_attention(kernels, q, k, v, grad_out, mask.astype(np.float16), is_causal=True)
    check_attention(kernels, q, k, v, grad_out, scale=-0.2)
    assert tma_everywhere == [True, True]


def test_layouts_tma_cannot_read_use_the_pointer_kernel(kernels, tma_everywhere):
    # D = 20 fp16 is 40 bytes a row (not a multiple of 16); a head-dim stride other than 1;
    # an empty key sequence (no box to load)
    check_attention(kernels, *make_inputs(2, 37, 37, 20, dtype=np.float16, seed=4))
    q, k, v, grad_out = make_inputs(2, 37, 37, 16, dtype=np.float16, seed=5)
    k_columns = np.ascontiguousarray(k.transpose(0, 2, 1)).transpose(0, 2, 1)
    check_attention(kernels, q, k_columns, v, grad_out, is_causal=True)
    out, lse = kernels.attention(q, k[:, :0], v[:, :0], None, False, 0.25)
    assert not out.any() and np.isinf(lse).all()
    assert tma_everywhere == [False, False, False]


# ---- ahead-of-time variants (compiled and inspected by tests/test_kernel_compile.py) ---------
def test_compile_variants_cover_every_kernel_dtype_and_head_dim():
    variants = catalog.attention_variants() + catalog.attention_backward_variants()
    kinds = {(v.name, v.dtype, v.notes["head_dim"]) for v in variants}
    tma = {kind for kind in kinds if kind[0] == "attention_forward_tma"}
    assert len(kinds - tma) == 3 * 3 * 2
    # the sm_90 TMA kernel: every half-precision tile in fp16, bf16 at D=64
    assert tma == {("attention_forward_tma", "fp16", 64), ("attention_forward_tma", "fp16", 128),
                   ("attention_forward_tma", "bf16", 64)}
    for v in variants:
        if v.name == "attention_forward_tma":
            assert v.notes["arch"] == 90 and v.signature["k_desc"] == (
                f"tensordesc<{v.dtype}[1, {v.constexprs['BLOCK_N']}, {v.notes['head_dim']}]>")
    for precision, dtype in (("half", "fp16"), ("full", "fp32")):
        for head_dim in catalog.HEAD_DIMS:  # every tile of the autotuning set is compiled
            tuned = {(c.kwargs["BLOCK_M"], c.kwargs["BLOCK_N"], c.num_warps, c.num_stages)
                     for c in attention_kernels.FORWARD_CONFIGS[precision, head_dim]}
            names = ["attention_forward"] + ["attention_forward_tma"] * (precision == "half")
            for name in names:
                tiles = {(v.constexprs["BLOCK_M"], v.constexprs["BLOCK_N"], v.num_warps,
                          v.num_stages) for v in variants if v.name == name
                         and v.dtype == dtype and v.notes["head_dim"] == head_dim}
                assert tiles == tuned, name
    for v in variants:
        assert list(v.signature) == v.kernel.arg_names
        assert {k for k, t in v.signature.items() if t == "constexpr"} == set(v.constexprs)
        assert v.tensor_cores == (v.dtype != "fp32")
        assert v.flops > 0 and v.bytes_moved > v.ideal_bytes > 0  # streamed blocks re-read
        assert v.shape == f"B4 H16 T4096 D{v.notes['head_dim']} causal"


def test_autotuning_sets_follow_the_issue():
    # BLOCK_M 64/128 x BLOCK_N 64/128 x 3-4 stages for the half-precision D <= 64 forward
    half = attention_kernels.FORWARD_CONFIGS["half", 64]
    assert {(c.kwargs["BLOCK_M"], c.kwargs["BLOCK_N"], c.num_stages) for c in half} == {
        (m, n, s) for m in (64, 128) for n in (64, 128) for s in (3, 4)}
    for configs in attention_kernels.FORWARD_CONFIGS.values():
        assert configs and all(set(c.kwargs) == {"BLOCK_M", "BLOCK_N"} for c in configs)
    tuned = attention_kernels.TUNED_FORWARD["half", 64]
    assert tuned.configs is half and tuned.keys[:2] == ["L", "S"]


def test_full_block_pairs_are_the_causal_pairs_less_the_diagonal():
    # BLOCK_M = 2 BLOCK_N: each query block has two masked (diagonal) key blocks
    pairs, full = catalog.causal_tile_pairs("forward", 4096, 128, 64), catalog.full_tile_pairs
    assert full(4096, 128, 64) == pairs - 2 * 32
    assert full(4096, 64, 128) == sum(m * 64 // 128 for m in range(64))
    assert full(256, 64, 64) == 0 + 1 + 2 + 3


def test_causal_tiling_visits_about_half_the_tile_pairs():
    pairs = catalog.causal_tile_pairs
    assert pairs("forward", 4096, 128, 64) == sum(2 * (m + 1) for m in range(32))  # 1056 of 2048
    assert pairs("dkdv", 4096, 32, 128) == sum(128 - 4 * n for n in range(32))
    assert pairs("forward", 256, 64, 64) == pairs("dkdv", 256, 64, 64) == 4 + 3 + 2 + 1


# ---- the compiled launch path, through the launch-marshalling test device --------------------
def test_compiled_forward_binds_the_scale_as_fp64_through_the_autotuner():
    # the "cuda" launcher on stand-in memory: Triton's binder, the autotuner (fp32 has one
    # tile, so nothing is timed), the EVEN_N heuristic, the grid lambda and an sm_90 compile;
    # the interpreter does the arithmetic
    rng = np.random.default_rng(25)
    q, k, v = (rng.standard_normal((1, 2, n, 16)).astype(np.float32) for n in (37, 40, 40))
    with marshal_device.as_cuda():
        for is_causal, scale in ((True, None), (False, -0.5)):
            inputs = [tg.tensor(x, device="cuda") for x in (q, k, v)]
            out = F.scaled_dot_product_attention(*inputs, is_causal=is_causal, scale=scale)
            launched = marshal_device.LAUNCHES[-1]
            assert launched.signature["scale"] == "fp64" and launched.grid == (2, 1, 1)
            expected = F.scaled_dot_product_attention(
                *(tg.tensor(x) for x in (q, k, v)), is_causal=is_causal, scale=scale)
            np.testing.assert_allclose(out.numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)


def test_compiled_fp16_forward_on_sm_90_passes_tma_descriptors(monkeypatch):
    # the "cuda" launcher on stand-in memory at compute capability 9.0: fp16 operands reach
    # attention_tma.py's kernel as host-side descriptors, boxes set by the autotuner's
    # pre_hook (one tile, so nothing is timed), compiled for sm_90; the interpreter computes
    tile = attention_kernels.FORWARD_CONFIGS["half", 64][0]
    monkeypatch.setitem(attention_kernels.FORWARD_CONFIGS, ("half", 64), [tile])
    attention_kernels._tuned_forward_tma.cache_clear()
    rng = np.random.default_rng(26)
    q, k, v = (rng.standard_normal((1, 2, n, 16)).astype(np.float16) for n in (37, 40, 40))
    try:
        with marshal_device.as_cuda():
            inputs = [tg.tensor(x, device="cuda") for x in (q, k, v)]
            out = F.scaled_dot_product_attention(*inputs, is_causal=True)
            launched = marshal_device.LAUNCHES[-1]
            assert launched.kernel == "attention_forward_tma_kernel" and launched.arch == 90
            assert launched.signature["k_desc"] == "tensordesc<fp16[1, 64, 16]>"
            assert launched.grid == (2, 1, 1)
            expected = F.scaled_dot_product_attention(
                *(tg.tensor(x.astype(np.float32)) for x in (q, k, v)), is_causal=True)
            np.testing.assert_allclose(out.numpy().astype(np.float32), expected.numpy(),
                                       **TOLERANCE["float16"])
    finally:
        attention_kernels._tuned_forward_tma.cache_clear()


# ---- the same kernels compiled, on a GPU -----------------------------------------------------
@pytest.mark.cuda
def test_cuda_attention_matches_torch():
    # fp16 inputs, float64 oracle (more exact than PyTorch's own fp16 kernels)
    B, H, T, D = 2, 4, 1000, 64
    q, k, v, grad_out = (x.reshape(B, H, T, D) for x in make_inputs(B * H, T, T, D,
                                                                   dtype=np.float16, seed=22))
    tensors = [tg.Tensor(x, device="cuda", requires_grad=True) for x in (q, k, v)]
    out = F.scaled_dot_product_attention(*tensors, is_causal=True)
    out.backward(tg.Tensor(grad_out, device="cuda"))
    got = [out.detach().cpu().numpy()] + [x.grad.cpu().numpy() for x in tensors]
    expected = torch_reference(*(x.reshape(B * H, T, D) for x in (q, k, v, grad_out)), None,
                               True, 1.0 / np.sqrt(D))
    expected = [expected[0]] + expected[2:]
    for name, value, reference in zip(("out", "dq", "dk", "dv"), got, expected):
        assert value.dtype == np.float16 and not np.isnan(value).any(), name
        np.testing.assert_allclose(value.reshape(reference.shape).astype(np.float64), reference,
                                   rtol=2e-2, atol=1e-2, err_msg=name)
