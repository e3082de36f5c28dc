// Embedding backward: dweight[indices[i], :] += grad[i, :] for every row i of grad (N, D).
//
// One thread per element of grad in a grid-stride loop, so consecutive threads read
// consecutive elements of a row and add into consecutive elements of one weight row.
// An index may repeat, so the adds are atomic; their float sums depend on the schedule, so
// deterministic mode runs segment_sum.cu instead. Rows whose index is padding_idx (pass -1
// for none) contribute nothing, as in torch.nn.functional.embedding. An index outside
// [0, num_weights) is skipped rather than written out of bounds; the forward pass has
// already rejected such indices.
//
// No kernel synchronises within a block, so the CPU build (cpu_shim.h) may run the grid
// one thread at a time.

#ifdef __CUDACC__
#define TG_CPU_LAUNCHER(kernel)
#else
#include "cpu_shim.h"
#endif

template <typename T>
__device__ void embedding_backward(const T* __restrict__ grad,
                                   const long long* __restrict__ indices, T* __restrict__ dweight,
                                   long long rows, long long dim, long long num_weights,
                                   long long padding_idx) {
    const long long total = rows * dim;
    const long long step = static_cast<long long>(blockDim.x) * gridDim.x;
    for (long long e = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
         e < total; e += step) {
        const long long row = e / dim;
        const long long index = indices[row];
        if (index == padding_idx || index < 0 || index >= num_weights) continue;
        atomicAdd(dweight + index * dim + (e - row * dim), grad[e]);
    }
}

#define TG_EMBEDDING_KERNELS(T, SUFFIX)                                                      \
    extern "C" __global__ void embedding_backward_##SUFFIX(                                  \
        const T* grad, const long long* indices, T* dweight, long long rows, long long dim,  \
        long long num_weights, long long padding_idx) {                                      \
        embedding_backward<T>(grad, indices, dweight, rows, dim, num_weights, padding_idx);  \
    }                                                                                        \
    TG_CPU_LAUNCHER(embedding_backward_##SUFFIX)

TG_EMBEDDING_KERNELS(float, f32)
TG_EMBEDDING_KERNELS(double, f64)
