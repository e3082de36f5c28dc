"""The own float32 GEMM against the BLAS blocks it replaced, product by product.

    python benchmarks/gemm_products.py              # every product below
    python benchmarks/gemm_products.py transformer  # one workload's

`_C.matmul` runs a large float32 product on the packed AVX-512 GEMM
(kernels/cpu/packed_gemm.cpp) where it takes it, and as single-threaded BLAS calls on blocks of
rows otherwise; `_C.set_packed_gemm` switches between the two, so both run in one process on
the same operands. For each product: the median of 15 calls, best of three rounds (the two
GEMMs alternating in each), on 2 threads and on 1, and packed ÷ BLAS. The products are those
the benchmark workloads run on the pool (recorded from their steps; "ta"/"tb": the operand is
read transposed). docs/performance.md ("An own GEMM for float32") has what it measured.
"""

from __future__ import annotations

import argparse

import numpy as np

from machine_probe import gemm_median_ms  # benchmarks/, this script's folder
from tinygrad_like.backend import native, native_blas

# workload, m, n, k, transpose_a, transpose_b: op(a) is (m x k), op(b) (k x n)
PRODUCTS = [
    ("matmul", 1024, 1024, 1024, False, False), ("matmul", 1024, 1024, 1024, False, True),
    ("matmul", 1024, 1024, 1024, True, False),
    ("mlp", 128, 256, 784, False, True), ("mlp", 256, 784, 128, True, False),
    ("cnn", 64, 64, 1600, False, True),
    ("gru_lm", 65, 256, 2048, True, False), ("gru_lm", 768, 64, 2048, True, False),
    ("gru_lm", 768, 256, 2048, True, False), ("gru_lm", 2048, 64, 768, False, False),
    ("transformer", 128, 128, 2048, True, False), ("transformer", 128, 512, 2048, True, False),
    ("transformer", 512, 128, 2048, True, False), ("transformer", 2048, 128, 128, False, False),
    ("transformer", 2048, 128, 128, False, True), ("transformer", 2048, 128, 512, False, False),
    ("transformer", 2048, 128, 512, False, True), ("transformer", 2048, 512, 128, False, False),
    ("transformer", 2048, 512, 128, False, True),
]
CALLS, ROUNDS = 15, 3


def operand(rng, rows: int, cols: int, transposed: bool) -> np.ndarray:
    """A (rows x cols) float32 matrix, a transposed view of its stored transpose if asked."""
    if transposed:
        return rng.standard_normal((cols, rows), dtype=np.float32).T
    return rng.standard_normal((rows, cols), dtype=np.float32)


def compare(a, b, threads: int) -> dict:
    """{packed: best median ms} on `threads` threads, the two GEMMs alternating per round."""
    native.set_num_threads(threads)
    best = {}
    for round_ in range(ROUNDS):
        for packed in (False, True) if round_ % 2 == 0 else (True, False):
            native._C.set_packed_gemm(packed)
            gemm_median_ms(a, b, CALLS)  # warm-up
            best[packed] = min(best.get(packed, float("inf")), gemm_median_ms(a, b, CALLS))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workload", nargs="?", help="only this workload's products")
    args = parser.parse_args()
    if not native_blas.available() or not native._C.packed_gemm():
        raise SystemExit(f"no packed GEMM here: {native_blas.status()}")
    rng = np.random.default_rng(0)
    threads = native.get_num_threads()
    print("workload     m     n     k  ta tb | 2 threads: BLAS  packed ratio | 1 thread: BLAS  "
          "packed ratio  (ms)")
    try:
        for workload, m, n, k, ta, tb in PRODUCTS:
            if args.workload not in (None, workload):
                continue
            a, b = operand(rng, m, k, ta), operand(rng, k, n, tb)
            cells = []
            for count in (threads, 1):
                best = compare(a, b, count)
                cells.append(f"{best[False]:8.3f} {best[True]:7.3f} {best[True] / best[False]:5.2f}")
            print(f"{workload:11s} {m:5d} {n:5d} {k:5d}  {int(ta)}  {int(tb)} | "
                  f"{cells[0]}           | {cells[1]}", flush=True)
    finally:
        native.set_num_threads(threads)
        native._C.set_packed_gemm(True)


if __name__ == "__main__":
    main()
