"""einsum: Einstein summation over any number of operands, as torch.einsum.

The equation is first rewritten with one letter per dimension: `...` becomes fresh letters
(right-aligned, as broadcasting aligns shapes) and an implicit output (no `->`) becomes the
letters used once, in alphabetical order after the ellipsis. The gradient of operand i is
another einsum, of the output gradient with the other operands, onto operand i's distinct
letters; three things then make it operand i's shape:
- letters of operand i found nowhere else were summed over, so the gradient is broadcast back
  along them;
- a size-1 dimension that broadcast against a larger one is summed back to size 1;
- a letter repeated within operand i ("ii->i" reads a diagonal) scatters the gradient onto
  that diagonal (IndexScatter, whose backward is the gather again).
"""

from __future__ import annotations

import string

from tinygrad_like.autograd import Function
from tinygrad_like.ops.checks import check_tensor
from tinygrad_like.ops.indexing import IndexScatter
from tinygrad_like.tensor import Tensor

_LETTERS = string.ascii_letters


class Einsum(Function):
    @staticmethod
    def forward(ctx, spec, *operands):
        ctx.spec = spec
        ctx.save_for_backward(*operands)
        arrays = [x.backend.xp.broadcast_to(x._array, spec.shape_of(i))
                  for i, x in enumerate(operands)]
        return operands[0].backend.xp.einsum(spec.equation, *arrays, optimize=len(arrays) > 2)

    @staticmethod
    def backward(ctx, grad):
        spec, operands = ctx.spec, ctx.saved_tensors
        return (None,) + tuple(_operand_grad(spec, operands, i, grad)
                               if ctx.needs_input_grad[i + 1] else None
                               for i in range(len(operands)))


def _operand_grad(spec: "_Spec", operands, i: int, grad: Tensor) -> Tensor:
    subscripts = spec.inputs[i]
    distinct = "".join(dict.fromkeys(subscripts))
    elsewhere = set(spec.output).union(*(s for j, s in enumerate(spec.inputs) if j != i))
    kept = "".join(c for c in distinct if c in elsewhere)
    others = [x for j, x in enumerate(operands) if j != i]
    others_subscripts = [s for j, s in enumerate(spec.inputs) if j != i]
    back = _Spec(",".join([spec.output, *others_subscripts]) + "->" + kept, spec.sizes)
    g = Einsum.apply(back, grad, *others)
    if kept != distinct:  # letters summed in the forward pass come back by broadcasting
        g = g.reshape([spec.sizes[c] if c in kept else 1 for c in distinct])
        g = g.expand([spec.sizes[c] for c in distinct])
    if distinct != subscripts:  # a repeated letter: the gradient lands on the diagonal
        xp = g.backend.xp
        grid = xp.indices([spec.sizes[c] for c in distinct], sparse=True)
        index = tuple(grid[distinct.index(c)] for c in subscripts)
        g = IndexScatter.apply(g, index, tuple(spec.sizes[c] for c in subscripts))
    shape = operands[i].shape
    summed = tuple(d for d, (n, m) in enumerate(zip(shape, g.shape)) if n == 1 and m != 1)
    return g.sum(summed, keepdim=True) if summed else g


class _Spec:
    """An equation with one letter per dimension and the size of each letter."""

    def __init__(self, equation: str, sizes: dict):
        self.equation = equation
        inputs, self.output = equation.split("->")
        self.inputs = inputs.split(",")
        self.sizes = sizes

    def shape_of(self, i: int) -> tuple:
        return tuple(self.sizes[c] for c in self.inputs[i])


def _parse(equation: str, operands) -> _Spec:
    text = equation.replace(" ", "")
    inputs, arrow, output = text.partition("->")
    terms = inputs.split(",")
    if len(terms) != len(operands):
        raise ValueError(f"einsum: the equation {equation!r} has {len(terms)} operand(s) but "
                         f"{len(operands)} tensor(s) were given")
    used = set(c for c in text if c in _LETTERS)
    fresh = [c for c in _LETTERS if c not in used]
    bad = set(text) - set(_LETTERS) - set(",->.")
    if bad:
        raise ValueError(f"einsum: invalid character(s) {sorted(bad)} in {equation!r}; "
                         "subscripts are letters, with ',' '->' and '...'")
    ellipsis_rank = max((x.ndim - len(t.replace("...", "")) for t, x in zip(terms, operands)
                         if "..." in t), default=0)
    ellipsis = "".join(fresh[:ellipsis_rank])
    letters, sizes = [], {}
    for term, x in zip(terms, operands):
        named = len(term.replace("...", ""))
        if term.count("...") > 1 or ("..." not in term and named != x.ndim) or named > x.ndim:
            raise ValueError(f"einsum: subscripts {term!r} do not fit an operand of shape "
                             f"{x.shape} in {equation!r}")
        full = term.replace("...", ellipsis[ellipsis_rank - (x.ndim - named):])
        for c, n in zip(full, x.shape):
            if sizes.get(c, 1) != 1 and n != 1 and sizes[c] != n:
                raise ValueError(f"einsum: subscript {c!r} has size {n} in an operand of shape "
                                 f"{x.shape} but size {sizes[c]} elsewhere in {equation!r}")
            sizes[c] = max(sizes.get(c, 1), n)
        letters.append(full)
    if arrow:
        out = output.replace("...", ellipsis)
        unknown = [c for c in out if c not in sizes]
        if unknown or len(set(out)) != len(out) or output.count("...") > 1:
            raise ValueError(f"einsum: output subscripts {output!r} must be distinct letters "
                             f"that appear in the inputs of {equation!r}")
    else:
        counts = "".join(letters)
        out = ellipsis + "".join(sorted(c for c in set(counts) - set(ellipsis)
                                        if counts.count(c) == 1))
    return _Spec(",".join(letters) + "->" + out, sizes)


def einsum(equation: str, *operands) -> Tensor:
    """torch.einsum(equation, *operands); operands may also be passed as one list."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    if not isinstance(equation, str):
        raise TypeError(f"einsum: the equation must be a string, got {type(equation).__name__}")
    for i, x in enumerate(operands):
        check_tensor("einsum", f"operand {i}", x)
    if not operands:
        raise ValueError("einsum: at least one operand is required")
    first = operands[0]
    for x in operands[1:]:
        if x.dtype != first.dtype:
            raise TypeError(f"einsum: operands must share a dtype, got {first.dtype.name} and "
                            f"{x.dtype.name}")
        if x.backend is not first.backend:
            raise RuntimeError(f"einsum: operands on {first.device} and {x.device}")
    return Einsum.apply(_parse(equation, operands), *operands)
