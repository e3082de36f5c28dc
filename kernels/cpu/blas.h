// GEMMs that the native kernels run on their own worker pool, through the BLAS that SciPy
// exposes to compiled code (scipy.linalg.cython_blas: Fortran sgemm and dgemm, handed over as
// function pointers by backend/native_blas.py). No BLAS is linked at build time, so the build
// needs no BLAS headers or libraries, and the GEMMs use the BLAS SciPy was built with.
//
// Why not leave every GEMM to NumPy: NumPy's BLAS threads over a pool of its own, and its
// idle threads spin for a while after each GEMM. A kernel that alternates our pool's loops
// with BLAS's (the Winograd convolution: transforms, 36 GEMMs, transforms) then has two
// pools taking turns on the same cores, each finding the other's threads still spinning
// (docs/performance.md, "Winograd GEMMs on the native pool").
#pragma once

#include <cstdint>
#include <mutex>
#include <vector>

namespace tg {

// Whether set_blas has been given the routines.
bool has_blas();

// Row-major c (m x n) = op(a) @ op(b) + beta * c, where op(a) is a (m x k) or, with
// transpose_a, a^T for a stored (k x m), and op(b) is b (k x n) or, with transpose_b, b^T for
// b stored (n x k). Leading dimensions are row strides in elements. Runs on the calling
// thread as far as we are concerned: the caller makes sure the BLAS itself is
// single-threaded (SingleThreadedBlas in blas.cpp).
template <typename T>
void gemm(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, const T* a,
          int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc);

// Every BLAS library on one thread while it lives, then back to what each had, so that the
// GEMMs our tasks call run on the task's thread. Setting a count OpenBLAS already has is a
// store; its threads stay parked meanwhile. One holder at a time (a mutex).
class SingleThreadedBlas {
  public:
    SingleThreadedBlas();
    ~SingleThreadedBlas();
    SingleThreadedBlas(const SingleThreadedBlas&) = delete;
    SingleThreadedBlas& operator=(const SingleThreadedBlas&) = delete;

  private:
    std::unique_lock<std::mutex> lock_;
    std::vector<int> saved_;
};

}  // namespace tg
