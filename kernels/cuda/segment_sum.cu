// Deterministic scatter-add: out[r, :] = the sum of values[i, :] over every i with rows[i] == r,
// added in increasing i, for out (num_rows, D) and values (N, D).
//
// The atomic kernels (embedding.cu, max-pool backward in pooling.cu) add in whatever order
// the threads happen to run, so float sums change from run to run. Here the launcher sorts
// the rows stably first (`order`), and `run_starts[r]` is where row r's run of the sorted
// positions begins, so row r's contributions are values[order[j], :] for j in
// [run_starts[r], run_starts[r + 1]), already in increasing i. One thread per element of out
// in a grid-stride loop walks its run in that order and writes the element once: no
// atomics, and the result is the sequential sum, bit for bit, on every schedule.
// Consecutive threads own consecutive columns of one row, so the reads of values[order[j], :]
// are coalesced. A row hit k times costs its threads k steps: fine for vocabularies and
// pooling windows, slow when one row takes most of N (PyTorch's sorted embedding backward
// splits long runs into chunks; this kernel does not). Rows equal to skip_row (padding_idx;
// -1 for none) are written as 0, and entries of rows outside [0, num_rows) are never read:
// the sort leaves them outside every run.
//
// No kernel synchronises within a block, so the CPU build (cpu_shim.h) may run the grid
// one thread at a time, in any order.

#ifdef __CUDACC__
#define TG_CPU_LAUNCHER(kernel)
#else
#include "cpu_shim.h"
#endif

template <typename T>
__device__ void segment_sum(const T* __restrict__ values, const long long* __restrict__ order,
                            const long long* __restrict__ run_starts, T* __restrict__ out,
                            long long num_rows, long long dim, long long skip_row) {
    const long long total = num_rows * dim;
    const long long step = static_cast<long long>(blockDim.x) * gridDim.x;
    for (long long e = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
         e < total; e += step) {
        const long long row = e / dim, column = e - row * dim;
        T sum = 0;
        if (row != skip_row)
            for (long long j = run_starts[row]; j < run_starts[row + 1]; ++j)
                sum += values[order[j] * dim + column];
        out[e] = sum;
    }
}

#define TG_SEGMENT_SUM_KERNELS(T, SUFFIX)                                                    \
    extern "C" __global__ void segment_sum_##SUFFIX(                                         \
        const T* values, const long long* order, const long long* run_starts, T* out,        \
        long long num_rows, long long dim, long long skip_row) {                             \
        segment_sum<T>(values, order, run_starts, out, num_rows, dim, skip_row);             \
    }                                                                                        \
    TG_CPU_LAUNCHER(segment_sum_##SUFFIX)

TG_SEGMENT_SUM_KERNELS(float, f32)
TG_SEGMENT_SUM_KERNELS(double, f64)
