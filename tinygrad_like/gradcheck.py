"""Finite-difference gradient checking, as torch.autograd.gradcheck.

`gradcheck` compares the analytic Jacobian (one backward pass per output
element) with central differences (two forward passes per input element) in
float64. For large inputs the fast mode compares a single random projection
v^T J u both ways, which catches the same bugs at the cost of a few passes.
`gradgradcheck` runs gradcheck on the function x -> vjp(fn)(x, v), so second
derivatives are checked the same way.
"""

from __future__ import annotations

import numpy as np

from tinygrad_like import autograd, dtypes
from tinygrad_like.tensor import Tensor

FAST_MODE_ELEMENTS = 4096  # above this many input elements, fast mode is the default


class GradcheckError(RuntimeError):
    """An analytic gradient disagrees with its finite-difference estimate."""


def _as_tuple(x) -> tuple:
    return x if isinstance(x, tuple) else tuple(x) if isinstance(x, list) else (x,)


def _differentiable_inputs(inputs) -> list[tuple[int, Tensor]]:
    checked = []
    for index, x in enumerate(inputs):
        if isinstance(x, Tensor) and x.requires_grad:
            if x.dtype is not dtypes.float64:
                raise ValueError(f"gradcheck: input {index} has dtype {x.dtype.name}; finite "
                                 "differences need float64 inputs to be meaningful")
            checked.append((index, x))
    if not checked:
        raise ValueError("gradcheck: no input requires grad, so there is nothing to check")
    return checked


def _outputs(fn, inputs) -> tuple:
    outputs = [o for o in _as_tuple(fn(*inputs)) if isinstance(o, Tensor)]
    return tuple(o for o in outputs if o.dtype.is_floating_point)


def _flat_outputs(fn, inputs) -> np.ndarray:
    # grad mode stays on: under gradgradcheck, fn itself differentiates
    outputs = _outputs(fn, inputs)
    if not outputs:
        return np.zeros(0)
    return np.concatenate([np.asarray(o._array, dtype=np.float64).reshape(-1) for o in outputs])


def _perturbed(fn, inputs, x: Tensor, index: tuple, eps: float) -> np.ndarray:
    """(f(x + eps e_i) - f(x - eps e_i)) / 2 eps for one element of one input."""
    original = x._array[index]
    x._array[index] = original + eps
    plus = _flat_outputs(fn, inputs)
    x._array[index] = original - eps
    minus = _flat_outputs(fn, inputs)
    x._array[index] = original
    return (plus - minus) / (2 * eps)


def _analytic_rows(outputs, checked, v: list) -> list[np.ndarray]:
    """v^T J for each checked input, as flat float64 arrays (zeros where unused)."""
    grads = autograd.grad(outputs, [x for _, x in checked],
                          [Tensor._wrap(g, o.backend) for g, o in zip(v, outputs)],
                          retain_graph=True, allow_unused=True)
    return [np.zeros(x.numel()) if g is None else np.asarray(g._array, dtype=np.float64).reshape(-1)
            for (_, x), g in zip(checked, grads)]


def _fail(position: int, detail: str, analytic, numeric, gradgrad: bool) -> GradcheckError:
    order = "second-order gradient" if gradgrad else "gradient"
    return GradcheckError(f"gradcheck: {order} mismatch for input {position} {detail}: "
                          f"analytic {analytic!r}, numeric {numeric!r}")


def gradcheck(fn, inputs, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
              fast_mode: bool | None = None, *, _gradgrad: bool = False) -> bool:
    """True if fn's analytic gradients match central differences; else GradcheckError."""
    inputs = _as_tuple(inputs)
    checked = _differentiable_inputs(inputs)
    outputs = _outputs(fn, inputs)
    if not any(o.requires_grad for o in outputs):
        raise GradcheckError("gradcheck: no output requires grad, so no gradient reaches the "
                             "inputs")
    outputs = tuple(o for o in outputs if o.requires_grad)
    sizes = [o.numel() for o in outputs]
    if fast_mode is None:
        fast_mode = sum(x.numel() for _, x in checked) > FAST_MODE_ELEMENTS
    if fast_mode:
        return _fast_check(fn, inputs, checked, outputs, eps, atol, rtol, _gradgrad)

    # analytic Jacobian, one row per output element, via a one-hot vector-Jacobian product
    total = sum(sizes)
    analytic = [np.zeros((total, x.numel())) for _, x in checked]
    for row in range(total):
        onehot = np.zeros(total)
        onehot[row] = 1.0
        v = [piece.reshape(o.shape).astype(o._array.dtype) for piece, o in
             zip(np.split(onehot, np.cumsum(sizes)[:-1]), outputs)]
        for jacobian, values in zip(analytic, _analytic_rows(outputs, checked, v)):
            jacobian[row] = values

    for jacobian, (position, x) in zip(analytic, checked):
        for column, index in enumerate(np.ndindex(*x.shape)):
            numeric = _perturbed(fn, inputs, x, index, eps)[:total]
            expected = jacobian[:, column]
            bad = ~np.isclose(expected, numeric, rtol=rtol, atol=atol)
            if bad.any():
                out_row = int(np.argmax(bad))
                raise _fail(position, f"at element {index} (output element {out_row})",
                            float(expected[out_row]), float(numeric[out_row]), _gradgrad)
    return True


def _fast_check(fn, inputs, checked, outputs, eps, atol, rtol, gradgrad) -> bool:
    """Compare v^T J u analytically and by one directional difference per input."""
    rng = np.random.default_rng(0)
    v = [rng.standard_normal(o.shape).astype(o._array.dtype) for o in outputs]
    v_flat = np.concatenate([g.reshape(-1) for g in v])
    for (position, x), row in zip(checked, _analytic_rows(outputs, checked, v)):
        u = rng.standard_normal(x.shape)
        original = x._array.copy()
        x._array[...] = original + eps * u
        plus = _flat_outputs(fn, inputs)
        x._array[...] = original - eps * u
        minus = _flat_outputs(fn, inputs)
        x._array[...] = original
        numeric = float(v_flat @ ((plus - minus)[: v_flat.size] / (2 * eps)))
        analytic = float(row @ u.reshape(-1))
        if not np.isclose(analytic, numeric, rtol=rtol, atol=atol):
            raise _fail(position, "along a random direction (fast mode)", analytic, numeric,
                        gradgrad)
    return True


def gradgradcheck(fn, inputs, grad_outputs=None, eps: float = 1e-6, atol: float = 1e-5,
                  rtol: float = 1e-3, fast_mode: bool | None = None) -> bool:
    """Check second derivatives: gradcheck of (inputs, v) -> v^T J(inputs)."""
    inputs = _as_tuple(inputs)
    checked = _differentiable_inputs(inputs)
    outputs = [o for o in _outputs(fn, inputs) if o.requires_grad]
    if grad_outputs is None:
        rng = np.random.default_rng(1)
        grad_outputs = [Tensor(rng.standard_normal(o.shape), dtype=dtypes.float64,
                               device=o.device, requires_grad=True) for o in outputs]
    grad_outputs = list(_as_tuple(grad_outputs))
    n_inputs = len(inputs)

    def vjp(*args):
        primal, cotangents = args[:n_inputs], args[n_inputs:]
        outs = [o for o in _outputs(fn, primal) if o.requires_grad]
        grads = autograd.grad(outs, [primal[i] for i, _ in checked], list(cotangents),
                              create_graph=True, allow_unused=True)
        return tuple(g for g in grads if g is not None)

    return gradcheck(vjp, inputs + tuple(grad_outputs), eps, atol, rtol, fast_mode,
                     _gradgrad=True)
