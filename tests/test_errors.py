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
    ("autocast device", lambda: tg.autocast("tpu"), RuntimeError,
     "unsupported autocast device_type 'tpu'"),
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


# ---- shape errors name the op and every shape involved -----------------------------------------
F = tg.nn.functional
SHAPE_ERRORS = [
    ("conv2d channels", lambda: F.conv2d(tg.ones(1, 3, 5, 5), tg.ones(4, 2, 3, 3)),
     ["conv2d:", "(1, 3, 5, 5)", "(4, 2, 3, 3)"]),
    ("conv2d bias", lambda: F.conv2d(tg.ones(1, 2, 5, 5), tg.ones(4, 2, 3, 3), tg.ones(3)),
     ["conv2d:", "(3,)", "(4, 2, 3, 3)"]),
    ("conv2d kernel", lambda: F.conv2d(tg.ones(1, 2, 2, 2), tg.ones(4, 2, 3, 3)),
     ["conv2d:", "(1, 2, 2, 2)", "(4, 2, 3, 3)"]),
    ("Conv2d module", lambda: tg.nn.Conv2d(3, 4, 3)(tg.ones(1, 2, 5, 5)),
     ["conv2d:", "(1, 2, 5, 5)", "(4, 3, 3, 3)"]),
    ("max_pool2d kernel", lambda: F.max_pool2d(tg.ones(1, 2, 2, 2), 3),
     ["max_pool2d:", "(1, 2, 2, 2)", "(3, 3)"]),
    ("avg_pool2d kernel", lambda: F.avg_pool2d(tg.ones(2, 2, 2), 3),
     ["avg_pool2d:", "(2, 2, 2)", "(3, 3)"]),
    ("linear", lambda: F.linear(tg.ones(2, 3), tg.ones(4, 5)), ["linear:", "(2, 3)", "(4, 5)"]),
    ("linear bias", lambda: F.linear(tg.ones(2, 3), tg.ones(4, 3), tg.ones(5)),
     ["linear:", "(2, 3)", "(4, 3)", "(5,)"]),
    ("linear weight", lambda: F.linear(tg.ones(2, 3), tg.ones(3)), ["linear:", "(2, 3)", "(3,)"]),
    ("matmul", lambda: tg.ones(2, 3) @ tg.ones(4, 5), ["matmul:", "(2, 3)", "(4, 5)"]),
    ("embedding weight", lambda: F.embedding(tg.tensor([0, 1]), tg.ones(3)),
     ["embedding:", "(2,)", "(3,)"]),
    ("layer_norm shape", lambda: F.layer_norm(tg.ones(2, 3), (4,)),
     ["layer_norm:", "(2, 3)", "(4,)"]),
    ("layer_norm weight", lambda: F.layer_norm(tg.ones(2, 3), (3,), tg.ones(4)),
     ["layer_norm:", "(2, 3)", "(3,)", "(4,)"]),
    ("batch_norm running stats", lambda: F.batch_norm(tg.ones(2, 3), tg.zeros(4), tg.ones(4)),
     ["batch_norm:", "(2, 3)", "(4,)"]),
    ("batch_norm weight", lambda: F.batch_norm(tg.ones(2, 3), None, None, tg.ones(2),
                                               training=True),
     ["batch_norm:", "(2, 3)", "(2,)"]),
    ("attention features", lambda: F.scaled_dot_product_attention(
        tg.ones(2, 3, 4), tg.ones(2, 5, 6), tg.ones(2, 5, 6)),
     ["scaled_dot_product_attention:", "(2, 3, 4)", "(2, 5, 6)"]),
    ("attention batch", lambda: F.scaled_dot_product_attention(
        tg.ones(2, 3, 4), tg.ones(3, 5, 4), tg.ones(3, 5, 6)),
     ["scaled_dot_product_attention:", "(2, 3, 4)", "(3, 5, 4)", "(3, 5, 6)"]),
    ("attention mask", lambda: F.scaled_dot_product_attention(
        tg.ones(2, 3, 4), tg.ones(2, 5, 4), tg.ones(2, 5, 6), attn_mask=tg.ones(3, 4)),
     ["scaled_dot_product_attention:", "(3, 4)", "(2, 3, 4)", "(2, 5, 4)"]),
    ("MultiheadAttention key", lambda: tg.nn.MultiheadAttention(4, 2)(
        tg.ones(3, 2, 4), tg.ones(5, 2, 6), tg.ones(5, 2, 6)),
     ["MultiheadAttention:", "(3, 2, 4)", "(5, 2, 6)"]),
    ("MultiheadAttention padding mask", lambda: tg.nn.MultiheadAttention(4, 2)(
        tg.ones(3, 2, 4), tg.ones(5, 2, 4), tg.ones(5, 2, 4), key_padding_mask=tg.ones(2, 4) > 0),
     ["MultiheadAttention:", "(2, 4)", "(2, 5)", "(3, 2, 4)", "(5, 2, 4)"]),
    ("cross_entropy target", lambda: F.cross_entropy(tg.ones(4, 5), tg.tensor([0, 1, 2])),
     ["cross_entropy:", "(4, 5)", "(3,)"]),
    ("cross_entropy weight", lambda: F.cross_entropy(tg.ones(4, 5), tg.tensor([0, 1, 2, 3]),
                                                     tg.ones(4)),
     ["cross_entropy:", "(4, 5)", "(4,)"]),
    ("nll_loss target", lambda: F.nll_loss(tg.ones(4, 5), tg.tensor([[0, 1]])),
     ["nll_loss:", "(4, 5)", "(1, 2)"]),
    ("mse_loss", lambda: F.mse_loss(tg.ones(2, 3), tg.ones(3, 2)),
     ["mse_loss:", "(2, 3)", "(3, 2)"]),
    ("binary_cross_entropy weight", lambda: F.binary_cross_entropy(
        tg.ones(2, 3) * 0.5, tg.ones(2, 3), tg.ones(4)),
     ["binary_cross_entropy:", "(2, 3)", "(4,)"]),
    ("pos_weight", lambda: F.binary_cross_entropy_with_logits(tg.ones(2, 3), tg.ones(2, 3),
                                                              pos_weight=tg.ones(2)),
     ["binary_cross_entropy_with_logits:", "(2, 3)", "(2,)"]),
    ("cat", lambda: tg.cat([tg.ones(2, 3), tg.ones(2, 4)]), ["cat:", "(2, 3)", "(2, 4)"]),
    ("stack", lambda: tg.stack([tg.ones(2, 3), tg.ones(3, 2)]), ["stack:", "(2, 3)", "(3, 2)"]),
    ("where", lambda: tg.where(tg.ones(2, 3) > 0, tg.ones(4), tg.ones(3)),
     ["where:", "(2, 3)", "(4,)", "(3,)"]),
    ("clamp bounds", lambda: tg.ones(2, 3).clamp(tg.ones(4), tg.ones(3)),
     ["clamp:", "(2, 3)", "(4,)", "(3,)"]),
    ("gather", lambda: tg.ones(2, 3).gather(1, tg.tensor([[0], [1], [2]])),
     ["gather:", "(2, 3)", "(3, 1)"]),
]


@pytest.mark.parametrize("name,call,parts", SHAPE_ERRORS, ids=[c[0] for c in SHAPE_ERRORS])
def test_shape_errors_name_the_op_and_every_shape(name, call, parts):
    with pytest.raises(ValueError) as error:
        call()
    message = str(error.value)
    assert message.startswith(parts[0]), message
    for part in parts[1:]:
        assert part in message, f"{part} missing from: {message}"


# ---- bad arguments the fuzzer (tests/test_fuzz.py) found leaking raw errors -------------------
FOUND_BY_FUZZING = [
    ("float size", lambda: tg.zeros(2.0), TypeError, r"zeros: invalid shape \(2\.0,\)"),
    ("None size", lambda: tg.randn(None, 2), TypeError, "randn: invalid shape"),
    ("negative size", lambda: tg.ones(2, -1), ValueError, r"ones: invalid shape \(2, -1\)"),
    ("ragged data", lambda: tg.tensor([[1, 2], [3]]), ValueError,
     "tensor: cannot make a tensor from list data"),
    ("string data", lambda: tg.tensor("abc"), TypeError, "tensor: cannot make a tensor from str"),
    ("fill value", lambda: tg.full((2,), None), TypeError, "full: fill_value must be a number"),
    ("arange direction", lambda: tg.arange(0, 3, -1), ValueError, "arange: step -1 points away"),
    ("linspace steps", lambda: tg.linspace(0, 1, 2.5), TypeError, "linspace: steps must be an int"),
    ("None operand", lambda: tg.add(tg.ones(2), None), TypeError,
     "add: unsupported operand of type NoneType"),
    ("no tensor operand", lambda: tg.mul(2, 3), TypeError,
     "mul: expected at least one Tensor operand"),
    ("bool subtraction", lambda: tg.ones(2) - True, TypeError, "sub: subtraction with a bool"),
    ("integer negative power", lambda: tg.arange(3) ** -1, ValueError,
     "pow: integers to negative integer powers"),
    ("bitwise on floats", lambda: tg.ones(2) & 1, TypeError,
     "bitwise_and: needs bool or integer operands"),
    ("clamp bound type", lambda: tg.ones(2).clamp(min="0"), TypeError,
     "clamp: min must be a number"),
    ("float dim", lambda: tg.ones(2, 3).sum(dim=1.5), TypeError, "sum: dim must be an int"),
    ("tuple dim for max", lambda: tg.ones(2, 3).max(dim=(0, 1)), TypeError,
     r"max: dim must be an int"),
    ("max of nothing", lambda: tg.ones(0).max(), IndexError,
     "max: cannot reduce over an empty dimension"),
    ("var of ints", lambda: tg.arange(4).var(), TypeError, "var: input dtype must be floating"),
    ("std dim", lambda: tg.ones(3).std(dim=2), IndexError, "std: dimension 2 is out of range"),
    ("float in shape", lambda: tg.ones(6).reshape(2.0, 3), TypeError,
     "reshape: shape must hold only ints"),
    ("expand below -1", lambda: tg.ones(3).expand(-2, 3), ValueError,
     "expand: invalid target shape"),
    ("transpose tuple", lambda: tg.ones(2, 3).transpose((0, 1), 1), TypeError,
     "transpose: dim must be an int"),
    ("unsqueeze string", lambda: tg.ones(2).unsqueeze("0"), TypeError,
     "unsqueeze: dim must be an int"),
    ("cat of None", lambda: tg.cat(None), TypeError, "cat: expected a list or tuple of Tensors"),
    ("stack of numbers", lambda: tg.stack([1.5]), TypeError,
     "stack: element 0 of the list must be a Tensor"),
    ("stack dim", lambda: tg.stack([tg.ones(2)], dim=3), IndexError,
     r"stack: dimension 3 is out of range for a tensor of shape \(2,\)"),
    ("conv2d groups 0", lambda: F.conv2d(tg.ones(1, 2, 3, 3), tg.ones(2, 2, 1, 1), groups=0),
     ValueError, "conv2d: groups must be at least 1"),
    ("conv2d float stride", lambda: F.conv2d(tg.ones(1, 2, 3, 3), tg.ones(2, 2, 1, 1),
                                             stride=1.5),
     TypeError, "conv2d: stride must be an int or a pair of ints"),
    ("conv2d empty kernel", lambda: F.conv2d(tg.ones(1, 2, 3, 3), tg.ones(2, 2, 0, 1)),
     ValueError, r"conv2d: the weight of shape \(2, 2, 0, 1\) has no input channels or an empty"),
    ("conv2d no channels", lambda: F.conv2d(tg.ones(1, 0, 3, 3), tg.ones(2, 0, 1, 1)),
     ValueError, r"conv2d: the weight of shape \(2, 0, 1, 1\) has no input channels"),
    ("batch_norm one running stat", lambda: F.batch_norm(tg.ones(2, 3), tg.zeros(3), None),
     ValueError, "batch_norm: pass both running_mean and running_var, or neither"),
    ("pool kernel type", lambda: F.max_pool2d(tg.ones(1, 3, 3), None), TypeError,
     "max_pool2d: kernel_size must be an int or a pair of ints"),
    ("softmax tuple dim", lambda: F.softmax(tg.ones(2, 2), ()), TypeError,
     "softmax: dim must be an int"),
    ("linear of None", lambda: F.linear(None, tg.ones(2, 2)), TypeError,
     "linear: input must be a Tensor, got NoneType"),
    ("embedding of bools", lambda: F.embedding(tg.tensor([True]), tg.ones(2, 2)), TypeError,
     "embedding: indices must be an integer tensor"),
    ("layer_norm shape type", lambda: F.layer_norm(tg.ones(2), None), TypeError,
     "layer_norm: normalized_shape must be a sequence of ints"),
    ("attention scale", lambda: F.scaled_dot_product_attention(tg.ones(2, 2), tg.ones(2, 2),
                                                               tg.ones(2, 2), scale="2"),
     TypeError, "scaled_dot_product_attention: scale must be a number"),
    ("attention without features", lambda: F.scaled_dot_product_attention(
        tg.ones(2, 0), tg.ones(2, 0), tg.ones(2, 0)),
     ValueError, "scaled_dot_product_attention: .* have no features"),
    ("cross_entropy bool target", lambda: F.cross_entropy(tg.ones(2), tg.tensor(True)), TypeError,
     "cross_entropy: expected class indices"),
    ("cross_entropy no classes", lambda: F.cross_entropy(tg.ones(2, 0), tg.tensor([0, 0])),
     ValueError, r"cross_entropy: expected input of shape .* C > 0 classes"),
]


@pytest.mark.parametrize("name,call,error,message", FOUND_BY_FUZZING,
                         ids=[c[0] for c in FOUND_BY_FUZZING])
def test_bad_arguments_raise_a_clear_error(name, call, error, message):
    with pytest.raises(error, match=message):
        call()


@pytest.mark.parametrize("make,expected", [
    (lambda: F.softmax(tg.ones(3, 0), 1), (3, 0)),
    (lambda: F.layer_norm(tg.ones(2, 0), (0,)), (2, 0)),
    (lambda: tg.ones(0, 3, 0) @ tg.ones(0, 2), (0, 3, 2)),
    (lambda: F.linear(tg.ones(2, 0), tg.ones(3, 0)), (2, 3)),
    (lambda: F.scaled_dot_product_attention(tg.ones(3, 0, 2), tg.ones(3, 0, 2), tg.ones(3, 0, 2)),
     (3, 0, 2)),
    (lambda: tg.ones(2, 3).sum(dim=()), ()),  # an empty dim tuple reduces everything (PyTorch)
], ids=["softmax", "layer_norm", "matmul", "linear", "attention", "sum"])
def test_empty_inputs_give_empty_results(make, expected):
    assert make().shape == expected


# ---- optimizer state dicts ------------------------------------------------------------------
def _adam_state():
    weight = tg.ones(2, 3, requires_grad=True)
    optimizer = tg.optim.Adam([weight], lr=0.1)
    weight.sum().backward()
    optimizer.step()
    return optimizer, optimizer.state_dict()


@pytest.mark.parametrize("corrupt,error,message", [
    (lambda state: None, TypeError, "Adam.load_state_dict: expected the dict"),
    (lambda state: dict(state, param_groups=5), TypeError, "'param_groups' to be a list"),
    (lambda state: dict(state, param_groups=[{"lr": 0.1}]), KeyError,
     "parameter group 0 of the state dict is not a dict with a 'params' list"),
    (lambda state: dict(state, state={0: 5}), TypeError,
     "the state of parameter 0 has type int, expected a dict"),
    (lambda state: dict(state, state={0: dict(state["state"][0], exp_avg="x")}), TypeError,
     "parameter 0: state 'exp_avg' has type str, expected a tensor"),
    (lambda state: dict(state, state={0: dict(state["state"][0], exp_avg=tg.ones(3))}),
     ValueError, r"state 'exp_avg' has shape \(3,\), but the parameter has shape \(2, 3\)"),
    (lambda state: dict(state, param_groups=[dict(state["param_groups"][0], lr=-1.0)]),
     ValueError, "Adam: invalid lr -1.0"),
], ids=["none", "groups", "params", "state entry", "state value", "state shape", "option"])
def test_optimizer_load_state_dict_errors(corrupt, error, message):
    optimizer, state = _adam_state()
    before = optimizer.state_dict()
    with pytest.raises(error, match=message):
        optimizer.load_state_dict(corrupt(state))
    assert optimizer.state_dict()["param_groups"] == before["param_groups"]  # nothing changed


def test_optimizer_load_state_dict_fills_options_a_group_lacks_from_the_defaults():
    optimizer, state = _adam_state()
    optimizer.load_state_dict(dict(state, param_groups=[{"params": [0], "lr": 0.5}]))
    group = optimizer.param_groups[0]
    assert group["lr"] == 0.5 and group["amsgrad"] is False
    optimizer.step()
