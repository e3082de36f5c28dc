"""The "cpu" device: NumPy arrays, with NumPy's BLAS-backed matmul.

The NumPy kernels here (matmul, softmax, cross-entropy, dropout, ...) are plain enough to be
the references the other devices' kernels are tested against; those of the other families
are in the reference_*.py files beside this one. `numpy_kernels` is what "cpu" runs without
the native extension (conv2d as cpu_conv.py's chunked im2col), `native_kernels` what the
extension replaces. Every kernel takes and returns raw arrays.
"""

from __future__ import annotations

import numpy as np
import scipy.special


def numpy_gemm(a, b, bias=None):
    """np.matmul(a, b), plus `bias` (added in place) when given."""
    out = np.matmul(a, b)
    if bias is not None:
        out += bias
    return out


def linear_on(gemm):
    """The "linear" kernel with its product computed by `gemm(a, b, bias)` (numpy_gemm here;
    the native extension's pool, which adds the bias inside the GEMM: backend/native_blas.py)."""

    def linear(x, weight, bias=None):
        """x @ weight.T + bias for x (..., in) and weight (out, in); BLAS reads weight.T in
        place.

        Leading dimensions are folded into the rows first: one (N*L, in) GEMM runs several
        times faster than N small ones, which is what np.matmul does with a 3-D x.
        """
        out = gemm(_rows(x), weight.T, bias)
        return out.reshape(x.shape[:-1] + (weight.shape[0],))

    return linear


def matmul_on(gemm):
    """The "matmul" kernel with its products computed by `gemm` (as linear_on)."""

    def matmul(a, b):
        """np.matmul, with a stack of matrices times one matrix folded into one GEMM (see
        linear)."""
        if a.ndim > 2 and b.ndim == 2:
            return gemm(_rows(a), b).reshape(a.shape[:-1] + (b.shape[1],))
        return gemm(a, b)

    return matmul


linear, matmul = linear_on(numpy_gemm), matmul_on(np.matmul)


def _rows(x):
    """x (..., k) as a (rows, k) matrix; the rows counted, as -1 is ambiguous when k is 0."""
    return x.reshape(int(np.prod(x.shape[:-1])), x.shape[-1])


def reduce_sum(x, axes: tuple, keepdims: bool, dtype=None):
    """x.sum over `axes` (a tuple of non-negative axes), accumulating in `dtype` if given;
    an array method, so it serves CuPy arrays too."""
    return x.sum(axis=axes, keepdims=keepdims, dtype=dtype)


def relu(x):
    """max(x, 0); a ufunc, so it serves CuPy arrays too."""
    return np.maximum(x, 0)


def relu_backward(grad, x):
    """grad where x > 0, else 0: PyTorch's threshold_backward, so a NaN or inf gradient
    behind an inactive unit stays out (grad * (x > 0) would make it NaN)."""
    return np.where(x > 0, grad, 0)


def softmax(x, axis: int):
    exps = np.exp(x - x.max(axis=axis, keepdims=True))
    return exps / exps.sum(axis=axis, keepdims=True)


def log_softmax(x, axis: int):
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def softmax_backward(grad, out, axis: int):
    """J^T g for y = softmax(x): y * (g - <g, y>) along the axis."""
    return out * (grad - (grad * out).sum(axis=axis, keepdims=True))


def log_softmax_backward(grad, out, axis: int):
    """J^T g for y = log_softmax(x): g - exp(y) * sum(g) along the axis."""
    return grad - np.exp(out) * grad.sum(axis=axis, keepdims=True)


def cross_entropy(logits, target, ignore_index: int, label_smoothing: float):
    """Per-row loss of log-softmax + NLL over (N, C) logits, and each row's log-sum-exp.

    loss_i = lse_i - (1 - s) x[i, y_i] - (s / C) sum_c x[i, c], and 0 where y_i is ignored.
    Only the log-sum-exp is kept for backward, never the (N, C) probabilities. Half
    precision logits are accumulated in float32.
    """
    x = logits.astype(np.result_type(logits.dtype, np.float32), copy=False)
    rows, classes = x.shape
    top = x.max(axis=1, keepdims=True)
    lse = (top + np.log(np.exp(x - top).sum(axis=1, keepdims=True)))[:, 0]
    kept = target != ignore_index
    picked = x[np.arange(rows), np.where(kept, target, 0)]
    loss = lse - (1 - label_smoothing) * picked
    if label_smoothing:  # without smoothing a masked (-inf) logit must not make 0 * -inf = NaN
        loss = loss - (label_smoothing / classes) * x.sum(axis=1)
    return np.where(kept, loss, 0).astype(logits.dtype), lse


def cross_entropy_backward(grad_loss, logits, target, lse, ignore_index: int,
                           label_smoothing: float):
    """d loss / d logits = g_i (softmax(x_i) - (1 - s) onehot(y_i) - s / C), 0 on ignored rows."""
    rows, classes = logits.shape
    kept = target != ignore_index
    grad = np.exp(logits - lse[:, None]) - label_smoothing / classes
    grad[np.arange(rows), np.where(kept, target, 0)] -= 1 - label_smoothing
    return (grad * np.where(kept, grad_loss, 0)[:, None]).astype(logits.dtype)


def dropout(x, p: float, seed: int, offset: int):
    """Inverted dropout: (x * mask, mask), element kept iff its Philox uniform >= p.

    NumPy's Philox (4x64) at key `seed` and counter `offset` makes the mask reproducible;
    the CUDA kernel uses Philox 4x32-10, so the two devices draw different masks.
    """
    uniform = np.random.Generator(np.random.Philox(key=seed, counter=offset)).random(
        x.shape, dtype=np.float32)
    mask = np.where(uniform >= p, x.dtype.type(1.0 / (1.0 - p)), x.dtype.type(0))
    return x * mask, mask


def numpy_kernels() -> dict:
    """Every entry of backend/table.py on NumPy alone: what "cpu" runs without the native
    extension, and the references the native kernels are tested and benchmarked against."""
    from tinygrad_like.backend import (cpu_attention, cpu_conv, reference_conv, reference_norm,
                                       reference_optim, reference_rnn)

    return dict(
        add=np.add,
        sub=np.subtract,
        mul=np.multiply,
        div=np.true_divide,
        sum=reduce_sum,
        matmul=matmul,
        linear=linear,
        erf=scipy.special.erf,
        relu=relu,
        relu_backward=relu_backward,
        softmax=softmax,
        log_softmax=log_softmax,
        softmax_backward=softmax_backward,
        log_softmax_backward=log_softmax_backward,
        cross_entropy=cross_entropy,
        cross_entropy_backward=cross_entropy_backward,
        layer_norm=reference_norm.layer_norm,
        layer_norm_backward=reference_norm.layer_norm_backward,
        sgd_step=reference_optim.sgd_step,
        dropout=dropout,
        gru_gates=reference_rnn.gru_gates,
        gru_gates_backward=reference_rnn.gru_gates_backward,
        gru_sequence=reference_rnn.gru_sequence,
        gru_sequence_backward=reference_rnn.gru_sequence_backward,
        lstm_gates=reference_rnn.lstm_gates,
        lstm_gates_backward=reference_rnn.lstm_gates_backward,
        attention=cpu_attention.attention,
        attention_backward=cpu_attention.attention_backward,
        max_pool2d=reference_conv.max_pool2d,
        max_pool2d_backward=reference_conv.max_pool2d_backward,
        avg_pool2d=reference_conv.avg_pool2d,
        avg_pool2d_backward=reference_conv.avg_pool2d_backward,
        embedding_backward=reference_conv.embedding_backward,
        scatter_add=np.add.at,  # out[index] += values, repeats adding up, in index order
        **cpu_conv.make_conv_kernels(),
        adam_step=reference_optim.adam_step,
    )


def native_kernels(numpy_path: dict) -> dict:
    """The entries of `numpy_path` (numpy_kernels()) that the native extension replaces: the
    per-op wrappers of backend/native_kernels.py, the recurrent ones of native_recurrent.py
    and conv2d on cpu_conv.py's native pieces; empty without the extension."""
    from tinygrad_like.backend import cpu_conv, native_kernels as per_op, native_recurrent

    kernels = {**per_op.make_kernels(numpy_path), **native_recurrent.make_kernels(numpy_path),
               **cpu_conv.native_conv_kernels()}
    for kernel in kernels.values():
        kernel.native = True  # what tg.backend_info() reports
    return kernels


def make_backend(seed: int, index: int | None = None):  # "cpu:<n>": one CPU device
    from tinygrad_like.backend import Backend
    from tinygrad_like.backend.table import build_table

    from tinygrad_like.backend.cpu_bfloat16 import bfloat16_kernels

    numpy_path = bfloat16_kernels(numpy_kernels())  # bfloat16 computed in float32 there
    # the native extension's kernels replace the NumPy ones they beat
    # (backend/native_kernels.py, cpu_conv.py); each hands what it does not cover (other
    # dtypes, layouts) to the one it replaces
    own = {**numpy_path, **native_kernels(numpy_path)}
    return Backend("cpu", np, build_table("cpu", own), seed)
