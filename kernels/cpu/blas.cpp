// The BLAS routines behind blas.h, and the batched GEMM that runs them on the pool.
#include "blas.h"

#include <algorithm>
#include <atomic>
#include <climits>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common.h"
#include "packed_gemm.h"

namespace tg {
namespace {

// Fortran BLAS: every argument by pointer, column-major matrices. `Int` is the library's
// integer: int, or int64_t in an ILP64 build such as NumPy's OpenBLAS.
template <typename T, typename Int>
using FortranGemm = void (*)(const char* transa, const char* transb, const Int* m, const Int* n,
                             const Int* k, const T* alpha, const T* a, const Int* lda,
                             const T* b, const Int* ldb, const T* beta, T* c, const Int* ldc);

// Whether float32 products go to packed_sgemm where it takes them (set_packed_gemm): on,
// but for tests and benchmarks comparing it with BLAS.
std::atomic<bool> g_packed_gemm{true};
void* g_sgemm = nullptr;
void* g_dgemm = nullptr;
bool g_ilp64 = false;

template <typename T, typename Int>
FortranGemm<T, Int> fortran_gemm() {
    return reinterpret_cast<FortranGemm<T, Int>>(std::is_same_v<T, float> ? g_sgemm : g_dgemm);
}

// Each OpenBLAS in the process as its (openblas_set_num_threads, openblas_get_num_threads).
// OpenBLAS threads a GEMM over a pool of its own; called from our tasks it must run on the
// task's thread, so every library is kept to one thread for the length of a call here.
using SetThreads = void (*)(int);
using GetThreads = int (*)();
std::vector<std::pair<SetThreads, GetThreads>> g_thread_controls;
std::mutex g_blas_threads_mutex;  // one caller at a time sets the counts and restores them

void set_blas(uintptr_t sgemm, uintptr_t dgemm, bool ilp64,
              const std::vector<std::pair<uintptr_t, uintptr_t>>& thread_controls) {
    g_sgemm = reinterpret_cast<void*>(sgemm);
    g_dgemm = reinterpret_cast<void*>(dgemm);
    g_ilp64 = ilp64;
    g_thread_controls.clear();
    for (const auto& [set, get] : thread_controls) {
        g_thread_controls.emplace_back(reinterpret_cast<SetThreads>(set),
                                       reinterpret_cast<GetThreads>(get));
    }
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
        SingleThreadedBlas single_threaded;
        parallel_items(batch * row_blocks, batch * m * n * k, [&](int64_t task) {
            const int64_t p = task / row_blocks, block = task % row_blocks;
            const int64_t begin = block * m / row_blocks, end = (block + 1) * m / row_blocks;
            gemm<T>(false, transpose_b, end - begin, n, k, pa + (p * m + begin) * k, k,
                    pb + p * k * n, transpose_b ? k : n, beta, pc + (p * m + begin) * n, n);
        });
    }
    return out;
}

// Below this many multiply-adds a GEMM stays on the calling thread: waking a pool worker
// costs more than it saves (docs/performance.md, "GEMMs on the native pool").
constexpr int64_t kGemmParallelWork = int64_t(1) << 21;

// op(a[p]) @ op(b[p]) for every p, where op transposes a stored matrix when asked: a holds
// (P or 1) matrices of (M, K), or of (K, M) with transpose_a; b of (K, N), or (N, K) with
// transpose_b; a batch of 1 is shared by every p, as np.matmul broadcasts it. The output
// (P, M, N) is cut into blocks of rows, or of columns when it is wider than tall, and the
// blocks are shared out over the pool, each one GEMM on its own thread. A transposed operand
// is read in place (BLAS's trans flag), so the backward's a^T @ g copies nothing. With a
// `bias` (N,), each block is first filled with it and the GEMM adds its product (beta = 1):
// BLAS clears the block before a beta = 0 product anyway, so the bias costs no pass of its
// own over the output (linear's x @ W^T + b, as PyTorch's addmm).
template <typename T>
carray<T> matmul(carray<T> a, carray<T> b, bool transpose_a, bool transpose_b,
                 std::optional<carray<T>> bias) {
    require(has_blas(), "matmul: no BLAS routines were set (set_blas)");
    require(a.ndim() == 3 && b.ndim() == 3, "matmul: expected two stacks of matrices");
    const int64_t batch = std::max(a.shape(0), b.shape(0));
    require((a.shape(0) == batch || a.shape(0) == 1) && (b.shape(0) == batch || b.shape(0) == 1),
            "matmul: the batch sizes do not broadcast");
    const int64_t m = a.shape(transpose_a ? 2 : 1), k = a.shape(transpose_a ? 1 : 2);
    const int64_t n = b.shape(transpose_b ? 1 : 2);
    require(b.shape(transpose_b ? 2 : 1) == k, "matmul: the inner sizes differ");
    require(std::max({m, n, k}) < INT_MAX, "matmul: a size exceeds BLAS's int");
    require(!bias || (bias->ndim() == 1 && bias->shape(0) == n),
            "matmul: the bias is not a vector of the product's " + std::to_string(n) +
                " columns");
    const T* pbias = bias ? bias->data() : nullptr;
    carray<T> out = new_array<T>({batch, m, n});
    T* pc = out.mutable_data();
    if (batch == 0 || m == 0 || n == 0) return out;
    // rows begin..end, columns first..last of every matrix of c: the bias, or zeros
    auto fill = [&](T* c, int64_t rows, int64_t first, int64_t last) {
        for (int64_t row = 0; row < rows; ++row) {
            T* c_row = c + row * n;
            if (pbias) {
                std::copy(pbias + first, pbias + last, c_row + first);
            } else {
                std::fill(c_row + first, c_row + last, T(0));
            }
        }
    };
    if (k == 0) {  // BLAS rejects a zero leading dimension; the products are empty sums
        fill(pc, batch * m, 0, n);
        return out;
    }
    const T beta = pbias ? T(1) : T(0);
    const T* pa = a.data();
    const T* pb = b.data();
    const int64_t a_step = a.shape(0) == 1 ? 0 : m * k, b_step = b.shape(0) == 1 ? 0 : k * n;
    const int64_t lda = transpose_a ? m : k, ldb = transpose_b ? k : n;
    const bool by_rows = m >= n;
    const int64_t extent = by_rows ? m : n;
    // One block per thread, not the pool's usual kRangesPerThread: every block repacks the
    // operand it shares with the others, and more, smaller blocks measured slower on every
    // GEMM of the training benchmarks (docs/performance.md, "GEMMs on the native pool").
    // A block has at least 16 rows or columns: below that a GEMM call spends its time packing.
    const int64_t work = batch * m * n * k;
    const bool shared_out = work >= kGemmParallelWork;
    const int64_t blocks =
        shared_out ? std::clamp<int64_t>((num_threads() + batch - 1) / batch, 1,
                                         std::max<int64_t>(1, extent / 16))
                   : 1;
    py::gil_scoped_release release;
    if constexpr (std::is_same_v<T, float>) {
        // one product on our own GEMM, whose threads share the packed right operand
        if (batch == 1 && shared_out && g_packed_gemm.load(std::memory_order_relaxed) &&
            packed_sgemm_takes(m, n, k)) {
            packed_sgemm(transpose_a, transpose_b, m, n, k, pa, lda, pb, ldb, pbias, pc, n);
            return out;
        }
    }
    SingleThreadedBlas single_threaded;
    // parallel_items runs the tasks here when told of no work
    parallel_items(batch * blocks, shared_out ? work : 0, [&](int64_t task) {
        const int64_t p = task / blocks, block = task % blocks;
        const int64_t begin = block * extent / blocks, end = (block + 1) * extent / blocks;
        const T* a_block = pa + p * a_step;
        const T* b_block = pb + p * b_step;
        T* c_block = pc + p * m * n;
        if (by_rows) {  // rows begin..end of op(a) and of the output
            a_block += transpose_a ? begin : begin * k;
            c_block += begin * n;
            if (pbias) fill(c_block, end - begin, 0, n);
            gemm<T>(transpose_a, transpose_b, end - begin, n, k, a_block, lda, b_block, ldb,
                    beta, c_block, n);
        } else {  // columns begin..end of op(b) and of the output
            b_block += transpose_b ? begin * k : begin;
            if (pbias) fill(c_block, m, begin, end);
            c_block += begin;
            gemm<T>(transpose_a, transpose_b, m, end - begin, k, a_block, lda, b_block, ldb,
                    beta, c_block, n);
        }
    });
    return out;
}

}  // namespace

bool has_blas() { return g_sgemm && g_dgemm; }

SingleThreadedBlas::SingleThreadedBlas() : lock_(g_blas_threads_mutex) {
    for (const auto& [set, get] : g_thread_controls) {
        saved_.push_back(get());
        if (saved_.back() != 1) set(1);
    }
}

SingleThreadedBlas::~SingleThreadedBlas() {
    for (size_t i = 0; i < saved_.size(); ++i) {
        if (saved_[i] != 1) g_thread_controls[i].first(saved_[i]);
    }
}

namespace {

template <typename T, typename Int>
void fortran_call(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k,
                  const T* a, int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc) {
    // A row-major matrix is its transpose in column-major order, so row-major c = a op(b)
    // is column-major c^T = op(b)^T a^T: the operands swap places and keep their strides.
    const Int rows = Int(n), cols = Int(m), inner = Int(k);
    const Int ld_first = Int(ldb), ld_second = Int(lda), ld_out = Int(ldc);
    const char trans_first = transpose_b ? 'T' : 'N', trans_second = transpose_a ? 'T' : 'N';
    const T one = T(1);
    fortran_gemm<T, Int>()(&trans_first, &trans_second, &rows, &cols, &inner, &one, b,
                           &ld_first, a, &ld_second, &beta, c, &ld_out);
}

}  // namespace

template <typename T>
void gemm(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, const T* a,
          int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc) {
    (g_ilp64 ? fortran_call<T, int64_t> : fortran_call<T, int>)(
        transpose_a, transpose_b, m, n, k, a, lda, b, ldb, beta, c, ldc);
}

template void gemm<float>(bool, bool, int64_t, int64_t, int64_t, const float*, int64_t,
                          const float*, int64_t, float, float*, int64_t);
template void gemm<double>(bool, bool, int64_t, int64_t, int64_t, const double*, int64_t,
                           const double*, int64_t, double, double*, int64_t);

}  // namespace tg

namespace {

template <typename T>
void register_batched_gemm(py::module_& m) {
    m.def("batched_gemm", &tg::batched_gemm<T>, py::arg("a").noconvert(),
          py::arg("b").noconvert(), py::arg("transpose_b") = false,
          py::arg("into").noconvert() = py::none());
    m.def("matmul", &tg::matmul<T>, py::arg("a").noconvert(), py::arg("b").noconvert(),
          py::arg("transpose_a") = false, py::arg("transpose_b") = false,
          py::arg("bias").noconvert() = py::none());
}

}  // namespace

void register_blas(py::module_& m) {
    m.def("set_blas", &tg::set_blas, py::arg("sgemm"), py::arg("dgemm"), py::arg("ilp64"),
          py::arg("thread_controls"),
          "The addresses of the Fortran sgemm and dgemm that batched_gemm and matmul call, "
          "whether their integers are 64-bit, and the addresses of each BLAS library's "
          "(openblas_set_num_threads, openblas_get_num_threads)");
    m.def("has_blas", &tg::has_blas);
    m.def("set_packed_gemm", [](bool enabled) { tg::g_packed_gemm = enabled; },
          py::arg("enabled"),
          "Whether matmul runs float32 products on the packed AVX-512 GEMM where this build "
          "has it (the default) or on BLAS");
    m.def("packed_gemm", [] { return tg::g_packed_gemm && tg::packed_sgemm_built(); },
          "Whether matmul runs float32 products on the packed AVX-512 GEMM");
    m.def("packed_gemm_takes", &tg::packed_sgemm_takes, py::arg("m"), py::arg("n"), py::arg("k"),
          "Whether the packed GEMM takes an (m x k) @ (k x n) float32 product, where it is on");
    register_batched_gemm<float>(m);
    register_batched_gemm<double>(m);
}
