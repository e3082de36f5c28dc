"""Tolerances that follow from the arithmetic, not from what one CPU happened to produce.

A float32 result that went through many roundings is off from the exact answer by a few
units in the last place (ulps) of the *magnitudes it was computed from*, not of itself: a
parameter that ends near zero after twenty updates of size ~0.1 carries the rounding of
those updates. Which way each rounding goes depends on the vector width and on whether the
CPU fuses multiply-adds (AVX-512, AVX2+FMA and SSE2 clones differ, and so do PyTorch's own
kernels), so two correct libraries agree only to such a scale-relative bound. These
helpers state that bound once.
"""

from __future__ import annotations

import numpy as np


def ulp_of_scale(reference, ulps: float) -> float:
    """`ulps` units in the last place of the largest magnitude in `reference` (0 for integers,
    which must match exactly)."""
    reference = np.asarray(reference)
    if not np.issubdtype(reference.dtype, np.floating):
        return 0.0
    return float(ulps * np.finfo(reference.dtype).eps * np.max(np.abs(reference), initial=0.0))


def assert_close_to_scale(actual, expected, ulps: float = 8, rtol: float = 0.0,
                          err_msg: str = "") -> None:
    """|actual - expected| <= rtol * |expected| + `ulps` ulps of max |expected|."""
    expected = np.asarray(expected)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=ulp_of_scale(expected, ulps),
                               err_msg=err_msg)


def assert_as_accurate_as_reference(ours, theirs, exact, factor: float = 2.0,
                                    ulps: float = 4, err_msg: str = "") -> None:
    """Our low-precision result is about as close to `exact` (the same computation in
    float64) as the reference library's low-precision result is: its largest error at most
    `factor` times the reference's, plus `ulps` ulps of the result's scale, so that a
    reference that happens to round luckily cannot fail a correct result."""
    ours, theirs, exact = np.asarray(ours), np.asarray(theirs), np.asarray(exact, np.float64)
    # nan and inf where the reference has them, and the errors measured everywhere else
    finite = np.isfinite(theirs)
    np.testing.assert_array_equal(ours[~finite], theirs[~finite], err_msg=err_msg)
    ours, theirs, exact = ours[finite], theirs[finite], exact[finite]
    our_error = float(np.max(np.abs(ours - exact), initial=0.0))
    their_error = float(np.max(np.abs(theirs - exact), initial=0.0))
    bound = factor * their_error + ulp_of_scale(exact.astype(ours.dtype), ulps)
    assert our_error <= bound, (
        f"{err_msg}: max |ours - exact| = {our_error:.3g} exceeds {bound:.3g} "
        f"({factor} x the reference's {their_error:.3g} + {ulps} ulps of the scale)")
