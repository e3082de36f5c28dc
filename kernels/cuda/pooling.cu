// 2-D max and average pooling over (N, C, H, W) arrays, forward and backward, with
// PyTorch's semantics (aten/src/ATen/native/cpu/MaxPoolKernel.cpp, AvgPoolKernel.cpp).
//
// One thread per output element (per input element for the average backward), in a
// grid-stride loop over all of them. The flat index is 64-bit; only the position inside
// one H x W plane is 32-bit, so a single 64-bit division per element finds the plane.
//
// - max forward: -inf outside the input (implicit padding); writes the maximum and its
//   flat index h * W + w in the unpadded plane. The first maximum wins a tie; a NaN wins
//   over numbers (the last NaN, as PyTorch's CPU kernel). A window that holds no input
//   element at all (possible with dilation) gets -inf and index -1.
// - max backward: each output adds its gradient at its argmax. Windows overlap, so two
//   outputs may hit one input: atomicAdd, whose float sums depend on the schedule; under
//   deterministic mode the launcher runs segment_sum.cu over the argmax positions instead.
// - average: the window is clipped to the padded input [-pad, size + pad) to count
//   pool_size, then to the input itself to sum; the divisor is pool_size with
//   count_include_pad, else the in-bounds count. The backward is a gather: each input
//   element sums grad / divisor over the (few) windows that cover it, so it needs no atomics
//   and is deterministic.
//
// No kernel synchronises within a block, so the CPU build (cpu_shim.h) may run the grid
// one thread at a time.

#ifdef __CUDACC__
#define TG_CPU_LAUNCHER(kernel)
#else
#include "cpu_shim.h"
#endif

template <typename T>
__device__ __forceinline__ T negative_infinity();
template <>
__device__ __forceinline__ float negative_infinity<float>() {
    return __int_as_float(static_cast<int>(0xff800000u));
}
template <>
__device__ __forceinline__ double negative_infinity<double>() {
    return __longlong_as_double(static_cast<long long>(0xfff0000000000000ull));
}

struct PoolGeometry {
    int height, width, out_height, out_width;
    int kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w;
};

// The rows (or columns) an average window covers: [start, end) clipped to the input, and
// the divisor PyTorch uses for it.
__device__ __forceinline__ int average_divisor(const PoolGeometry& g, int oh, int ow,
                                               int count_include_pad, int* h0, int* h1,
                                               int* w0, int* w1) {
    int hstart = oh * g.stride_h - g.pad_h, wstart = ow * g.stride_w - g.pad_w;
    int hend = hstart + g.kernel_h, wend = wstart + g.kernel_w;
    hend = hend < g.height + g.pad_h ? hend : g.height + g.pad_h;
    wend = wend < g.width + g.pad_w ? wend : g.width + g.pad_w;
    const int pool_size = (hend - hstart) * (wend - wstart);
    *h0 = hstart > 0 ? hstart : 0;
    *w0 = wstart > 0 ? wstart : 0;
    *h1 = hend < g.height ? hend : g.height;
    *w1 = wend < g.width ? wend : g.width;
    return count_include_pad ? pool_size : (*h1 - *h0) * (*w1 - *w0);
}

template <typename T>
__device__ void max_pool2d_forward(const T* __restrict__ x, T* __restrict__ out,
                                   long long* __restrict__ indices, long long total,
                                   PoolGeometry g, int dilation_h, int dilation_w) {
    const long long plane_out = static_cast<long long>(g.out_height) * g.out_width;
    const long long plane_in = static_cast<long long>(g.height) * g.width;
    const long long step = static_cast<long long>(blockDim.x) * gridDim.x;
    for (long long e = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
         e < total; e += step) {
        const long long plane = e / plane_out;
        const int position = static_cast<int>(e - plane * plane_out);
        const int h0 = (position / g.out_width) * g.stride_h - g.pad_h;
        const int w0 = (position % g.out_width) * g.stride_w - g.pad_w;
        const T* source = x + plane * plane_in;
        T best = negative_infinity<T>();
        long long best_index = -1;
        for (int i = 0; i < g.kernel_h; ++i) {
            const int h = h0 + i * dilation_h;
            if (h < 0 || h >= g.height) continue;
            for (int j = 0; j < g.kernel_w; ++j) {
                const int w = w0 + j * dilation_w;
                if (w < 0 || w >= g.width) continue;
                const long long index = static_cast<long long>(h) * g.width + w;
                const T value = source[index];
                if (best_index < 0 || value > best || value != value) {
                    best = value;
                    best_index = index;
                }
            }
        }
        out[e] = best;
        indices[e] = best_index;
    }
}

template <typename T>
__device__ void max_pool2d_backward(const T* __restrict__ grad,
                                    const long long* __restrict__ indices, T* __restrict__ dx,
                                    long long total, long long plane_out, long long plane_in) {
    const long long step = static_cast<long long>(blockDim.x) * gridDim.x;
    for (long long e = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
         e < total; e += step) {
        const long long index = indices[e];
        if (index >= 0 && index < plane_in)
            atomicAdd(dx + (e / plane_out) * plane_in + index, grad[e]);
    }
}

template <typename T>
__device__ void avg_pool2d_forward(const T* __restrict__ x, T* __restrict__ out,
                                   long long total, PoolGeometry g, int count_include_pad) {
    const long long plane_out = static_cast<long long>(g.out_height) * g.out_width;
    const long long plane_in = static_cast<long long>(g.height) * g.width;
    const long long step = static_cast<long long>(blockDim.x) * gridDim.x;
    for (long long e = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
         e < total; e += step) {
        const long long plane = e / plane_out;
        const int position = static_cast<int>(e - plane * plane_out);
        int h0, h1, w0, w1;
        const int divisor = average_divisor(g, position / g.out_width, position % g.out_width,
                                            count_include_pad, &h0, &h1, &w0, &w1);
        const T* source = x + plane * plane_in;
        T sum = 0;
        for (int h = h0; h < h1; ++h)
            for (int w = w0; w < w1; ++w) sum += source[static_cast<long long>(h) * g.width + w];
        out[e] = divisor > 0 ? sum / static_cast<T>(divisor) : static_cast<T>(0);
    }
}

template <typename T>
__device__ void avg_pool2d_backward(const T* __restrict__ grad, T* __restrict__ dx,
                                    long long total, PoolGeometry g, int count_include_pad) {
    const long long plane_out = static_cast<long long>(g.out_height) * g.out_width;
    const long long plane_in = static_cast<long long>(g.height) * g.width;
    const long long step = static_cast<long long>(blockDim.x) * gridDim.x;
    for (long long e = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
         e < total; e += step) {
        const long long plane = e / plane_in;
        const int position = static_cast<int>(e - plane * plane_in);
        const int h = position / g.width, w = position % g.width;
        // windows oh with oh * stride - pad <= h < oh * stride - pad + kernel
        const int oh_first =
            h + g.pad_h < g.kernel_h ? 0 : (h + g.pad_h - g.kernel_h) / g.stride_h + 1;
        const int ow_first =
            w + g.pad_w < g.kernel_w ? 0 : (w + g.pad_w - g.kernel_w) / g.stride_w + 1;
        int oh_last = (h + g.pad_h) / g.stride_h, ow_last = (w + g.pad_w) / g.stride_w;
        oh_last = oh_last < g.out_height - 1 ? oh_last : g.out_height - 1;
        ow_last = ow_last < g.out_width - 1 ? ow_last : g.out_width - 1;
        const T* source = grad + plane * plane_out;
        T sum = 0;
        for (int oh = oh_first; oh <= oh_last; ++oh)
            for (int ow = ow_first; ow <= ow_last; ++ow) {
                int h0, h1, w0, w1;
                const int divisor =
                    average_divisor(g, oh, ow, count_include_pad, &h0, &h1, &w0, &w1);
                sum += source[static_cast<long long>(oh) * g.out_width + ow] /
                       static_cast<T>(divisor);
            }
        dx[e] = sum;
    }
}

// The geometry travels as separate int arguments: a struct argument would need the same
// layout on the Python side of both launchers.
#define TG_GEOMETRY_PARAMS                                                                   \
    int height, int width, int out_height, int out_width, int kernel_h, int kernel_w,        \
        int stride_h, int stride_w, int pad_h, int pad_w
#define TG_GEOMETRY                                                                          \
    PoolGeometry { height, width, out_height, out_width, kernel_h, kernel_w, stride_h,       \
                   stride_w, pad_h, pad_w }

#define TG_POOLING_KERNELS(T, SUFFIX)                                                        \
    extern "C" __global__ void max_pool2d_forward_##SUFFIX(                                  \
        const T* x, T* out, long long* indices, long long total, TG_GEOMETRY_PARAMS,        \
        int dilation_h, int dilation_w) {                                                    \
        max_pool2d_forward<T>(x, out, indices, total, TG_GEOMETRY, dilation_h, dilation_w); \
    }                                                                                        \
    TG_CPU_LAUNCHER(max_pool2d_forward_##SUFFIX)                                             \
    extern "C" __global__ void max_pool2d_backward_##SUFFIX(                                 \
        const T* grad, const long long* indices, T* dx, long long total, long long plane_out, \
        long long plane_in) {                                                                \
        max_pool2d_backward<T>(grad, indices, dx, total, plane_out, plane_in);              \
    }                                                                                        \
    TG_CPU_LAUNCHER(max_pool2d_backward_##SUFFIX)                                            \
    extern "C" __global__ void avg_pool2d_forward_##SUFFIX(                                  \
        const T* x, T* out, long long total, TG_GEOMETRY_PARAMS, int count_include_pad) {   \
        avg_pool2d_forward<T>(x, out, total, TG_GEOMETRY, count_include_pad);               \
    }                                                                                        \
    TG_CPU_LAUNCHER(avg_pool2d_forward_##SUFFIX)                                             \
    extern "C" __global__ void avg_pool2d_backward_##SUFFIX(                                 \
        const T* grad, T* dx, long long total, TG_GEOMETRY_PARAMS, int count_include_pad) { \
        avg_pool2d_backward<T>(grad, dx, total, TG_GEOMETRY, count_include_pad);            \
    }                                                                                        \
    TG_CPU_LAUNCHER(avg_pool2d_backward_##SUFFIX)

TG_POOLING_KERNELS(float, f32)
TG_POOLING_KERNELS(double, f64)
