// The BLAS routines behind blas.h, and the batched GEMM that runs them on the pool.
#include "blas.h"

#include <algorithm>
#include <climits>
#include <optional>

#include "common.h"

namespace tg {
namespace {

// Fortran BLAS: every argument by pointer, column-major matrices
template <typename T>
using FortranGemm = void (*)(const char* transa, const char* transb, const int* m, const int* n,
                             const int* k, const T* alpha, const T* a, const int* lda,
                             const T* b, const int* ldb, const T* beta, T* c, const int* ldc);

FortranGemm<float> g_sgemm = nullptr;
FortranGemm<double> g_dgemm = nullptr;

template <typename T>
FortranGemm<T> fortran_gemm() {
    if constexpr (std::is_same_v<T, float>) return g_sgemm;
    else return g_dgemm;
}

void* capsule_pointer(const py::capsule& capsule) {
    // Cython names its capsules by the C signature, so ask the capsule for its own name
    void* pointer = PyCapsule_GetPointer(capsule.ptr(), PyCapsule_GetName(capsule.ptr()));
    if (!pointer) throw py::error_already_set();
    return pointer;
}

void set_blas(const py::capsule& sgemm, const py::capsule& dgemm) {
    g_sgemm = reinterpret_cast<FortranGemm<float>>(capsule_pointer(sgemm));
    g_dgemm = reinterpret_cast<FortranGemm<double>>(capsule_pointer(dgemm));
}

// out[p] = a[p] @ b[p] (b[p]^T with transpose_b) for every p, added into `into` if given.
// Each task is one matrix of the batch, or a block of its rows when there are fewer matrices
// than the pool has ranges to share out.
template <typename T>
carray<T> batched_gemm(carray<T> a, carray<T> b, bool transpose_b,
                       std::optional<carray<T>> into) {
    require(has_blas(), "batched_gemm: no BLAS routines were set (set_blas)");
    require(a.ndim() == 3 && b.ndim() == 3 && a.shape(0) == b.shape(0),
            "batched_gemm: expected a (P, M, K) and b (P, K, N), or (P, N, K) with "
            "transpose_b");
    const int64_t batch = a.shape(0), m = a.shape(1), k = a.shape(2);
    const int64_t n = b.shape(transpose_b ? 1 : 2);
    require(b.shape(transpose_b ? 2 : 1) == k, "batched_gemm: the inner sizes differ");
    require(std::max({m, n, k}) < INT_MAX, "batched_gemm: a size exceeds BLAS's int");
    if (into) {
        require(into->ndim() == 3 && into->shape(0) == batch && into->shape(1) == m &&
                    into->shape(2) == n,
                "batched_gemm: `into` is not (P, M, N)");
    }
    carray<T> out = into ? *into : new_array<T>({batch, m, n});
    const T* pa = a.data();
    const T* pb = b.data();
    T* pc = out.mutable_data();
    if (m == 0 || n == 0) return out;
    if (k == 0) {  // BLAS rejects a zero leading dimension; the products are empty sums
        if (!into) std::fill(pc, pc + batch * m * n, T(0));
        return out;
    }
    const T beta = into ? T(1) : T(0);
    // blocks of at least 16 rows: below that a GEMM call spends its time packing operands
    const int64_t row_blocks = std::clamp<int64_t>(
        (kRangesPerThread * num_threads() + batch - 1) / std::max<int64_t>(batch, 1), 1,
        std::max<int64_t>(1, m / 16));
    {
        py::gil_scoped_release release;
        parallel_items(batch * row_blocks, batch * m * n * k, [&](int64_t task) {
            const int64_t p = task / row_blocks, block = task % row_blocks;
            const int64_t begin = block * m / row_blocks, end = (block + 1) * m / row_blocks;
            gemm<T>(transpose_b, end - begin, n, k, pa + (p * m + begin) * k, k,
                    pb + p * k * n, transpose_b ? k : n, beta, pc + (p * m + begin) * n, n);
        });
    }
    return out;
}

}  // namespace

bool has_blas() { return g_sgemm && g_dgemm; }

template <typename T>
void gemm(bool transpose_b, int64_t m, int64_t n, int64_t k, const T* a, int64_t lda,
          const T* b, int64_t ldb, T beta, T* c, int64_t ldc) {
    // A row-major matrix is its transpose in column-major order, so row-major c = a op(b)
    // is column-major c^T = op(b)^T a^T: the operands swap places and keep their strides.
    const int rows = int(n), cols = int(m), inner = int(k);
    const int ld_first = int(ldb), ld_second = int(lda), ld_out = int(ldc);
    const char trans_first = transpose_b ? 'T' : 'N', trans_second = 'N';
    const T one = T(1);
    fortran_gemm<T>()(&trans_first, &trans_second, &rows, &cols, &inner, &one, b, &ld_first, a,
                      &ld_second, &beta, c, &ld_out);
}

template void gemm<float>(bool, int64_t, int64_t, int64_t, const float*, int64_t, const float*,
                          int64_t, float, float*, int64_t);
template void gemm<double>(bool, int64_t, int64_t, int64_t, const double*, int64_t,
                           const double*, int64_t, double, double*, int64_t);

}  // namespace tg

namespace {

template <typename T>
void register_batched_gemm(py::module_& m) {
    m.def("batched_gemm", &tg::batched_gemm<T>, py::arg("a").noconvert(),
          py::arg("b").noconvert(), py::arg("transpose_b") = false,
          py::arg("into").noconvert() = py::none());
}

}  // namespace

void register_blas(py::module_& m) {
    m.def("set_blas", &tg::set_blas, py::arg("sgemm"), py::arg("dgemm"),
          "The Fortran sgemm and dgemm that batched_gemm calls, as the PyCapsules of "
          "scipy.linalg.cython_blas.__pyx_capi__");
    m.def("has_blas", &tg::has_blas);
    register_batched_gemm<float>(m);
    register_batched_gemm<double>(m);
}
