"""Sampling: tg.multinomial, tg.bernoulli, and the in-place fills x.uniform_(), x.normal_(),
x.bernoulli_(), x.exponential_(), x.random_(), with PyTorch's signatures.

Every draw comes from the device's global generator or the `generator=` given, as
tg.rand's do (creation.generator_rng), so it repeats for a seed. The numbers are not
PyTorch's (a different generator), only their distributions are.
"""

from __future__ import annotations

from tinygrad_like.creation import generator_rng
from tinygrad_like.ops.checks import check_int, check_number
from tinygrad_like.tensor import Tensor


def multinomial(input: Tensor, num_samples: int, replacement: bool = False, *,
                generator=None) -> Tensor:
    """Indices drawn from each row of `input` (non-negative weights, not necessarily summing
    to one): shape (num_samples,) for a 1-D input, (rows, num_samples) for a 2-D one.
    Without replacement an index is drawn at most once per row, as in sequential draws that
    remove each drawn category (done at once: the k largest of weight / Exp(1))."""
    if not isinstance(input, Tensor) or not input.dtype.is_floating_point:
        raise TypeError(f"multinomial: expected a floating-point tensor of weights, got "
                        f"{getattr(input, 'dtype', type(input).__name__)}")
    if input.ndim not in (1, 2):
        raise ValueError(f"multinomial: weights must be 1-D or 2-D, got shape {input.shape}")
    num_samples = check_int("multinomial", "num_samples", num_samples, minimum=1)
    xp = input.backend.xp
    weights = xp.atleast_2d(input._array).astype(xp.float64)
    categories = weights.shape[1]
    if not bool(xp.isfinite(weights).all()) or bool((weights < 0).any()):
        raise RuntimeError("multinomial: probability tensor contains either inf, nan or "
                           "element < 0")
    if bool((weights.sum(1) <= 0).any()):
        raise RuntimeError("multinomial: invalid multinomial distribution (a row of weights "
                           "sums to zero)")
    if not replacement and num_samples > categories:
        raise RuntimeError(f"multinomial: cannot sample {num_samples} > {categories} "
                           "categories without replacement")
    rng = generator_rng("multinomial", input.backend, generator)
    if replacement:
        cdf = xp.cumsum(weights, axis=1)
        draws = rng.random((weights.shape[0], num_samples)) * cdf[:, -1:]
        # clipped: a draw of exactly the total lands past the last category
        indices = xp.stack([xp.searchsorted(row, u, side="right") for row, u in zip(cdf, draws)])
        indices = xp.minimum(indices, categories - 1)
    else:
        # PyTorch's method: the largest weight / Exp(1); once the non-zero weights run out, the
        # zero-weight categories follow in index order, as PyTorch's do
        keys = weights / rng.standard_exponential(weights.shape)
        indices = xp.argsort(-keys, axis=1, kind="stable")[:, :num_samples]
    indices = indices.astype(xp.int64)
    return Tensor._wrap(indices[0] if input.ndim == 1 else indices, input.backend)


def bernoulli(input: Tensor, p=None, *, generator=None) -> Tensor:
    """1 with probability `input` (or `p`), else 0, in input's dtype."""
    probability = input if p is None else p
    out = Tensor._wrap(input.backend.xp.empty(input.shape, dtype=input._array.dtype),
                       input.backend)
    return _bernoulli_fill(out, probability, generator, "bernoulli")


def _bernoulli_fill(x: Tensor, p, generator, op: str) -> Tensor:
    if isinstance(p, Tensor):
        if p.backend is not x.backend:
            raise RuntimeError(f"{op}: probabilities on {p.device}, tensor on {x.device}")
        p = p._array
        if p.size and not bool(((p >= 0) & (p <= 1)).all()):
            raise RuntimeError(f"{op}: probabilities must lie in [0, 1]")
    else:
        check_number(op, "p", p)
        if not 0 <= p <= 1:
            raise RuntimeError(f"{op}: p must lie in [0, 1], got {p}")
    draws = generator_rng(op, x.backend, generator).random(x.shape) < p
    return _fill(x, draws, op)


def _fill(x: Tensor, values, op: str) -> Tensor:
    x._check_inplace(op)
    x._array[...] = values
    x._bump_version()
    return x


def uniform_(x: Tensor, a: float = 0.0, b: float = 1.0, *, generator=None) -> Tensor:
    """Fill x in place with draws from U[a, b)."""
    _check_float("uniform_", x)
    rng = generator_rng("uniform_", x.backend, generator)
    return _fill(x, a + (b - a) * rng.random(x.shape), "uniform_")


def normal_(x: Tensor, mean: float = 0.0, std: float = 1.0, *, generator=None) -> Tensor:
    """Fill x in place with draws from N(mean, std^2)."""
    _check_float("normal_", x)
    if std < 0:
        raise RuntimeError(f"normal_: expected std >= 0.0, got {std}")
    rng = generator_rng("normal_", x.backend, generator)
    return _fill(x, mean + std * rng.standard_normal(x.shape), "normal_")


def exponential_(x: Tensor, lambd: float = 1.0, *, generator=None) -> Tensor:
    """Fill x in place with draws from the exponential distribution of rate `lambd`."""
    _check_float("exponential_", x)
    if lambd <= 0:
        raise RuntimeError(f"exponential_: expects lambda > 0.0, but found lambda={lambd}")
    rng = generator_rng("exponential_", x.backend, generator)
    return _fill(x, rng.standard_exponential(x.shape) / lambd, "exponential_")


def bernoulli_(x: Tensor, p=0.5, *, generator=None) -> Tensor:
    """Fill x in place with 1 (probability p, a number or a tensor) or 0."""
    return _bernoulli_fill(x, p, generator, "bernoulli_")


def random_(x: Tensor, from_: int = 0, to: int | None = None, *, generator=None) -> Tensor:
    """Fill x in place with integers from [from_, to); random_(to) means [0, to)."""
    if to is None:
        if from_ == 0:
            raise NotImplementedError("random_: the no-argument form (the dtype's full range) "
                                      "is not supported; pass random_(to) or random_(from, to)")
        from_, to = 0, from_
    if to <= from_:
        raise RuntimeError(f"random_: expects 'from' ({from_}) to be less than 'to' ({to})")
    rng = generator_rng("random_", x.backend, generator)
    return _fill(x, rng.integers(from_, to, x.shape), "random_")


def _check_float(op: str, x: Tensor) -> None:
    if not x.dtype.is_floating_point:
        raise TypeError(f"{op}: expected a floating-point tensor, got {x.dtype.name}")


Tensor.multinomial = multinomial
Tensor.bernoulli = bernoulli
for _method in (uniform_, normal_, exponential_, bernoulli_, random_):
    setattr(Tensor, _method.__name__, _method)

