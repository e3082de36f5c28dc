"""The fused ops (ops/conv.py, ops/attention.py, ops/embedding.py, ops/dropout.py) beyond
what the op registry checks: memory, masks, odd geometry, reproducibility and errors."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import torch

import tinygrad_like as tg
import tinygrad_like.nn.functional as F
from tinygrad_like.backend import cpu_attention


def leaves(*arrays, lib=tg):
    return [lib.tensor(a, requires_grad=True) for a in arrays]


def assert_same_grads(tg_leaves, torch_leaves, atol=1e-10):
    for mine, theirs in zip(tg_leaves, torch_leaves, strict=True):
        np.testing.assert_allclose(mine.grad.numpy(), theirs.grad.numpy(), atol=atol)


# ---- attention -----------------------------------------------------------------------------------
def test_tiled_attention_never_holds_the_score_matrix(monkeypatch):
    monkeypatch.setattr(cpu_attention, "QUERY_BLOCK", 128)
    monkeypatch.setattr(cpu_attention, "MIN_GROUP_HEADS", 1)  # blocks exactly as set
    monkeypatch.setattr(cpu_attention, "KEY_BLOCK", 128)
    rng = np.random.default_rng(0)
    shape = (1, 2, 1024, 16)
    q, k, v = leaves(*(rng.standard_normal(shape).astype(np.float32) for _ in range(3)))
    grad = tg.tensor(rng.standard_normal(shape).astype(np.float32))
    tracemalloc.start()
    F.scaled_dot_product_attention(q, k, v, is_causal=True).backward(grad)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    scores_bytes = 2 * 1024 * 1024 * 4  # one float32 (T, T) matrix per head
    assert peak < scores_bytes / 2, f"peak {peak / 2**20:.1f} MiB"


@pytest.mark.parametrize("blocks", [(256, 256), (16, 16), (16, 32)])
@pytest.mark.parametrize("is_causal", [False, True])
def test_tiled_attention_matches_torch_for_any_blocking(monkeypatch, blocks, is_causal):
    monkeypatch.setattr(cpu_attention, "QUERY_BLOCK", blocks[0])
    monkeypatch.setattr(cpu_attention, "MIN_GROUP_HEADS", 1)  # blocks exactly as set
    monkeypatch.setattr(cpu_attention, "KEY_BLOCK", blocks[1])
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal((2, 3, 37, 8)), rng.standard_normal((2, 3, 45, 8)),
              rng.standard_normal((2, 3, 45, 5))]
    mine, theirs = leaves(*arrays), leaves(*arrays, lib=torch)
    out = F.scaled_dot_product_attention(*mine, is_causal=is_causal)
    expected = torch.nn.functional.scaled_dot_product_attention(*theirs, is_causal=is_causal)
    np.testing.assert_allclose(out.detach().numpy(), expected.detach().numpy(), atol=1e-12)
    upstream = rng.standard_normal(out.shape)
    out.backward(tg.tensor(upstream))
    expected.backward(torch.tensor(upstream))
    assert_same_grads(mine, theirs)


@pytest.mark.parametrize("threads", [False, True])
def test_tiled_attention_over_head_groups_matches_torch(monkeypatch, threads):
    # one head per group (the byte budget is below one block), on one thread or on the pool
    monkeypatch.setattr(cpu_attention, "GROUP_SCORE_BYTES", 1)
    monkeypatch.setattr(cpu_attention, "PARALLEL_SCORES", 0 if threads else 1 << 60)
    rng = np.random.default_rng(4)
    arrays = [rng.standard_normal((2, 3, 19, 8)) for _ in range(3)]
    keep = rng.random((2, 1, 19, 19)) > 0.2  # a different mask per batch entry
    mine, theirs = leaves(*arrays), leaves(*arrays, lib=torch)
    out = F.scaled_dot_product_attention(*mine, attn_mask=tg.tensor(keep))
    expected = torch.nn.functional.scaled_dot_product_attention(
        *theirs, attn_mask=torch.tensor(keep))
    np.testing.assert_allclose(out.detach().numpy(), expected.detach().numpy(), atol=1e-12)
    upstream = rng.standard_normal(out.shape)
    out.backward(tg.tensor(upstream))
    expected.backward(torch.tensor(upstream))
    assert_same_grads(mine, theirs)


def test_key_padding_mask_with_fully_masked_rows_gives_zeros_not_nan():
    rng = np.random.default_rng(2)
    q, k, v = leaves(*(rng.standard_normal((2, 4, 6, 8)) for _ in range(3)))
    keep = np.ones((2, 1, 1, 6), dtype=bool)
    keep[0, ..., 3:] = False  # batch 0 sees keys 0..2 only
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=tg.tensor(keep))
    theirs = leaves(*(t.detach().numpy() for t in (q, k, v)), lib=torch)
    expected = torch.nn.functional.scaled_dot_product_attention(
        *theirs, attn_mask=torch.tensor(keep))
    np.testing.assert_allclose(out.detach().numpy(), expected.detach().numpy(), atol=1e-12)
    hidden = np.zeros((6, 6), dtype=bool)
    hidden[2] = True  # query 2 sees nothing
    masked = F.scaled_dot_product_attention(q, k, v, attn_mask=tg.tensor(~hidden))
    masked.sum().backward()
    assert np.all(masked.detach().numpy()[:, :, 2] == 0)
    assert all(np.isfinite(t.grad.numpy()).all() for t in (q, k, v))


def test_float_mask_that_requires_grad_gets_its_gradient():
    rng = np.random.default_rng(3)
    arrays = [rng.standard_normal((2, 5, 4)) for _ in range(3)] + [rng.standard_normal((5, 5))]
    mine, theirs = leaves(*arrays), leaves(*arrays, lib=torch)
    F.scaled_dot_product_attention(*mine[:3], attn_mask=mine[3]).sum().backward()
    torch.nn.functional.scaled_dot_product_attention(*theirs[:3], attn_mask=theirs[3]).sum().backward()
    assert_same_grads(mine, theirs)


def test_attention_rejects_mixed_dtypes():
    q = tg.randn(2, 3, 4)
    with pytest.raises(TypeError, match="scaled_dot_product_attention: .*float32.*float64"):
        F.scaled_dot_product_attention(q, q.double(), q)


# ---- conv2d and pooling --------------------------------------------------------------------------
@pytest.mark.parametrize("kernel, padding, dilation", [((2, 4), "same", 1), ((3, 3), "same", 2),
                                                       ((3, 2), (2, 1), (1, 2))])
def test_conv2d_geometry_matches_torch(kernel, padding, dilation):
    rng = np.random.default_rng(4)
    arrays = [rng.standard_normal((2, 3, 7, 9)), rng.standard_normal((5, 3, *kernel)),
              rng.standard_normal(5)]
    mine, theirs = leaves(*arrays), leaves(*arrays, lib=torch)
    out = F.conv2d(*mine, padding=padding, dilation=dilation)
    expected = torch.nn.functional.conv2d(*theirs, padding=padding, dilation=dilation)
    np.testing.assert_allclose(out.detach().numpy(), expected.detach().numpy(), atol=1e-12)
    out.sum().backward()
    expected.sum().backward()
    assert_same_grads(mine, theirs)


def test_grouped_conv2d_matches_torch():
    rng = np.random.default_rng(5)
    arrays = [rng.standard_normal((2, 4, 6, 6)), rng.standard_normal((6, 2, 3, 3))]
    mine, theirs = leaves(*arrays), leaves(*arrays, lib=torch)
    F.conv2d(*mine, stride=2, groups=2).sum().backward()
    torch.nn.functional.conv2d(*theirs, stride=2, groups=2).sum().backward()
    assert_same_grads(mine, theirs)


@pytest.mark.parametrize("call, message", [
    (lambda: F.conv2d(tg.randn(1, 2, 5, 5), tg.randn(3, 2, 3, 3).double()),
     "conv2d: input .*float32.*weight .*float64"),
    (lambda: F.conv2d(tg.randn(1, 2, 5, 5), tg.randn(3, 2, 3, 3), tg.randn(4)),
     r"conv2d: bias of shape \(4,\) does not match the 3 output channels of the weight of "
     r"shape \(3, 2, 3, 3\)"),
    (lambda: F.conv2d(tg.randn(1, 2, 2, 2), tg.randn(3, 2, 3, 3)),
     "conv2d: kernel .* larger than the padded input"),
    (lambda: F.max_pool2d(tg.randn(1, 1, 4, 4), 2, stride=0), "max_pool2d: .* must be positive"),
])
def test_conv_and_pool_errors_name_the_problem(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call()


def test_max_pool_gradient_goes_to_the_first_maximum_of_overlapping_windows():
    x = tg.tensor([[[[1.0, 3.0, 3.0, 0.0], [2.0, 3.0, 1.0, 0.0]]]], requires_grad=True)
    F.max_pool2d(x, (2, 2), stride=1).sum().backward()
    tx = torch.tensor(x.detach().numpy(), requires_grad=True)
    torch.nn.functional.max_pool2d(tx, (2, 2), stride=1).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), tx.grad.numpy())


# ---- dropout and embedding -----------------------------------------------------------------------
def test_dropout_masks_are_reproducible_from_the_seed_and_differ_between_calls():
    x = tg.ones(1000, requires_grad=True)
    tg.manual_seed(3)
    first, second = F.dropout(x, 0.3), F.dropout(x, 0.3)
    tg.manual_seed(3)
    again = F.dropout(x, 0.3)
    np.testing.assert_array_equal(first.detach().numpy(), again.detach().numpy())
    assert not np.array_equal(first.detach().numpy(), second.detach().numpy())
    assert set(np.unique(first.detach().numpy())) <= {0.0, np.float32(1 / 0.7)}
    assert 0.6 < (first.detach().numpy() != 0).mean() < 0.8
    first.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), first.detach().numpy())


def test_embedding_backward_adds_repeated_rows_and_skips_padding():
    weight = tg.randn(5, 3, requires_grad=True)
    indices = tg.tensor([[0, 2, 2], [4, 2, 0]])
    F.embedding(indices, weight, padding_idx=0).sum().backward()
    np.testing.assert_array_equal(weight.grad.numpy()[:, 0], [0, 0, 3, 0, 1])


@pytest.mark.parametrize("x_shape,w_shape,expected", [
    ((0, 3, 3, 3), (2, 3, 3, 3), (0, 2, 1, 1)), ((2, 3, 3, 3), (0, 3, 3, 3), (2, 0, 1, 1)),
], ids=["no samples", "no filters"])
def test_conv2d_of_empty_operands_gives_empty_results(x_shape, w_shape, expected):
    x, w = tg.ones(*x_shape, requires_grad=True), tg.ones(*w_shape, requires_grad=True)
    out = F.conv2d(x, w, tg.zeros(w_shape[0]))
    out.sum().backward()
    assert out.shape == expected and x.grad.shape == x_shape and w.grad.shape == w_shape


@pytest.mark.parametrize("dtype", ["int64", "bool"])
def test_max_pool2d_pads_integer_inputs_with_their_lowest_value(dtype):
    x = np.array([[[[-5, 2, 0], [3, -1, 4]]]]).astype(dtype)
    ours = F.max_pool2d(tg.tensor(x), 2, stride=1, padding=1)
    if dtype == "bool":  # torch has no bool max_pool2d: padding must never win
        assert ours.numpy()[0, 0, 0, 0] and ours.dtype is tg.bool
        return
    theirs = torch.nn.functional.max_pool2d(torch.tensor(x), 2, stride=1, padding=1)
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
