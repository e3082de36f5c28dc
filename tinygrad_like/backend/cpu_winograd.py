"""Winograd F(4x4, 3x3) convolution: 3x3 filters at stride 1 with 4x fewer multiplies.

Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks" (2015). The output is cut
into 4x4 tiles; each reads a 6x6 input tile at stride 4. With the 6x6 transforms

    U = G g G^T          per filter (K, C, 3, 3) -> (36, K, C)
    V = B^T d B          per input tile          -> (36, C, tiles)
    M[e] = U[e] @ V[e]   36 GEMMs, e the element of the 6x6 transformed tile, summing over C
    Y = A^T m A          per output tile         -> the 4x4 outputs

a tile costs 36 multiply-adds per (k, c) pair instead of 144, and the 36 products are
GEMMs, which stay with BLAS (`batched_gemm`: NumPy's here, or native_blas.py's, which runs
them on the extension's pool). The input is expanded 2.25x (36 values per 16 outputs)
where im2col expands it 9x, so the transform traffic is smaller too. The price is rounding:
the transforms' coefficients (up to 8 and 1/24) cost a few more ulps than a direct sum, the
trade cuDNN and oneDNN make for float32 as well.

The backward passes are the same pieces run backwards: backward-data is the full
convolution of grad with the flipped, transposed filters (itself a stride-1 3x3
convolution), and backward-weight is dU[e] = dM[e] @ V[e]^T with dM = A dY A^T the adjoint
of the output transform and dW = G^T dU G the adjoint of the filter transform.

The functions here are the NumPy references for the native transforms in
kernels/cpu/winograd.cpp. Tiles are numbered (image, tile row, tile column) and a
transformed array is (36, channels, tiles), so each GEMM reads and writes contiguous
matrices.
"""

from __future__ import annotations

import numpy as np

# The F(4x4, 3x3) matrices (Lavin & Gray, section 5), interpolating at 0, +-1, +-2 and infinity.
B_T = np.array([[4, 0, -5, 0, 1, 0],
                [0, -4, -4, 1, 1, 0],
                [0, 4, -4, -1, 1, 0],
                [0, -2, -1, 2, 1, 0],
                [0, 2, -1, -2, 1, 0],
                [0, 4, 0, -5, 0, 1]], dtype=np.float64)
G = np.array([[1 / 4, 0, 0],
              [-1 / 6, -1 / 6, -1 / 6],
              [-1 / 6, 1 / 6, -1 / 6],
              [1 / 24, 1 / 12, 1 / 6],
              [1 / 24, -1 / 12, 1 / 6],
              [0, 0, 1]], dtype=np.float64)
A_T = np.array([[1, 1, 1, 1, 1, 0],
                [0, 1, -1, 2, -2, 0],
                [0, 1, 1, 4, 4, 0],
                [0, 1, -1, 8, -8, 1]], dtype=np.float64)
TILE = 4  # outputs per tile side
SPAN = TILE + 2  # inputs a tile reads per side
POINTS = SPAN * SPAN  # transformed values per tile: the number of GEMMs


def applies(weight_shape, stride, dilation) -> bool:
    """F(4x4, 3x3) computes a 3x3 convolution at stride 1 without dilation."""
    return (tuple(weight_shape[2:]) == (3, 3) and tuple(stride) == (1, 1)
            and tuple(dilation) == (1, 1))


def tile_counts(out_hw) -> tuple:
    """Output tiles along each axis; a size that is no multiple of TILE leaves a ragged last one."""
    return tuple(-(-size // TILE) for size in out_hw)


# U[a, b] = sum_ij G[a, i] g[i, j] G[b, j] is one (36 x 9) matrix applied to the 9 taps
FILTER_MATRIX = np.kron(G, G)
FILTER_MATRIX_T = np.ascontiguousarray(FILTER_MATRIX.T)


def batched_gemm(a, b, transpose_b=False, into=None):
    """out[p] = a[p] @ b[p] (b[p]^T with transpose_b) for every p, added into `into` if given:
    the 36 GEMMs of the algorithm, and the reference for the native batched_gemm."""
    product = np.matmul(a, b.transpose(0, 2, 1) if transpose_b else b)
    if into is None:
        return product
    into += product
    return into


def filter_transform(weight, gemm=batched_gemm):
    """(K, C, 3, 3) -> U (36, K, C), computed in float64: one small GEMM over all filters."""
    k, c = weight.shape[:2]
    taps_first = np.ascontiguousarray(weight.reshape(k * c, 9).T, dtype=np.float64)
    u = gemm(FILTER_MATRIX[None], taps_first[None])[0]
    return np.ascontiguousarray(u.reshape(POINTS, k, c), dtype=weight.dtype)


def filter_transform_adjoint(grad_u, gemm=batched_gemm):
    """dU (36, K, C) -> dW (K, C, 3, 3), the adjoint of filter_transform."""
    _, k, c = grad_u.shape
    points_first = np.ascontiguousarray(grad_u.reshape(1, POINTS, k * c), dtype=np.float64)
    taps_first = gemm(FILTER_MATRIX_T[None], points_first)[0]  # (9, K*C)
    return np.ascontiguousarray(taps_first.T, dtype=grad_u.dtype).reshape(k, c, 3, 3)


def input_transform(x, padding, tiles):
    """x (N, C, H, W), zero-padded by `padding`, -> V (36, C, N*TH*TW) for `tiles` (TH, TW)."""
    n, c, h, w = x.shape
    (pad_h, pad_w), (tiles_h, tiles_w) = padding, tiles
    # the tiles read rows [-pad_h, TILE * tiles_h + 2 - pad_h); what lies outside x is zero
    padded = np.zeros((n, c, TILE * tiles_h + 2, TILE * tiles_w + 2), dtype=x.dtype)
    rows, cols = min(h, padded.shape[2] - pad_h), min(w, padded.shape[3] - pad_w)
    padded[:, :, pad_h:pad_h + rows, pad_w:pad_w + cols] = x[:, :, :rows, :cols]
    sn, sc, sh, sw = padded.strides
    windows = np.lib.stride_tricks.as_strided(
        padded, (n, c, tiles_h, tiles_w, SPAN, SPAN), (sn, sc, TILE * sh, TILE * sw, sh, sw),
        writeable=False)
    v = np.einsum("ai,nctuij,bj->abcntu", B_T, windows, B_T, optimize=True)
    return np.ascontiguousarray(v.reshape(POINTS, c, n * tiles_h * tiles_w), dtype=x.dtype)


def output_transform(m, output_shape, bias=None, into=None):
    """M (36, K, N*TH*TW) -> Y (N, K, OH, OW), plus bias (K,) if given; written to `into`
    (a C-contiguous array of the output shape) if given."""
    n, k, oh, ow = output_shape
    tiles_h, tiles_w = tile_counts((oh, ow))
    y = np.einsum("ai,ijkntu,bj->nktaub", A_T, m.reshape(SPAN, SPAN, k, n, tiles_h, tiles_w), A_T,
                  optimize=True)
    y = y.reshape(n, k, TILE * tiles_h, TILE * tiles_w)[:, :, :oh, :ow].astype(m.dtype)
    if bias is not None:
        y += bias[:, None, None]
    if into is None:
        return y
    into[...] = y
    return into


def output_transform_adjoint(grad):
    """dY (N, K, OH, OW) -> dM (36, K, N*TH*TW), the adjoint of output_transform."""
    n, k, oh, ow = grad.shape
    tiles_h, tiles_w = tile_counts((oh, ow))
    padded = np.zeros((n, k, TILE * tiles_h, TILE * tiles_w), dtype=grad.dtype)
    padded[:, :, :oh, :ow] = grad
    tiles = padded.reshape(n, k, tiles_h, TILE, tiles_w, TILE)
    dm = np.einsum("ia,nktiuj,jb->abkntu", A_T, tiles, A_T, optimize=True)
    return np.ascontiguousarray(dm.reshape(POINTS, k, n * tiles_h * tiles_w), dtype=grad.dtype)


TRANSFORMS = {"input_transform": input_transform, "output_transform": output_transform,
              "output_transform_adjoint": output_transform_adjoint}
