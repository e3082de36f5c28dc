"""NumPy reference kernels for convolution, pooling and embedding backward ("cpu" device).

Convolution is im2col + BLAS: `im2col` copies every window tap of the zero-padded input into
cols (C*KH*KW, N*OH*OW), one row per (channel, tap) and one column per output pixel of every
image, so the forward pass of a batch is one GEMM W (K, C*KH*KW) @ cols -> (K, N*OH*OW),
moved to NCHW order by the copy that adds the bias. Backward-data is W^T @ grad followed by
`col2im`, the scatter-add adjoint (at stride 1 with "same" padding it is instead the full
convolution of grad with the flipped filters, which needs no scatter); backward-weight is
grad @ cols^T. The GEMMs go to BLAS through np.matmul; im2col and col2im are the only loops,
and the native `_C` extension may replace exactly those two (backend/native.py). With the
extension, large 3x3 stride-1 convolutions run as Winograd F(4x4, 3x3) instead
(cpu_winograd.py): native transforms around 36 BLAS GEMMs that do a quarter of the
multiplies (make_conv_kernels says when).

These functions are also the references the Triton and CUDA C kernels are tested against.
Every kernel takes and returns raw arrays; stride, padding and dilation are (int, int).
"""

from __future__ import annotations

import numpy as np

from tinygrad_like.backend import cpu_winograd


def output_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def _windows(padded, kernel, stride, dilation, out_hw):
    """(N, C, Hp, Wp) -> a (N, C, KH, KW, OH, OW) view of every window tap, without copying."""
    n, c = padded.shape[:2]
    sn, sc, sh, sw = padded.strides
    return np.lib.stride_tricks.as_strided(
        padded, (n, c, kernel[0], kernel[1], out_hw[0], out_hw[1]),
        (sn, sc, sh * dilation[0], sw * dilation[1], sh * stride[0], sw * stride[1]),
        writeable=False)


def _pad(x, padding, value=0.0):
    if not any(padding):
        return x
    widths = ((0, 0), (0, 0), (padding[0], padding[0]), (padding[1], padding[1]))
    return np.pad(x, widths, constant_values=value)


def _out_hw(input_shape, kernel, stride, padding, dilation) -> tuple:
    return tuple(output_size(input_shape[2 + a], kernel[a], stride[a], padding[a], dilation[a])
                 for a in (0, 1))


def im2col(x, kernel, stride, padding, dilation):
    """(N, C, H, W) -> cols (C*KH*KW, N*OH*OW), contiguous, zero padding implicit."""
    n, c = x.shape[:2]
    oh, ow = _out_hw(x.shape, kernel, stride, padding, dilation)
    windows = _windows(_pad(x, padding), kernel, stride, dilation, (oh, ow))
    taps_first = windows.transpose(1, 2, 3, 0, 4, 5)  # (C, KH, KW, N, OH, OW)
    return np.ascontiguousarray(taps_first).reshape(c * kernel[0] * kernel[1], n * oh * ow)


def col2im(cols, input_shape, kernel, stride, padding, dilation):
    """The adjoint of im2col: add every window tap of cols back where it came from."""
    n, c = input_shape[:2]
    oh, ow = _out_hw(input_shape, kernel, stride, padding, dilation)
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


CHUNK_BYTES = 4 << 20  # im2col buffer per GEMM: a few images, so cols stays in cache


def _chunks_of(images: int, per_image: int):
    """The batch in slices of equal size (to one image) of at most CHUNK_BYTES each, or of
    one image each where one alone is larger."""
    if images == 0:
        return []
    chunks = min(images, -(-images * per_image // CHUNK_BYTES))
    bounds = [images * i // chunks for i in range(chunks + 1)]
    return [slice(start, stop) for start, stop in zip(bounds, bounds[1:])]


def _image_chunks(input_shape, kernel, out_hw, itemsize: int):
    """The batch cut into chunks whose im2col buffer fits in CHUNK_BYTES (_chunks_of)."""
    per_image = input_shape[1] * kernel[0] * kernel[1] * out_hw[0] * out_hw[1] * itemsize
    return _chunks_of(input_shape[0], per_image)


def _pixels_first(grad):
    """(B, K, P) -> (K, B*P), the layout of a GEMM against cols; a view for one image."""
    return grad.transpose(1, 0, 2).reshape(grad.shape[1], -1)


# Winograd F(4x4, 3x3) takes a convolution when, for one of these (pixels, channels) pairs,
# its output planes have at least that many pixels and its input and output channels number
# at least that many. Its gain grows with the channels (the GEMMs it shrinks cost C*K per
# tile, its transforms only C + K) and shrinks on small planes (per-plane costs, ragged last
# tiles); the pairs are where it beat im2col + GEMM (docs/performance.md, "Winograd limits").
WINOGRAD_LIMITS = ((32 * 32, 16), (12 * 12, 128))


def _winograd_bytes(input_shape, out_hw, itemsize: int) -> int:
    """One image's share of the transformed input V (POINTS values per tile and channel)."""
    tiles = cpu_winograd.tile_counts(out_hw)
    return cpu_winograd.POINTS * input_shape[1] * tiles[0] * tiles[1] * itemsize


def make_conv_kernels(im2col=im2col, col2im=col2im, winograd=None) -> dict:
    """conv2d forward/backward kernels built on the given im2col/col2im (NumPy or native),
    and on the given Winograd pieces if any: the transforms, named as in
    cpu_winograd.TRANSFORMS, and a "batched_gemm" like cpu_winograd.batched_gemm.

    With transforms, a 3x3 stride-1 convolution as large as WINOGRAD_LIMITS asks runs as
    Winograd F(4x4, 3x3) (cpu_winograd.py): its GEMMs do a quarter of the multiplies and the
    input is expanded 2.25x instead of 9x. Only the native transforms are passed in: the
    NumPy ones (the references they are tested against) are slower than im2col.

    The batch is processed a few images at a time: each chunk's cols is written and read back
    by its GEMM while it is still in cache, instead of one (C*KH*KW, N*OH*OW) buffer many times
    the cache size. A chunk is one GEMM however many images it holds, where a GEMM per image
    was slower on small images (docs/performance.md, "conv2d in chunks of images").
    Backward-weight rebuilds each chunk's cols the same way rather than keeping the forward's.
    """

    def use_winograd(x, weight_shape, stride, dilation, out_hw, *others) -> bool:
        return (winograd is not None and cpu_winograd.applies(weight_shape, stride, dilation)
                and x.dtype in (np.float32, np.float64)
                and all(other is None or other.dtype == x.dtype for other in others)
                and any(out_hw[0] * out_hw[1] >= pixels and min(weight_shape[:2]) >= channels
                        for pixels, channels in WINOGRAD_LIMITS))

    def conv2d(x, weight, bias, stride, padding, dilation):
        k, kernel = weight.shape[0], weight.shape[2:]
        oh, ow = _out_hw(x.shape, kernel, stride, padding, dilation)
        if use_winograd(x, weight.shape, stride, dilation, (oh, ow), weight, bias):
            return _winograd_conv2d(x, weight, bias, padding, (oh, ow))
        filters = weight.reshape(k, -1)
        out = np.empty((x.shape[0], k, oh * ow), dtype=np.result_type(x, weight))
        for images in _image_chunks(x.shape, kernel, (oh, ow), x.itemsize):
            product = filters @ im2col(x[images], kernel, stride, padding, dilation)
            # (K, B*OH*OW) -> NCHW, with the bias added in the same pass
            batch_major = product.reshape(k, -1, oh * ow).transpose(1, 0, 2)
            if bias is None:
                out[images] = batch_major
            else:
                np.add(batch_major, bias[:, None], out=out[images])
        return out.reshape(x.shape[0], k, oh, ow)

    def _winograd_conv2d(x, weight, bias, padding, out_hw):
        n, k = x.shape[0], weight.shape[0]
        tiles = cpu_winograd.tile_counts(out_hw)
        filters = cpu_winograd.filter_transform(weight, winograd["batched_gemm"])
        bias = None if bias is None else np.ascontiguousarray(bias)
        out = np.empty((n, k) + out_hw, dtype=x.dtype)
        for images in _chunks_of(n, _winograd_bytes(x.shape, out_hw, x.itemsize)):
            transformed = winograd["input_transform"](x[images], padding, tiles)
            chunk_shape = (images.stop - images.start, k) + out_hw
            product = winograd["batched_gemm"](filters, transformed)
            winograd["output_transform"](product, chunk_shape, bias, out[images])
        return out

    def conv2d_backward_input(grad, weight, input_shape, stride, padding, dilation):
        # a broadcast grad (the backward of a sum) is made dense once: BLAS cannot take a
        # 0-stride operand, and im2col's strided copy is slower than its contiguous one
        grad = np.ascontiguousarray(grad)
        kernel = weight.shape[2:]
        full_padding = [dilation[a] * (kernel[a] - 1) - padding[a] for a in (0, 1)]
        if (tuple(stride) == (1, 1) and min(full_padding) >= 0
                and tuple(input_shape[2:]) == grad.shape[2:]):
            # At stride 1 the adjoint of a convolution is the "full" convolution of grad with
            # the flipped, transposed filters: one more im2col + GEMM, and no col2im scatter.
            # Its GEMM covers every input pixel, so it only pays where the input is no larger
            # than the output, as with "same" padding; unpadded, col2im is faster
            # (docs/performance.md, "conv2d in chunks of images").
            flipped = np.ascontiguousarray(weight.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1])
            return conv2d(grad, flipped, None, stride, full_padding, dilation)
        return _backward_input_by_col2im(grad, weight, input_shape, stride, padding, dilation)

    def _backward_input_by_col2im(grad, weight, input_shape, stride, padding, dilation):
        k, kernel = weight.shape[0], weight.shape[2:]
        filters_t = weight.reshape(k, -1).T
        grad = grad.reshape(grad.shape[0], k, -1)
        dx = np.empty(input_shape, dtype=grad.dtype)
        for images in _image_chunks(input_shape, kernel, (grad.shape[2], 1), grad.itemsize):
            chunk_shape = (images.stop - images.start,) + tuple(input_shape[1:])
            dx[images] = col2im(filters_t @ _pixels_first(grad[images]), chunk_shape, kernel,
                                stride, padding, dilation)
        return dx

    def conv2d_backward_weight(grad, x, weight_shape, stride, padding, dilation):
        k, kernel = weight_shape[0], weight_shape[2:]
        grad = np.ascontiguousarray(grad)
        if use_winograd(x, weight_shape, stride, dilation, grad.shape[2:], grad):
            return _winograd_backward_weight(grad, x, weight_shape, padding)
        grad = grad.reshape(grad.shape[0], k, -1)
        # accumulated transposed, as cols @ grad^T: OpenBLAS runs this orientation of the
        # skinny product faster than grad @ cols^T (the conv2d benchmark case)
        dweight_t = np.zeros((int(np.prod(weight_shape[1:])), k), dtype=grad.dtype)
        for images in _image_chunks(x.shape, kernel, (grad.shape[2], 1), x.itemsize):
            cols = im2col(x[images], kernel, stride, padding, dilation)
            dweight_t += cols @ _pixels_first(grad[images]).T
        return dweight_t.T.reshape(weight_shape)

    def _winograd_backward_weight(grad, x, weight_shape, padding):
        # dU[e] = dM[e] @ V[e]^T summed over the tiles, then the filter transform's adjoint
        tiles = cpu_winograd.tile_counts(grad.shape[2:])
        grad_filters = np.zeros((cpu_winograd.POINTS, *weight_shape[:2]), dtype=x.dtype)
        for images in _chunks_of(x.shape[0], _winograd_bytes(x.shape, grad.shape[2:],
                                                              x.itemsize)):
            transformed = winograd["input_transform"](x[images], padding, tiles)
            grad_m = winograd["output_transform_adjoint"](grad[images])
            winograd["batched_gemm"](grad_m, transformed, transpose_b=True, into=grad_filters)
        return cpu_winograd.filter_transform_adjoint(grad_filters, winograd["batched_gemm"])

    return {"conv2d": conv2d, "conv2d_backward_input": conv2d_backward_input,
            "conv2d_backward_weight": conv2d_backward_weight}


# ---- pooling -----------------------------------------------------------------------------------
def max_pool2d(x, kernel, stride, padding, dilation):
    """Max over each window and its argmax as a flat h * W + w index into the input plane.

    Padding is the lowest value (-inf for floats), so a padded tap never wins; on ties the
    first tap wins (PyTorch).
    """
    n, c, _, w = x.shape
    oh, ow = _out_hw(x.shape, kernel, stride, padding, dilation)
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
    oh, ow = _out_hw(input_shape, kernel, stride, padding, (1, 1))
    return _windows(_pad(ones, padding), kernel, stride, (1, 1), (oh, ow)).sum(axis=(2, 3))[0, 0]


def avg_pool2d(x, kernel, stride, padding, count_include_pad):
    oh, ow = _out_hw(x.shape, kernel, stride, padding, (1, 1))
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
