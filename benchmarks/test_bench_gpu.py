"""GPU kernels beside the vendor libraries on the same shapes (marked `cuda`: skipped without a GPU).

Run on a GPU machine with the `cuda` extra installed:

    pytest benchmarks/test_bench_gpu.py --benchmark-only --benchmark-group-by=group

- matmul 4096^3 in fp16 and fp32: the Triton kernel vs cuBLAS (CuPy's matmul)
- softmax (4096, 4096) and cross-entropy (4096, 50257), forward: the Triton kernels vs
  CuPy's fused-elementwise equivalents; extra_info holds the achieved memory bandwidth
  so the ratio to the GPU's peak (3.35 TB/s on an H100) can be read off.

Each case checks its result against the library's once before timing.
"""

from __future__ import annotations

import pytest

import tinygrad_like as tg

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not tg.cuda.is_available(), reason="needs an NVIDIA GPU and CuPy")]


@pytest.fixture(scope="module")
def cp():
    return pytest.importorskip("cupy")


def synchronized(cp, fn):
    def run():
        out = fn()
        cp.cuda.Device().synchronize()
        return out

    return run


@pytest.mark.parametrize("dtype", ["float16", "float32"])
@pytest.mark.parametrize("library", ["tinygrad_like", "cublas"])
def test_matmul_4096(benchmark, cp, dtype, library):
    size = 4096
    a = cp.random.standard_normal((size, size)).astype(dtype)
    b = cp.random.standard_normal((size, size)).astype(dtype)
    kernels = tg.backend.get_backend("cuda").kernels
    fn = (lambda: kernels.matmul(a, b)) if library == "tinygrad_like" else (lambda: a @ b)
    reference = (a.astype("float32") @ b.astype("float32"))
    tolerance = 1e-2 if dtype == "float16" else 1e-3
    assert float(cp.abs(fn().astype("float32") - reference).max()) <= tolerance * size ** 0.5
    benchmark.group = f"gpu matmul 4096^3 {dtype}"
    result = benchmark(synchronized(cp, fn))
    assert result is not None
    benchmark.extra_info["TFLOP/s"] = 2 * size**3 / benchmark.stats.stats.median / 1e12


@pytest.mark.parametrize("library", ["tinygrad_like", "cupy"])
def test_softmax_4096(benchmark, cp, library):
    x = cp.random.standard_normal((4096, 4096)).astype("float32")
    kernels = tg.backend.get_backend("cuda").kernels

    def reference():
        exps = cp.exp(x - x.max(axis=1, keepdims=True))
        return exps / exps.sum(axis=1, keepdims=True)

    fn = (lambda: kernels.softmax(x, 1)) if library == "tinygrad_like" else reference
    assert float(cp.abs(fn() - reference()).max()) < 1e-6
    benchmark.group = "gpu softmax (4096, 4096) fp32"
    benchmark(synchronized(cp, fn))
    benchmark.extra_info["GB/s"] = 2 * x.nbytes / benchmark.stats.stats.median / 1e9


@pytest.mark.parametrize("library", ["tinygrad_like", "cupy"])
def test_cross_entropy_vocabulary(benchmark, cp, library):
    logits = cp.random.standard_normal((4096, 50257)).astype("float32")
    target = cp.random.randint(0, 50257, 4096).astype("int64")
    kernels = tg.backend.get_backend("cuda").kernels

    def reference():
        top = logits.max(axis=1, keepdims=True)
        lse = top[:, 0] + cp.log(cp.exp(logits - top).sum(axis=1))
        return lse - logits[cp.arange(4096), target]

    def ours():
        return kernels.cross_entropy(logits, target, -100, 0.0)[0]

    fn = ours if library == "tinygrad_like" else reference
    assert float(cp.abs(fn() - reference()).max()) < 1e-3
    benchmark.group = "gpu cross-entropy (4096, 50257) fp32"
    benchmark(synchronized(cp, fn))
    benchmark.extra_info["GB/s"] = logits.nbytes / benchmark.stats.stats.median / 1e9
