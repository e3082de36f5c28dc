"""NumPy references for convolution, pooling and embedding backward: the oracle every device
(the tuned "cpu" path of cpu_conv.py, the Triton kernels, the CUDA C kernels) is tested
against, so they are written to be obviously correct rather than fast.

Convolution is im2col + one GEMM: `im2col` copies every window tap of the zero-padded input
into cols (C*KH*KW, N*OH*OW), one row per (channel, tap) and one column per output pixel of
every image, so the forward pass is W (K, C*KH*KW) @ cols -> (K, N*OH*OW), moved to NCHW
order. Backward-data is W^T @ grad followed by `col2im`, the scatter-add adjoint of im2col;
backward-weight is grad @ cols^T.

Every kernel takes and returns raw arrays; stride, padding and dilation are (int, int).
"""

from __future__ import annotations

import numpy as np

from tinygrad_like.windows import window_view


def output_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def _windows(padded, kernel, stride, dilation, out_hw):
    """(N, C, Hp, Wp) -> a (N, C, KH, KW, OH, OW) view of every window tap, without copying
    (the view of tinygrad_like/windows.py, shared with ops/conv.py's unfold, taps first)."""
    windows = window_view(np, padded, kernel, stride, dilation, writeable=False)
    assert windows.shape[2:4] == tuple(out_hw)
    return windows.transpose(0, 1, 4, 5, 2, 3)


def _pad(x, padding, value=0.0):
    if not any(padding):
        return x
    widths = ((0, 0), (0, 0), (padding[0], padding[0]), (padding[1], padding[1]))
    return np.pad(x, widths, constant_values=value)


def output_hw(input_shape, kernel, stride, padding, dilation) -> tuple:
    return tuple(output_size(input_shape[2 + a], kernel[a], stride[a], padding[a], dilation[a])
                 for a in (0, 1))


def im2col(x, kernel, stride, padding, dilation):
    """(N, C, H, W) -> cols (C*KH*KW, N*OH*OW), contiguous, zero padding implicit."""
    n, c = x.shape[:2]
    oh, ow = output_hw(x.shape, kernel, stride, padding, dilation)
    windows = _windows(_pad(x, padding), kernel, stride, dilation, (oh, ow))
    taps_first = windows.transpose(1, 2, 3, 0, 4, 5)  # (C, KH, KW, N, OH, OW)
    return np.ascontiguousarray(taps_first).reshape(c * kernel[0] * kernel[1], n * oh * ow)


def col2im(cols, input_shape, kernel, stride, padding, dilation):
    """The adjoint of im2col: add every window tap of cols back where it came from."""
    n, c = input_shape[:2]
    oh, ow = output_hw(input_shape, kernel, stride, padding, dilation)
    taps = cols.reshape(c, kernel[0], kernel[1], n, oh, ow).transpose(3, 0, 1, 2, 4, 5)
    return _add_taps(taps, input_shape, kernel, stride, padding, dilation)


def _add_taps(taps, input_shape, kernel, stride, padding, dilation):
    """Every tap of a (N, C, KH, KW, OH, OW) array added into a zero (N, C, H, W) input."""
    n, c, h, w = input_shape
    oh, ow = taps.shape[4:]
    padded = np.zeros((n, c, h + 2 * padding[0], w + 2 * padding[1]), dtype=taps.dtype)
    # one strided slice-add per kernel tap: KH*KW vectorised adds instead of a scatter
    for i in range(kernel[0]):
        rows = slice(i * dilation[0], i * dilation[0] + stride[0] * (oh - 1) + 1, stride[0])
        for j in range(kernel[1]):
            columns = slice(j * dilation[1], j * dilation[1] + stride[1] * (ow - 1) + 1, stride[1])
            padded[:, :, rows, columns] += taps[:, :, i, j]
    return padded[:, :, padding[0]:padding[0] + h, padding[1]:padding[1] + w]


def _pixels_last(grad):
    """(N, K, OH, OW) -> (K, N*OH*OW), the layout of a GEMM against cols."""
    return grad.transpose(1, 0, 2, 3).reshape(grad.shape[1], -1)


def conv2d(x, weight, bias, stride, padding, dilation):
    """(N, C, H, W) x, (K, C, KH, KW) weight, (K,) bias or None -> (N, K, OH, OW)."""
    n, k = x.shape[0], weight.shape[0]
    oh, ow = output_hw(x.shape, weight.shape[2:], stride, padding, dilation)
    product = weight.reshape(k, -1) @ im2col(x, weight.shape[2:], stride, padding, dilation)
    out = product.reshape(k, n, oh, ow).transpose(1, 0, 2, 3)
    if bias is not None:
        out = out + bias[:, None, None]
    return np.ascontiguousarray(out, dtype=np.result_type(x, weight))


def conv2d_backward_input(grad, weight, input_shape, stride, padding, dilation):
    """d conv2d / d x: col2im of W^T @ grad."""
    k = weight.shape[0]
    cols = weight.reshape(k, -1).T @ _pixels_last(grad)
    dx = col2im(cols, input_shape, weight.shape[2:], stride, padding, dilation)
    return np.ascontiguousarray(dx, dtype=grad.dtype)


def conv2d_backward_weight(grad, x, weight_shape, stride, padding, dilation):
    """d conv2d / d weight: grad @ cols^T."""
    cols = im2col(x, weight_shape[2:], stride, padding, dilation)
    dweight = _pixels_last(grad) @ cols.T
    return dweight.reshape(weight_shape).astype(grad.dtype, copy=False)


# ---- pooling -----------------------------------------------------------------------------------
def max_pool2d(x, kernel, stride, padding, dilation):
    """Max over each window and its argmax as a flat h * W + w index into the input plane.

    Padding is the lowest value (-inf for floats), so a padded tap never wins; on ties the
    first tap wins (PyTorch).
    """
    n, c, _, w = x.shape
    oh, ow = output_hw(x.shape, kernel, stride, padding, dilation)
    windows = _windows(_pad(x, padding, _lowest(x.dtype)), kernel, stride, dilation, (oh, ow))
    taps = windows.reshape(n, c, kernel[0] * kernel[1], oh, ow)
    best = taps.argmax(axis=2)
    out = np.take_along_axis(taps, best[:, :, None], axis=2)[:, :, 0]
    rows = np.arange(oh)[:, None] * stride[0] - padding[0] + (best // kernel[1]) * dilation[0]
    cols = np.arange(ow) * stride[1] - padding[1] + (best % kernel[1]) * dilation[1]
    return out, (rows * w + cols).astype(np.int64)


def _lowest(dtype):
    """The value no element of `dtype` is below: -inf, or an integer type's minimum."""
    if dtype.kind == "f":
        return -np.inf
    return False if dtype.kind == "b" else np.iinfo(dtype).min


def max_pool2d_backward(grad, indices, input_shape):
    """Scatter each output's gradient to its argmax; overlapping windows add up."""
    n, c, h, w = input_shape
    planes = np.arange(n * c, dtype=np.int64).reshape(n, c, 1, 1) * (h * w)
    flat = (indices + planes).ravel()
    dx = np.bincount(flat, weights=grad.ravel(), minlength=n * c * h * w)
    return dx.astype(grad.dtype, copy=False).reshape(input_shape)


def _avg_divisor(input_shape, kernel, stride, padding, count_include_pad, dtype):
    """Each window's divisor: KH*KW, or only its taps inside the unpadded input."""
    if count_include_pad or not any(padding):
        return kernel[0] * kernel[1]
    ones = np.ones((1, 1) + tuple(input_shape[2:]), dtype=dtype)
    oh, ow = output_hw(input_shape, kernel, stride, padding, (1, 1))
    return _windows(_pad(ones, padding), kernel, stride, (1, 1), (oh, ow)).sum(axis=(2, 3))[0, 0]


def avg_pool2d(x, kernel, stride, padding, count_include_pad):
    oh, ow = output_hw(x.shape, kernel, stride, padding, (1, 1))
    windows = _windows(_pad(x, padding), kernel, stride, (1, 1), (oh, ow))
    divisor = _avg_divisor(x.shape, kernel, stride, padding, count_include_pad, x.dtype)
    return (windows.sum(axis=(2, 3)) / divisor).astype(x.dtype, copy=False)


def avg_pool2d_backward(grad, input_shape, kernel, stride, padding, count_include_pad):
    divisor = _avg_divisor(input_shape, kernel, stride, padding, count_include_pad, grad.dtype)
    shares = np.broadcast_to((grad / divisor)[:, :, None, None],
                             grad.shape[:2] + tuple(kernel) + grad.shape[2:])
    return _add_taps(shares, input_shape, kernel, stride, padding, (1, 1))


# ---- embedding -----------------------------------------------------------------------------------
def embedding_backward(grad, indices, num_weights: int, padding_idx: int):
    """Scatter-add rows of grad (N, D) into a (num_weights, D) gradient; padding_idx gets none."""
    dweight = np.zeros((num_weights, grad.shape[1]), dtype=grad.dtype)
    np.add.at(dweight, indices, grad)
    if padding_idx >= 0:
        dweight[padding_idx] = 0
    return dweight
