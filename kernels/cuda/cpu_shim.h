// Compiles a kernels/cuda/*.cu file as plain C++ so that its kernels run on the CPU.
//
// Each .cu includes this header only when no CUDA compiler is reading it (nvcc and NVRTC
// define __CUDACC__). It supplies what the kernels use from CUDA: the qualifiers, dim3,
// threadIdx / blockIdx / blockDim / gridDim, atomicAdd and a few intrinsics. A launch runs
// every thread of every block one after another. That is a valid schedule only because no
// kernel here synchronises inside a block (no __syncthreads, no shared memory), and the
// sequential order also makes atomicAdd a plain add. For the same reason any order of the
// threads is a valid schedule: `tg_set_schedule(seed)` makes later launches run them in a
// pseudo-random order drawn from seed (0, the default, runs them in index order), so tests
// can show which kernels give the same bits whatever the schedule (atomic float sums do not).
//
// TG_CPU_LAUNCHER(kernel) exports `tg_launch_<kernel>(grid xyz, block xyz, void** args)`,
// where args[i] points at the i-th argument's value, exactly as cuLaunchKernel takes its
// kernelParams; Python calls it through ctypes.
#pragma once

#ifdef __CUDACC__
#error "cpu_shim.h is for the C++ build of a .cu file; CUDA compilers must not include it"
#endif

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <type_traits>
#include <utility>
#include <vector>

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

static unsigned int tg_schedule_seed = 0;

extern "C" void tg_set_schedule(unsigned int seed) { tg_schedule_seed = seed; }

// A thread's place in the grid: block-major, x fastest, as CUDA numbers them.
inline void tg_place_thread(unsigned long long id, dim3 grid, dim3 block) {
    const unsigned long long per_block = 1ull * block.x * block.y * block.z;
    const unsigned long long b = id / per_block, t = id % per_block;
    blockIdx = dim3(b % grid.x, (b / grid.x) % grid.y, b / (1ull * grid.x * grid.y));
    threadIdx = dim3(t % block.x, (t / block.x) % block.y, t / (1ull * block.x * block.y));
}

template <typename... Params, std::size_t... I>
void tg_run_grid(void (*kernel)(Params...), dim3 grid, dim3 block, void** args,
                 std::index_sequence<I...>) {
    gridDim = grid;
    blockDim = block;
    const unsigned long long threads = 1ull * grid.x * grid.y * grid.z * block.x * block.y *
                                       block.z;
    std::vector<unsigned long long> order;  // empty: index order
    if (tg_schedule_seed) {
        order.resize(threads);
        std::iota(order.begin(), order.end(), 0ull);
        std::shuffle(order.begin(), order.end(), std::mt19937_64(tg_schedule_seed));
    }
    for (unsigned long long i = 0; i < threads; ++i) {
        tg_place_thread(order.empty() ? i : order[i], grid, block);
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
