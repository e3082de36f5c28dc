// Compiles a kernels/cuda/*.cu file as plain C++ so that its kernels run on the CPU.
//
// Each .cu includes this header only when no CUDA compiler is reading it (nvcc and NVRTC
// define __CUDACC__). It supplies what the kernels use from CUDA: the qualifiers, dim3,
// threadIdx / blockIdx / blockDim / gridDim, atomicAdd and a few intrinsics. A launch runs
// every thread of every block one after another. That is a valid schedule only because no
// kernel here synchronises inside a block (no __syncthreads, no shared memory), and the
// sequential order also makes atomicAdd a plain add.
//
// TG_CPU_LAUNCHER(kernel) exports `tg_launch_<kernel>(grid xyz, block xyz, void** args)`,
// where args[i] points at the i-th argument's value, exactly as cuLaunchKernel takes its
// kernelParams; Python calls it through ctypes.
#pragma once

#ifdef __CUDACC__
#error "cpu_shim.h is for the C++ build of a .cu file; CUDA compilers must not include it"
#endif

#include <cmath>
#include <cstring>
#include <type_traits>
#include <utility>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline

using std::sqrt;

struct dim3 {
    unsigned int x, y, z;
    dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
};

static thread_local dim3 threadIdx, blockIdx, blockDim, gridDim;

template <typename T>
inline T atomicAdd(T* address, T value) {
    T old = *address;
    *address = old + value;
    return old;
}

inline unsigned int __umulhi(unsigned int a, unsigned int b) {
    return static_cast<unsigned int>((static_cast<unsigned long long>(a) * b) >> 32);
}

inline float __int_as_float(int bits) {
    float value;
    std::memcpy(&value, &bits, sizeof value);
    return value;
}

inline double __longlong_as_double(long long bits) {
    double value;
    std::memcpy(&value, &bits, sizeof value);
    return value;
}

template <typename... Params, std::size_t... I>
void tg_run_grid(void (*kernel)(Params...), dim3 grid, dim3 block, void** args,
                 std::index_sequence<I...>) {
    gridDim = grid;
    blockDim = block;
    for (unsigned int bz = 0; bz < grid.z; ++bz)
        for (unsigned int by = 0; by < grid.y; ++by)
            for (unsigned int bx = 0; bx < grid.x; ++bx)
                for (unsigned int tz = 0; tz < block.z; ++tz)
                    for (unsigned int ty = 0; ty < block.y; ++ty)
                        for (unsigned int tx = 0; tx < block.x; ++tx) {
                            blockIdx = dim3(bx, by, bz);
                            threadIdx = dim3(tx, ty, tz);
                            kernel(*static_cast<std::remove_reference_t<Params>*>(args[I])...);
                        }
}

template <typename... Params>
void tg_launch(void (*kernel)(Params...), dim3 grid, dim3 block, void** args) {
    tg_run_grid(kernel, grid, block, args, std::index_sequence_for<Params...>{});
}

#define TG_CPU_LAUNCHER(kernel)                                                              \
    extern "C" void tg_launch_##kernel(unsigned int gx, unsigned int gy, unsigned int gz,   \
                                       unsigned int bx, unsigned int by, unsigned int bz,   \
                                       void** args) {                                        \
        tg_launch(kernel, dim3(gx, gy, gz), dim3(bx, by, bz), args);                       \
    }
