"""Triton kernels, one file per op family, each with its launcher beside it.

Every launcher takes raw arrays (CuPy on "cuda", NumPy on "interp") and runs the
same kernel either compiled for the GPU or through Triton's interpreter; see
`launch.py`. The kernels' ahead-of-time compile variants and roofline model, which
tests/test_kernel_compile.py and `tinygrad-like kernels` use, are listed in `catalog.py`.
"""
