// The float32 GEMM of packed_gemm.h: the right operand packed once and shared by the pool's
// threads, an 8 x 32 AVX-512 micro-kernel, blocks of rows claimed one at a time.
//
// The loops are BLIS's (Van Zee and van de Geijn, "BLIS: A Framework for Rapidly Instantiating
// BLAS Functionality"), with one level fewer: op(b) is packed in panels kDepth deep, each a row
// of slivers kCols wide; a task packs kBlockRows rows of op(a) for a panel into slivers kRows
// high (L2), and the micro-kernel multiplies one sliver of each into an 8 x 32 tile of c, held
// in 16 registers for the whole depth, so c is read and written once per panel.
#include "packed_gemm.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <memory>
#include <string_view>
#include <utility>
#include <vector>

#include "common.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define TG_HAS_PACKED_GEMM 1
// Every function below is compiled for AVX-512 in each module, and called only in the one
// built for x86-64-v4, on a CPU that has it (backend/native.py picks the module).
#define TG_AVX512 __attribute__((target("arch=x86-64-v4")))
#endif

namespace tg {

#if defined(TG_HAS_PACKED_GEMM)
namespace {

constexpr bool kBuiltForAvx512 = std::string_view(TG_ISA_LEVEL) == "x86-64-v4";

// The micro-kernel's tile: kRows rows by kCols columns (two vectors of 16), 16 accumulators
// updated by one broadcast of op(a) and two vectors of op(b) per step.
constexpr int64_t kRows = 8, kCols = 32;
// A panel's depth: c is read and written once per panel, and a sliver of op(b), kDepth x 32
// floats (128 KB), stays in L2 while the block's slivers of op(a) go by
// (docs/performance.md, "An own GEMM for float32").
constexpr int64_t kDepth = 1024;
// The shallowest product taken, and the largest op(b) (floats): its packed copy is the whole
// of it, where BLAS packs a panel at a time, so a product with a huge op(b) stays with BLAS
// rather than doubling the memory it needs (packed_sgemm_takes).
constexpr int64_t kMinDepth = 128, kMaxPackedFloats = int64_t(1) << 24;
// Rows of op(a) a task packs and multiplies: 64 x kDepth floats (256 KB, L2).
constexpr int64_t kBlockRows = 64;
// Columns of op(b) packed as one unit, by whichever thread needs them first: narrow enough
// that the threads share the packing of a 128-column product's panels.
constexpr int64_t kChunkCols = 64;

// Element (i, j) of op(x) for a row-major x, transposed or not: data[i * rows + j * cols].
struct Operand {
    const float* data;
    int64_t rows, cols;
    float at(int64_t i, int64_t j) const { return data[i * rows + j * cols]; }
};

// dst[kk * 8 + r] = src[r * stride + kk] for 8 rows and `depth` columns: 8 x 8 transposes in
// registers where op(a)'s rows are contiguous, as in a row-major a.
TG_AVX512 void pack_rows_of_8(const float* src, int64_t stride, int64_t depth, float* dst) {
    int64_t kk = 0;
    for (; kk + 8 <= depth; kk += 8) {
        __m256 r[8];
        for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * stride + kk);
        const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
        const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
        const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
        const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
        const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
        const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
        const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
        const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
        float* d = dst + kk * 8;
        _mm256_storeu_ps(d + 0, _mm256_permute2f128_ps(u0, u4, 0x20));
        _mm256_storeu_ps(d + 8, _mm256_permute2f128_ps(u1, u5, 0x20));
        _mm256_storeu_ps(d + 16, _mm256_permute2f128_ps(u2, u6, 0x20));
        _mm256_storeu_ps(d + 24, _mm256_permute2f128_ps(u3, u7, 0x20));
        _mm256_storeu_ps(d + 32, _mm256_permute2f128_ps(u0, u4, 0x31));
        _mm256_storeu_ps(d + 40, _mm256_permute2f128_ps(u1, u5, 0x31));
        _mm256_storeu_ps(d + 48, _mm256_permute2f128_ps(u2, u6, 0x31));
        _mm256_storeu_ps(d + 56, _mm256_permute2f128_ps(u3, u7, 0x31));
    }
    for (; kk < depth; ++kk) {
        for (int i = 0; i < 8; ++i) dst[kk * 8 + i] = src[i * stride + kk];
    }
}

// Rows first..first+rows of op(a), columns k0..k0+depth, as slivers of kRows rows:
// packed[s][kk][r] = op(a)(first + s * kRows + r, k0 + kk), zero past the last row.
TG_AVX512 void pack_a(Operand a, int64_t first, int64_t rows, int64_t k0, int64_t depth,
                      float* packed) {
    const int64_t slivers = (rows + kRows - 1) / kRows;
    if (a.rows == 1) {  // a^T: one step's values for every row of the block are adjacent, so
                        // a whole line is read at a time, as a stored row of a
        for (int64_t kk = 0; kk < depth; ++kk) {
            const float* src = a.data + (k0 + kk) * a.cols + first;
            for (int64_t s = 0; s < slivers; ++s) {
                const int64_t live = std::min(kRows, rows - s * kRows);
                const __mmask8 mask = __mmask8(live == kRows ? 0xFF : (1u << live) - 1);
                _mm256_storeu_ps(packed + s * kDepth * kRows + kk * kRows,
                                 _mm256_maskz_loadu_ps(mask, src + s * kRows));
            }
        }
        return;
    }
    for (int64_t s = 0; s < slivers; ++s) {
        float* dst = packed + s * kDepth * kRows;
        const int64_t r0 = first + s * kRows, live = std::min(kRows, rows - s * kRows);
        if (live == kRows && a.cols == 1) {
            pack_rows_of_8(a.data + r0 * a.rows + k0, a.rows, depth, dst);
        } else {
            for (int64_t kk = 0; kk < depth; ++kk) {
                for (int64_t r = 0; r < kRows; ++r) {
                    dst[kk * kRows + r] = r < live ? a.at(r0 + r, k0 + kk) : 0.0f;
                }
            }
        }
    }
}

// The lanes of a 32-column tile that hold columns below `live`: (first 16, last 16).
TG_AVX512 inline std::pair<__mmask16, __mmask16> column_masks(int64_t live) {
    auto mask = [](int64_t count) {
        return __mmask16(count >= 16 ? 0xFFFF : count <= 0 ? 0 : (1u << count) - 1);
    };
    return {mask(live), mask(live - 16)};
}

// Columns j0..j0+cols of op(b), rows k0..k0+depth, as slivers of kCols columns:
// packed[p][kk][c] = op(b)(k0 + kk, j0 + p * kCols + c), zero past the last column.
TG_AVX512 void pack_b(Operand b, int64_t k0, int64_t depth, int64_t j0, int64_t cols,
                      float* packed) {
    for (int64_t p = 0; p * kCols < cols; ++p) {
        float* dst = packed + p * kDepth * kCols;
        const int64_t c0 = j0 + p * kCols, live = std::min(kCols, cols - p * kCols);
        if (b.cols == 1) {  // rows of b: each step's 32 values are adjacent
            const auto [low, high] = column_masks(live);
            const float* src = b.data + k0 * b.rows + c0;
            for (int64_t kk = 0; kk < depth; ++kk, src += b.rows) {
                _mm512_storeu_ps(dst + kk * kCols, _mm512_maskz_loadu_ps(low, src));
                _mm512_storeu_ps(dst + kk * kCols + 16, _mm512_maskz_loadu_ps(high, src + 16));
            }
        } else if (b.rows == 1 && live == kCols) {  // b^T: op(b)'s columns are rows in memory
            for (int64_t c = 0; c < kCols; c += 8) {
                alignas(32) float block[8 * 8];
                int64_t kk = 0;
                for (; kk + 8 <= depth; kk += 8) {
                    pack_rows_of_8(b.data + (c0 + c) * b.cols + k0 + kk, b.cols, 8, block);
                    for (int i = 0; i < 8; ++i) {
                        _mm256_storeu_ps(dst + (kk + i) * kCols + c, _mm256_load_ps(block + i * 8));
                    }
                }
                for (; kk < depth; ++kk) {
                    for (int i = 0; i < 8; ++i) dst[kk * kCols + c + i] = b.at(k0 + kk, c0 + c + i);
                }
            }
        } else {
            for (int64_t kk = 0; kk < depth; ++kk) {
                for (int64_t c = 0; c < kCols; ++c) {
                    dst[kk * kCols + c] = c < live ? b.at(k0 + kk, c0 + c) : 0.0f;
                }
            }
        }
    }
}

// The `rows` x 32 tile at c (row stride ldc) = (c if accumulate, else `start`'s 32 values in
// every row, or zeros without it) + a_sliver @ b_sliver over `depth` steps; only `rows` rows
// and the columns in the masks are read and written.
TG_AVX512 inline __attribute__((always_inline)) void micro_kernel(
    int64_t depth, const float* __restrict a, const float* __restrict b, float* c, int64_t ldc,
    bool accumulate, const float* start, int64_t rows, __mmask16 low, __mmask16 high) {
    const bool from_start = !accumulate && start != nullptr;
    const __m512 zero = _mm512_setzero_ps();
    const __m512 start0 = from_start ? _mm512_maskz_loadu_ps(low, start) : zero;
    const __m512 start1 = from_start ? _mm512_maskz_loadu_ps(high, start + 16) : zero;
    __m512 acc[kRows][2];
    for (int r = 0; r < kRows; ++r) {
        acc[r][0] = start0;
        acc[r][1] = start1;
        // c's tile is wanted at the end; fetching it now hides the miss behind the loop
        _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc + 16), _MM_HINT_T0);
    }
    for (int64_t kk = 0; kk < depth; ++kk) {
        const __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
#pragma GCC unroll 8
        for (int r = 0; r < kRows; ++r) {
            const __m512 ar = _mm512_set1_ps(a[r]);
            acc[r][0] = _mm512_fmadd_ps(ar, b0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(ar, b1, acc[r][1]);
        }
        a += kRows;
        b += kCols;
    }
    for (int r = 0; r < kRows && r < rows; ++r) {
        float* row = c + r * ldc;
        if (accumulate) {
            acc[r][0] = _mm512_add_ps(acc[r][0], _mm512_maskz_loadu_ps(low, row));
            acc[r][1] = _mm512_add_ps(acc[r][1], _mm512_maskz_loadu_ps(high, row + 16));
        }
        _mm512_mask_storeu_ps(row, low, acc[r][0]);
        _mm512_mask_storeu_ps(row + 16, high, acc[r][1]);
    }
}

// Floats from the buffer cache (buffer_cache.h): its blocks are 64-byte aligned, and a
// panel of op(b) the size of the last one is already mapped.
struct Floats {
    explicit Floats(int64_t count) : block(acquire_block(std::size_t(count) * sizeof(float))) {}
    ~Floats() { release_block(block); }
    Floats(const Floats&) = delete;
    Floats& operator=(const Floats&) = delete;
    float* data() const { return static_cast<float*>(block); }
    void* block;
};

class PackedGemm {
  public:
    PackedGemm(Operand a, Operand b, int64_t m, int64_t n, int64_t k, const float* bias,
               float* c, int64_t ldc)
        : a_(a), b_(b), m_(m), n_(n), k_(k), bias_(bias), c_(c), ldc_(ldc),
          depths_((k + kDepth - 1) / kDepth), slivers_((n + kCols - 1) / kCols),
          chunks_((n + kChunkCols - 1) / kChunkCols),
          packed_b_(depths_ * slivers_ * kDepth * kCols), chunk_state_(depths_ * chunks_) {
        for (auto& state : chunk_state_) state.store(kUnpacked, std::memory_order_relaxed);
    }

    // Tasks: blocks of at most kBlockRows rows, as even as whole slivers allow (65 rows are
    // 32 + 33, not 64 + 1), each cut into column ranges where there are too few blocks for
    // two tasks a thread (a short, wide product).
    void run() {
        row_slivers_ = (m_ + kRows - 1) / kRows;
        row_blocks_ = (row_slivers_ * kRows + kBlockRows - 1) / kBlockRows;
        column_ranges_ = std::clamp<int64_t>((2 * num_threads() + row_blocks_ - 1) / row_blocks_,
                                             1, slivers_);
        run_tasks(row_blocks_ * column_ranges_, [this](int64_t task) { compute(task); });
    }

  private:
    enum : int { kUnpacked, kPacking, kPacked };

    float* panel(int64_t d) const { return packed_b_.data() + d * slivers_ * kDepth * kCols; }

    // Panel d of op(b), every chunk packed: the chunks no thread has begun are packed here,
    // then those another thread is packing are waited for. A thread only ever waits on one
    // that is packing, never on one that waits, so this cannot deadlock, and where the pool
    // runs every task on one thread that thread packs them all.
    TG_AVX512 void ensure_packed(int64_t d) {
        const int64_t k0 = d * kDepth, depth = std::min(kDepth, k_ - k0);
        for (int64_t chunk = 0; chunk < chunks_; ++chunk) {
            std::atomic<int>& state = chunk_state_[d * chunks_ + chunk];
            int expected = kUnpacked;
            if (state.load(std::memory_order_acquire) == kUnpacked &&
                state.compare_exchange_strong(expected, kPacking, std::memory_order_acq_rel)) {
                const int64_t j0 = chunk * kChunkCols, cols = std::min(kChunkCols, n_ - j0);
                pack_b(b_, k0, depth, j0, cols, panel(d) + (j0 / kCols) * kDepth * kCols);
                state.store(kPacked, std::memory_order_release);
            }
        }
        for (int64_t chunk = 0; chunk < chunks_; ++chunk) {
            while (chunk_state_[d * chunks_ + chunk].load(std::memory_order_acquire) != kPacked) {
                cpu_relax();
            }
        }
    }

    TG_AVX512 void compute(int64_t task) {
        thread_local std::unique_ptr<float[], decltype(&std::free)> packed_a(nullptr, &std::free);
        if (!packed_a) {
            packed_a.reset(static_cast<float*>(std::aligned_alloc(64, kBlockRows * kDepth * 4)));
        }
        const int64_t block = task / column_ranges_, range = task % column_ranges_;
        const int64_t first = block * row_slivers_ / row_blocks_ * kRows;
        const int64_t rows = std::min((block + 1) * row_slivers_ / row_blocks_ * kRows, m_) - first;
        const int64_t sliver_begin = range * slivers_ / column_ranges_;
        const int64_t sliver_end = (range + 1) * slivers_ / column_ranges_;
        for (int64_t d = 0; d < depths_; ++d) {
            const int64_t k0 = d * kDepth, depth = std::min(kDepth, k_ - k0);
            ensure_packed(d);
            pack_a(a_, first, rows, k0, depth, packed_a.get());
            for (int64_t p = sliver_begin; p < sliver_end; ++p) {
                const auto [low, high] = column_masks(n_ - p * kCols);
                const float* b_sliver = panel(d) + p * kDepth * kCols;
                for (int64_t s = 0; s * kRows < rows; ++s) {
                    micro_kernel(depth, packed_a.get() + s * kDepth * kRows, b_sliver,
                                 c_ + (first + s * kRows) * ldc_ + p * kCols, ldc_,
                                 d > 0, bias_ ? bias_ + p * kCols : nullptr, rows - s * kRows,
                                 low, high);
                }
            }
        }
    }

    const Operand a_, b_;
    const int64_t m_, n_, k_;
    const float* const bias_;
    float* const c_;
    const int64_t ldc_, depths_, slivers_, chunks_;
    int64_t row_slivers_ = 0, row_blocks_ = 0, column_ranges_ = 0;
    Floats packed_b_;
    std::vector<std::atomic<int>> chunk_state_;
};

}  // namespace

bool packed_sgemm_built() { return kBuiltForAvx512; }

bool packed_sgemm_takes(int64_t m, int64_t n, int64_t k) {
    // Tiles are 32 columns wide: past the last full one, the rest of a tile is computed for
    // nothing, and where that is more than an eighth of the product BLAS does better (n = 65
    // ran at 1.27 of its time). Shallow products (k below kMinDepth) write c at a rate two
    // threads share badly: at k = 64 and 65, 0.90 of BLAS's time on one thread but 0.96-1.42
    // on two (docs/performance.md, "An own GEMM for float32").
    const int64_t padded_cols = (n + kCols - 1) / kCols * kCols;
    return kBuiltForAvx512 && m >= kRows && n >= kCols && k >= kMinDepth &&
           (padded_cols - n) * 8 <= n && k * padded_cols <= kMaxPackedFloats;
}

void packed_sgemm(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k,
                  const float* a, int64_t lda, const float* b, int64_t ldb, const float* bias,
                  float* c, int64_t ldc) {
    PackedGemm(Operand{a, transpose_a ? 1 : lda, transpose_a ? lda : 1},
               Operand{b, transpose_b ? 1 : ldb, transpose_b ? ldb : 1}, m, n, k, bias, c, ldc)
        .run();
}

#else  // not x86-64 with GCC or Clang: BLAS takes every product

bool packed_sgemm_built() { return false; }

bool packed_sgemm_takes(int64_t, int64_t, int64_t) { return false; }

void packed_sgemm(bool, bool, int64_t, int64_t, int64_t, const float*, int64_t, const float*,
                  int64_t, const float*, float*, int64_t) {}

#endif

}  // namespace tg
