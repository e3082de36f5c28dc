"""Softmax and log-softmax along one axis, forward and backward: one program per row.

A "row" is the 1-D slice along the softmax axis; every other index picks a row. One
program computes one whole row, so every reduction (the max, the sum of exponentials,
the backward dot product) stays inside the program and nothing but x and y crosses HBM:

- Single pass (the row fits: n_cols <= SINGLE_PASS_MAX_COLS). The row is loaded once into
  registers as one BLOCK >= n_cols vector (tail lanes masked), reduced, and written once,
  as in the Triton tutorial 02-fused-softmax. Softmax composed from max, subtract, exp,
  sum and divide kernels moves the tensor 8 times (5 reads, 3 writes); this moves it twice.
- Online (wider rows, e.g. a 50,257-word vocabulary, would need hundreds of registers per
  thread and spill). A first loop over BLOCK-column steps keeps a running max m and a
  running sum s of exp(x - m); when a step raises the max to m', the sum is rescaled by
  exp(m - m') (Milakov & Gimelshein, "Online normalizer calculation for softmax", 2018).
  A second loop writes exp(x - m) / s (or x - m - log s). x is read twice and y written
  once: 3 passes instead of the 4 of a classic max loop / sum loop / write loop.
- Backward, with y the saved output and g the incoming gradient:
  softmax: dx = y * (g - sum(g * y));  log-softmax: dx = g - exp(y) * sum(g).
  Single pass reads g and y once and writes dx; the online form reads them (g alone for
  log-softmax) in a first loop for the sum and again in a second loop for dx. Both loops
  split rows as the forward does and keep per-lane partial sums, reduced once after the loop.

Half precision (fp16, bf16) is loaded, upcast and computed in fp32; fp64 stays fp64 (the
"interp" device's gradient checks run in float64). Outputs have the input's dtype.

Any axis, no copy: the launcher views the array as (outer, n_cols, inner) with one stride
each, and program r reads row (r // inner, :, r % inner). For the last axis inner == 1 and
a row is contiguous. For another axis a row is strided: a program's loads are not
coalesced, but neighbouring programs read neighbouring addresses that L2 serves, which
beats moving the axis last with a transposing copy in and out (4 more passes over the
tensor). Only arrays whose leading or trailing dims cannot share one stride (or with
negative strides) are copied first.
"""

from __future__ import annotations

import itertools

import triton
import triton.language as tl

from tinygrad_like.kernels.triton.launch import check_floating, num_warps_for

SINGLE_PASS_MAX_COLS = 8192  # widest row held whole in registers (16 fp32 per thread at 16 warps)
ONLINE_BLOCK = 4096  # columns per step of the online kernels' loops
# The lanes' running max starts at the lowest finite value, not -inf, so that
# exp(min(m, x) - max(m, x)) never meets -inf - (-inf)
LOWEST_FP32 = tl.constexpr(-3.4028234663852886e38)
LOWEST_FP64 = tl.constexpr(-1.7976931348623157e308)


# ---- pieces of the online kernels, shared with cross_entropy.py -------------------------------
@triton.jit
def row_split(row_start, n_cols, ALIGN: tl.constexpr):
    """(aligned, head, body): where a row starting at element `row_start` first meets an
    ALIGN-element (16-byte) boundary, how many columns come before it (the head) and how
    many whole ALIGN-element groups follow (the body, a multiple of ALIGN). The body is read
    with vector loads from `aligned`; the head and the tail are `edge_columns`. ALIGN = 1: no
    edges, the body is the whole row."""
    aligned = (row_start + ALIGN - 1) // ALIGN * ALIGN
    head = tl.minimum(aligned - row_start, n_cols)
    body = (n_cols - head) // ALIGN * ALIGN
    return aligned, head, body


@triton.jit
def edge_columns(head, body, n_cols, ALIGN: tl.constexpr):
    """(columns, mask) of the fewer than 2 * ALIGN columns outside a row's aligned body."""
    lanes = tl.arange(0, 2 * ALIGN)
    cols = tl.where(lanes < ALIGN, lanes, head + body + lanes - ALIGN)
    return cols, tl.where(lanes < ALIGN, lanes < head, cols < n_cols)


@triton.jit
def online_update(lane_max, lane_sum, x):
    """One step of each lane's running max m and sum s of exp(. - m) (Milakov & Gimelshein).

    Of exp(m - m') and exp(x - m') with m' = max(m, x) one is exp(0) = 1, so a single
    exponential per element serves both, and no lane talks to another inside the loop."""
    new_max = tl.maximum(lane_max, x)
    scaled = tl.exp(tl.minimum(lane_max, x) - new_max)
    return new_max, tl.where(x > lane_max, lane_sum * scaled + 1.0, lane_sum + scaled)


@triton.jit
def merge_edge(row_max, row_sum, edge):
    """(max, sum) of a row whose body gave (row_max, row_sum), with its edge values added."""
    new_max = tl.maximum(row_max, tl.max(edge, 0))
    return new_max, row_sum * tl.exp(row_max - new_max) + tl.sum(tl.exp(edge - new_max), 0)


@triton.jit
def softmax_forward_kernel(x_ptr, out_ptr, n_cols, inner,
                           x_outer_stride, x_col_stride, x_inner_stride,
                           out_outer_stride, out_col_stride, out_inner_stride,
                           LOG: tl.constexpr, BLOCK: tl.constexpr):
    """One row whole in registers (BLOCK >= n_cols): read x once, write y once."""
    row = tl.program_id(0).to(tl.int64)
    x_row = x_ptr + (row // inner) * x_outer_stride + (row % inner) * x_inner_stride
    out_row = out_ptr + (row // inner) * out_outer_stride + (row % inner) * out_inner_stride
    compute = tl.float64 if x_ptr.dtype.element_ty == tl.float64 else tl.float32
    cols = tl.arange(0, BLOCK)
    mask = cols < n_cols
    x = tl.load(x_row + cols * x_col_stride, mask=mask, other=float("-inf")).to(compute)
    shifted = x - tl.max(x, 0)
    exps = tl.exp(shifted)  # masked lanes: exp(-inf) = 0, so they drop out of the sum
    total = tl.sum(exps, 0)
    if LOG:
        y = shifted - tl.log(total)
    else:
        y = exps / total
    tl.store(out_row + cols * out_col_stride, y.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def softmax_forward_online_kernel(x_ptr, out_ptr, n_cols, inner,
                                  x_outer_stride, x_col_stride, x_inner_stride,
                                  out_outer_stride, out_col_stride, out_inner_stride,
                                  LOG: tl.constexpr, BLOCK: tl.constexpr, ALIGN: tl.constexpr):
    """A row of any width: a per-lane running max/sum loop, then a writing loop."""
    row = tl.program_id(0).to(tl.int64)
    x_start = (row // inner) * x_outer_stride + (row % inner) * x_inner_stride
    compute = tl.float64 if x_ptr.dtype.element_ty == tl.float64 else tl.float32
    aligned, head, body = row_split(x_start, n_cols, ALIGN)
    if ALIGN > 1:  # the launcher checked that out has x's layout: the same offsets
        x_body, out_body, out_start = x_ptr + aligned, out_ptr + aligned, x_start
    else:
        out_start = (row // inner) * out_outer_stride + (row % inner) * out_inner_stride
        x_body, out_body = x_ptr + x_start, out_ptr + out_start
    offsets = tl.arange(0, BLOCK)
    lane_max = tl.full([BLOCK], LOWEST_FP64 if compute == tl.float64 else LOWEST_FP32, compute)
    lane_sum = tl.zeros([BLOCK], compute)
    for start in range(0, body, BLOCK):
        k = start + offsets
        x = tl.load(x_body + k * x_col_stride, mask=k < body, other=float("-inf"))
        lane_max, lane_sum = online_update(lane_max, lane_sum, x.to(compute))
    row_max = tl.max(lane_max, 0)
    row_sum = tl.sum(lane_sum * tl.exp(lane_max - row_max), 0)
    if ALIGN > 1:
        cols, edge_mask = edge_columns(head, body, n_cols, ALIGN)
        edge = tl.load(x_ptr + x_start + cols, mask=edge_mask, other=float("-inf"))
        edge = edge.to(compute)
        row_max, row_sum = merge_edge(row_max, row_sum, edge)
    log_sum = tl.log(row_sum)
    inverse_sum = 1.0 / row_sum
    for start in range(0, body, BLOCK):
        k = start + offsets
        mask = k < body
        x = tl.load(x_body + k * x_col_stride, mask=mask, other=0.0).to(compute)
        y = _normalised(x - row_max, log_sum, inverse_sum, LOG)
        tl.store(out_body + k * out_col_stride, y.to(out_ptr.dtype.element_ty), mask=mask)
    if ALIGN > 1:
        x = tl.load(x_ptr + x_start + cols, mask=edge_mask, other=0.0).to(compute)
        y = _normalised(x - row_max, log_sum, inverse_sum, LOG)
        tl.store(out_ptr + out_start + cols, y.to(out_ptr.dtype.element_ty), mask=edge_mask)


@triton.jit
def _normalised(shifted, log_sum, inverse_sum, LOG: tl.constexpr):
    if LOG:
        return shifted - log_sum
    else:
        return tl.exp(shifted) * inverse_sum


@triton.jit
def softmax_backward_kernel(grad_ptr, y_ptr, out_ptr, n_cols, inner,
                            grad_outer_stride, grad_col_stride, grad_inner_stride,
                            y_outer_stride, y_col_stride, y_inner_stride,
                            out_outer_stride, out_col_stride, out_inner_stride,
                            LOG: tl.constexpr, BLOCK: tl.constexpr):
    """One row of g and y whole in registers: y (g - <g, y>), or g - exp(y) sum(g)."""
    row = tl.program_id(0).to(tl.int64)
    outer, within = row // inner, row % inner
    grad_row = grad_ptr + outer * grad_outer_stride + within * grad_inner_stride
    y_row = y_ptr + outer * y_outer_stride + within * y_inner_stride
    out_row = out_ptr + outer * out_outer_stride + within * out_inner_stride
    compute = tl.float64 if y_ptr.dtype.element_ty == tl.float64 else tl.float32
    cols = tl.arange(0, BLOCK)
    mask = cols < n_cols
    g = tl.load(grad_row + cols * grad_col_stride, mask=mask, other=0.0).to(compute)
    y = tl.load(y_row + cols * y_col_stride, mask=mask, other=0.0).to(compute)
    if LOG:
        dx = g - tl.exp(y) * tl.sum(g, 0)
    else:
        dx = y * (g - tl.sum(g * y, 0))
    tl.store(out_row + cols * out_col_stride, dx.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def softmax_backward_online_kernel(grad_ptr, y_ptr, out_ptr, n_cols, inner,
                                   grad_outer_stride, grad_col_stride, grad_inner_stride,
                                   y_outer_stride, y_col_stride, y_inner_stride,
                                   out_outer_stride, out_col_stride, out_inner_stride,
                                   LOG: tl.constexpr, BLOCK: tl.constexpr, ALIGN: tl.constexpr):
    """A row of any width: a loop for the row's sum, then a loop writing dx; rows split as the
    forward's (row_split), so an unaligned width still moves its body in 16-byte vectors."""
    row = tl.program_id(0).to(tl.int64)
    outer, within = row // inner, row % inner
    g_start = outer * grad_outer_stride + within * grad_inner_stride
    compute = tl.float64 if y_ptr.dtype.element_ty == tl.float64 else tl.float32
    aligned, head, body = row_split(g_start, n_cols, ALIGN)
    if ALIGN > 1:  # the launcher checked that g, y and dx share one layout: the same offsets
        g_body, y_body, out_body = grad_ptr + aligned, y_ptr + aligned, out_ptr + aligned
    else:
        g_body = grad_ptr + g_start
        y_body = y_ptr + outer * y_outer_stride + within * y_inner_stride
        out_body = out_ptr + outer * out_outer_stride + within * out_inner_stride
    offsets = tl.arange(0, BLOCK)
    # per-lane partial sums, reduced across the block once after the loop
    partial = tl.zeros([BLOCK], compute)
    for start in range(0, body, BLOCK):
        k = start + offsets
        mask = k < body
        g = tl.load(g_body + k * grad_col_stride, mask=mask, other=0.0).to(compute)
        if LOG:
            partial += g
        else:
            partial += g * tl.load(y_body + k * y_col_stride, mask=mask, other=0.0).to(compute)
    total = tl.sum(partial, 0)
    if ALIGN > 1:
        cols, edge_mask = edge_columns(head, body, n_cols, ALIGN)
        g_edge = tl.load(grad_ptr + g_start + cols, mask=edge_mask, other=0.0).to(compute)
        y_edge = tl.load(y_ptr + g_start + cols, mask=edge_mask, other=0.0).to(compute)
        if LOG:
            total += tl.sum(g_edge, 0)
        else:
            total += tl.sum(g_edge * y_edge, 0)
    for start in range(0, body, BLOCK):
        k = start + offsets
        mask = k < body
        g = tl.load(g_body + k * grad_col_stride, mask=mask, other=0.0).to(compute)
        y = tl.load(y_body + k * y_col_stride, mask=mask, other=0.0).to(compute)
        dx = _input_gradient(g, y, total, LOG)
        tl.store(out_body + k * out_col_stride, dx.to(out_ptr.dtype.element_ty), mask=mask)
    if ALIGN > 1:
        dx = _input_gradient(g_edge, y_edge, total, LOG)
        tl.store(out_ptr + g_start + cols, dx.to(out_ptr.dtype.element_ty), mask=edge_mask)


@triton.jit
def _input_gradient(g, y, total, LOG: tl.constexpr):
    """dx from g, y and the row's sum: g - exp(y) sum(g), or y (g - <g, y>)."""
    if LOG:
        return g - tl.exp(y) * total
    else:
        return y * (g - total)


# ---- launchers: the kernel table's softmax entries, called as fn(launcher, *reference args) --
def softmax(launcher, x, axis: int | None):
    return _forward(launcher, "softmax", x, axis, log=False)


def log_softmax(launcher, x, axis: int | None):
    return _forward(launcher, "log_softmax", x, axis, log=True)


def softmax_backward(launcher, grad, out, axis: int | None):
    return _backward(launcher, "softmax_backward", grad, out, axis, log=False)


def log_softmax_backward(launcher, grad, out, axis: int | None):
    return _backward(launcher, "log_softmax_backward", grad, out, axis, log=True)


def _forward(launcher, op: str, x, axis, log: bool):
    check_floating(op, x)
    axis = _check_axis(op, x, axis)
    out = launcher.empty(x.shape, x.dtype)
    if x.size == 0:
        return out
    if x.ndim == 0:  # a single element: softmax 1, log-softmax 0
        return _forward(launcher, op, x.reshape(1), 0, log).reshape(())
    x, x_strides = _row_strides(launcher.xp, x, axis)
    _, out_strides = _row_strides(launcher.xp, out, axis)
    n_cols, inner = x.shape[axis], _prod(x.shape[axis + 1:])
    kernel, block = _plan(n_cols, softmax_forward_kernel, softmax_forward_online_kernel)
    extra = {}
    if kernel is softmax_forward_online_kernel:
        extra["ALIGN"] = alignment([x, out], [x_strides, out_strides])
    launcher.kernel(kernel)[(x.size // n_cols,)](
        launcher.arg(x), launcher.arg(out), n_cols, inner, *x_strides, *out_strides,
        LOG=log, BLOCK=block, num_warps=num_warps_for(block), **extra)
    return out


def _backward(launcher, op: str, grad, out, axis, log: bool):
    check_floating(op, out)
    check_floating(op, grad)
    if grad.shape != out.shape:
        raise ValueError(f"{op}: the gradient of shape {grad.shape} must match the saved output "
                         f"of shape {out.shape}")
    axis = _check_axis(op, out, axis)
    dx = launcher.empty(out.shape, out.dtype)
    if out.size == 0:
        return dx
    if out.ndim == 0:
        return _backward(launcher, op, grad.reshape(1), out.reshape(1), 0, log).reshape(())
    grad, grad_strides = _row_strides(launcher.xp, grad, axis)
    out, y_strides = _row_strides(launcher.xp, out, axis)
    _, dx_strides = _row_strides(launcher.xp, dx, axis)
    n_cols, inner = out.shape[axis], _prod(out.shape[axis + 1:])
    kernel, block = _plan(n_cols, softmax_backward_kernel, softmax_backward_online_kernel)
    extra = {}
    if kernel is softmax_backward_online_kernel:
        extra["ALIGN"] = alignment([grad, out, dx], [grad_strides, y_strides, dx_strides])
    launcher.kernel(kernel)[(out.size // n_cols,)](
        launcher.arg(grad), launcher.arg(out), launcher.arg(dx), n_cols, inner,
        *grad_strides, *y_strides, *dx_strides,
        LOG=log, BLOCK=block, num_warps=num_warps_for(block), **extra)
    return dx


def _plan(n_cols: int, single_pass, online):
    """The kernel and BLOCK for rows of n_cols: whole rows in registers up to the limit."""
    if n_cols > SINGLE_PASS_MAX_COLS:
        return online, ONLINE_BLOCK
    return single_pass, triton.next_power_of_2(n_cols)


def alignment(arrays, strides) -> int:
    """ALIGN for the online kernels: the elements in 16 bytes when every array has one dtype,
    the same element strides with unit column stride, and a 16-byte aligned base, so that one
    row_split serves them all and their bodies load as 16-byte vectors; else 1 (no split)."""
    itemsize = arrays[0].itemsize
    same = all(a.itemsize == itemsize for a in arrays) and all(s == strides[0] for s in strides)
    addresses = [a.data.ptr if hasattr(a.data, "ptr") else a.ctypes.data for a in arrays]
    if same and strides[0][1] == 1 and not any(address % 16 for address in addresses):
        return 16 // itemsize
    return 1


def _check_axis(op: str, array, axis) -> int:
    if axis is None:
        if array.ndim > 0:
            raise ValueError(f"{op}: axis=None is only for 0-d inputs, got shape {array.shape}")
        return 0
    if not -array.ndim <= axis < max(array.ndim, 1):
        raise ValueError(f"{op}: axis {axis} is out of range for shape {array.shape}")
    return axis % max(array.ndim, 1)


def _row_strides(xp, array, axis: int):
    """(array, (outer, col, inner) element strides) viewing it as (outer, n_cols, inner).

    The array comes back copied (contiguous) only when its dims before or after the axis
    cannot be walked with a single stride, when a stride is negative, or when a row would
    span 2**31 elements (the kernels address within a row in int32).
    """
    layout = _layout(array, axis)
    if layout is None:
        array = xp.ascontiguousarray(array)
        layout = _layout(array, axis)
    return array, layout


def _layout(array, axis: int) -> tuple | None:
    strides = [s // array.itemsize for s in array.strides]
    outer = _single_stride(array.shape[:axis], strides[:axis])
    inner = _single_stride(array.shape[axis + 1:], strides[axis + 1:])
    col = strides[axis]
    if outer is None or inner is None or min(strides) < 0 or col * array.shape[axis] >= 2**31:
        return None
    return outer, col, inner


def _single_stride(shape, strides) -> int | None:
    """The one stride that walks these dims in C order as a flat index, or None if none does."""
    dims = [(n, s) for n, s in zip(shape, strides) if n != 1]
    for (_, outer_stride), (n, s) in itertools.pairwise(dims):
        if outer_stride != n * s:
            return None
    return dims[-1][1] if dims else 1


def _prod(shape) -> int:
    size = 1
    for n in shape:
        size *= n
    return size
