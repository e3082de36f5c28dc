"""THE kernel table: every kernel an op may call, its parameters and what it computes.

Ops call `x.backend.kernels.<entry>(...)` with the declared parameters, in order, on the
device's raw arrays. Each device module builds its table with `build_table`, giving each
entry the device's own kernel or, explicitly, another's (a fallback, recorded for
tg.backend_info()); building fails, naming the entry, when one is missing, undeclared, or
cannot take the declared parameters. Where each device's kernels come from:

- "cpu" (backend/cpu.py): the NumPy kernels of `cpu.numpy_kernels` (the references every
  device is tested against, except conv2d and attention, the tuned cpu_conv.py and
  cpu_attention.py, whose references are reference_conv.py and reference_attention.py),
  replaced by the native `_C` ones that beat them (backend/native_kernels.py and
  native_recurrent.py: NATIVE).
- "interp" (backend/interp.py): the Triton launchers of backend/triton_kernels.py
  (TRITON_KERNELS), run by Triton's interpreter; every other entry falls back to "cpu".
- "cuda" (backend/cuda_device.py): CuPy ufuncs, the CUDA C launchers of kernels/cuda (KERNELS)
  and the same Triton launchers, compiled; a few entries fall back to NumPy references that
  only use array methods and ufuncs, which CuPy serves.

Shapes: N batch, C channels, H/W height/width, L/S query/key length, R rows; "stride,
padding, dilation" are (int, int) pairs. A kernel mutates nothing unless its line says so.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from types import SimpleNamespace


@dataclass(frozen=True)
class Kernel:
    """One declared entry: its parameters, as the ops pass them, and what it computes."""

    signature: str
    doc: str

    @property
    def params(self) -> tuple[str, ...]:
        return tuple(self.signature.split(", "))


DECLARED = {
    # ---- elementwise and reductions (ops/arithmetic.py, ops/unary.py, ops/reduce.py)
    "add": Kernel("a, b", "a + b, broadcasting; one operand may be a Python scalar"),
    "sub": Kernel("a, b", "a - b, broadcasting; one operand may be a Python scalar"),
    "mul": Kernel("a, b", "a * b, broadcasting; one operand may be a Python scalar"),
    "div": Kernel("a, b", "a / b, broadcasting; one operand may be a Python scalar"),
    "sum": Kernel("x, axes, keepdims, dtype",
                  "x summed over the tuple `axes`, accumulated in `dtype` unless it is None"),
    "erf": Kernel("x", "the error function, elementwise"),
    "relu": Kernel("x", "max(x, 0)"),
    "relu_backward": Kernel("grad, x", "grad where x > 0, else 0 (a NaN grad stays out)"),
    # ---- linear algebra (ops/linalg.py)
    "matmul": Kernel("a, b", "np.matmul(a, b), batched and broadcast"),
    "linear": Kernel("x, weight, bias", "x (..., in) @ weight (out, in).T + bias (or None)"),
    # ---- softmax and losses (ops/softmax.py)
    "softmax": Kernel("x, axis", "softmax of x along axis"),
    "log_softmax": Kernel("x, axis", "log_softmax of x along axis"),
    "softmax_backward": Kernel("grad, out, axis", "d x of softmax, given its output `out`"),
    "log_softmax_backward": Kernel("grad, out, axis",
                                   "d x of log_softmax, given its output `out`"),
    "cross_entropy": Kernel("logits, target, ignore_index, label_smoothing",
                            "(N, C) logits -> (loss per row (N,), log-sum-exp per row (N,))"),
    "cross_entropy_backward": Kernel("grad_loss, logits, target, lse, ignore_index, "
                                     "label_smoothing", "d logits (N, C) of cross_entropy"),
    "dropout": Kernel("x, p, seed, offset",
                      "(x * mask, mask), the mask 0 or 1/(1-p) from Philox at (seed, offset)"),
    "embedding_backward": Kernel("grad, indices, num_weights, padding_idx",
                                 "rows of grad (N, D) added into a new (num_weights, D) at "
                                 "indices; row padding_idx (if >= 0) stays 0"),
    "scatter_add": Kernel("out, index, values",
                          "out[index] += values, repeated indices adding up; mutates out"),
    # ---- normalisation (ops/norm.py)
    "layer_norm": Kernel("x, weight, bias, eps",
                         "(R, C) x normalised per row, * weight + bias (each (C,) or None) -> "
                         "(out, mean (R,), rstd (R,))"),
    "layer_norm_backward": Kernel("grad, x, mean, rstd, weight",
                                  "(dx, dweight or None when weight is None, dbias)"),
    # ---- recurrent steps (ops/recurrent.py)
    "gru_gates": Kernel("x_proj, h_proj, h",
                        "one GRU step: (N, 3H) projections, (N, H) h -> (h', saved)"),
    "gru_gates_backward": Kernel("grad, saved", "(d x_proj, d h_proj, d h) of gru_gates"),
    "gru_sequence": Kernel("x_proj, h0, weight_hh, bias_hh, reverse",
                           "a GRU layer direction over x_proj (L, N, 3H) -> (out (L, N, H), "
                           "saved)"),
    "gru_sequence_backward": Kernel("grad_out, saved",
                                    "(d x_proj, d h0, d weight_hh, d bias_hh) of gru_sequence"),
    "lstm_gates": Kernel("x_proj, h_proj, c",
                         "one LSTM step: (N, 4H) projections, (N, H) c -> ((h', c') as "
                         "(2, N, H), saved)"),
    "lstm_gates_backward": Kernel("grad, saved",
                                  "(d pre-activation gates, d c) of lstm_gates"),
    # ---- attention (ops/attention.py)
    "attention": Kernel("q, k, v, mask, is_causal, scale",
                        "softmax(q k^T * scale + mask) v for (Z, L, D) q -> (out, lse (Z, L))"),
    "attention_backward": Kernel("grad_out, q, k, v, out, lse, mask, is_causal, scale",
                                 "(dq, dk, dv) of attention, recomputed from lse"),
    # ---- convolution and pooling (ops/conv.py)
    "conv2d": Kernel("x, weight, bias, stride, padding, dilation",
                     "(N, C, H, W) x cross-correlated with (K, C, KH, KW) weight, + bias "
                     "(or None) -> (N, K, OH, OW)"),
    "conv2d_backward_input": Kernel("grad, weight, input_shape, stride, padding, dilation",
                                    "d x of conv2d"),
    "conv2d_backward_weight": Kernel("grad, x, weight_shape, stride, padding, dilation",
                                     "d weight of conv2d"),
    "max_pool2d": Kernel("x, kernel, stride, padding, dilation",
                         "(max per window, its flat h * W + w index in the input plane)"),
    "max_pool2d_backward": Kernel("grad, indices, input_shape",
                                  "grad added into a zero input at max_pool2d's indices"),
    "avg_pool2d": Kernel("x, kernel, stride, padding, count_include_pad",
                         "mean per window, padding counted in the divisor if asked"),
    "avg_pool2d_backward": Kernel("grad, input_shape, kernel, stride, padding, "
                                  "count_include_pad", "d x of avg_pool2d"),
    # ---- optimizer steps (optim/), on lists of arrays, one per parameter
    "sgd_step": Kernel("params, grads, momentum_buffers, lr, momentum, dampening, nesterov, "
                       "weight_decay, maximize, first_step",
                       "one SGD step, PyTorch's rule; mutates params and momentum_buffers"),
    "adam_step": Kernel("params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, step, lr, "
                        "beta1, beta2, eps, weight_decay, decoupled_weight_decay, amsgrad, "
                        "maximize", "one Adam/AdamW step at `step` (from 1), PyTorch's rule; "
                        "mutates params, exp_avgs, exp_avg_sqs and max_exp_avg_sqs"),
}


class KernelTableError(Exception):
    """A device's kernel table does not match DECLARED: a bug in the device module, so it
    is not one of the errors (RuntimeError, ImportError) that mean "device unavailable"."""


@dataclass(frozen=True)
class DeviceTable:
    """A device's filled table: `kernels` has one attribute per declared entry (an attribute
    lookup on a plain namespace, as ops do on every call); `fallbacks` maps the entries
    borrowed from elsewhere to where from ("cpu", "NumPy")."""

    device: str
    kernels: SimpleNamespace
    fallbacks: dict[str, str]


def entries(*names: str) -> tuple[str, ...]:
    """`names`, checked to be declared entries (for tables of entries kept elsewhere)."""
    unknown = [name for name in names if name not in DECLARED]
    if unknown:
        raise KernelTableError(f"not declared in backend/table.py: {', '.join(unknown)}")
    return names


def build_table(device: str, kernels: dict, fallbacks: dict | None = None,
                lender: str = "") -> DeviceTable:
    """`device`'s table: every declared entry from `kernels` (the device's own), or else
    from `fallbacks` (another's kernels, recorded as borrowed from `lender`).

    Raises KernelTableError naming the entry when one is in neither, when `kernels` or
    `fallbacks` has a name that is not declared, or when a kernel cannot be called with the
    declared parameters (builtins that have no signature, such as np.add.at, pass unchecked).
    """
    fallbacks = fallbacks or {}
    for source, given in (("kernels", kernels), ("fallbacks", fallbacks)):
        undeclared = sorted(set(given) - set(DECLARED))
        if undeclared:
            raise KernelTableError(f"{device} kernel table: {source} {', '.join(undeclared)} "
                                   "not declared in backend/table.py")
    missing = [name for name in DECLARED if name not in kernels and name not in fallbacks]
    if missing:
        raise KernelTableError(f"{device} kernel table: no kernel and no fallback for "
                               f"{', '.join(missing)}")
    filled = {name: kernels[name] if name in kernels else fallbacks[name] for name in DECLARED}
    for name, kernel in filled.items():
        _check_signature(device, name, kernel)
    borrowed = {name: lender for name in DECLARED if name not in kernels}
    return DeviceTable(device, SimpleNamespace(**filled), borrowed)


def _check_signature(device: str, name: str, kernel) -> None:
    if not callable(kernel):
        raise KernelTableError(f"{device} kernel table: {name} is {kernel!r}, not callable")
    try:
        signature = inspect.signature(kernel)
    except (TypeError, ValueError):  # a builtin without one, such as np.add.at
        return
    params = DECLARED[name].params
    try:
        signature.bind(*params)
    except TypeError as error:
        raise KernelTableError(f"{device} kernel table: {name} = {kernel!r} cannot take the "
                               f"declared ({', '.join(params)}): {error}") from None
