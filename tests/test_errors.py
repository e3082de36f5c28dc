"""Bad input raises a clear exception naming the op and the shapes or dtypes involved."""

from __future__ import annotations

import pytest

import tinygrad_like as tg

CASES = [
    ("matmul inner mismatch", lambda: tg.ones(3, 4) @ tg.ones(5, 6), ValueError,
     r"matmul: shapes \(3, 4\) and \(5, 6\) cannot be multiplied \(4 != 5\)"),
    ("matmul batch mismatch", lambda: tg.ones(2, 3, 4) @ tg.ones(3, 4, 5), ValueError,
     r"matmul: batch dimensions \(2,\) and \(3,\)"),
    ("matmul scalar", lambda: tg.tensor(1.0) @ tg.ones(2), ValueError, r"matmul: .*\(\) and \(2,\)"),
    ("matmul dtypes", lambda: tg.ones(2, 2) @ tg.ones(2, 2, dtype=tg.float64), TypeError,
     "matmul: .*float32 and float64"),
    ("broadcast add", lambda: tg.ones(2, 3) + tg.ones(4), ValueError,
     r"add: shapes \(2, 3\) and \(4,\) cannot be broadcast"),
    ("broadcast mul", lambda: tg.ones(2, 3) * tg.ones(3, 2), ValueError,
     r"mul: shapes \(2, 3\) and \(3, 2\)"),
    ("broadcast where", lambda: tg.where(tg.ones(2) > 0, tg.ones(3), 0.0), ValueError, "where: shapes"),
    ("where condition", lambda: tg.where(tg.ones(2), tg.ones(2), 0.0), TypeError,
     "where: condition must be a bool tensor"),
    ("int requires grad", lambda: tg.tensor([1, 2], requires_grad=True), RuntimeError,
     "only floating-point tensors can require gradients.*int64"),
    ("index out of range", lambda: tg.ones(3, 4)[5], IndexError,
     r"getitem: index 5 is out of bounds.*shape \(3, 4\)"),
    ("too many indices", lambda: tg.ones(3)[0, 1], IndexError, r"getitem: .*\(3,\)"),
    ("float index", lambda: tg.ones(3)[1.0], IndexError, "getitem: float index"),
    ("gather out of range", lambda: tg.ones(2, 3).gather(1, tg.tensor([[0, 3]])), IndexError,
     r"gather: index values must lie in \[0, 2\]"),
    ("gather float index", lambda: tg.ones(2, 3).gather(1, tg.ones(2, 1)), TypeError,
     "gather: index must be an int64 tensor"),
    ("reshape", lambda: tg.ones(2, 3).reshape(4, 2), ValueError,
     r"reshape: shape \(4, 2\) is invalid for input of shape \(2, 3\)"),
    ("view non-contiguous", lambda: tg.ones(2, 3).T.view(6), RuntimeError, "view: .*use .reshape"),
    ("dim out of range", lambda: tg.ones(2, 3).sum(2), IndexError,
     r"sum: dimension 2 is out of range for a tensor of shape \(2, 3\)"),
    ("repeated dim", lambda: tg.ones(2, 3).sum((1, -1)), ValueError, "sum: dim .* repeats"),
    ("mean of ints", lambda: tg.arange(4).mean(), TypeError, "mean: input dtype must be floating"),
    ("cat shapes", lambda: tg.cat([tg.ones(2, 3), tg.ones(2, 4)]), ValueError,
     r"cat: tensor 1 has shape \(2, 4\)"),
    ("stack shapes", lambda: tg.stack([tg.ones(2), tg.ones(3)]), ValueError, "stack: expects"),
    ("split sections", lambda: tg.ones(5).split([2, 2]), ValueError, "split: sections"),
    ("expand", lambda: tg.ones(2, 3).expand(4, 3), ValueError, r"expand: .*\(2, 3\) cannot be expanded"),
    ("permute", lambda: tg.ones(2, 3).permute(0, 0), ValueError, "permute: dim .* repeats"),
    ("pad length", lambda: tg.nn.functional.pad(tg.ones(2), (1, 1, 1, 1)), ValueError, "pad: padding"),
    ("pad mode", lambda: tg.nn.functional.pad(tg.ones(2), (1, 1), mode="reflect"), ValueError,
     "pad: only mode='constant'"),
    ("item", lambda: tg.ones(2).item(), ValueError, r"item\(\): .*shape \(2,\)"),
    ("numpy with grad", lambda: tg.ones(2, requires_grad=True).numpy(), RuntimeError,
     r"numpy\(\): .*detach"),
    ("unknown device", lambda: tg.ones(2, device="tpu"), ValueError, "unknown device 'tpu'"),
    ("bad dtype", lambda: tg.ones(2, dtype="complex64"), TypeError, "unsupported dtype"),
    ("bfloat16 on cpu", lambda: tg.ones(2, dtype=tg.bfloat16), TypeError,
     "bfloat16 is not supported on device 'cpu'"),
    ("negative shape", lambda: tg.zeros(2, -1), ValueError, "invalid shape"),
    ("gelu approximate", lambda: tg.nn.functional.gelu(tg.ones(2), approximate="fast"), ValueError,
     "gelu: approximate"),
    ("clamp without bounds", lambda: tg.ones(2).clamp(), ValueError, "clamp: at least one"),
    ("bool negation", lambda: -(tg.ones(2) > 0), TypeError, "neg: negation of a bool tensor"),
    ("setitem shape", lambda: tg.zeros(2, 3).__setitem__(0, tg.ones(4)), RuntimeError,
     r"__setitem__: cannot assign a value of shape \(4,\)"),
]


@pytest.mark.parametrize("name,call,error,message", CASES, ids=[c[0] for c in CASES])
def test_bad_input_raises_a_clear_error(name, call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_backward_on_a_non_scalar_needs_a_gradient():
    x = tg.ones(2, 3, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"backward: grad can be implicitly created only for "
                                           r"scalar outputs; this output has shape \(2, 3\)"):
        (x * 2).backward()


def test_backward_gradient_of_the_wrong_shape():
    x = tg.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"gradient of shape \(3,\) does not match .*\(2,\)"):
        (x * 2).backward(tg.ones(3))


def test_backward_twice_without_retain_graph():
    x = tg.ones(2, requires_grad=True)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="MulBackward: trying to backward through the graph a "
                                           "second time.*retain_graph=True"):
        y.backward()


def test_backward_on_a_tensor_without_grad():
    with pytest.raises(RuntimeError, match="backward: the tensor does not require grad"):
        tg.ones(2).sum().backward()


def test_gradcheck_reports_input_index_and_both_values():
    class BadSquare(tg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            return grad * 3 * x  # wrong: should be 2x

    x = tg.tensor([1.0, 2.0], dtype=tg.float64, requires_grad=True)
    with pytest.raises(tg.GradcheckError, match=r"input 0 at element \(0,\).*analytic 3\.0, "
                                                r"numeric 2\.0"):
        tg.gradcheck(BadSquare.apply, (x,))
    with pytest.raises(tg.GradcheckError, match="random direction"):
        tg.gradcheck(BadSquare.apply, (x,), fast_mode=True)


def test_gradcheck_insists_on_float64():
    with pytest.raises(ValueError, match="gradcheck: input 0 has dtype float32"):
        tg.gradcheck(lambda t: t * 2, (tg.ones(2, requires_grad=True),))


def test_gradcheck_fast_mode_passes_for_correct_large_ops():
    x = tg.randn(80, 70, dtype=tg.float64, requires_grad=True)
    w = tg.randn(70, 60, dtype=tg.float64, requires_grad=True)
    assert tg.gradcheck(lambda a, b: (a @ b).tanh(), (x, w))  # 9800 elements: fast mode
