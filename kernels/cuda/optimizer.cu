// Fused multi-tensor optimizer steps: SGD (momentum, dampening, Nesterov, weight decay) and
// Adam / AdamW (with AMSGrad), in place over every parameter of a group in ONE launch.
//
// Multi-tensor apply (as PyTorch's `_foreach` kernels, ATen/native/cuda/MultiTensorApply.cuh):
// each tensor is cut into chunks of chunk_size elements and the chunks of all tensors are
// numbered one after another; chunk_starts[t] is the number of the first chunk of tensor t
// (chunk_starts[num_tensors] is the total). Block b takes chunks b, b + gridDim.x, ...; for
// each it finds its tensor by binary search in chunk_starts, and its threads stride through
// the chunk. The tensors' addresses arrive as rows of one int64 table in device memory, so
// a step costs one small host-to-device copy and one launch instead of a few kernels per
// parameter; every element is read and written exactly once.
//
// The arithmetic is that of tinygrad_like/optim/sgd.py and adam.py, operation for
// operation and in the same order, with every scalar rounded to T by the launcher as NumPy
// rounds a Python float against a T array. Compiled with --fmad=false (no fused
// multiply-add contraction) a step gives the same bits as the NumPy optimizers.
//
// No kernel synchronises within a block, so the CPU build (cpu_shim.h) may run the grid
// one thread at a time.

#ifdef __CUDACC__
#define TG_CPU_LAUNCHER(kernel)
#else
#include "cpu_shim.h"
#endif

enum SgdFlags { SGD_MAXIMIZE = 1, SGD_WEIGHT_DECAY = 2, SGD_MOMENTUM = 4, SGD_NESTEROV = 8,
                SGD_FIRST_STEP = 16 };
enum AdamFlags { ADAM_MAXIMIZE = 1, ADAM_WEIGHT_DECAY = 2, ADAM_DECOUPLED_WEIGHT_DECAY = 4,
                 ADAM_AMSGRAD = 8 };

// The tensor that owns `chunk`: the last t with chunk_starts[t] <= chunk (so empty tensors,
// which own no chunk, are passed over).
__device__ __forceinline__ int tensor_of_chunk(const long long* chunk_starts, int num_tensors,
                                               long long chunk) {
    int low = 0, high = num_tensors - 1;
    while (low < high) {
        const int middle = (low + high + 1) / 2;
        if (chunk_starts[middle] <= chunk) low = middle;
        else high = middle - 1;
    }
    return low;
}

// Calls update(t, i) for every element i of every tensor t, chunk by chunk.
template <typename Update>
__device__ __forceinline__ void for_each_element(const long long* sizes,
                                                 const long long* chunk_starts, int num_tensors,
                                                 long long chunk_size, Update update) {
    const long long total_chunks = chunk_starts[num_tensors];
    for (long long chunk = blockIdx.x; chunk < total_chunks; chunk += gridDim.x) {
        const int t = tensor_of_chunk(chunk_starts, num_tensors, chunk);
        const long long begin = (chunk - chunk_starts[t]) * chunk_size;
        const long long end = begin + chunk_size < sizes[t] ? begin + chunk_size : sizes[t];
        for (long long i = begin + threadIdx.x; i < end; i += blockDim.x) update(t, i);
    }
}

template <typename T>
__device__ __forceinline__ T* row_pointer(const long long* table, int t) {
    return reinterpret_cast<T*>(table[t]);
}

template <typename T>
__device__ void sgd_step(const long long* chunk_starts, const long long* sizes,
                         const long long* params, const long long* grads,
                         const long long* momentum_buffers, int num_tensors, long long chunk_size,
                         T lr, T momentum, T one_minus_dampening, T weight_decay, int flags) {
    for_each_element(sizes, chunk_starts, num_tensors, chunk_size, [&](int t, long long i) {
        T* param = row_pointer<T>(params, t) + i;
        T grad = row_pointer<const T>(grads, t)[i];
        if (flags & SGD_MAXIMIZE) grad = -grad;
        if (flags & SGD_WEIGHT_DECAY) grad = grad + weight_decay * *param;
        if (flags & SGD_MOMENTUM) {
            T* buffer = row_pointer<T>(momentum_buffers, t) + i;
            // PyTorch starts the buffer at the first gradient, undamped
            const T velocity = (flags & SGD_FIRST_STEP)
                                   ? grad
                                   : *buffer * momentum + one_minus_dampening * grad;
            *buffer = velocity;
            grad = (flags & SGD_NESTEROV) ? grad + momentum * velocity : velocity;
        }
        *param = *param - lr * grad;
    });
}

template <typename T>
__device__ void adam_step(const long long* chunk_starts, const long long* sizes,
                          const long long* params, const long long* grads,
                          const long long* exp_avgs, const long long* exp_avg_sqs,
                          const long long* max_exp_avg_sqs, int num_tensors, long long chunk_size,
                          T step_size, T bias_correction2_sqrt, T one_minus_beta1, T beta2,
                          T one_minus_beta2, T eps, T weight_decay, T decay_factor, int flags) {
    for_each_element(sizes, chunk_starts, num_tensors, chunk_size, [&](int t, long long i) {
        T* param = row_pointer<T>(params, t) + i;
        T* exp_avg = row_pointer<T>(exp_avgs, t) + i;
        T* exp_avg_sq = row_pointer<T>(exp_avg_sqs, t) + i;
        T grad = row_pointer<const T>(grads, t)[i];
        if (flags & ADAM_MAXIMIZE) grad = -grad;
        if (flags & ADAM_WEIGHT_DECAY) grad = grad + weight_decay * *param;
        if (flags & ADAM_DECOUPLED_WEIGHT_DECAY) *param = *param * decay_factor;
        const T first = *exp_avg + one_minus_beta1 * (grad - *exp_avg);  // lerp, as PyTorch
        T second = *exp_avg_sq * beta2;
        second = second + one_minus_beta2 * grad * grad;
        *exp_avg = first;
        *exp_avg_sq = second;
        if (flags & ADAM_AMSGRAD) {
            T* running_max = row_pointer<T>(max_exp_avg_sqs, t) + i;
            // NaN-propagating like numpy.maximum
            if (second > *running_max || second != second) *running_max = second;
            second = *running_max;
        }
        const T denominator = sqrt(second) / bias_correction2_sqrt + eps;
        *param = *param - step_size * first / denominator;
    });
}

#define TG_OPTIMIZER_KERNELS(T, SUFFIX)                                                      \
    extern "C" __global__ void sgd_step_##SUFFIX(                                            \
        const long long* chunk_starts, const long long* sizes, const long long* params,      \
        const long long* grads, const long long* momentum_buffers, int num_tensors,          \
        long long chunk_size, T lr, T momentum, T one_minus_dampening, T weight_decay,       \
        int flags) {                                                                         \
        sgd_step<T>(chunk_starts, sizes, params, grads, momentum_buffers, num_tensors,       \
                    chunk_size, lr, momentum, one_minus_dampening, weight_decay, flags);     \
    }                                                                                        \
    TG_CPU_LAUNCHER(sgd_step_##SUFFIX)                                                       \
    extern "C" __global__ void adam_step_##SUFFIX(                                           \
        const long long* chunk_starts, const long long* sizes, const long long* params,      \
        const long long* grads, const long long* exp_avgs, const long long* exp_avg_sqs,     \
        const long long* max_exp_avg_sqs, int num_tensors, long long chunk_size,             \
        T step_size, T bias_correction2_sqrt, T one_minus_beta1, T beta2, T one_minus_beta2, \
        T eps, T weight_decay, T decay_factor, int flags) {                                  \
        adam_step<T>(chunk_starts, sizes, params, grads, exp_avgs, exp_avg_sqs,              \
                     max_exp_avg_sqs, num_tensors, chunk_size, step_size,                    \
                     bias_correction2_sqrt, one_minus_beta1, beta2, one_minus_beta2, eps,    \
                     weight_decay, decay_factor, flags);                                     \
    }                                                                                        \
    TG_CPU_LAUNCHER(adam_step_##SUFFIX)

TG_OPTIMIZER_KERNELS(float, f32)
TG_OPTIMIZER_KERNELS(double, f64)
