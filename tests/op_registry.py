"""One entry per public op: how to call it and which inputs to try.

Each `fn` is written once against the shared torch/tinygrad_like API and is
called with `lib` = `tinygrad_like` or `torch`, so the parity test runs the very
same expression on both. The tests in test_ops.py are parametrised over this
list; an op in `tinygrad_like.ops.REGISTERED_NAMES` without an entry here, or a
Function no entry exercises, fails the suite.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable


@dataclass
class Sample:
    shapes: tuple  # one shape per floating-point input
    kwargs: dict = field(default_factory=dict)
    positive: bool = False  # draw inputs from [0.5, 2] (log, sqrt, pow bases)
    noncontiguous: bool = False  # hand the op transposed views instead of fresh arrays
    constant: tuple = ()  # positions of inputs that take no gradient (class weights)

    def __repr__(self) -> str:
        extras = "".join(f",{k}={v}" for k, v in self.kwargs.items())
        return f"{self.shapes}{extras}{',nc' if self.noncontiguous else ''}"


def _cell(lib, kind: str, x, state, w_ih, w_hh, b_ih, b_hh):
    """One GRU/LSTM step: torch.gru_cell / torch.lstm_cell, or tinygrad_like's step function."""
    if lib.__name__ == "torch":
        return getattr(lib, f"{kind}_cell")(x, state, w_ih, w_hh, b_ih, b_hh)
    from tinygrad_like.nn import recurrent

    step = recurrent._gru_step if kind == "gru" else recurrent._lstm_step
    new_state = step(lib.nn.functional.linear(x, w_ih, b_ih), state if kind == "lstm" else (state,),
                     w_hh.T, b_hh)
    return new_state[0] if kind == "gru" else new_state


def _gru_layer(lib, x, h0, w_ih, w_hh, b_ih, b_hh, reverse=False):
    """One GRU layer direction over (L, N, in): torch.gru, or tinygrad_like's fused sequence op."""
    if lib.__name__ == "torch":
        x = x.flip(0) if reverse else x
        out = lib.gru(x, h0[None], [w_ih, w_hh, b_ih, b_hh], True, 1, 0.0, True, False, False)[0]
        return out.flip(0) if reverse else out
    from tinygrad_like.ops.recurrent import GRUSequence

    x_proj = lib.nn.functional.linear(x, w_ih, b_ih)
    return GRUSequence.apply(x_proj, h0, w_hh, b_hh, reverse)


@dataclass
class OpCase:
    name: str
    fn: Callable
    samples: list
    differentiable: bool = True
    gradgrad: bool = True
    atol: float = 1e-5  # gradcheck tolerance (finite differences in float64)
    eps: float = 1e-6  # finite-difference step
    torch_parity: bool = True  # False only for random ops (dropout), checked in test_nn.py
    # False where the gradient is deliberately not the derivative (embedding's padding_idx)
    finite_differences: bool = True

    def __repr__(self) -> str:
        return self.name


S = Sample
UNARY = [S(((3, 4),)), S(((2, 3, 4),), noncontiguous=True), S(((),))]
POSITIVE = [S(s.shapes, positive=True, noncontiguous=s.noncontiguous) for s in UNARY]
BINARY = [
    S(((3, 4), (3, 4))),
    S(((2, 3, 4), (3, 1))),
    S(((4,), (2, 3, 4)), noncontiguous=True),
    S(((3, 4), ())),
]
REDUCE = [
    S(((3, 4),)),
    S(((2, 3, 4),), {"dim": 1}),
    S(((2, 3, 4),), {"dim": -1, "keepdim": True}),
    S(((2, 3, 4),), {"dim": (0, 2)}, noncontiguous=True),
]


def unary(name, method=None, samples=UNARY, **options):
    method = method or name
    return OpCase(name, lambda lib, x: getattr(x, method)(), samples, **options)


def binary(name, samples=BINARY, **options):
    return OpCase(name, lambda lib, x, y: getattr(lib, name)(x, y), samples, **options)


def reduction(name, samples=REDUCE, **options):
    return OpCase(name, lambda lib, x, **kw: getattr(x, name)(**kw), samples, **options)


OPS = [
    # elementwise arithmetic
    binary("add"),
    binary("sub"),
    binary("mul"),
    OpCase("div", lambda lib, x, y: x / (y.abs() + 0.5), BINARY),
    OpCase(
        "pow",
        lambda lib, x, y: lib.pow(x, y),
        [S(((3, 4), (3, 4)), positive=True), S(((2, 3), (3,)), positive=True)],
    ),
    # a Python number as the base (Tensor.__rpow__): int, float, and 0 (whose log PyTorch
    # takes as 0 in the exponent's gradient)
    OpCase(
        "rpow",
        lambda lib, x, base: base**x,
        [S(((3, 4),), {"base": 2}), S(((2, 3, 4),), {"base": 0.5}, noncontiguous=True),
         S(((3, 4),), {"base": 0}, positive=True)],
    ),
    OpCase("neg", lambda lib, x: -x, UNARY),
    unary("exp"),
    unary("log", samples=POSITIVE),
    unary("sqrt", samples=POSITIVE),
    unary("rsqrt", samples=POSITIVE),
    unary("abs"),
    unary("sin"),
    unary("cos"),
    unary("tanh"),
    unary("sigmoid"),
    unary("relu"),
    unary("erf"),
    unary("sign", gradgrad=False),
    OpCase(
        "gelu",
        lambda lib, x, **kw: lib.nn.functional.gelu(x, **kw),
        UNARY + [S(((3, 4),), {"approximate": "tanh"})],
    ),
    OpCase("silu", lambda lib, x: lib.nn.functional.silu(x), UNARY),
    OpCase(
        "softplus",
        lambda lib, x, **kw: lib.nn.functional.softplus(x, **kw),
        UNARY + [S(((3, 4),), {"beta": 2.0, "threshold": 1.0})],
    ),
    OpCase(
        "clamp",
        lambda lib, x, **kw: x.clamp(**kw),
        [
            S(((3, 4),), {"min": -0.5, "max": 0.5}),
            S(((3, 4),), {"min": 0.1}),
            S(((2, 3, 4),), {"max": 0.2}, noncontiguous=True),
        ],
    ),
    OpCase("clip", lambda lib, x, lo, hi: lib.clip(x, lo - 1, hi + 1), [S(((3, 4), (4,), (3, 4)))]),
    binary("maximum"),
    binary("minimum"),
    OpCase("where", lambda lib, x, y: lib.where(x > 0, x, y), BINARY),
    # comparisons and logic: forward parity only
    *[binary(op, differentiable=False) for op in ("eq", "ne", "lt", "le", "gt", "ge")],
    *[
        OpCase(
            op,
            lambda lib, x, y, op=op: getattr(lib, op)(x > 0, y > 0),
            BINARY,
            differentiable=False,
        )
        for op in ("logical_and", "logical_or", "logical_xor")
    ],
    OpCase("logical_not", lambda lib, x: lib.logical_not(x > 0), UNARY, differentiable=False),
    # bitwise ops on integers, and on an integer with a bool (promoted to int64)
    *[
        OpCase(
            op,
            lambda lib, x, y, op=op: (getattr(lib, op)((x * 2).long(), (y * 2).long()),
                                      getattr(lib, op)((x * 2).long(), y > 0)),
            BINARY,
            differentiable=False,
        )
        for op in ("bitwise_and", "bitwise_or", "bitwise_xor")
    ],
    OpCase(
        "bitwise_not",
        lambda lib, x: (lib.bitwise_not((x * 2).long()), ~(x > 0)),
        UNARY,
        differentiable=False,
    ),
    # reductions
    reduction("sum"),
    reduction("mean"),
    reduction("amax"),
    reduction("amin"),
    reduction(
        "logsumexp",
        [
            S(((3, 4),), {"dim": 1}),
            S(((2, 3, 4),), {"dim": (0, 2)}),
            S(((2, 3, 4),), {"dim": -1, "keepdim": True}, noncontiguous=True),
        ],
    ),
    reduction("var", REDUCE + [S(((3, 4),), {"dim": 0, "correction": 0})]),
    reduction("std", REDUCE + [S(((3, 4),), {"dim": 1, "unbiased": False})]),
    OpCase(
        "max",
        lambda lib, x, **kw: x.max(**kw),
        [S(((3, 4),)), S(((2, 3, 4),), {"dim": 1}), S(((2, 3, 4),), {"dim": -1, "keepdim": True})],
    ),
    OpCase(
        "min",
        lambda lib, x, **kw: x.min(**kw),
        [S(((3, 4),)), S(((2, 3, 4),), {"dim": 0}), S(((3, 4),), {"dim": 1}, noncontiguous=True)],
    ),
    OpCase(
        "argmax",
        lambda lib, x, **kw: x.argmax(**kw),
        [S(((3, 4),)), S(((2, 3, 4),), {"dim": 1, "keepdim": True})],
        differentiable=False,
    ),
    OpCase(
        "argmin",
        lambda lib, x, **kw: x.argmin(**kw),
        [S(((3, 4),)), S(((2, 3, 4),), {"dim": -1})],
        differentiable=False,
    ),
    # movement
    OpCase(
        "reshape",
        lambda lib, x: x.reshape(4, -1),
        [S(((2, 3, 4),)), S(((3, 4),), noncontiguous=True)],
    ),
    OpCase("view", lambda lib, x: x.view(3, 2, 4), [S(((2, 3, 4),))]),
    OpCase(
        "flatten",
        lambda lib, x, **kw: x.flatten(**kw),
        [S(((2, 3, 4),)), S(((2, 3, 4, 2),), {"start_dim": 1, "end_dim": -2}, noncontiguous=True)],
    ),
    OpCase(
        "squeeze",
        lambda lib, x, **kw: x.squeeze(**kw),
        [S(((2, 1, 3, 1),)), S(((2, 1, 3, 1),), {"dim": 1}), S(((2, 1, 3, 1),), {"dim": -1})],
    ),
    OpCase("unsqueeze", lambda lib, x: x.unsqueeze(-1), [S(((2, 3),)), S(((),))]),
    OpCase(
        "transpose",
        lambda lib, x: x.transpose(0, -1),
        [S(((2, 3, 4),)), S(((3, 4),), noncontiguous=True)],
    ),
    OpCase("permute", lambda lib, x: x.permute(2, 0, 1), [S(((2, 3, 4),), noncontiguous=True)]),
    OpCase("T", lambda lib, x: x.T, [S(((3, 4),))]),
    OpCase("mT", lambda lib, x: x.mT, [S(((2, 3, 4),))]),
    OpCase("expand", lambda lib, x: x.expand(2, 3, 4), [S(((3, 1),)), S(((4,),)), S(((),))]),
    OpCase("clone", lambda lib, x: x.clone(), [S(((3, 4),), noncontiguous=True)]),
    OpCase("contiguous", lambda lib, x: x.contiguous(), [S(((3, 4),), noncontiguous=True)]),
    OpCase(
        "cat",
        lambda lib, x, y, **kw: lib.cat([x, y], **kw),
        [S(((2, 3), (4, 3))), S(((2, 3), (2, 5)), {"dim": -1}, noncontiguous=True)],
    ),
    OpCase(
        "stack",
        lambda lib, x, y, **kw: lib.stack([x, y], **kw),
        [S(((2, 3), (2, 3))), S(((2, 3), (2, 3)), {"dim": -1})],
    ),
    OpCase(
        "split",
        lambda lib, x, **kw: x.split(**kw),
        [S(((5, 3),), {"split_size": 2}), S(((3, 6),), {"split_size": [1, 2, 3], "dim": 1})],
    ),
    OpCase(
        "chunk",
        lambda lib, x, **kw: x.chunk(**kw),
        [S(((5, 3),), {"chunks": 2}), S(((3, 6),), {"chunks": 3, "dim": -1})],
    ),
    OpCase("unbind", lambda lib, x: x.unbind(1), [S(((2, 3, 4),))]),
    OpCase(
        "pad",
        lambda lib, x, **kw: lib.nn.functional.pad(x, **kw),
        [
            S(((2, 3),), {"pad": (1, 2)}),
            S(((2, 3, 4),), {"pad": (1, 0, 2, 1), "value": 0.5}),
            S(((3, 4),), {"pad": (-1, 2, 1, -1)}),
        ],
    ),
    OpCase("repeat", lambda lib, x: x.repeat(2, 1, 3), [S(((3, 2),)), S(((2, 1, 3),))]),
    OpCase(
        "getitem",
        lambda lib, x, index: x[index],
        [
            S(((4, 5),), {"index": (1,)}),
            S(((4, 5),), {"index": (slice(1, 3), None, Ellipsis)}),
            S(((4, 5, 3),), {"index": (Ellipsis, slice(None, None, 2))}, noncontiguous=True),
            S(((4, 5),), {"index": ([0, 2, 0], [1, 1, 4])}),
            S(((4, 5),), {"index": (slice(None), [3, 3, 0])}),
        ],
    ),
    OpCase("getitem_mask", lambda lib, x: x[x > 0], [S(((4, 5),))]),
    OpCase(
        "gather",
        lambda lib, x, **kw: x.gather(1, lib.tensor([[0, 2, 2], [1, 0, 1]], device=x.device)),
        [S(((2, 4),)), S(((3, 5),), noncontiguous=True)],
    ),
    # PyTorch-compatibility ops: triangles, masks, cumulative ops, flips and rolls
    OpCase(
        "tril",
        lambda lib, x, **kw: x.tril(**kw),
        [S(((3, 4),)), S(((2, 4, 3),), {"diagonal": 1}, noncontiguous=True),
         S(((3, 4),), {"diagonal": -1})],
    ),
    OpCase(
        "triu",
        lambda lib, x, **kw: lib.triu(x, **kw),
        [S(((3, 4),)), S(((2, 4, 3),), {"diagonal": -1}, noncontiguous=True)],
    ),
    OpCase(
        "masked_fill",
        lambda lib, x, y: x.masked_fill(y > 0, 0.5),
        [S(((3, 4), (3, 4))), S(((2, 3, 4), (3, 1)), noncontiguous=True)],
    ),
    OpCase(
        "masked_fill_",
        lambda lib, x, y: x.clone().masked_fill_(y > 0, -1.5),
        [S(((3, 4), (4,)))],
        differentiable=False,
    ),
    OpCase(
        "cumsum",
        lambda lib, x, **kw: x.cumsum(**kw),
        [S(((3, 4),), {"dim": 1}), S(((2, 3, 4),), {"dim": 0}, noncontiguous=True),
         S(((),), {"dim": 0})],
    ),
    OpCase(
        "cumprod",
        lambda lib, x, **kw: lib.cumprod(x, **kw),
        [S(((3, 4),), {"dim": 1}), S(((2, 3, 4),), {"dim": -2}, noncontiguous=True)],
    ),
    OpCase(
        "cumprod_zeros",
        lambda lib, x: x.masked_fill(
            lib.tensor([[False, True, False, False], [True, False, True, False],
                        [False, False, False, True]], device=x.device), 0.0).cumprod(1),
        [S(((3, 4),))],
    ),
    OpCase(
        "flip",
        lambda lib, x, **kw: x.flip(**kw),
        [S(((3, 4),), {"dims": (0,)}), S(((2, 3, 4),), {"dims": (0, -1)}, noncontiguous=True)],
    ),
    OpCase(
        "roll",
        lambda lib, x, **kw: x.roll(**kw),
        [S(((3, 4),), {"shifts": 1, "dims": 1}), S(((3, 4),), {"shifts": -5}),
         S(((2, 3, 4),), {"shifts": (1, 2), "dims": (0, -1)}, noncontiguous=True)],
    ),
    OpCase(
        "narrow",
        lambda lib, x, **kw: x.narrow(**kw),
        [S(((4, 5),), {"dim": 1, "start": 1, "length": 3}),
         S(((4, 5),), {"dim": 0, "start": -2, "length": 2})],
    ),
    OpCase("t", lambda lib, x: x.t(), [S(((3, 4),)), S(((4,),))]),
    OpCase("view_as", lambda lib, x, y: x.view_as(y), [S(((2, 6), (3, 4)), constant=(1,))]),
    OpCase("expand_as", lambda lib, x, y: x.expand_as(y), [S(((3, 1), (2, 3, 4)), constant=(1,))]),
    OpCase(
        "type_as",
        lambda lib, x, y: (x.type_as(y), x.type_as(y > 0)),
        [S(((3, 4), (2,)), constant=(1,))],
    ),
    OpCase("type_as_bool", lambda lib, x, y: (x > 0).type_as(y), [S(((3, 4), (2,)))],
           differentiable=False),
    OpCase("nelement", lambda lib, x: lib.tensor(x.nelement()), [S(((3, 4),)), S(((),))],
           differentiable=False),
    # sorting and selection: values are gathered, so gradients flow to where they came from
    OpCase(
        "sort",
        lambda lib, x, **kw: tuple(x.sort(**kw)),
        [S(((3, 4),)), S(((2, 3, 4),), {"dim": 1, "descending": True}, noncontiguous=True)],
    ),
    OpCase(
        "argsort",
        lambda lib, x, **kw: x.argsort(**kw),
        [S(((3, 4),)), S(((2, 3, 4),), {"dim": 0, "descending": True})],
        differentiable=False,
    ),
    OpCase(
        "topk",
        lambda lib, x, **kw: tuple(lib.topk(x, **kw)),
        [S(((3, 5),), {"k": 2}), S(((2, 3, 4),), {"k": 3, "dim": 1, "largest": False})],
    ),
    OpCase(
        "index_select",
        lambda lib, x, **kw: x.index_select(kw["dim"], lib.tensor([2, 0, 2], device=x.device)),
        [S(((3, 4),), {"dim": 1}), S(((4, 3, 2),), {"dim": 0}, noncontiguous=True)],
    ),
    OpCase(
        "index_add",
        lambda lib, x, source, dim, alpha=1: x.index_add(
            dim, lib.tensor([2, 0, 2], device=x.device), source, alpha=alpha),
        [S(((3, 4), (3, 3)), {"dim": 1}),
         S(((4, 3, 2), (3, 3, 2)), {"dim": 0, "alpha": -0.5}, noncontiguous=True)],
    ),
    OpCase(
        "masked_select",
        lambda lib, x, y: x.masked_select(y > 0),
        [S(((3, 4), (3, 4))), S(((3, 4), (4,))), S(((4,), (3, 4)))],
    ),
    *[OpCase(op, lambda lib, x, op=op, **kw: getattr(x > 0, op)(**kw),
             [S(((3, 4),)), S(((2, 3, 4),), {"dim": 1, "keepdim": True})], differentiable=False)
      for op in ("all", "any")],
    *[OpCase(op, lambda lib, x, op=op: getattr(lib, op)(
        x.masked_fill(x < -1, float("nan")).masked_fill(x > 1, float("-inf"))), [S(((3, 4),))],
        differentiable=False)
      for op in ("isnan", "isinf", "isfinite")],
    OpCase(
        "allclose",
        lambda lib, x, y: lib.tensor([lib.allclose(x, x + 1e-9), lib.allclose(x, y),
                                      lib.allclose(x, x + 0.01, atol=0.1)]),
        [S(((3, 4), (3, 4)))],
        differentiable=False,
    ),
    OpCase("clamp_min", lambda lib, x: x.clamp_min(0.1), UNARY),
    OpCase("clamp_max", lambda lib, x: lib.clamp_max(x, -0.2), UNARY),
    OpCase(
        "norm",
        lambda lib, x, **kw: x.norm(**kw),
        [S(((3, 4),)), S(((2, 3, 4),), {"p": 1, "dim": 1}),
         S(((2, 3, 4),), {"p": 3, "dim": (0, 2), "keepdim": True}, noncontiguous=True),
         S(((3, 4),), {"p": float("inf"), "dim": 0}), S(((3, 4),), {"p": "fro", "dim": -1})],
    ),
    # products built from matmul
    OpCase("outer", lambda lib, x, y: lib.outer(x, y), [S(((3,), (4,)))]),
    OpCase("bmm", lambda lib, x, y: x.bmm(y), [S(((2, 3, 4), (2, 4, 5)), noncontiguous=True)]),
    OpCase(
        "addmm",
        lambda lib, x, a, b, **kw: lib.addmm(x, a, b, **kw),
        [S(((3, 5), (3, 4), (4, 5))), S(((5,), (3, 4), (4, 5)), {"beta": 0.5, "alpha": 2.0}),
         S(((3, 5), (3, 4), (4, 5)), {"beta": 0})],
    ),
    OpCase(
        "baddbmm",
        lambda lib, x, a, b, **kw: x.baddbmm(a, b, **kw),
        [S(((2, 3, 5), (2, 3, 4), (2, 4, 5))),
         S(((3, 1), (2, 3, 4), (2, 4, 5)), {"beta": 2.0, "alpha": -1.0}, noncontiguous=True)],
    ),
    OpCase(
        "einsum",
        lambda lib, *operands, eq: lib.einsum(eq, *operands),
        [S(((3, 4), (4, 5)), {"eq": "ij,jk->ik"}),
         S(((2, 3, 4), (2, 4, 5)), {"eq": "bij,bjk->bik"}, noncontiguous=True),
         S(((3, 3),), {"eq": "ii->i"}), S(((2, 3, 4),), {"eq": "ijk->kj"}),
         S(((3,), (4,)), {"eq": "i,j"}), S(((2, 3), (2, 3)), {"eq": "ij,ij->"}),
         S(((2, 1, 3, 4), (5, 4, 2)), {"eq": "...ij,...jk"}),
         S(((2, 3), (3, 4), (4, 2)), {"eq": "ij,jk,kl->li"}),
         S(((3, 3, 2),), {"eq": "iij->ji"})],
    ),
    # linear algebra
    OpCase(
        "matmul",
        lambda lib, x, y: lib.matmul(x, y),
        [
            S(((3, 4), (4, 5))),
            S(((2, 3, 4), (4, 2))),
            S(((2, 1, 3, 4), (3, 4, 2)), noncontiguous=True),
            S(((4,), (4, 3))),
            S(((3, 4), (4,))),
            S(((4,), (4,))),
        ],
    ),
    # neural-network functions (tg.nn.functional / torch.nn.functional)
    OpCase(
        "linear",
        lambda lib, x, w, *b: lib.nn.functional.linear(x, w, *b),
        [S(((4, 3), (5, 3), (5,))), S(((2, 4, 3), (5, 3))), S(((3,), (2, 3), (2,)))],
    ),
    OpCase(
        "conv2d",
        lambda lib, x, w, *b, **kw: lib.nn.functional.conv2d(x, w, *b, **kw),
        [
            S(((2, 2, 5, 5), (3, 2, 3, 3), (3,))),
            S(((1, 3, 7, 6), (2, 3, 3, 2)), {"stride": 2, "padding": 1, "dilation": 2}),
            S(((1, 4, 4, 4), (6, 2, 3, 3), (6,)), {"groups": 2, "padding": "same"}),
            S(
                ((1, 3, 5, 4), (2, 3, 2, 2)),
                {"stride": (2, 1), "padding": (0, 1)},
                noncontiguous=True,
            ),
        ],
    ),
    OpCase(
        "max_pool2d",
        lambda lib, x, **kw: lib.nn.functional.max_pool2d(x, **kw),
        [
            S(((2, 2, 4, 6),), {"kernel_size": 2}),
            S(((1, 2, 7, 7),), {"kernel_size": 3, "stride": 2, "padding": 1}),
            S(((1, 1, 7, 6),), {"kernel_size": 2, "dilation": 2}),
        ],
    ),
    OpCase(
        "avg_pool2d",
        lambda lib, x, **kw: lib.nn.functional.avg_pool2d(x, **kw),
        [
            S(((2, 2, 4, 6),), {"kernel_size": 2}),
            S(((1, 2, 7, 7),), {"kernel_size": 3, "stride": 2, "padding": 1}),
            S(
                ((1, 2, 5, 5),),
                {"kernel_size": 3, "stride": 2, "padding": 1, "count_include_pad": False},
            ),
        ],
    ),
    OpCase(
        "softmax",
        lambda lib, x, **kw: lib.nn.functional.softmax(x, **kw),
        [S(((3, 5),), {"dim": -1}), S(((2, 3, 4),), {"dim": 1}, noncontiguous=True)],
    ),
    OpCase(
        "log_softmax",
        lambda lib, x, **kw: lib.nn.functional.log_softmax(x, **kw),
        [S(((3, 5),), {"dim": -1}), S(((2, 3, 4),), {"dim": 0}, noncontiguous=True)],
    ),
    OpCase(
        "dropout",
        lambda lib, x: (lib.manual_seed(0), lib.nn.functional.dropout(x, 0.4))[1],
        [S(((4, 5),))],
        torch_parity=False,
    ),
    OpCase(
        "embedding",
        lambda lib, w, **kw: lib.nn.functional.embedding(
            lib.tensor([[0, 2, 2], [3, 1, 0]], device=w.device), w, **kw
        ),
        [S(((4, 3),))],
    ),
    OpCase(
        "embedding_padding_idx",
        lambda lib, w: lib.nn.functional.embedding(
            lib.tensor([[0, 2, 2], [3, 1, 0]], device=w.device), w, padding_idx=2
        ),
        [S(((4, 3),))],
        finite_differences=False,
    ),
    OpCase(
        "layer_norm",
        lambda lib, x, *wb, **kw: lib.nn.functional.layer_norm(x, x.shape[-1:], *wb),
        [S(((2, 3, 4), (4,), (4,))), S(((3, 5),)), S(((2, 4, 3), (3,)), noncontiguous=True)],
    ),
    OpCase(
        "batch_norm",
        lambda lib, x, w, b: lib.nn.functional.batch_norm(x, None, None, w, b, training=True),
        [S(((4, 3), (3,), (3,))), S(((2, 3, 2, 2), (3,), (3,)))],
    ),
    OpCase(
        "batch_norm_eval",
        lambda lib, x, w, b: lib.nn.functional.batch_norm(
            x,
            lib.tensor([0.5, -0.2, 0.1], dtype=x.dtype, device=x.device),
            lib.tensor([1.5, 0.7, 2.0], dtype=x.dtype, device=x.device),
            w,
            b,
            training=False,
        ),
        [S(((2, 3, 2, 2), (3,), (3,)))],
    ),
    OpCase(
        "scaled_dot_product_attention",
        lambda lib, q, k, v, **kw: lib.nn.functional.scaled_dot_product_attention(q, k, v, **kw),
        [
            S(((2, 3, 4), (2, 5, 4), (2, 5, 3))),
            S(((1, 2, 4, 4),) * 3, {"is_causal": True}),
            S(((2, 3, 4), (2, 5, 4), (2, 5, 3)), {"scale": 0.3}, noncontiguous=True),
        ],
    ),
    OpCase(
        "scaled_dot_product_attention_masks",
        lambda lib, q, k, v, mask: lib.nn.functional.scaled_dot_product_attention(
            q, k, v, attn_mask=(mask > 0) if q.shape[-1] == 4 else mask
        ),
        [
            S(((2, 3, 4), (2, 5, 4), (2, 5, 3), (3, 5))),
            S(((2, 3, 2), (2, 5, 2), (2, 5, 3), (3, 5))),
        ],
    ),
    # the fused recurrent gates (ops/recurrent.py) against PyTorch's own cell kernels
    OpCase(
        "gru_cell",
        lambda lib, x, h, w_ih, w_hh, b_ih, b_hh: _cell(lib, "gru", x, h, w_ih, w_hh, b_ih, b_hh),
        [S(((3, 4), (3, 5), (15, 4), (15, 5), (15,), (15,))),
         S(((2, 3), (2, 2), (6, 3), (6, 2), (6,), (6,)), noncontiguous=True)],
    ),
    OpCase(
        "gru_sequence",
        lambda lib, x, h, w_ih, w_hh, b_ih, b_hh, **kw: _gru_layer(lib, x, h, w_ih, w_hh, b_ih,
                                                                  b_hh, **kw),
        [S(((4, 2, 3), (2, 5), (15, 3), (15, 5), (15,), (15,))),
         S(((3, 2, 2), (2, 2), (6, 2), (6, 2), (6,), (6,)), {"reverse": True})],
    ),
    OpCase(
        "lstm_cell",
        lambda lib, x, h, c, w_ih, w_hh, b_ih, b_hh: _cell(lib, "lstm", x, (h, c), w_ih, w_hh,
                                                           b_ih, b_hh),
        [S(((3, 4), (3, 5), (3, 5), (20, 4), (20, 5), (20,), (20,)))],
    ),
    OpCase("leaky_relu", lambda lib, x: lib.nn.functional.leaky_relu(x, 0.2), UNARY),
    OpCase(
        "one_hot",
        lambda lib, x: lib.nn.functional.one_hot((x.abs() * 2).long(), 5),
        [S(((3, 4),))],
        differentiable=False,
    ),
    OpCase(
        "mse_loss",
        lambda lib, x, y, **kw: lib.nn.functional.mse_loss(x, y, **kw),
        [
            S(((3, 4), (3, 4))),
            S(((3, 4), (3, 4)), {"reduction": "sum"}),
            S(((3, 4), (3, 4)), {"reduction": "none"}),
        ],
    ),
    OpCase(
        "l1_loss",
        lambda lib, x, y, **kw: lib.nn.functional.l1_loss(x, y, **kw),
        [S(((3, 4), (3, 4))), S(((2, 3), (2, 3)), {"reduction": "none"})],
    ),
    OpCase(
        "cross_entropy",
        lambda lib, x, *w, **kw: lib.nn.functional.cross_entropy(
            x, lib.tensor([1, 0, 4, 2], device=x.device), *w, **kw
        ),
        [
            S(((4, 5),)),
            S(((4, 5), (5,)), positive=True, constant=(1,)),
            S(((4, 5),), {"ignore_index": 0}),
            S(((4, 5),), {"label_smoothing": 0.2}),
            S(
                ((4, 5), (5,)),
                {"label_smoothing": 0.1, "ignore_index": 4},
                positive=True,
                constant=(1,),
            ),
            S(((4, 5),), {"reduction": "sum"}),
            S(((4, 5),), {"reduction": "none"}),
        ],
    ),
    OpCase(
        "cross_entropy_nd",
        lambda lib, x, **kw: lib.nn.functional.cross_entropy(
            x, lib.tensor([[0, 2, 1, 2], [1, 1, 0, 2]], device=x.device), **kw
        ),
        [S(((2, 3, 4),)), S(((2, 3, 4),), {"label_smoothing": 0.2, "ignore_index": 1})],
    ),
    OpCase(
        "cross_entropy_1d",
        lambda lib, x: lib.nn.functional.cross_entropy(x, lib.tensor(2, device=x.device)),
        [S(((5,),))],
    ),
    OpCase(
        "cross_entropy_probabilities",
        lambda lib, x, p, **kw: lib.nn.functional.cross_entropy(
            x, lib.nn.functional.softmax(p, -1), **kw
        ),
        [S(((3, 4), (3, 4))), S(((3, 4), (3, 4)), {"label_smoothing": 0.3})],
    ),
    OpCase(
        "nll_loss",
        lambda lib, x, **kw: lib.nn.functional.nll_loss(
            x, lib.tensor([1, 0, 3], device=x.device), **kw
        ),
        [S(((3, 4),)), S(((3, 4),), {"ignore_index": 1}), S(((3, 4),), {"reduction": "none"})],
    ),
    OpCase(
        "binary_cross_entropy",
        lambda lib, x, **kw: lib.nn.functional.binary_cross_entropy(
            x.sigmoid(),
            lib.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]], dtype=x.dtype, device=x.device),
            **kw,
        ),
        [S(((2, 3),)), S(((2, 3),), {"reduction": "sum"})],
    ),
    OpCase(
        "binary_cross_entropy_with_logits",
        lambda lib, x, *pw: lib.nn.functional.binary_cross_entropy_with_logits(
            x,
            lib.tensor([[1.0, 0.0, 1.0], [0.0, 0.3, 1.0]], dtype=x.dtype, device=x.device),
            pos_weight=pw[0] if pw else None,
        ),
        [S(((2, 3),)), S(((2, 3), (3,)), positive=True, constant=(1,))],
    ),
    # PyTorch-compatibility layers' functions (nn/conv_layers.py, nn/normalization.py)
    OpCase(
        "conv1d",
        lambda lib, x, w, *b, **kw: lib.nn.functional.conv1d(x, w, *b, **kw),
        [
            S(((2, 3, 7), (4, 3, 3), (4,))),
            S(((1, 4, 9), (6, 2, 2)), {"stride": 2, "padding": 1, "dilation": 2, "groups": 2}),
            S(((3, 8), (2, 3, 3), (2,)), {"padding": "same"}),
            S(((2, 2, 6), (4, 2, 4)), {"padding": "same"}, noncontiguous=True),
        ],
    ),
    OpCase(
        "conv_transpose2d",
        lambda lib, x, w, *b, **kw: lib.nn.functional.conv_transpose2d(x, w, *b, **kw),
        [
            S(((2, 3, 4, 4), (3, 2, 3, 3), (2,))),
            S(((1, 4, 3, 5), (4, 1, 3, 2), (2,)),
              {"stride": 2, "padding": 1, "output_padding": 1, "groups": 2}),
            S(((2, 2, 3, 3), (2, 3, 2, 2)), {"stride": (2, 1), "dilation": 2, "padding": (0, 1)},
              noncontiguous=True),
            # unbatched, and output_padding past the stride (allowed below the dilation)
            S(((2, 3, 4), (2, 3, 2, 2)), {"dilation": 3, "output_padding": 2}),
        ],
    ),
    OpCase(
        "group_norm",
        lambda lib, x, *wb, num_groups, **kw: lib.nn.functional.group_norm(x, num_groups, *wb,
                                                                           **kw),
        [
            S(((2, 6, 3), (6,), (6,)), {"num_groups": 3}),
            S(((3, 4, 2, 2),), {"num_groups": 2}),
            S(((2, 4, 5), (4,), (4,)), {"num_groups": 4, "eps": 1e-3}, noncontiguous=True),
        ],
    ),
    OpCase(
        "rms_norm",
        lambda lib, x, *w, dims=1, **kw: lib.nn.functional.rms_norm(
            x, tuple(x.shape[x.ndim - dims:]), *w, **kw),
        [
            S(((2, 3, 4), (4,))),
            S(((3, 5),)),
            S(((2, 3, 4), (3, 4)), {"dims": 2, "eps": 1e-3}, noncontiguous=True),
        ],
    ),
    OpCase(
        "interpolate",
        lambda lib, x, **kw: lib.nn.functional.interpolate(x, **kw),
        [
            S(((2, 3, 5),), {"scale_factor": 2}),
            S(((1, 2, 3, 4),), {"size": (5, 7)}),
            S(((1, 2, 6, 5),), {"scale_factor": (0.5, 1.5), "mode": "nearest-exact"}),
            S(((2, 3, 4),), {"size": 7, "mode": "linear"}),
            S(((2, 2, 3, 4),), {"size": (5, 3), "mode": "bilinear"}),
            S(((1, 2, 4, 3),), {"scale_factor": 1.7, "mode": "bilinear", "align_corners": True},
              noncontiguous=True),
            S(((1, 1, 2, 3, 2),), {"scale_factor": 2, "mode": "trilinear"}),
        ],
    ),
    OpCase(
        "normalize",
        lambda lib, x, **kw: lib.nn.functional.normalize(x, **kw),
        [S(((3, 4),)), S(((2, 3, 4),), {"p": 1, "dim": -1}),
         S(((2, 3, 4),), {"dim": 0, "eps": 0.5}, noncontiguous=True)],
    ),
    OpCase(
        "unfold",
        lambda lib, x, **kw: lib.nn.functional.unfold(x, **kw),
        [
            S(((2, 3, 5, 6),), {"kernel_size": 2}),
            S(((1, 2, 5, 5),),
              {"kernel_size": (2, 3), "dilation": (1, 2), "padding": 1, "stride": 2}),
            S(((2, 4, 4),), {"kernel_size": 3, "padding": 1}, noncontiguous=True),
        ],
    ),
    OpCase(
        "fold",
        lambda lib, x, **kw: lib.nn.functional.fold(x, **kw),
        [
            S(((2, 12, 12),), {"output_size": (4, 5), "kernel_size": 2}),
            S(((1, 8, 9),), {"output_size": (5, 5), "kernel_size": 2, "stride": 2, "padding": 1}),
            S(((6, 3),), {"output_size": 3, "kernel_size": (3, 1)}, noncontiguous=True),
        ],
    ),
    # casts and devices
    OpCase(
        "to_device",
        lambda lib, x: (x.to("interp") * 2).to("cpu") if lib.__name__ == "tinygrad_like" else x * 2,
        [S(((3, 4),))],
    ),
    OpCase(
        "to",
        lambda lib, x: (x.to(lib.float32) * 2).to(lib.float64),
        [S(((3, 4),))],
        eps=1e-3,
        atol=1e-3,
    ),  # the float32 round trip needs a coarser step
]
