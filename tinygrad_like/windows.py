"""The sliding-window view behind unfold, im2col and pooling, shared by ops/ and backend/.

Device-agnostic: it takes the array module (`xp`, NumPy or CuPy) and imports nothing from
tinygrad_like, so both layers may use it.
"""

from __future__ import annotations


def window_view(xp, array, kernel, stride, dilation, writeable: bool = True):
    """(N, C, H, W) -> a (N, C, OH, OW, KH, KW) view of every window, without copying.

    `writeable=False` (NumPy only) returns a read-only view, for callers that must not
    write through overlapping windows.
    """
    n, c, h, w = array.shape
    kh, kw = kernel
    oh = (h - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (w - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    sn, sc, sh, sw = array.strides
    options = {} if writeable else {"writeable": False}
    return xp.lib.stride_tricks.as_strided(
        array, (n, c, oh, ow, kh, kw),
        (sn, sc, sh * stride[0], sw * stride[1], sh * dilation[0], sw * dilation[1]), **options)
