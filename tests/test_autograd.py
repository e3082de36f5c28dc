"""The backward engine: graph recording, accumulation, retain/create_graph, in-place safety."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest
import torch

import tinygrad_like as tg


def test_gradients_accumulate_for_a_tensor_used_twice():
    x = tg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    (x * x + x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.array([1.0, 2.0, 3.0]) + 1)


def test_gradients_accumulate_across_backward_calls():
    x = tg.tensor([1.0, -2.0], requires_grad=True)
    (x * 3).sum().backward()
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [6.0, 6.0])


def test_a_10000_op_chain_needs_no_recursion():
    x = tg.tensor([0.5], requires_grad=True)
    y = x
    for _ in range(10_000):
        y = y * 1.0001 + 0.0
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0001**10_000], rtol=1e-3)


def test_graph_is_only_recorded_when_needed():
    a, b = tg.randn(3), tg.randn(3)
    assert (a * b)._ctx is None
    w = tg.randn(3, requires_grad=True)
    assert (a * w)._ctx is not None
    with tg.no_grad():
        assert (a * w)._ctx is None and not (a * w).requires_grad


def test_recording_is_off_inside_a_forward_that_may_call_ops():
    """Binary and Unary compute on raw arrays, so apply leaves recording on around their
    forward; a subclass with a forward of its own gets it turned off again."""
    from tinygrad_like.ops.unary import Unary

    seen = []

    class Doubled(Unary):
        @staticmethod
        def forward(ctx, x):
            seen.append(tg.is_grad_enabled())
            return (x * 2)._array  # an op inside forward: must not be recorded

        @staticmethod
        def backward(ctx, grad):
            return grad * 2

    x = tg.ones(3, requires_grad=True)
    y = Doubled.apply(x)
    assert seen == [False] and Doubled.calls_ops and not Unary.calls_ops
    assert [type(edge) for edge in y._ctx.edges] == [tg.Tensor]  # x itself, no inner node
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2, 2, 2])


def test_grad_mode_context_managers_and_decorators():
    w = tg.randn(2, requires_grad=True)
    with tg.no_grad():
        with tg.enable_grad():
            assert (w * 2).requires_grad
        assert not (w * 2).requires_grad
    with tg.set_grad_enabled(False):
        assert not tg.is_grad_enabled()
    assert tg.is_grad_enabled()

    @tg.no_grad()
    def step():
        return w * 2

    assert not step().requires_grad
    tg.set_grad_enabled(False)
    assert not (w * 2).requires_grad
    tg.set_grad_enabled(True)


def test_detach_cuts_the_graph_but_shares_memory():
    x = tg.randn(3, requires_grad=True)
    d = (x * 2).detach()
    assert not d.requires_grad and d.is_leaf
    y = x.detach()
    with tg.no_grad():
        y[0] = 42.0
    assert x.detach().numpy()[0] == 42.0


def test_backward_twice_without_retain_graph_raises_and_retain_graph_allows_it():
    x = tg.randn(3, requires_grad=True)
    y = (x.exp() * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        y.backward()


def test_saved_arrays_are_freed_after_backward():
    x = tg.randn(1000, requires_grad=True)
    y = x.exp()
    node = y._ctx
    saved = weakref.ref(node._saved[0])
    loss = y.sum()
    del y
    loss.backward()
    gc.collect()
    assert node._saved == () and saved() is None


def test_create_graph_gives_differentiable_gradients():
    x = tg.tensor([0.3, -1.2, 2.0], dtype=tg.float64, requires_grad=True)
    (gx,) = tg.autograd.grad((x**3).sum(), x, create_graph=True)
    np.testing.assert_allclose(gx.detach().numpy(), 3 * x.detach().numpy() ** 2)
    gx.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 6 * x.detach().numpy())


def test_backward_with_create_graph_matches_torch_hessian_vector_product():
    values = np.array([[0.5, -1.0], [2.0, 0.25]])
    x = tg.tensor(values, requires_grad=True)
    xt = torch.tensor(values, requires_grad=True)
    for lib, t in ((tg, x), (torch, xt)):
        loss = (t.tanh() @ t).sum()
        (g,) = lib.autograd.grad(loss, t, create_graph=True)
        (g * g).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=1e-10)


def test_non_scalar_backward_takes_a_gradient():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    (x * x).backward(tg.tensor([1.0, 0.5]))
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 2.0])


def test_retain_grad_keeps_a_non_leaf_gradient():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3
    y.retain_grad()
    (y * y).sum().backward()
    np.testing.assert_allclose(y.grad.numpy(), [6.0, 12.0])


def test_in_place_change_of_a_saved_tensor_is_caught():
    a = tg.tensor([1.0, 2.0])
    w = tg.tensor([3.0, 4.0], requires_grad=True)
    loss = (w * a).sum()
    a[0] = 10.0
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        loss.backward()


def test_in_place_writes_before_recording_or_to_other_tensors_are_not_flagged():
    a, b = tg.tensor([1.0, 2.0]), tg.tensor([5.0, 6.0])
    a.add_(1.0)  # before the graph saves a: part of its value, not a modification
    w = tg.tensor([3.0, 4.0], requires_grad=True)
    loss = (w * a).sum()
    b.mul_(2.0)  # after, but b is not saved anywhere
    loss.backward()
    np.testing.assert_allclose(w.grad.numpy(), [2.0, 3.0])
    a.add_(1.0)  # now it is: the message says which and where it stands
    loss = (w * a).sum()
    a.mul_(3.0)
    with pytest.raises(RuntimeError, match=r"MulBackward: .* saved tensor 1 of shape \(2,\) was "
                                           r"written after it was saved \(it is now at version 3\)"):
        loss.backward()


def test_in_place_change_through_a_view_is_caught():
    a = tg.tensor([[1.0, 2.0], [3.0, 4.0]])
    w = tg.tensor([1.0, 1.0], requires_grad=True)
    loss = (a * w).sum()
    row = a[0]
    row.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        loss.backward()


def test_saved_output_modified_in_place_is_caught():
    w = tg.tensor([1.0, 2.0], requires_grad=True)
    y = w.exp()
    loss = y.sum()
    with tg.no_grad():
        y.mul_(2)
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        loss.backward()


def test_in_place_on_a_leaf_that_requires_grad_raises_outside_no_grad():
    w = tg.randn(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="requires grad"):
        w.add_(1)
    with pytest.raises(RuntimeError, match="requires grad"):
        w[0] = 1.0
    with tg.no_grad():
        w.sub_(tg.ones(3), alpha=0.5)


class Cube(tg.autograd.Function):
    @staticmethod
    def forward(ctx, x, scale):
        ctx.save_for_backward(x)
        ctx.scale = scale
        return x * x * x * scale

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        assert ctx.needs_input_grad == (True, False)
        return grad * 3 * x * x * ctx.scale, None


def test_custom_function_in_pytorch_style():
    x = tg.tensor([0.5, -1.5, 2.0], dtype=tg.float64, requires_grad=True)
    y = Cube.apply(x, 2.0)
    assert y.grad_fn.name == "CubeBackward"
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 6 * x.detach().numpy() ** 2)
    assert tg.gradcheck(lambda t: Cube.apply(t, 2.0), x)
    assert tg.gradgradcheck(lambda t: Cube.apply(t, 2.0), x)


class WrongShape(tg.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, grad):
        return grad.sum()


def test_custom_function_returning_a_wrong_gradient_shape_is_reported():
    x = tg.randn(3, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"WrongShape.backward returned a gradient of shape"):
        WrongShape.apply(x).sum().backward()


def test_autograd_grad_leaves_dot_grad_alone():
    x = tg.randn(3, requires_grad=True)
    (g,) = tg.autograd.grad((x * 2).sum(), x)
    np.testing.assert_allclose(g.numpy(), [2.0, 2.0, 2.0])
    assert x.grad is None


def test_autograd_grad_for_a_non_leaf_input():
    x = tg.randn(3, requires_grad=True)
    h = x * 2
    (g,) = tg.autograd.grad((h * h).sum(), h)
    np.testing.assert_allclose(g.numpy(), 2 * h.detach().numpy())


def test_int_results_never_require_grad():
    x = tg.randn(3, 4, requires_grad=True)
    assert not x.argmax(1).requires_grad
    assert not (x > 0).requires_grad
    assert not x.long().requires_grad


def test_grad_fn_and_leaf_flags():
    x = tg.randn(2, requires_grad=True)
    y = x.sigmoid()
    assert x.is_leaf and not y.is_leaf
    assert repr(y.grad_fn) == "<SigmoidBackward>"
    assert y.grad_fn.next_functions == ()
    assert (y * 2).grad_fn.next_functions == (y.grad_fn,)
