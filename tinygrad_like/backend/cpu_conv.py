"""conv2d on the tuned "cpu" device: im2col + BLAS in cache-sized chunks, or Winograd.

The kernels `make_conv_kernels` builds compute what reference_conv.py's do (and are tested
against them), faster:

- The batch is processed a few images at a time (CHUNK_BYTES), so each chunk's cols stays in
  cache between im2col and its GEMM.
- At stride 1 with "same" padding, backward-data is the full convolution of grad with the
  flipped filters (one more im2col + GEMM) instead of W^T @ grad and the col2im scatter.
- With the native extension, large 3x3 stride-1 convolutions (WINOGRAD_LIMITS) run as
  Winograd F(4x4, 3x3) (cpu_winograd.py): native transforms around 36 GEMMs on the native
  pool (native_blas.py) that do a quarter of the multiplies.
- With the native extension, a batch of small images (MIN_IMAGES_PER_THREAD) runs one image
  per pool task (kernels/cpu/conv_images.cpp): a task fuses the image's im2col with its GEMM
  against NCHW directly, where a chunk's one GEMM needs layout copies between its
  (K, N*OH*OW) product and NCHW, or runs Winograd's transforms and 36 GEMMs for the image in
  its own cache.

Without the extension "cpu" runs them on NumPy's im2col/col2im and np.matmul (no Winograd:
the NumPy transforms are slower than im2col); `native_conv_kernels` builds them on `_C`'s
im2col/col2im, Winograd transforms, batched GEMM and per-image convolutions, the native
wrappers defined here.
"""

from __future__ import annotations

import numpy as np

from tinygrad_like.backend import (cpu_winograd, native, native_blas, native_kernels,
                                   reference_conv)

CHUNK_BYTES = 4 << 20  # im2col buffer per GEMM: a few images, so cols stays in cache


def _chunks_of(images: int, per_image: int):
    """The batch in slices of equal size (to one image) of at most CHUNK_BYTES each, or of
    one image each where one alone is larger."""
    if images == 0:
        return []
    chunks = min(images, -(-images * per_image // CHUNK_BYTES))
    bounds = [images * i // chunks for i in range(chunks + 1)]
    return [slice(start, stop) for start, stop in zip(bounds, bounds[1:])]


def _cols_bytes(input_shape, kernel, out_hw, itemsize: int) -> int:
    """The size of one image's im2col buffer (C*KH*KW, OH*OW)."""
    return input_shape[1] * kernel[0] * kernel[1] * out_hw[0] * out_hw[1] * itemsize


def _image_chunks(input_shape, kernel, out_hw, itemsize: int):
    """The batch cut into chunks whose im2col buffer fits in CHUNK_BYTES (_chunks_of)."""
    return _chunks_of(input_shape[0], _cols_bytes(input_shape, kernel, out_hw, itemsize))


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


# The per-image convolutions take a batch when it has at least this many images per thread
# (fewer leave threads idle, where a chunk's GEMM is shared out over all of them) and one
# image's buffers fit in CHUNK_BYTES (each task keeps its own in cache): im2col's cols, or
# Winograd's transformed input and product (docs/performance.md, "conv2d one image at a time").
MIN_IMAGES_PER_THREAD = 2


def make_conv_kernels(im2col=reference_conv.im2col, col2im=reference_conv.col2im,
                      winograd=None, gemm=np.matmul, image_kernels=None) -> dict:
    """conv2d forward/backward kernels built on the given im2col/col2im and GEMM (NumPy or
    native), and on the given Winograd pieces if any: the transforms, named as in
    cpu_winograd.TRANSFORMS, and a "batched_gemm" like cpu_winograd.batched_gemm; and on the
    given per-image convolutions if any ("conv2d", "backward_input", "backward_weight",
    "winograd_conv2d", "winograd_backward_weight", as native_conv_kernels' `_C` functions),
    with two functions: whether they are "usable" and the "threads" they share images out over.

    With transforms, a 3x3 stride-1 convolution as large as WINOGRAD_LIMITS asks runs as
    Winograd F(4x4, 3x3) (cpu_winograd.py): its GEMMs do a quarter of the multiplies and the
    input is expanded 2.25x instead of 9x. Only the native transforms are passed in: the
    NumPy ones (the references they are tested against) are slower than im2col.

    With per-image convolutions, a batch of enough small images (MIN_IMAGES_PER_THREAD) runs
    one image per task: the transforms or im2col, the GEMMs and the layout all in the task's
    cache, and no barrier between them. Otherwise the batch is processed a few images at a
    time: each chunk's cols is written and read back by its GEMM while it is still in cache,
    instead of one (C*KH*KW, N*OH*OW) buffer many times the cache size. A chunk is one GEMM
    however many images it holds (docs/performance.md, "conv2d in chunks of images").
    Backward-weight rebuilds each chunk's cols the same way rather than keeping the forward's.
    """

    def floats(dtype, *others) -> bool:
        return (dtype in (np.float32, np.float64)
                and all(other is None or other.dtype == dtype for other in others))

    def use_winograd(x, weight_shape, stride, dilation, out_hw, *others) -> bool:
        return (winograd is not None and cpu_winograd.applies(weight_shape, stride, dilation)
                and floats(x.dtype, *others)
                and any(out_hw[0] * out_hw[1] >= pixels and min(weight_shape[:2]) >= channels
                        for pixels, channels in WINOGRAD_LIMITS))

    def one_image_at_a_time(images: int, per_image_bytes: int) -> bool:
        return (image_kernels is not None and per_image_bytes <= CHUNK_BYTES
                and image_kernels["usable"]()
                and images >= MIN_IMAGES_PER_THREAD * image_kernels["threads"]())

    def im2col_by_image(input_shape, dtype, kernel, out_hw, *others) -> bool:
        return floats(dtype, *others) and one_image_at_a_time(
            input_shape[0], _cols_bytes(input_shape, kernel, out_hw, dtype.itemsize))

    def winograd_by_image(input_shape, filters: int, out_hw, itemsize: int) -> bool:
        transformed = _winograd_bytes(input_shape, out_hw, itemsize)  # V; M has K channels
        return one_image_at_a_time(input_shape[0],
                                   transformed + transformed * filters // input_shape[1])

    def conv2d(x, weight, bias, stride, padding, dilation):
        k, kernel = weight.shape[0], weight.shape[2:]
        oh, ow = reference_conv.output_hw(x.shape, kernel, stride, padding, dilation)
        if use_winograd(x, weight.shape, stride, dilation, (oh, ow), weight, bias):
            return _winograd_conv2d(x, weight, bias, padding, (oh, ow))
        if im2col_by_image(x.shape, x.dtype, kernel, (oh, ow), weight, bias):
            return image_kernels["conv2d"](x, np.ascontiguousarray(weight),
                                           None if bias is None else np.ascontiguousarray(bias),
                                           *_pairs(stride, padding, dilation))
        filters = weight.reshape(k, -1)
        out = np.empty((x.shape[0], k, oh * ow), dtype=np.result_type(x, weight))
        for images in _image_chunks(x.shape, kernel, (oh, ow), x.itemsize):
            product = gemm(filters, im2col(x[images], kernel, stride, padding, dilation))
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
        if winograd_by_image(x.shape, k, out_hw, x.itemsize):
            return image_kernels["winograd_conv2d"](x, filters, bias, tuple(padding), out_hw)
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
        if im2col_by_image(input_shape, grad.dtype, kernel, grad.shape[2:], weight):
            return image_kernels["backward_input"](grad, np.ascontiguousarray(weight),
                                                   tuple(input_shape),
                                                   *_pairs(stride, padding, dilation))
        filters_t = weight.reshape(k, -1).T
        grad = grad.reshape(grad.shape[0], k, -1)
        dx = np.empty(input_shape, dtype=grad.dtype)
        for images in _image_chunks(input_shape, kernel, (grad.shape[2], 1), grad.itemsize):
            chunk_shape = (images.stop - images.start,) + tuple(input_shape[1:])
            dx[images] = col2im(gemm(filters_t, _pixels_first(grad[images])), chunk_shape, kernel,
                                stride, padding, dilation)
        return dx

    def conv2d_backward_weight(grad, x, weight_shape, stride, padding, dilation):
        k, kernel = weight_shape[0], weight_shape[2:]
        grad = np.ascontiguousarray(grad)
        if use_winograd(x, weight_shape, stride, dilation, grad.shape[2:], grad):
            return _winograd_backward_weight(grad, x, weight_shape, padding)
        if im2col_by_image(x.shape, x.dtype, kernel, grad.shape[2:], grad):
            return image_kernels["backward_weight"](grad, x, tuple(weight_shape),
                                                    *_pairs(stride, padding, dilation))
        grad = grad.reshape(grad.shape[0], k, -1)
        # accumulated transposed, as cols @ grad^T: OpenBLAS runs this orientation of the
        # skinny product faster than grad @ cols^T (the conv2d benchmark case)
        dweight_t = np.zeros((int(np.prod(weight_shape[1:])), k), dtype=grad.dtype)
        for images in _image_chunks(x.shape, kernel, (grad.shape[2], 1), x.itemsize):
            cols = im2col(x[images], kernel, stride, padding, dilation)
            dweight_t += gemm(cols, _pixels_first(grad[images]).T)
        return dweight_t.T.reshape(weight_shape)

    def _winograd_backward_weight(grad, x, weight_shape, padding):
        # dU[e] = dM[e] @ V[e]^T summed over the tiles, then the filter transform's adjoint
        if winograd_by_image(x.shape, weight_shape[0], grad.shape[2:], x.itemsize):
            return cpu_winograd.filter_transform_adjoint(
                image_kernels["winograd_backward_weight"](grad, x, tuple(padding)),
                winograd["batched_gemm"])
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


# ---- the native pieces -------------------------------------------------------------------------
def _pairs(*options) -> list:
    return [tuple(option) for option in options]


@native_kernels.floats_or_reference
def native_im2col(x, kernel, stride, padding, dilation):
    return native._C.im2col(x, *_pairs(kernel, stride, padding, dilation))


@native_kernels.floats_or_reference
def native_col2im(cols, input_shape, kernel, stride, padding, dilation):
    return native._C.col2im(np.ascontiguousarray(cols),
                            *_pairs(input_shape, kernel, stride, padding, dilation))


# the Winograd convolution's data transforms (cpu_winograd.py), as _C.winograd_<name>
WINOGRAD_TRANSFORMS = ("input_transform", "output_transform", "output_transform_adjoint")


def native_conv_kernels() -> dict:
    """conv2d's forward and backward on the native im2col/col2im, Winograd transforms and
    batched GEMM (native_blas.py); empty when the extension is not available."""
    if not native.available():
        return {}
    # make_conv_kernels hands the transforms float32/float64 operands of one dtype only, so
    # they need no wrapper
    winograd = {name: getattr(native._C, f"winograd_{name}") for name in WINOGRAD_TRANSFORMS}
    winograd["batched_gemm"] = native_blas.batched_gemm
    # their GEMMs call BLAS from the pool's tasks: usable once native_blas has set it up
    image_kernels = {"conv2d": native._C.conv2d_images,
                     "backward_input": native._C.conv2d_images_backward_input,
                     "backward_weight": native._C.conv2d_images_backward_weight,
                     "winograd_conv2d": native._C.winograd_conv2d_images,
                     "winograd_backward_weight": native._C.winograd_backward_weight_images,
                     "usable": native_blas.available, "threads": native.get_num_threads}
    kernels = make_conv_kernels(native_im2col(reference_conv.im2col),
                                native_col2im(reference_conv.col2im), winograd,
                                native_blas.matmul, image_kernels)
    for kernel in kernels.values():
        kernel.native_label = "_C Winograd/im2col+BLAS"  # for backend_info
    return kernels
