// Sums of float32 arrays on the worker pool, accumulated in double.
//
// - sum_all: the whole array. NumPy's full sum runs on one core, several times slower than
//   PyTorch's on the softmax benchmark's loss (docs/performance.md, "Sums on the pool").
//   Each thread sums one contiguous range into double lanes, and the partial sums are added
//   in range order; the ranges follow the size alone (tg::fixed_range_count), so the result
//   is the same on every run and with any thread count.
// - sum_outer_inner: x seen as (outer, middle, inner), summed over outer and inner: the bias
//   gradients of linear layers ((batch, features) over the batch) and convolutions ((N, C,
//   H, W) over N, H and W), which NumPy also sums on one core. The threads take bands of
//   the middle axis, and each element is summed in the same order whatever the band, so
//   results do not depend on the thread count.
//
// Double accumulation of float32 values is more accurate than NumPy's float32 pairwise sum,
// which is why float64 arrays stay with NumPy: there, lanes of doubles would be less accurate
// than its pairwise summation. Column sums (inner == 1) add blocks of 16 rows in float first
// (see add_columns), still more accurate than NumPy, which adds all the rows in float.
#include <algorithm>
#include <vector>

#include "common.h"

namespace {

// A sum reads each element once and writes next to nothing, so waking a worker pays off
// only on arrays larger than the elementwise kernels' grain (docs/performance.md, "Sums on
// the pool").
constexpr int64_t kSumGrain = 8 * tg::kParallelGrain;

int64_t sum_ranges(int64_t count, int64_t size) {
    return size > kSumGrain ? tg::range_count(count, size) : 1;
}

int64_t sum_all_ranges(int64_t size) {
    return size > kSumGrain ? tg::fixed_range_count(size, size) : 1;
}

TG_TARGET_ISA double sum_range(const float* x, int64_t count) {
    double sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int64_t i = 0; i < count; ++i) sum += x[i];
    return sum;
}

double sum_all(carray<float> x) {
    const float* data = x.data();
    const int64_t size = x.size();
    const int64_t ranges = sum_all_ranges(size);
    std::vector<double> partial(ranges, 0.0);
    {
        py::gil_scoped_release release;
        tg::parallel_ranges(size, ranges, [&](int64_t range, int64_t begin, int64_t end) {
            partial[range] = sum_range(data + begin, end - begin);
        });
    }
    double total = 0;
    for (double part : partial) total += part;
    return total;
}

// Column sums (inner == 1) add kBlockRows rows at a time in float, row after row as NumPy
// does, and add each block's sums to the double ones. With only double sums every float
// added was a double loaded and stored, slower than NumPy; going down 32 columns at a time
// with the sums in registers instead read rows 4 KiB apart at (2048, 1024), which fall into
// the same cache sets (docs/performance.md, "Column sums").
constexpr int64_t kBlockRows = 16;

// acc[m] += the sum over s < rows of x[s * stride + m], for m in [0, count), block by block;
// `block` holds count floats
TG_TARGET_ISA void add_columns(const float* x, int64_t rows, int64_t stride, double* acc,
                                 float* block, int64_t count) {
    for (int64_t first = 0; first < rows; first += kBlockRows) {
        const int64_t last = std::min(rows, first + kBlockRows);
        std::copy(x + first * stride, x + first * stride + count, block);
        for (int64_t s = first + 1; s < last; ++s) {
            const float* row = x + s * stride;
#pragma omp simd
            for (int64_t m = 0; m < count; ++m) block[m] += row[m];
        }
#pragma omp simd
        for (int64_t m = 0; m < count; ++m) acc[m] += block[m];
    }
}

// acc[m] += the sum over i of x[m * inner + i], for m in [0, count)
TG_TARGET_ISA void add_slice(const float* x, double* acc, int64_t count, int64_t inner) {
    for (int64_t m = 0; m < count; ++m) {
        double sum = 0;
#pragma omp simd reduction(+ : sum)
        for (int64_t i = 0; i < inner; ++i) sum += x[m * inner + i];
        acc[m] += sum;
    }
}

carray<float> sum_outer_inner(carray<float> x) {
    require(x.ndim() == 3, "sum_outer_inner: expected x as (outer, middle, inner)");
    const int64_t outer = x.shape(0), middle = x.shape(1), inner = x.shape(2);
    carray<float> out({middle});
    const float* data = x.data();
    float* o = out.mutable_data();
    {
        py::gil_scoped_release release;
        tg::parallel_ranges(middle, sum_ranges(middle, x.size()),
                            [&](int64_t, int64_t begin, int64_t end) {
            std::vector<double> acc(end - begin, 0.0);
            if (inner == 1) {
                std::vector<float> block(end - begin);
                add_columns(data + begin, outer, middle, acc.data(), block.data(), end - begin);
            } else {
                for (int64_t slice = 0; slice < outer; ++slice)
                    add_slice(data + (slice * middle + begin) * inner, acc.data(),
                              end - begin, inner);
            }
            for (int64_t m = begin; m < end; ++m) o[m] = float(acc[m - begin]);
        });
    }
    return out;
}

}  // namespace

void register_reduce(py::module_& m) {
    m.def("sum_all", &sum_all, py::arg("x").noconvert(),
          "The sum of every element of a C-contiguous float32 array, in double");
    m.def("sum_outer_inner", &sum_outer_inner, py::arg("x").noconvert(),
          "x (outer, middle, inner) float32, C-contiguous, summed over outer and inner");
}
