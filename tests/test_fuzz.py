"""Fuzzing the public boundary: bad files for tg.load, bad arguments for the ops.

The contract (DESIGN.md, "Errors") is that bad input gets a clear Python exception of
a documented type whose message names the op; never an AssertionError, a NumPy or JSON
message from deep inside, or a crash. Hypothesis draws the bad input: truncated, bit-flipped
and random files for `tg.load`; random shapes, dtypes and argument types for the ops, whose
result shapes are then compared with PyTorch's wherever both succeed.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import tempfile
import warnings
from contextlib import contextmanager
from unittest import mock

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings

import tinygrad_like as tg

# Derandomized and without an example database, so every run (CI included) draws the same
# examples; small inputs (a hang would need a large one) and bounded example counts keep the
# whole file to about 15 seconds.
_BOUNDED = dict(deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FILES = settings(max_examples=150, **_BOUNDED)
CALLS = settings(max_examples=100, **_BOUNDED)

DOCUMENTED_ERRORS = (ValueError, TypeError, KeyError, RuntimeError, OSError, IndexError)


def assert_clear_error(error: Exception, op: str) -> None:
    """A documented exception type, whose message names `op` the way the framework's
    messages do ("op: ..." or "op(): ...")."""
    described = f"{type(error).__name__}: {error}"
    assert isinstance(error, DOCUMENTED_ERRORS), f"{op} raised an undocumented {described}"
    assert re.search(rf"\b{re.escape(op)}(\(\))?:", str(error)), \
        f"{op}: the message does not name the op: {described}"


# ---- tg.load ---------------------------------------------------------------------------------
STATE = {
    "model": {"layers.0.weight": tg.randn(3, 2), "layers.0.bias": tg.zeros(3),
              "norm.num_batches_tracked": tg.tensor(4)},
    "optimizer": {"state": {0: {"step": tg.tensor(2.0), "exp_avg": tg.ones(3, 2)}},
                  "param_groups": [{"lr": 0.1, "betas": (0.9, 0.999), "params": [0, 1]}]},
    "epoch": 3, "history": [{"loss": 0.5}], "flags": tg.tensor([True, False]),
}


def _saved_file() -> bytes:
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "state.safetensors")
        tg.save(STATE, path)
        with open(path, "rb") as f:
            return f.read()


SAVED = _saved_file()


@contextmanager
def pickle_forbidden():
    """Any use of pickle while loading fails the test: files never reach an unpickler."""
    def refuse(*args, **kwargs):
        raise AssertionError("tg.load used pickle")

    with mock.patch.object(pickle, "loads", refuse), mock.patch.object(pickle, "load", refuse), \
            mock.patch.object(pickle, "Unpickler", refuse):
        yield


def header_shapes(raw: bytes) -> list[tuple]:
    """The tensor shapes a (valid) safetensors header declares."""
    header = json.loads(raw[8:8 + int.from_bytes(raw[:8], "little")])
    return [tuple(entry["shape"]) for name, entry in header.items() if name != "__metadata__"]


def loaded_tensors(value) -> list:
    if isinstance(value, tg.Tensor):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return [t for item in value for t in loaded_tensors(item)]
    return []


def check_load(tmp_path, raw: bytes) -> None:
    """tg.load of `raw` fails clearly, or returns tensors of the shapes the header declares."""
    path = tmp_path / "checkpoint.safetensors"
    path.write_bytes(raw)
    try:
        with pickle_forbidden():
            loaded = tg.load(path)
    except Exception as error:  # what was raised is what is checked
        assert_clear_error(error, "load")
        return
    shapes = [t.shape for t in loaded_tensors(loaded)]
    declared = header_shapes(raw)
    assert all(shape in declared for shape in shapes), f"{shapes} not among {declared}"


@FILES
@given(keep=st.integers(0, len(SAVED) - 1))
def test_load_of_a_truncated_file_raises_a_clear_error(tmp_path_factory, keep):
    check_load(tmp_path_factory.mktemp("load"), SAVED[:keep])


@FILES
@given(flips=st.lists(st.tuples(st.integers(0, len(SAVED) - 1), st.integers(0, 7)),
                      min_size=1, max_size=4))
def test_load_of_a_bit_flipped_file_fails_clearly_or_returns_declared_shapes(tmp_path_factory,
                                                                            flips):
    raw = bytearray(SAVED)
    for position, bit in flips:
        raw[position] ^= 1 << bit
    check_load(tmp_path_factory.mktemp("load"), bytes(raw))


@FILES
@given(raw=st.binary(max_size=300), header_size=st.none() | st.integers(0, 400))
def test_load_of_random_bytes_raises_a_clear_error(tmp_path_factory, raw, header_size):
    # with a plausible header length up front, the JSON parser sees the random bytes too
    if header_size is not None:
        raw = header_size.to_bytes(8, "little") + raw
    check_load(tmp_path_factory.mktemp("load"), raw)


# every dtype safetensors names, with its item size; NumPy has no type for some of them
SAFETENSORS_DTYPES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "I64": 8,
                      "I32": 4, "I16": 2, "I8": 1, "U64": 8, "U32": 4, "U16": 2, "U8": 1,
                      "BOOL": 1}
NAMES = ["w", "b", "layer.0"]


def structures(names: list):
    """tinygrad_like's structure metadata: well formed, or with nodes of the wrong kind, names
    of absent tensors and requires_grad on integer ones."""
    tensor = st.builds(lambda name, grad: {"tensor": name, "requires_grad": grad},
                       st.sampled_from(names + ["absent"]), st.booleans())
    leaves = st.one_of(st.none(), st.booleans(), st.integers(-2, 2), st.text(max_size=2), tensor)
    return st.recursive(leaves, lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(lambda items: {"list": items}),
        st.lists(inner, max_size=3).map(lambda items: {"tuple": items}),
        st.lists(st.tuples(st.one_of(st.text(max_size=2), st.integers(), inner), inner),
                 max_size=3).map(lambda pairs: {"dict": [list(p) for p in pairs]}),
        st.dictionaries(st.text(max_size=3), inner, max_size=2),  # unknown node kinds
        st.lists(inner, max_size=2),
    ), max_leaves=8)


@st.composite
def forged_files(draw) -> bytes:
    """Well-formed safetensors files built from scratch, with any dtype and shape and any
    structure metadata (or none, as from another tool)."""
    header, data = {}, b""
    for name in draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=3)):
        dtype = draw(st.sampled_from(list(SAFETENSORS_DTYPES)))
        shape = draw(st.lists(st.integers(0, 3), max_size=3))
        size = SAFETENSORS_DTYPES[dtype] * int(np.prod(shape))
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [len(data), len(data) + size]}
        data += draw(st.binary(min_size=size, max_size=size))
    if draw(st.booleans()):
        layout = {"version": draw(st.integers(0, 2)), "tree": draw(structures(list(header)))}
        header["__metadata__"] = {"tinygrad_like": json.dumps(layout)}
    encoded = json.dumps(header).encode()
    return len(encoded).to_bytes(8, "little") + encoded + data


@FILES
@given(raw=forged_files())
def test_load_of_forged_files_fails_clearly_or_returns_declared_shapes(tmp_path_factory, raw):
    check_load(tmp_path_factory.mktemp("load"), raw)


# ---- the ops ---------------------------------------------------------------------------------
# Arguments are drawn as NumPy arrays (tensors of float32/float64/int64/bool), lists of arrays
# (tensor lists) and plain Python values, and handed to tinygrad_like and to PyTorch alike.
DTYPES = [np.float32, np.float64, np.int64, np.bool_]


def arrays(min_dims=0, max_dims=3, dtypes=DTYPES):
    """Small tensors with size-0 and size-1 axes; values that are exact in every dtype."""
    elements = {"f": st.integers(-4, 4).map(lambda n: n / 2), "i": st.integers(-1, 3),
                "b": st.booleans()}
    return st.sampled_from(dtypes).flatmap(lambda dtype: hnp.arrays(
        dtype, hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=0, max_side=3),
        elements=elements[np.dtype(dtype).kind]))


# values of the wrong kind for an int, a dim, a tensor or a size
JUNK = st.sampled_from([None, "2", 1.5, -1, -3, 9, True, (), [1.5], (0, "a")])
INTS = st.integers(-3, 3)
DIMS = st.one_of(INTS, st.none(), st.tuples(INTS, INTS), JUNK)
SIZES = st.one_of(INTS, JUNK)
TENSORS = st.one_of(arrays(), arrays(), JUNK)  # mostly tensors


def materialize(lib, value):
    if isinstance(value, np.ndarray):
        return tg.tensor(value) if lib is tg else torch.from_numpy(value.copy())
    if isinstance(value, list) and value and all(isinstance(v, np.ndarray) for v in value):
        return [materialize(lib, v) for v in value]
    return value


def result_shapes(out) -> list:
    outputs = out if isinstance(out, (tuple, list)) else [out]
    return [tuple(o.shape) for o in outputs]


def check_op(op: str, call, args: tuple, kwargs: dict) -> None:
    """Ours either raises a clear error or succeeds, with torch's shapes where torch succeeds."""
    def run(lib):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return call(lib, *(materialize(lib, a) for a in args),
                        **{k: materialize(lib, v) for k, v in kwargs.items()})

    try:
        ours = run(tg)
    except Exception as error:  # what was raised is what is checked
        assert_clear_error(error, op)
        return
    try:
        theirs = run(torch)
    except Exception:  # ours may accept more than torch does, e.g. tg.add(2, x)
        return
    assert result_shapes(ours) == result_shapes(theirs), \
        f"{op}: shapes {result_shapes(ours)}, torch {result_shapes(theirs)}"


def method(name):
    return lambda lib, x, *args, **kwargs: getattr(x, name)(*args, **kwargs)


def function(name):
    return lambda lib, *args, **kwargs: getattr(lib, name)(*args, **kwargs)


def functional(name):
    return lambda lib, *args, **kwargs: getattr(lib.nn.functional, name)(*args, **kwargs)


def call_with(positional, **keywords):
    """A call's arguments: a strategy for the positional tuple, and one for each keyword."""
    return st.tuples(positional, st.fixed_dictionaries(keywords))


def args(*strategies, **keywords):
    return call_with(st.tuples(*strategies), **keywords)


def sizes(max_size: int):
    """Sizes passed one by one, f(2, 3), any of them maybe junk."""
    return st.lists(SIZES, max_size=max_size).map(tuple)


SCALARS = st.one_of(st.integers(-2, 2), st.sampled_from([0.5, -1.5, True, False]))
OPERANDS = st.one_of(arrays(), arrays(), SCALARS, JUNK)
KEEPDIM = st.booleans()

# op name (as messages name it) -> (how to call it, its arguments)
OPS = {
    # creation
    "tensor": (function("tensor"), args(st.one_of(
        st.recursive(st.one_of(st.integers(-2, 2), st.floats(-2, 2), st.booleans()),
                     lambda inner: st.lists(inner, max_size=3), max_leaves=6),
        st.sampled_from([[[1, 2], [3]], "abc", None, [1, "a"], {"a": 1}, [[], [1]]])))),
    **{op: (function(op), call_with(sizes(3))) for op in ("zeros", "ones", "randn")},
    "full": (function("full"), args(st.one_of(sizes(3), SIZES), st.one_of(SCALARS, JUNK))),
    "arange": (function("arange"), args(st.one_of(SCALARS, JUNK), st.one_of(SCALARS, JUNK),
                                        st.one_of(SCALARS, JUNK))),
    "eye": (function("eye"), args(SIZES, st.one_of(SIZES, st.none()))),
    "linspace": (function("linspace"), args(SCALARS, SCALARS, SIZES)),
    # elementwise
    **{op: (function(op), args(OPERANDS, OPERANDS))
       for op in ("add", "sub", "mul", "div", "pow", "maximum", "minimum", "eq", "lt",
                  "logical_and")},
    "where": (function("where"), args(OPERANDS, OPERANDS, OPERANDS)),
    **{op: (method(op), args(arrays())) for op in ("exp", "log", "sqrt", "abs", "neg", "relu",
                                                   "sigmoid", "tanh")},
    "clamp": (method("clamp"), args(arrays(), st.one_of(SCALARS, JUNK, arrays()),
                                    st.one_of(SCALARS, JUNK, arrays()))),
    # reductions
    **{op: (method(op), args(arrays(), dim=DIMS, keepdim=KEEPDIM))
       for op in ("sum", "mean", "var", "std", "amax", "max", "argmax", "logsumexp")},
    # movement
    **{op: (method(op), call_with(st.builds(lambda x, shape: (x, *shape), arrays(), sizes(4))))
       for op in ("reshape", "view", "permute", "expand")},
    "transpose": (method("transpose"), args(arrays(), SIZES, SIZES)),
    "flatten": (method("flatten"), args(arrays(), SIZES, SIZES)),
    "squeeze": (method("squeeze"), args(arrays(), DIMS)),
    "unsqueeze": (method("unsqueeze"), args(arrays(), SIZES)),
    "matmul": (function("matmul"), args(TENSORS, TENSORS)),
    "cat": (function("cat"), args(st.one_of(st.lists(arrays(), max_size=3), JUNK),
                                  dim=SIZES)),
    "stack": (function("stack"), args(st.one_of(st.lists(arrays(), max_size=3), JUNK),
                                      dim=SIZES)),
    "getitem": (lambda lib, x, index: x[index], args(arrays(min_dims=1), st.one_of(
        INTS, st.slices(4), st.none(), st.just(Ellipsis), arrays(max_dims=2), JUNK,
        st.tuples(st.one_of(INTS, st.slices(3), st.none(), st.just(Ellipsis), JUNK),
                  st.one_of(INTS, st.slices(3), st.none(), st.just(Ellipsis)))))),
    # tg.nn.functional
    "conv2d": (functional("conv2d"), args(
        arrays(3, 4), arrays(3, 4), st.one_of(st.none(), arrays(1, 1)),
        stride=st.one_of(st.integers(0, 2), JUNK), padding=st.one_of(st.integers(-1, 1), JUNK,
                                                                     st.just("same")),
        dilation=st.one_of(st.integers(0, 2), JUNK), groups=st.one_of(st.integers(0, 2), JUNK))),
    "max_pool2d": (functional("max_pool2d"), args(
        arrays(2, 4), st.one_of(st.integers(0, 3), JUNK), st.one_of(st.integers(0, 2), JUNK),
        st.one_of(st.integers(-1, 1), JUNK))),
    "avg_pool2d": (functional("avg_pool2d"), args(
        arrays(2, 4), st.one_of(st.integers(0, 3), JUNK), st.one_of(st.integers(0, 2), JUNK),
        st.one_of(st.integers(-1, 1), JUNK))),
    "softmax": (functional("softmax"), args(arrays(), st.one_of(INTS, JUNK))),
    "cross_entropy": (functional("cross_entropy"), args(
        arrays(1, 3), arrays(0, 2), reduction=st.sampled_from(["mean", "sum", "none", "max"]),
        label_smoothing=st.sampled_from([0.0, 0.1, -1.0]))),
    "mse_loss": (functional("mse_loss"), args(TENSORS, TENSORS)),
    "batch_norm": (functional("batch_norm"), args(
        arrays(1, 4), *[st.one_of(st.none(), arrays(1, 1))] * 4, training=st.booleans())),
    "linear": (functional("linear"), args(TENSORS, TENSORS, st.one_of(st.none(), TENSORS))),
    "embedding": (functional("embedding"), args(TENSORS, TENSORS)),
    "layer_norm": (functional("layer_norm"), args(
        arrays(), st.one_of(st.lists(st.integers(0, 3), max_size=2), SIZES),
        st.one_of(st.none(), arrays(0, 2)), st.one_of(st.none(), arrays(0, 2)))),
    "scaled_dot_product_attention": (functional("scaled_dot_product_attention"), args(
        arrays(1, 3), arrays(1, 3), arrays(1, 3), st.one_of(st.none(), arrays(0, 2)),
        is_causal=st.booleans(), scale=st.one_of(st.none(), st.just(0.5), JUNK))),
}


@pytest.mark.parametrize("op", OPS)
def test_op_raises_clear_errors_or_matches_torch_shapes(op):
    call, arguments = OPS[op]

    @CALLS
    @given(drawn=arguments)
    def fuzz(drawn):
        check_op(op, call, *drawn)

    fuzz()
