"""conv2d's launch checks: the geometry of one call, its dtypes, and the 32-bit index guard.

Split from conv2d.py, which holds the kernels and their launchers, so that each file keeps
one job; catalog.py uses `conv_geometry` to build the compile variants' arguments too.
"""

from __future__ import annotations

import numpy as np

SUPPORTED_DTYPES = ("float16", "bfloat16", "float32", "float64")
# The kernels index pixels (and weight elements) with 32-bit integers and widen to 64 bits
# only where a pixel index becomes an element offset; each such index stays below this.
INDEX_LIMIT = 2**31


def _pair_of_ints(name: str, what: str, value, minimum: int) -> tuple[int, int]:
    if (not isinstance(value, (tuple, list)) or len(value) != 2
            or not all(isinstance(v, (int, np.integer)) and v >= minimum for v in value)):
        raise ValueError(f"{name}: {what} must be a pair of ints >= {minimum}, got {value!r}")
    return int(value[0]), int(value[1])


def conv_geometry(name: str, input_shape, weight_shape, stride, padding, dilation) -> dict:
    """Sizes and steps of one convolution, validated; OH/OW as in torch.nn.functional.conv2d.

    Raises ValueError, before anything is allocated or copied, when an index the kernels
    keep in 32 bits would reach 2**31 (see `check_index_range`).
    """
    stride = _pair_of_ints(name, "stride", stride, 1)
    padding = _pair_of_ints(name, "padding", padding, 0)
    dilation = _pair_of_ints(name, "dilation", dilation, 1)
    if len(input_shape) != 4 or len(weight_shape) != 4:
        raise ValueError(f"{name}: expected a 4-D input (N, C, H, W) and weight (K, C, KH, KW), "
                         f"got shapes {tuple(input_shape)} and {tuple(weight_shape)}")
    (n, c, h, w), (k, weight_c, kh, kw) = input_shape, weight_shape
    if c != weight_c:
        raise ValueError(f"{name}: input of shape {tuple(input_shape)} has {c} channels but the "
                         f"weight of shape {tuple(weight_shape)} expects {weight_c}")
    oh, ow = ((size + 2 * pad - dil * (kernel - 1) - 1) // step + 1 for size, kernel, step, pad, dil
              in zip((h, w), (kh, kw), stride, padding, dilation))
    if oh < 1 or ow < 1:
        raise ValueError(f"{name}: a {kh}x{kw} kernel (dilation {dilation}) does not fit the "
                         f"{h}x{w} input padded by {padding}: the output would be {oh}x{ow}")
    geometry = {"N": n, "C": c, "H": h, "W": w, "K": k, "OH": oh, "OW": ow, "KH": kh, "KW": kw,
                "stride_h": stride[0], "stride_w": stride[1], "pad_h": padding[0],
                "pad_w": padding[1], "dilation_h": dilation[0], "dilation_w": dilation[1]}
    check_index_range(name, geometry)
    return geometry


def check_index_range(name: str, geometry: dict) -> None:
    """ValueError naming every 32-bit index of the kernels that this call would overflow.

    A pixel index (n*H + ih)*W + iw, with the window corner ih, iw as far as the padding
    reaches, and an output pixel index n*OH*OW + p are int32 in the kernels; they become
    64-bit element offsets (times C or K) only after. Weight offsets are int32 throughout.
    """
    g = geometry
    padded = g["N"] * (g["H"] + 2 * g["pad_h"]) * (g["W"] + 2 * g["pad_w"])
    # each row of the im2col matrix reads within its padded image; the window's reach is
    # at most the padded size (OH >= 1), so `padded` bounds every pixel index in the kernels
    counts = {"padded input pixels N*(H+2*pad_h)*(W+2*pad_w)": padded,
              "output pixels N*OH*OW": g["N"] * g["OH"] * g["OW"],
              "weight elements K*C*KH*KW": g["K"] * g["C"] * g["KH"] * g["KW"]}
    over = [f"{what} = {count}" for what, count in counts.items() if count >= INDEX_LIMIT]
    if over:
        raise ValueError(f"{name}: the Triton kernels index pixels and weights with 32-bit "
                         f"integers, and {'; '.join(over)} reach 2**31: split the batch "
                         f"(or the layer) into smaller calls")


def check_dtypes(name: str, *arrays) -> None:
    dtypes = [a.dtype for a in arrays if a is not None]
    if any(d != dtypes[0] for d in dtypes):
        raise TypeError(f"{name}: expected one dtype, got {', '.join(map(str, dtypes))}")
    if dtypes[0].name not in SUPPORTED_DTYPES:
        raise TypeError(f"{name}: the Triton kernel supports {', '.join(SUPPORTED_DTYPES)}, "
                        f"got {dtypes[0]}")


def check_grad(name: str, grad, geometry: dict) -> None:
    expected = tuple(geometry[d] for d in ("N", "K", "OH", "OW"))
    if tuple(grad.shape) != expected:
        raise ValueError(f"{name}: expected a gradient of shape {expected} (the convolution's "
                         f"output), got {tuple(grad.shape)}")
