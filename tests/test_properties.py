"""Property tests: broadcasting, reductions and movement ops against NumPy on random shapes.

test_ops.py checks every op on a few hand-picked shapes; here Hypothesis draws the shapes,
dims, indices and dtypes, including the cases hand-picked ones miss: size-0 and size-1 axes,
0-d tensors, negative and tuple dims, keepdim. NumPy (and SciPy's logsumexp) is the oracle
for values, shapes and gradients. PyTorch only decides result dtypes, because type promotion
is the one place where NumPy's rules and the contract's (PyTorch's) differ.
"""

from __future__ import annotations

import itertools
import math

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
import scipy.special
import torch
from hypothesis import given, settings

import tinygrad_like as tg
import tinygrad_like.nn.functional as F

# Derandomized and without an example database, so every run and every machine (CI included)
# draws the same examples, and a failure reproduces with the same command.
PROPERTY = settings(max_examples=50, deadline=None, derandomize=True, database=None)

NUMERIC = [np.float32, np.float64, np.int32, np.int64]
FLOATING = [np.float32, np.float64]
SHAPES = hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=3)


# ---- helpers ---------------------------------------------------------------------------------
def values(dtype, shape):
    """Small half-integers: exact in every dtype, and ties (which decide max/min gradients)
    are common."""
    steps = st.integers(-4, 4)
    elements = {"f": steps.map(lambda n: n / 2), "i": steps, "b": st.booleans()}
    return hnp.arrays(dtype, shape, elements=elements[np.dtype(dtype).kind])


def ramp(shape, start=0):
    """Distinct values, so an element moved to the wrong place cannot go unnoticed."""
    return np.arange(start, start + math.prod(shape), dtype=np.float64).reshape(shape)


def as_list(out) -> list:
    return list(out) if isinstance(out, (tuple, list)) else [out]


def dims(ndim: int, tuples: bool = True):
    """None, one dim or (with `tuples`) a tuple of distinct dims, each maybe negative.

    A 0-d tensor accepts dim 0 and -1, as in PyTorch.
    """
    bound = max(ndim, 1)
    choices = [st.none(), st.integers(-bound, bound - 1)]
    if tuples and ndim:
        axes = st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True)
        choices.append(axes.flatmap(
            lambda axes: st.tuples(*(st.sampled_from([a, a - ndim]) for a in axes))))
    return st.one_of(choices)


def numpy_axes(dim, ndim: int) -> tuple | None:
    """`dim` as NumPy's non-negative axes; a 0-d array has none, so it takes axis=None."""
    if dim is None or ndim == 0:
        return None
    return tuple(d % ndim for d in as_list(dim))


def assert_matches(actual: tg.Tensor, expected, rtol: float = 0.0, atol: float = 0.0) -> None:
    """Same shape, same dtype, same values (nan where NumPy has nan)."""
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, f"shape {actual.shape}, expected {expected.shape}"
    array = actual.detach().numpy()
    assert array.dtype == expected.dtype, f"dtype {array.dtype}, expected {expected.dtype}"
    np.testing.assert_allclose(array, expected, rtol=rtol, atol=atol)


def float_tolerance(dtype) -> dict:
    return {"rtol": 1e-5, "atol": 1e-5} if np.dtype(dtype) == np.float32 else {"rtol": 1e-10}


def scatter_back(move, shapes, weights) -> list:
    """d sum(move(*xs) * weights) / d xs, for a `move` that only copies elements around.

    `move` is applied to arrays of element ids instead of values; each output position then
    adds its weight to the element it was copied from. Ids start at 1, so a fill value <= 0
    (padding) marks positions copied from no input.
    """
    sizes = [math.prod(shape) for shape in shapes]
    firsts = np.cumsum([1, *sizes])
    ids = [np.arange(first, first + size).reshape(shape)
           for first, size, shape in zip(firsts, sizes, shapes)]
    source = np.concatenate([np.ravel(m) for m in as_list(move(*ids))])
    weight = np.concatenate([np.ravel(w) for w in weights])
    copied = source > 0
    # bincount of nothing is int64, whatever the weights
    totals = np.bincount(source[copied], weights=weight[copied], minlength=firsts[-1]).astype(float)
    return [totals[first:first + size].reshape(shape)
            for first, size, shape in zip(firsts, sizes, shapes)]


def unbroadcast(grad: np.ndarray, shape: tuple) -> np.ndarray:
    """Each input element's gradient: the sum of `grad` over the positions it was broadcast to."""
    (summed,) = scatter_back(lambda ids: np.broadcast_to(ids, grad.shape), [shape], [grad])
    return summed


def torch_result_type(a: np.ndarray, b: np.ndarray) -> np.dtype:
    """PyTorch's promotion, which differs from NumPy's (int64 with float32 stays float32, a 0-d
    operand only decides the result from a higher category)."""
    dtype = torch.result_type(torch.from_numpy(a), torch.from_numpy(b))
    return torch.empty(0, dtype=dtype).numpy().dtype


# ---- broadcasting binary ops -----------------------------------------------------------------
BINARY = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.true_divide,
    "maximum": np.maximum, "minimum": np.minimum, "eq": np.equal, "ne": np.not_equal,
    "lt": np.less, "le": np.less_equal, "gt": np.greater, "ge": np.greater_equal,
}


def _split_ties(g, wins, ties):
    share = wins + 0.5 * ties
    return g * share, g * (1 - share)


# d op / d a and d op / d b times the upstream gradient `g`, at the broadcast shape; the
# gradient of maximum/minimum goes to the winner and is split evenly on ties, as in PyTorch
LOCAL_GRADIENTS = {
    "add": lambda a, b, g: (g, g),
    "sub": lambda a, b, g: (g, -g),
    "mul": lambda a, b, g: (g * b, g * a),
    "div": lambda a, b, g: (g / b, -g * a / (b * b)),
    "maximum": lambda a, b, g: _split_ties(g, a > b, a == b),
    "minimum": lambda a, b, g: _split_ties(g, a < b, a == b),
}


@st.composite
def broadcast_operands(draw, *dtype_choices: list):
    """One array per list of dtypes, their shapes mutually broadcastable; and the result shape."""
    shapes = draw(hnp.mutually_broadcastable_shapes(num_shapes=len(dtype_choices), min_dims=0,
                                                    max_dims=4, min_side=0, max_side=3))
    arrays = [draw(values(draw(st.sampled_from(dtypes)), shape))
              for dtypes, shape in zip(dtype_choices, shapes.input_shapes)]
    return arrays, shapes.result_shape


def binary_reference(op: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """NumPy's op on the operands cast to PyTorch's common dtype (true division of integers
    gives the default float, float32)."""
    common = torch_result_type(a, b)
    if op == "div" and common.kind != "f":
        common = np.dtype(np.float32)
    return BINARY[op](a.astype(common), b.astype(common))


# x / 0 is inf or nan in NumPy and PyTorch alike; NumPy warns about it
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("op", sorted(BINARY))
@PROPERTY
@given(operands=broadcast_operands(NUMERIC, NUMERIC))
def test_binary_op_broadcasts_like_numpy(op, operands):
    (a, b), result_shape = operands
    expected = binary_reference(op, a, b)
    assert expected.shape == result_shape
    assert_matches(getattr(tg, op)(tg.tensor(a), tg.tensor(b)), expected, rtol=1e-6)


def check_broadcast_backward(out: tg.Tensor, inputs: list, local_gradients) -> None:
    """Backpropagate a random upstream gradient through `out`: each input's gradient must be
    its local gradient (`local_gradients(upstream)`, at the broadcast shape) summed over the
    positions the input was broadcast to, in the input's dtype."""
    upstream = np.random.default_rng(0).standard_normal(out.shape).astype(out.dtype.np_dtype)
    out.backward(tg.tensor(upstream))
    tolerance = float_tolerance(out.dtype.np_dtype)  # the backward runs at the output's precision
    for tensor, local in zip(inputs, local_gradients(upstream.astype(np.float64))):
        expected = unbroadcast(local, tensor.shape).astype(tensor.dtype.np_dtype)
        assert_matches(tensor.grad, expected, **tolerance)


@pytest.mark.parametrize("op", sorted(LOCAL_GRADIENTS))
@PROPERTY
@given(operands=broadcast_operands(FLOATING, FLOATING))
def test_binary_op_gradients_sum_over_broadcast_axes(op, operands):
    (a, b), result_shape = operands
    if op == "div":
        b = np.where(b == 0, 1, b)  # keep the gradient finite, 1/0 is not what this is about
    x, y = tg.tensor(a, requires_grad=True), tg.tensor(b, requires_grad=True)
    out = getattr(tg, op)(x, y)
    broadcast = [np.broadcast_to(v.astype(np.float64), result_shape) for v in (a, b)]
    check_broadcast_backward(out, [x, y], lambda g: LOCAL_GRADIENTS[op](*broadcast, g))


@PROPERTY
@given(operands=broadcast_operands([np.bool_], NUMERIC, NUMERIC))
def test_where_broadcasts_like_numpy_and_routes_gradients(operands):
    (condition, a, b), result_shape = operands
    common = torch_result_type(a, b)
    expected = np.where(condition, a.astype(common), b.astype(common))
    assert expected.shape == result_shape
    differentiable = a.dtype.kind == b.dtype.kind == "f"
    x, y = (tg.tensor(v, requires_grad=differentiable) for v in (a, b))
    out = tg.where(tg.tensor(condition), x, y)
    assert_matches(out, expected)
    if differentiable:
        chosen = np.broadcast_to(condition, result_shape)
        check_broadcast_backward(out, [x, y],
                                 lambda g: (np.where(chosen, g, 0), np.where(chosen, 0, g)))


# ---- reductions ------------------------------------------------------------------------------
def _softmax(a, axis):
    shifted = np.exp(a - np.amax(a, axis, keepdims=True))
    return shifted / shifted.sum(axis, keepdims=True)


def _extreme_gradient(extreme):
    """amax/amin send the gradient to the extreme elements, split evenly among ties."""

    def gradient(a, axis, g):
        ties = a == extreme(a, axis, keepdims=True)
        return g * ties / ties.sum(axis, keepdims=True)

    return gradient


def _logsumexp(a, axis, keepdims):
    """SciPy's, in the shape NumPy's reductions give (SciPy makes 0-d inputs 1-d, and cannot
    reduce an empty array over all its axes, where the plain formula is exact anyway)."""
    if a.size == 0:
        return np.log(np.sum(np.exp(a), axis=axis, keepdims=keepdims))
    shape = np.sum(a, axis=axis, keepdims=keepdims).shape
    return scipy.special.logsumexp(a, axis=axis, keepdims=keepdims).reshape(shape)


# name -> (NumPy reference, input dtypes, d reduction / d a for a non-empty `a` given the
# upstream gradient `g` with the reduced dims kept)
REDUCTIONS = {
    "sum": (np.sum, NUMERIC, lambda a, axis, g: g),
    "mean": (np.mean, FLOATING, lambda a, axis, g: g / (a.size // g.size)),
    "amax": (np.amax, NUMERIC, _extreme_gradient(np.amax)),
    "amin": (np.amin, NUMERIC, _extreme_gradient(np.amin)),
    "logsumexp": (_logsumexp, FLOATING, lambda a, axis, g: g * _softmax(a, axis)),
}


@st.composite
def reduction_inputs(draw, dtypes: list, tuples: bool = True):
    """An array, a `dim` for it (maybe a tuple) and keepdim."""
    a = draw(values(draw(st.sampled_from(dtypes)), draw(SHAPES)))
    return a, draw(dims(a.ndim, tuples)), draw(st.booleans())


# Reducing over nothing gives nan (mean, var) or inf in NumPy and PyTorch alike, with warnings
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("name", sorted(REDUCTIONS))
@PROPERTY
@given(data=st.data())
def test_reduction_matches_numpy(name, data):
    reference, dtypes, gradient = REDUCTIONS[name]
    a, dim, keepdim = data.draw(reduction_inputs(dtypes))
    axis = numpy_axes(dim, a.ndim)
    differentiable = a.dtype.kind == "f"
    x = tg.tensor(a, requires_grad=differentiable)
    try:
        expected = reference(a, axis=axis, keepdims=keepdim)
    except ValueError:  # amax/amin over an empty dim, an IndexError in PyTorch
        with pytest.raises((IndexError, RuntimeError)):
            getattr(x, name)(dim=dim, keepdim=keepdim)
        return
    out = getattr(x, name)(dim=dim, keepdim=keepdim)
    assert_matches(out, expected, **float_tolerance(a.dtype))
    if not differentiable:
        return
    upstream = np.random.default_rng(0).standard_normal(out.shape).astype(a.dtype)
    out.backward(tg.tensor(upstream))
    kept = reference(a, axis=axis, keepdims=True).shape
    expected_grad = (gradient(a.astype(np.float64), axis, upstream.reshape(kept)) if a.size
                     else np.zeros(a.shape))
    assert_matches(x.grad, np.broadcast_to(expected_grad, a.shape).astype(a.dtype),
                   **float_tolerance(a.dtype))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("name", ["var", "std"])
@PROPERTY
@given(correction=st.sampled_from([0, 1, 2]), inputs=reduction_inputs(FLOATING))
def test_var_and_std_match_numpy(name, correction, inputs):
    a, dim, keepdim = inputs
    expected = getattr(np, name)(a, axis=numpy_axes(dim, a.ndim), ddof=correction,
                                 keepdims=keepdim)
    out = getattr(tg, name)(tg.tensor(a), dim, keepdim=keepdim, correction=correction)
    assert_matches(out, expected, **float_tolerance(a.dtype))


@pytest.mark.parametrize("name", ["max", "min"])
@PROPERTY
@given(inputs=reduction_inputs(NUMERIC, tuples=False))
def test_argmax_argmin_and_max_min_with_dim_match_numpy(name, inputs):
    """Ties are common in the inputs, and both libraries return the first extreme index."""
    a, dim, keepdim = inputs
    axis = numpy_axes(dim, a.ndim)
    arg_reference, reference = {"max": (np.argmax, np.amax), "min": (np.argmin, np.amin)}[name]
    x = tg.tensor(a)
    try:
        expected = arg_reference(a, axis=None if axis is None else axis[0], keepdims=keepdim)
    except ValueError:  # argmax/argmin over an empty dim, an IndexError in PyTorch
        with pytest.raises((IndexError, RuntimeError)):
            getattr(tg, f"arg{name}")(x, dim, keepdim)
        return
    assert_matches(getattr(tg, f"arg{name}")(x, dim, keepdim), expected)
    if dim is not None:
        values_out, indices = getattr(tg, name)(x, dim, keepdim)
        assert_matches(indices, expected)
        assert_matches(values_out, reference(a, axis=axis, keepdims=keepdim))


# ---- movement ops ----------------------------------------------------------------------------
def check_movement(tg_op, np_op, *arrays) -> None:
    """`tg_op` gives `np_op`'s values and shapes, and the backward of sum(op(xs) * w) scatters
    each weight back to the element its output position was copied from."""
    inputs = [tg.tensor(a, requires_grad=True) for a in arrays]
    outputs, expected = as_list(tg_op(*inputs)), as_list(np_op(*arrays))
    assert len(outputs) == len(expected), f"{len(outputs)} outputs, expected {len(expected)}"
    for out, want in zip(outputs, expected):
        assert_matches(out, want)
    rng = np.random.default_rng(0)
    weights = [rng.standard_normal(np.shape(want)) for want in expected]
    sum((out * tg.tensor(w)).sum() for out, w in zip(outputs, weights)).backward()
    for x, grad in zip(inputs, scatter_back(np_op, [a.shape for a in arrays], weights)):
        assert x.grad is not None, f"no gradient reached the input of shape {x.shape}"
        assert_matches(x.grad, grad, rtol=1e-12, atol=1e-12)


def dim_of(ndim: int):
    """One dim of an `ndim`-d tensor, maybe negative."""
    return st.integers(-ndim, ndim - 1)


@st.composite
def reshapes(draw):
    """A shape, and a target with as many elements: its dims permuted, neighbours merged, 1s
    inserted and maybe one dim left to -1."""
    shape = draw(SHAPES)
    permuted = draw(st.permutations(shape))
    cuts = sorted(draw(st.sets(st.integers(1, len(shape) - 1)))) if len(shape) > 1 else []
    bounds = [0, *cuts, len(shape)]
    target = [math.prod(permuted[i:j]) for i, j in itertools.pairwise(bounds)]
    for _ in range(draw(st.integers(0, 2))):
        target.insert(draw(st.integers(0, len(target))), 1)
    if math.prod(target) and draw(st.booleans()):  # -1 is ambiguous when other dims are 0
        target[draw(st.integers(0, len(target) - 1))] = -1
    return shape, tuple(target)


@PROPERTY
@given(shapes=reshapes(), method=st.sampled_from(["reshape", "view"]))
def test_reshape_and_view(shapes, method):
    shape, target = shapes
    check_movement(lambda x: getattr(x, method)(target), lambda a: a.reshape(target), ramp(shape))


@PROPERTY
@given(shape=SHAPES, data=st.data())
def test_transpose(shape, data):
    """A 0-d tensor takes dims 0 and -1 and stays as it is, as in PyTorch."""
    bound = max(len(shape), 1)
    dim0, dim1 = data.draw(st.tuples(dim_of(bound), dim_of(bound)))
    check_movement(lambda x: x.transpose(dim0, dim1),
                   lambda a: np.swapaxes(a, dim0, dim1) if a.ndim else a, ramp(shape))


@PROPERTY
@given(shape=SHAPES, data=st.data())
def test_permute(shape, data):
    ndim = len(shape)
    order = data.draw(st.permutations(range(ndim)).flatmap(
        lambda order: st.tuples(*(st.sampled_from([d, d - ndim]) for d in order))))
    check_movement(lambda x: x.permute(order), lambda a: np.transpose(a, order), ramp(shape))


@PROPERTY
@given(shape=SHAPES, data=st.data())
def test_flatten(shape, data):
    bound = max(len(shape), 1)
    start, end = sorted(data.draw(st.tuples(dim_of(bound), dim_of(bound))),
                        key=lambda d: d % bound)

    def flatten(a):
        if a.ndim == 0:
            return a.reshape(1)
        first, last = start % a.ndim, end % a.ndim
        return a.reshape(a.shape[:first] + (math.prod(a.shape[first:last + 1]),)
                         + a.shape[last + 1:])

    check_movement(lambda x: x.flatten(start, end), flatten, ramp(shape))


@PROPERTY
@given(shape=SHAPES, data=st.data())
def test_squeeze(shape, data):
    """As in PyTorch, naming a dim whose size is not 1 leaves it in place (NumPy would raise)."""
    dim = data.draw(dims(len(shape)))
    axes = numpy_axes(dim, len(shape))
    ones = tuple(i for i, n in enumerate(shape) if n == 1 and (axes is None or i in axes))
    check_movement(lambda x: x.squeeze(dim), lambda a: np.squeeze(a, ones), ramp(shape))


@PROPERTY
@given(shape=SHAPES, data=st.data())
def test_unsqueeze(shape, data):
    dim = data.draw(dim_of(len(shape) + 1))
    check_movement(lambda x: x.unsqueeze(dim), lambda a: np.expand_dims(a, dim), ramp(shape))


@PROPERTY
@given(shape=SHAPES, data=st.data())
def test_expand(shape, data):
    """Size-1 dims stretch to any size (0 included), -1 keeps a dim, new dims go in front."""
    leading = data.draw(st.lists(st.integers(0, 3), max_size=2))
    kept = [data.draw(st.sampled_from([-1, 0, 1, 2, 3] if n == 1 else [-1, n])) for n in shape]
    target = tuple(leading + kept)
    resolved = tuple(leading) + tuple(n if k == -1 else k for n, k in zip(shape, kept))
    check_movement(lambda x: x.expand(target), lambda a: np.broadcast_to(a, resolved),
                   ramp(shape))


@PROPERTY
@given(shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=3), data=st.data())
def test_cat(shape, data):
    dim = data.draw(dim_of(len(shape)))
    lengths = data.draw(st.lists(st.integers(0, 3), min_size=1, max_size=3))
    shapes = [shape[:dim % len(shape)] + (n,) + shape[dim % len(shape) + 1:] for n in lengths]
    arrays = [ramp(s, start=100 * i) for i, s in enumerate(shapes)]
    check_movement(lambda *xs: tg.cat(xs, dim), lambda *a: np.concatenate(a, dim), *arrays)


@PROPERTY
@given(shape=SHAPES, count=st.integers(1, 3), data=st.data())
def test_stack(shape, count, data):
    dim = data.draw(dim_of(len(shape) + 1))
    arrays = [ramp(shape, start=100 * i) for i in range(count)]
    check_movement(lambda *xs: tg.stack(xs, dim), lambda *a: np.stack(a, dim), *arrays)


@PROPERTY
@given(shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=4), data=st.data())
def test_split(shape, data):
    """An int split_size (the last piece may be short) or sizes summing to the dim's length."""
    dim = data.draw(dim_of(len(shape)))
    length = shape[dim]
    by_size = st.integers(1, 5)
    by_sections = st.lists(st.integers(0, length), max_size=3).map(
        lambda cuts: np.diff([0, *sorted(cuts), length]).tolist())
    split_size = data.draw(st.one_of(by_size, by_sections))
    starts = (range(split_size, length, split_size) if isinstance(split_size, int)
              else np.cumsum(split_size)[:-1])
    check_movement(lambda x: x.split(split_size, dim), lambda a: np.split(a, starts, dim),
                   ramp(shape))


@PROPERTY
@given(shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=4),
       chunks=st.integers(1, 4), data=st.data())
def test_chunk(shape, chunks, data):
    """torch.chunk: pieces of ceil(length / chunks), so maybe fewer than `chunks`; a dim of
    length 0 gives `chunks` empty pieces."""
    dim = data.draw(dim_of(len(shape)))
    length = shape[dim]
    size = -(-length // chunks)
    starts = range(size, length, size) if length else [0] * (chunks - 1)
    check_movement(lambda x: x.chunk(chunks, dim), lambda a: np.split(a, starts, dim),
                   ramp(shape))


@PROPERTY
@given(shape=SHAPES, data=st.data())
def test_repeat_tiles_like_numpy(shape, data):
    repeats = tuple(data.draw(st.lists(st.integers(0, 3), min_size=len(shape),
                                       max_size=len(shape) + 2)))
    check_movement(lambda x: x.repeat(repeats), lambda a: np.tile(a, repeats), ramp(shape))


@st.composite
def paddings(draw, shape: tuple) -> tuple:
    """F.pad's flat (before, after) pairs from the last dim backwards; a negative width crops,
    as long as the crops fit inside the input."""
    pad = []
    for n in reversed(shape[len(shape) - draw(st.integers(0, len(shape))):]):
        before = draw(st.integers(-n, 3))
        pad += [before, draw(st.integers(-(n + min(before, 0)), 3))]
    return tuple(pad)


def np_pad(a: np.ndarray, pad: tuple, value: float) -> np.ndarray:
    """F.pad through np.pad, which cannot crop: negative widths are slices taken first."""
    widths = [(0, 0)] * a.ndim
    for i in range(len(pad) // 2):
        widths[a.ndim - 1 - i] = (pad[2 * i], pad[2 * i + 1])
    cropped = a[tuple(slice(-min(before, 0), n + min(after, 0))
                      for (before, after), n in zip(widths, a.shape))]
    grown = [(max(before, 0), max(after, 0)) for before, after in widths]
    return np.pad(cropped, grown, constant_values=value)


@PROPERTY
@given(shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=3), data=st.data())
def test_pad(shape, data):
    pad = data.draw(paddings(shape))
    value = data.draw(st.integers(-3, 0).map(float))  # <= 0: scatter_back reads it as padding
    check_movement(lambda x: F.pad(x, pad, value=value), lambda a: np_pad(a, pad, value),
                   ramp(shape))


def forward_steps(index) -> bool:
    """PyTorch slices only with positive steps (NumPy also takes negative ones)."""
    items = index if isinstance(index, tuple) else (index,)
    return all(not isinstance(i, slice) or i.step is None or i.step > 0 for i in items)


@PROPERTY
@given(shape=SHAPES, data=st.data())
def test_getitem_with_basic_indices(shape, data):
    index = data.draw(hnp.basic_indices(shape, allow_newaxis=True, allow_ellipsis=True)
                      .filter(forward_steps))
    check_movement(lambda x: x[index], lambda a: a[index], ramp(shape))
