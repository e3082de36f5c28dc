// A float32 GEMM of our own, for the AVX-512 build, whose threads share one packed copy of the
// right operand.
//
// Why: handed to single-threaded BLAS calls, one per block of the output's rows, every block
// repacks the whole right operand, while OpenBLAS's own threads share one packed copy; on two
// threads that repacking was the 1-4% by which matmul 1024^3 trailed NumPy's. Here each panel
// of op(b) is packed once, by the first thread to need it, and blocks of rows are claimed
// from the pool one at a time. Its micro-kernel keeps an 8 x 32 tile of c in registers for
// 1024 steps of k, and it ran the benchmarks' float32 GEMMs in 0.84-1.00 of the time of
// OpenBLAS's blocks (docs/performance.md, "An own GEMM for float32").
#pragma once

#include <cstdint>

namespace tg {

// Whether this module has the packed GEMM: the one built for x86-64-v4 (AVX-512).
bool packed_sgemm_built();

// Whether packed_sgemm takes an (m x k) @ (k x n) product: where built, for products of at
// least one tile (8 x 32), 128 deep, and an op(b) of at most 64 MiB; BLAS takes the others.
bool packed_sgemm_takes(int64_t m, int64_t n, int64_t k);

// Row-major c (m x n) = op(a) @ op(b) (+ bias, n values, in every row, where not null), op as
// in gemm (blas.h), on the pool: the bias is where each tile's sums start, so it costs no pass
// over c. Only for products packed_sgemm_takes.
void packed_sgemm(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k,
                  const float* a, int64_t lda, const float* b, int64_t ldb, const float* bias,
                  float* c, int64_t ldc);

}  // namespace tg
