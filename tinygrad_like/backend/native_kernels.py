"""The "cpu" kernel-table entries the native extension `tinygrad_like._C` replaces.

`make_kernels(reference)` returns them (backend/native.py loads the extension). Each entry
takes exactly the arguments of the NumPy reference it replaces; float32 and float64 arrays
go to C++ (made C-contiguous first where the kernel needs it), and any other dtype goes to
the reference, so a caller never sees a difference but speed.

An entry is listed in NATIVE only if it beats the NumPy reference at the benchmark shapes;
a kernel that lost stays out of the table. benchmarks/test_bench_native.py shows it: it
replays each benchmark workload's calls to every entry through both, and fails when an
entry has no such case.
"""

from __future__ import annotations

import math

import numpy as np

from tinygrad_like.backend import cpu, cpu_attention, native_blas
from tinygrad_like.backend.native import _C

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def contiguous(array):
    return np.ascontiguousarray(array)


def floats_or_reference(native_call):
    """A wrapper factory for kernels whose first argument decides: `native_call` on float32
    and float64 arrays, the NumPy reference on anything else (float16, integers)."""
    def make(reference):
        def kernel(first, *args):
            if first.dtype not in _FLOATS:
                return reference(first, *args)
            return native_call(first, *args)
        kernel.__name__ = native_call.__name__
        return kernel
    return make


def _pairs(*options) -> list:
    return [tuple(option) for option in options]


@floats_or_reference
def _max_pool2d(x, kernel, stride, padding, dilation):
    return _C.max_pool2d(contiguous(x), *_pairs(kernel, stride, padding, dilation))


@floats_or_reference
def _max_pool2d_backward(grad, indices, input_shape):
    return _C.max_pool2d_backward(contiguous(grad), np.ascontiguousarray(indices, np.int64),
                                  tuple(input_shape))


@floats_or_reference
def _avg_pool2d(x, kernel, stride, padding, count_include_pad):
    return _C.avg_pool2d(contiguous(x), *_pairs(kernel, stride, padding),
                         bool(count_include_pad))


@floats_or_reference
def _avg_pool2d_backward(grad, input_shape, kernel, stride, padding, count_include_pad):
    return _C.avg_pool2d_backward(contiguous(grad), *_pairs(input_shape, kernel, stride,
                                                             padding), bool(count_include_pad))


@floats_or_reference
def _embedding_backward(grad, indices, num_weights, padding_idx):
    return _C.embedding_backward(contiguous(grad), np.ascontiguousarray(indices, np.int64),
                                 int(num_weights), -1 if padding_idx is None else int(padding_idx))


def same_float_dtype(*arrays) -> bool:
    dtype = arrays[0].dtype
    return dtype in _FLOATS and all(a is None or a.dtype == dtype for a in arrays)


def _layer_norm(reference):
    def layer_norm(x, weight, bias, eps):
        if not same_float_dtype(x, weight, bias):
            return reference(x, weight, bias, eps)
        weight, bias = (None if a is None else contiguous(a) for a in (weight, bias))
        return _C.layer_norm(contiguous(x), weight, bias, float(eps))
    return layer_norm


def _layer_norm_backward(reference):
    def layer_norm_backward(grad, x, mean, rstd, weight):
        if not same_float_dtype(x, grad, mean, rstd, weight):
            return reference(grad, x, mean, rstd, weight)
        return _C.layer_norm_backward(*(None if a is None else contiguous(a)
                                        for a in (grad, x, mean, rstd, weight)))
    return layer_norm_backward


def _last_axis_rows(x, axis):
    """x as (rows, columns) when `axis` is its last axis and x a non-empty C-contiguous
    float32/float64 array (what the softmax kernels take), else None."""
    if (axis is None or x.ndim == 0 or x.size == 0 or axis % x.ndim != x.ndim - 1
            or x.dtype not in _FLOATS or not x.flags.c_contiguous):
        return None
    return x.reshape(-1, x.shape[-1])


def _pool_operands(first, a, b):
    """(a, b) as the pool's binary kernels take them, or None where NumPy should run the op;
    `first` is the first of them that is an array, already known to be larger than the grain.

    They take float arrays of one shape, dtype and C layout with more elements than the
    pool's grain, or one such array and a scalar. A broadcast single value (what a sum's
    backward hands down) counts as that scalar. Anything else (broadcasting, small arrays,
    other dtypes or layouts, NumPy scalars) is NumPy's.
    """
    if first.dtype not in _FLOATS:
        return None
    operands, dense = [], False
    for x in (a, b):
        if isinstance(x, np.ndarray):
            if x.dtype != first.dtype or x.shape != first.shape:
                return None
            if x.flags.c_contiguous:
                dense = True
            elif not any(x.strides):
                x = float(x.flat[0])  # exact: float32 and float64 fit a double
            else:
                return None
        elif type(x) not in (float, int):
            return None
        operands.append(x)
    return operands if dense else None


# The NumPy ufunc behind each entry, which _binary calls itself for small float operands
_UFUNCS = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.true_divide}


def _binary(name: str):
    """+ - * / on the pool for large operands (see _pool_operands); the NumPy ufunc otherwise."""
    # locals of the closure, not global and attribute lookups: read on every op
    grain, ndarray, ufunc = (_C.parallel_grain if _C is not None else 0), np.ndarray, _UFUNCS[name]
    float32, float64 = _FLOATS

    def make(reference):
        def binary(a, b):
            # small operands go to NumPy before any call: for them the per-op overhead is all
            # that matters
            first = a if type(a) is ndarray else b
            if type(first) is ndarray:
                if first.size > grain:
                    operands = _pool_operands(first, a, b)
                    if operands is not None:
                        return getattr(_C, name)(*operands)
                elif first.dtype is float32 or first.dtype is float64:
                    # the reference's own ufunc, less its wrapper: the reference (bfloat16's,
                    # backend/cpu_bfloat16.py) differs from it only on other dtypes
                    return ufunc(a, b)
            return reference(a, b)
        binary.__name__ = name
        return binary
    return make


def _on_the_pool(x) -> bool:
    """A float array large and dense enough for the pool's one-array kernels (as for +-*/)."""
    return (type(x) is np.ndarray and x.size > _C.parallel_grain and x.dtype in _FLOATS
            and x.flags.c_contiguous)


def _dense_float(x) -> bool:
    return type(x) is np.ndarray and x.dtype in _FLOATS and x.flags.c_contiguous


# ReLU goes native at every size, unlike +-*/: on one thread the kernels beat NumPy from 16
# elements up, and np.where, the backward's reference, is slower still (docs/performance.md,
# "ReLU native at every size")
def _relu(reference):
    def relu(x):
        return _C.relu(x) if _dense_float(x) else reference(x)
    return relu


def _relu_backward(reference):
    def relu_backward(grad, x):
        if _dense_float(x) and _dense_float(grad) and grad.dtype == x.dtype \
                and grad.shape == x.shape:
            return _C.relu_backward(grad, x)
        return reference(grad, x)
    return relu_backward


def _softmax_forward(name: str):
    """softmax or log_softmax: the fused row kernel on the contiguous last axis, the NumPy
    reference on any other axis or layout."""
    def make(reference):
        def forward(x, axis):
            rows = _last_axis_rows(x, axis)
            if rows is None:
                return reference(x, axis)
            return getattr(_C, name)(rows).reshape(x.shape)
        return forward
    return make


def _softmax_backward(name: str):
    """Their backward, native when grad and out share the layout and dtype it needs."""
    def make(reference):
        def backward(grad, out, axis):
            rows, grad_rows = _last_axis_rows(out, axis), _last_axis_rows(grad, axis)
            if (rows is None or grad_rows is None or grad.shape != out.shape
                    or grad.dtype != out.dtype):
                return reference(grad, out, axis)
            return getattr(_C, name)(grad_rows, rows).reshape(out.shape)
        return backward
    return make


SUM_MIN_SIZE = 1 << 14  # smaller sums stay with NumPy, whose call costs less than ours
# Column sums (the kept axes last) need this many rows as well: NumPy adds whole rows, as the
# kernel does, and beat it on short, wide arrays (docs/performance.md, "Column sums")
COLUMN_SUM_MIN_ROWS = 256


def _kept_block(ndim: int, axes: tuple):
    """(first, last) when the axes a sum keeps are the consecutive axes first..last-1 (so the
    array reads as (outer, kept, inner)), else None; `axes` sorted, as Sum passes them."""
    kept = [axis for axis in range(ndim) if axis not in axes]
    if not kept or kept[-1] - kept[0] + 1 != len(kept):
        return None
    return kept[0], kept[-1] + 1


def _sum(reference):
    """float32 sums on the pool (kernels/cpu/reduce.cpp): the whole array, or over the axes
    around one block of kept axes (bias gradients); anything else is NumPy's."""
    def reduce_sum(x, axes, keepdims, dtype=None):
        # the size first: most sums are small, and comparing dtypes costs more than the rest
        if (type(x) is not np.ndarray or x.size < SUM_MIN_SIZE or dtype is not None
                or x.dtype != np.float32 or not x.flags.c_contiguous):
            return reference(x, axes, keepdims, dtype)
        shape = x.shape
        if len(axes) == len(shape):
            total = np.array(_C.sum_all(x), dtype=np.float32)  # rounded once, from double
            return total.reshape((1,) * x.ndim) if keepdims else total
        block = _kept_block(len(shape), axes)
        if block is None:
            return reference(x, axes, keepdims, dtype)
        first, last = block
        if last == len(shape) and math.prod(shape[:first]) < COLUMN_SUM_MIN_ROWS:
            return reference(x, axes, keepdims, dtype)
        out = _C.sum_outer_inner(x.reshape(math.prod(shape[:first]), -1,
                                           math.prod(shape[last:])))
        if keepdims:
            return out.reshape(tuple(1 if axis in axes else n for axis, n in enumerate(shape)))
        return out.reshape(shape[first:last])
    return reduce_sum


@floats_or_reference
def _cross_entropy(logits, target, ignore_index, label_smoothing):
    return _C.cross_entropy(contiguous(logits), np.ascontiguousarray(target, np.int64),
                            int(ignore_index), float(label_smoothing))


def _cross_entropy_backward(reference):
    def cross_entropy_backward(grad, logits, target, lse, ignore_index, label_smoothing):
        if not same_float_dtype(logits, grad, lse):
            return reference(grad, logits, target, lse, ignore_index, label_smoothing)
        return _C.cross_entropy_backward(
            contiguous(grad), contiguous(logits), np.ascontiguousarray(target, np.int64),
            contiguous(lse), int(ignore_index), float(label_smoothing))
    return cross_entropy_backward


def _rows_in_place(*arrays) -> bool:
    """Whether the attention steps can update these in place through row views: one float
    dtype, and C-contiguous, so that reshaping gives views rather than copies."""
    return same_float_dtype(*arrays) and all(a.flags.c_contiguous for a in arrays)


def _online_softmax_step(scores, row_max, row_sum):
    """cpu_attention.online_softmax_step as one fused pass per row of scores, in place."""
    if not _rows_in_place(scores, row_max, row_sum):
        return cpu_attention.online_softmax_step(scores, row_max, row_sum)
    rescale = _C.online_softmax_step(scores.reshape(-1, scores.shape[-1]), row_max.reshape(-1),
                                     row_sum.reshape(-1))
    return rescale.reshape(row_max.shape)


# Attention with at most this many keys (and no mask) runs in _C's fused per-head kernels
# (kernels/cpu/short_attention.cpp): faster than the tiled path at every length measured;
# beyond it the tiled path's blocks keep the working memory small (docs/performance.md, "CPU
# attention: short sequences").
SHORT_ATTENTION_MAX_KEYS = 1024


def _short_attention(q, k, v, mask) -> bool:
    return (mask is None and q.ndim == 3 and k.ndim == 3 and v.ndim == 3
            and 0 < k.shape[1] <= SHORT_ATTENTION_MAX_KEYS and 0 not in q.shape
            and v.shape[2] > 0 and same_float_dtype(q, k, v))


def _attention(reference):
    """Attention's forward: _C's fused kernel for short key sequences, else the tiled path
    with the native online-softmax step between its GEMMs."""
    def attention(q, k, v, mask, is_causal, scale):
        if _short_attention(q, k, v, mask):
            return tuple(_C.short_attention(contiguous(q), contiguous(k), contiguous(v),
                                            bool(is_causal), float(scale)))
        return reference(q, k, v, mask, is_causal, scale, softmax_step=_online_softmax_step)
    attention.native_label = "_C fused per head (short), BLAS + _C softmax steps"
    return attention


def _attention_backward_step(scores, lse, dscores, delta):
    """cpu_attention.probabilities_and_score_grads as one fused pass per row, in place."""
    if not _rows_in_place(scores, lse, dscores, delta):
        return cpu_attention.probabilities_and_score_grads(scores, lse, dscores, delta)
    columns = scores.shape[-1]
    _C.attention_backward_step(scores.reshape(-1, columns), lse.reshape(-1),
                               dscores.reshape(-1, columns), delta.reshape(-1))


def _attention_backward(reference):
    """Attention's backward, taken as the forward is (_attention)."""
    def attention_backward(grad_out, q, k, v, out, lse, mask, is_causal, scale):
        if _short_attention(q, k, v, mask) and same_float_dtype(q, grad_out, out, lse):
            return tuple(_C.short_attention_backward(
                *(contiguous(a) for a in (grad_out, q, k, v, out, lse)), bool(is_causal),
                float(scale)))
        return reference(grad_out, q, k, v, out, lse, mask, is_causal, scale,
                         backward_step=_attention_backward_step)
    return attention_backward


def _sgd_step(reference):
    def sgd_step(params, grads, momentum_buffers, lr, momentum, dampening, nesterov,
                 weight_decay, maximize, first_step):
        lists = [list(params), list(grads), list(momentum_buffers or ())]
        skipped = _C.sgd_step(*lists, lr, momentum, dampening, nesterov, weight_decay,
                              maximize, first_step)
        if skipped:  # other dtypes or layouts: the NumPy rule, on just those parameters
            picked = [[arrays[i] for i in skipped] if arrays else [] for arrays in lists]
            reference(*picked, lr, momentum, dampening, nesterov, weight_decay, maximize,
                      first_step)
    return sgd_step


def _adam_step(reference):
    def adam_step(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, step, lr, beta1,
                  beta2, eps, weight_decay, decoupled_weight_decay, amsgrad, maximize):
        lists = [list(params), list(grads), list(exp_avgs), list(exp_avg_sqs),
                 list(max_exp_avg_sqs) if amsgrad else None]
        skipped = _C.adam_step(*lists, float(step), lr, beta1, beta2, eps, weight_decay,
                               decoupled_weight_decay, amsgrad, maximize)
        if skipped:  # other dtypes or layouts: the NumPy rule, on just those parameters
            picked = [None if arrays is None else [arrays[i] for i in skipped]
                      for arrays in lists]
            reference(*picked, step, lr, beta1, beta2, eps, weight_decay,
                      decoupled_weight_decay, amsgrad, maximize)
    return adam_step


# entry of backend/table.py -> wrapper factory (given the NumPy kernel it replaces); only
# kernels that beat NumPy. The recurrent ones are native_recurrent.py's, conv2d's
# cpu_conv.py's (cpu.native_kernels puts them together).
def _on_the_pool_gemm(make_kernel):
    """cpu.linear_on / cpu.matmul_on with the large GEMMs on _C's pool (native_blas.py), for
    float32 and float64; other dtypes go to the reference (bfloat16's float32 path)."""
    def make(reference):
        kernel = floats_or_reference(make_kernel(native_blas.matmul))(reference)
        kernel.native_label = "BLAS on _C's pool"  # for backend_info
        return kernel
    return make


NATIVE = {
    "matmul": _on_the_pool_gemm(cpu.matmul_on),
    "linear": _on_the_pool_gemm(cpu.linear_on),
    "add": _binary("add"),
    "sub": _binary("sub"),
    "mul": _binary("mul"),
    "div": _binary("div"),
    "sum": _sum,
    "relu": _relu,
    "relu_backward": _relu_backward,
    "max_pool2d": _max_pool2d,
    "max_pool2d_backward": _max_pool2d_backward,
    "avg_pool2d": _avg_pool2d,
    "avg_pool2d_backward": _avg_pool2d_backward,
    "embedding_backward": _embedding_backward,
    "layer_norm": _layer_norm,
    "layer_norm_backward": _layer_norm_backward,
    "softmax": _softmax_forward("softmax"),
    "log_softmax": _softmax_forward("log_softmax"),
    "softmax_backward": _softmax_backward("softmax_backward"),
    "log_softmax_backward": _softmax_backward("log_softmax_backward"),
    "cross_entropy": _cross_entropy,
    "cross_entropy_backward": _cross_entropy_backward,
    "attention": _attention,
    "attention_backward": _attention_backward,
    "sgd_step": _sgd_step,
    "adam_step": _adam_step,
}


def make_kernels(reference: dict) -> dict:
    """The entries of the NumPy kernels `reference` (cpu.numpy_kernels) that NATIVE replaces,
    as {name: kernel}; empty when the extension is not available."""
    if _C is None:
        return {}
    return {name: make(reference[name]) for name, make in NATIVE.items()}
