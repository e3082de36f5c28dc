"""PyTorch's tensor surface beyond the op registry: `.data`, in-place methods, `new_*`,
sampling, default dtypes and the runtime namespaces programs touch at start-up. Each test
runs the same expression on torch and tinygrad_like and compares."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import tinygrad_like as tg


# ---- Tensor.data ---------------------------------------------------------------------------
@pytest.mark.parametrize("lib", [torch, tg], ids=["torch", "tg"])
def test_data_is_a_detached_tensor_on_the_same_memory(lib):
    p = lib.ones(3, requires_grad=True)
    data = p.data
    assert isinstance(data, lib.Tensor) and data is not p
    assert not data.requires_grad and data.is_leaf
    data.add_(lib.full((3,), 0.5), alpha=-2.0)  # the manual SGD idiom
    np.testing.assert_array_equal(p.detach().numpy(), [0.0, 0.0, 0.0])
    p.data.copy_(lib.tensor([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(p.detach().numpy(), [1.0, 2.0, 3.0])
    assert p.requires_grad


@pytest.mark.parametrize("lib", [torch, tg], ids=["torch", "tg"])
def test_writes_through_data_are_invisible_to_autograd_version_checks(lib):
    # torch: a write through .data does not bump the version counter, so backward runs and
    # sees the new value (exp saves its output).
    x = lib.tensor([0.0, 1.0], requires_grad=True)
    y = x.exp()
    y.data.mul_(2.0)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.exp([0.0, 1.0]), rtol=1e-6)


@pytest.mark.parametrize("lib", [torch, tg], ids=["torch", "tg"])
def test_assigning_data_replaces_the_memory(lib):
    p = lib.zeros(2, 2, requires_grad=True)
    p.data = lib.ones(3)
    assert tuple(p.shape) == (3,) and p.requires_grad
    np.testing.assert_array_equal(p.detach().numpy(), [1.0, 1.0, 1.0])


def test_assigning_data_rejects_what_is_not_a_tensor():
    p = tg.zeros(2, requires_grad=True)
    with pytest.raises(TypeError, match="data: expected a Tensor, got ndarray"):
        p.data = np.ones(2)
