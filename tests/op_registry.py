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

    def __repr__(self) -> str:
        extras = "".join(f",{k}={v}" for k, v in self.kwargs.items())
        return f"{self.shapes}{extras}{',nc' if self.noncontiguous else ''}"


@dataclass
class OpCase:
    name: str
    fn: Callable
    samples: list
    differentiable: bool = True
    gradgrad: bool = True
    atol: float = 1e-5  # gradcheck tolerance (finite differences in float64)
    eps: float = 1e-6  # finite-difference step

    def __repr__(self) -> str:
        return self.name


S = Sample
UNARY = [S(((3, 4),)), S(((2, 3, 4),), noncontiguous=True), S(((),))]
POSITIVE = [S(s.shapes, positive=True, noncontiguous=s.noncontiguous) for s in UNARY]
BINARY = [S(((3, 4), (3, 4))), S(((2, 3, 4), (3, 1))), S(((4,), (2, 3, 4)), noncontiguous=True),
          S(((3, 4), ()))]
REDUCE = [S(((3, 4),)), S(((2, 3, 4),), {"dim": 1}), S(((2, 3, 4),), {"dim": -1, "keepdim": True}),
          S(((2, 3, 4),), {"dim": (0, 2)}, noncontiguous=True)]


def unary(name, method=None, samples=UNARY, **options):
    method = method or name
    return OpCase(name, lambda lib, x: getattr(x, method)(), samples, **options)


def binary(name, samples=BINARY, **options):
    return OpCase(name, lambda lib, x, y: getattr(lib, name)(x, y), samples, **options)


def reduction(name, samples=REDUCE, **options):
    return OpCase(name, lambda lib, x, **kw: getattr(x, name)(**kw), samples, **options)


OPS = [
    # elementwise arithmetic
    binary("add"), binary("sub"), binary("mul"),
    OpCase("div", lambda lib, x, y: x / (y.abs() + 0.5), BINARY),
    OpCase("pow", lambda lib, x, y: lib.pow(x, y), [S(((3, 4), (3, 4)), positive=True),
                                                    S(((2, 3), (3,)), positive=True)]),
    OpCase("neg", lambda lib, x: -x, UNARY),
    unary("exp"), unary("log", samples=POSITIVE), unary("sqrt", samples=POSITIVE),
    unary("rsqrt", samples=POSITIVE), unary("abs"), unary("sin"), unary("cos"), unary("tanh"),
    unary("sigmoid"), unary("relu"), unary("erf"), unary("sign", gradgrad=False),
    OpCase("gelu", lambda lib, x, **kw: lib.nn.functional.gelu(x, **kw),
           UNARY + [S(((3, 4),), {"approximate": "tanh"})]),
    OpCase("silu", lambda lib, x: lib.nn.functional.silu(x), UNARY),
    OpCase("softplus", lambda lib, x, **kw: lib.nn.functional.softplus(x, **kw),
           UNARY + [S(((3, 4),), {"beta": 2.0, "threshold": 1.0})]),
    OpCase("clamp", lambda lib, x, **kw: x.clamp(**kw),
           [S(((3, 4),), {"min": -0.5, "max": 0.5}), S(((3, 4),), {"min": 0.1}),
            S(((2, 3, 4),), {"max": 0.2}, noncontiguous=True)]),
    OpCase("clip", lambda lib, x, lo, hi: lib.clip(x, lo - 1, hi + 1), [S(((3, 4), (4,), (3, 4)))]),
    binary("maximum"), binary("minimum"),
    OpCase("where", lambda lib, x, y: lib.where(x > 0, x, y), BINARY),
    # comparisons and logic: forward parity only
    *[binary(op, differentiable=False) for op in ("eq", "ne", "lt", "le", "gt", "ge")],
    *[OpCase(op, lambda lib, x, y, op=op: getattr(lib, op)(x > 0, y > 0), BINARY,
             differentiable=False) for op in ("logical_and", "logical_or", "logical_xor")],
    OpCase("logical_not", lambda lib, x: lib.logical_not(x > 0), UNARY, differentiable=False),
    # reductions
    reduction("sum"), reduction("mean"), reduction("amax"), reduction("amin"),
    reduction("logsumexp", [S(((3, 4),), {"dim": 1}), S(((2, 3, 4),), {"dim": (0, 2)}),
                            S(((2, 3, 4),), {"dim": -1, "keepdim": True}, noncontiguous=True)]),
    reduction("var", REDUCE + [S(((3, 4),), {"dim": 0, "correction": 0})]),
    reduction("std", REDUCE + [S(((3, 4),), {"dim": 1, "unbiased": False})]),
    OpCase("max", lambda lib, x, **kw: x.max(**kw),
           [S(((3, 4),)), S(((2, 3, 4),), {"dim": 1}), S(((2, 3, 4),), {"dim": -1, "keepdim": True})]),
    OpCase("min", lambda lib, x, **kw: x.min(**kw),
           [S(((3, 4),)), S(((2, 3, 4),), {"dim": 0}), S(((3, 4),), {"dim": 1}, noncontiguous=True)]),
    OpCase("argmax", lambda lib, x, **kw: x.argmax(**kw),
           [S(((3, 4),)), S(((2, 3, 4),), {"dim": 1, "keepdim": True})], differentiable=False),
    OpCase("argmin", lambda lib, x, **kw: x.argmin(**kw),
           [S(((3, 4),)), S(((2, 3, 4),), {"dim": -1})], differentiable=False),
    # movement
    OpCase("reshape", lambda lib, x: x.reshape(4, -1), [S(((2, 3, 4),)), S(((3, 4),), noncontiguous=True)]),
    OpCase("view", lambda lib, x: x.view(3, 2, 4), [S(((2, 3, 4),))]),
    OpCase("flatten", lambda lib, x, **kw: x.flatten(**kw),
           [S(((2, 3, 4),)), S(((2, 3, 4, 2),), {"start_dim": 1, "end_dim": -2}, noncontiguous=True)]),
    OpCase("squeeze", lambda lib, x, **kw: x.squeeze(**kw),
           [S(((2, 1, 3, 1),)), S(((2, 1, 3, 1),), {"dim": 1}), S(((2, 1, 3, 1),), {"dim": -1})]),
    OpCase("unsqueeze", lambda lib, x: x.unsqueeze(-1), [S(((2, 3),)), S(((),))]),
    OpCase("transpose", lambda lib, x: x.transpose(0, -1), [S(((2, 3, 4),)), S(((3, 4),), noncontiguous=True)]),
    OpCase("permute", lambda lib, x: x.permute(2, 0, 1), [S(((2, 3, 4),), noncontiguous=True)]),
    OpCase("T", lambda lib, x: x.T, [S(((3, 4),))]),
    OpCase("mT", lambda lib, x: x.mT, [S(((2, 3, 4),))]),
    OpCase("expand", lambda lib, x: x.expand(2, 3, 4), [S(((3, 1),)), S(((4,),)), S(((),))]),
    OpCase("clone", lambda lib, x: x.clone(), [S(((3, 4),), noncontiguous=True)]),
    OpCase("contiguous", lambda lib, x: x.contiguous(), [S(((3, 4),), noncontiguous=True)]),
    OpCase("cat", lambda lib, x, y, **kw: lib.cat([x, y], **kw),
           [S(((2, 3), (4, 3))), S(((2, 3), (2, 5)), {"dim": -1}, noncontiguous=True)]),
    OpCase("stack", lambda lib, x, y, **kw: lib.stack([x, y], **kw),
           [S(((2, 3), (2, 3))), S(((2, 3), (2, 3)), {"dim": -1})]),
    OpCase("split", lambda lib, x, **kw: x.split(**kw),
           [S(((5, 3),), {"split_size": 2}), S(((3, 6),), {"split_size": [1, 2, 3], "dim": 1})]),
    OpCase("chunk", lambda lib, x, **kw: x.chunk(**kw),
           [S(((5, 3),), {"chunks": 2}), S(((3, 6),), {"chunks": 3, "dim": -1})]),
    OpCase("unbind", lambda lib, x: x.unbind(1), [S(((2, 3, 4),))]),
    OpCase("pad", lambda lib, x, **kw: lib.nn.functional.pad(x, **kw),
           [S(((2, 3),), {"pad": (1, 2)}), S(((2, 3, 4),), {"pad": (1, 0, 2, 1), "value": 0.5}),
            S(((3, 4),), {"pad": (-1, 2, 1, -1)})]),
    OpCase("repeat", lambda lib, x: x.repeat(2, 1, 3), [S(((3, 2),)), S(((2, 1, 3),))]),
    OpCase("getitem", lambda lib, x, index: x[index],
           [S(((4, 5),), {"index": (1,)}), S(((4, 5),), {"index": (slice(1, 3), None, Ellipsis)}),
            S(((4, 5, 3),), {"index": (Ellipsis, slice(None, None, 2))}, noncontiguous=True),
            S(((4, 5),), {"index": ([0, 2, 0], [1, 1, 4])}),
            S(((4, 5),), {"index": (slice(None), [3, 3, 0])})]),
    OpCase("getitem_mask", lambda lib, x: x[x > 0], [S(((4, 5),))]),
    OpCase("gather", lambda lib, x, **kw: x.gather(1, lib.tensor([[0, 2, 2], [1, 0, 1]])),
           [S(((2, 4),)), S(((3, 5),), noncontiguous=True)]),
    # linear algebra
    OpCase("matmul", lambda lib, x, y: lib.matmul(x, y),
           [S(((3, 4), (4, 5))), S(((2, 3, 4), (4, 2))), S(((2, 1, 3, 4), (3, 4, 2)), noncontiguous=True),
            S(((4,), (4, 3))), S(((3, 4), (4,))), S(((4,), (4,)))]),
    # casts and devices
    OpCase("to", lambda lib, x: (x.to(lib.float32) * 2).to(lib.float64), [S(((3, 4),))],
           eps=1e-3, atol=1e-3),  # the float32 round trip needs a coarser step
]
