// Dropout with a counter-based generator: out = x * mask, mask = 1 / (1 - p) or 0.
//
// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011;
// the Random123 library) maps a 128-bit counter and a 64-bit key to four 32-bit random
// words with ten rounds of multiply-hi/lo and xor, and needs no state. So the mask is a
// pure function of (seed, offset, element index): any thread can draw any element's
// number, a mask can be recomputed instead of stored, and the same seed and offset give
// the same mask on every device and launch geometry.
//
// Element i uses word i % 4 of philox(counter = (offset + i / 4) as two 32-bit words, 0, 0;
// key = (seed low word, seed high word)). The top 24 bits of the word form a uniform
// u = (word >> 8) / 2^24 in [0, 1), and the element is kept iff u >= p. The launcher passes
// p as the integer threshold ceil(p * 2^24), so the test is one exact integer comparison
// and the mask does not depend on the dtype. A caller that wants a fresh mask advances
// offset by ceil(n / 4), the number of counters one call consumes.
//
// One thread per group of four elements (one Philox call), in a grid-stride loop.
// No kernel synchronises within a block, so the CPU build (cpu_shim.h) may run the grid
// one thread at a time.

#ifdef __CUDACC__
#define TG_CPU_LAUNCHER(kernel)
#else
#include "cpu_shim.h"
#endif

struct PhiloxWords {
    unsigned int word[4];
};

__device__ __forceinline__ PhiloxWords philox4x32_10(PhiloxWords counter, unsigned int key0,
                                                     unsigned int key1) {
    const unsigned int multiplier0 = 0xD2511F53u, multiplier1 = 0xCD9E8D57u;
    const unsigned int weyl0 = 0x9E3779B9u, weyl1 = 0xBB67AE85u;  // golden ratio, sqrt(3) - 1
    for (int round = 0; round < 10; ++round) {
        if (round > 0) {
            key0 += weyl0;
            key1 += weyl1;
        }
        const unsigned int hi0 = __umulhi(multiplier0, counter.word[0]);
        const unsigned int lo0 = multiplier0 * counter.word[0];
        const unsigned int hi1 = __umulhi(multiplier1, counter.word[2]);
        const unsigned int lo1 = multiplier1 * counter.word[2];
        counter = PhiloxWords{
            {hi1 ^ counter.word[1] ^ key0, lo1, hi0 ^ counter.word[3] ^ key1, lo0}};
    }
    return counter;
}

template <typename T>
__device__ void dropout_forward(const T* __restrict__ x, T* __restrict__ out,
                                T* __restrict__ mask, long long n, unsigned int seed_low,
                                unsigned int seed_high, unsigned long long offset,
                                unsigned int threshold, T scale) {
    const long long groups = (n + 3) / 4;
    const long long step = static_cast<long long>(blockDim.x) * gridDim.x;
    for (long long group = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
         group < groups; group += step) {
        const unsigned long long counter = offset + static_cast<unsigned long long>(group);
        const PhiloxWords words = {{static_cast<unsigned int>(counter),
                                    static_cast<unsigned int>(counter >> 32), 0u, 0u}};
        const PhiloxWords random = philox4x32_10(words, seed_low, seed_high);
        for (int lane = 0; lane < 4; ++lane) {
            const long long i = group * 4 + lane;
            if (i >= n) break;
            const T keep = (random.word[lane] >> 8) >= threshold ? scale : static_cast<T>(0);
            mask[i] = keep;
            out[i] = x[i] * keep;
        }
    }
}

// The raw generator, for the known-answer tests: out[4 i .. 4 i + 3] = philox(counters[4 i ..],
// keys[2 i], keys[2 i + 1]).
extern "C" __global__ void philox4x32_10_blocks(const unsigned int* counters,
                                                const unsigned int* keys, unsigned int* out,
                                                long long n) {
    const long long step = static_cast<long long>(blockDim.x) * gridDim.x;
    for (long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
         i += step) {
        const PhiloxWords words = {
            {counters[4 * i], counters[4 * i + 1], counters[4 * i + 2], counters[4 * i + 3]}};
        const PhiloxWords random = philox4x32_10(words, keys[2 * i], keys[2 * i + 1]);
        for (int lane = 0; lane < 4; ++lane) out[4 * i + lane] = random.word[lane];
    }
}
TG_CPU_LAUNCHER(philox4x32_10_blocks)

#define TG_DROPOUT_KERNELS(T, SUFFIX)                                                        \
    extern "C" __global__ void dropout_forward_##SUFFIX(                                     \
        const T* x, T* out, T* mask, long long n, unsigned int seed_low,                     \
        unsigned int seed_high, unsigned long long offset, unsigned int threshold, T scale) { \
        dropout_forward<T>(x, out, mask, n, seed_low, seed_high, offset, threshold, scale);  \
    }                                                                                        \
    TG_CPU_LAUNCHER(dropout_forward_##SUFFIX)

TG_DROPOUT_KERNELS(float, f32)
TG_DROPOUT_KERNELS(double, f64)
