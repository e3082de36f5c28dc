// The sum of a whole float32 array, split over the worker pool and accumulated in double.
//
// NumPy's full sum runs on one core: 0.58 ms for the 4M floats of the softmax benchmark's
// loss, where PyTorch's takes 0.1 ms. Here each thread sums one contiguous range into double
// lanes (vcvtps2pd feeds them for free on a memory-bound loop), and the per-range sums are
// added in range order, so the result is the same on every run with the same thread count.
// Double accumulation of float32 values is more accurate than NumPy's float32 pairwise sum,
// which is why float64 arrays stay with NumPy: there, lanes of doubles would be less accurate
// than its pairwise summation.
#include <vector>

#include "common.h"

namespace {

TG_MULTIVERSION double sum_range(const float* x, int64_t count) {
    double sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int64_t i = 0; i < count; ++i) sum += x[i];
    return sum;
}

double sum_all(carray<float> x) {
    const float* data = x.data();
    const int64_t size = x.size();
    const int64_t ranges = tg::range_count(size, size);
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

}  // namespace

void register_reduce(py::module_& m) {
    m.def("sum_all", &sum_all, py::arg("x").noconvert(),
          "The sum of every element of a C-contiguous float32 array, in double");
}
