// Branch-free float32 exp, tanh and sigmoid that `#pragma omp simd` loops vectorise, for the
// softmax, cross-entropy and recurrent-gate kernels.
//
// glibc's expf and tanhf are scalar calls unless -ffast-math lets GCC use libmvec, and
// -ffast-math is not allowed here (CMakeLists.txt). Everything below is a select, a multiply
// or an integer op: no branch, no call, no table. float64 keeps std::exp and std::tanh (a
// call per element; the fused passes still save the memory traffic).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "common.h"

namespace tg {

TG_INLINE float float_from_bits(uint32_t bits) {
    float value;
    std::memcpy(&value, &bits, sizeof value);
    return value;
}

TG_INLINE uint32_t bits_of(float value) {
    uint32_t bits;
    std::memcpy(&bits, &value, sizeof bits);
    return bits;
}

// exp(x) in float32 to within ~1 ulp (tests/test_native.py measures it against np.exp):
//   x = n ln2 + r with n = round(x / ln2), |r| <= ln2 / 2, and exp(x) = 2^n exp(r).
// - n is rounded with the 1.5 * 2^23 trick: adding it leaves round(x / ln2) in the low
//   mantissa bits, which are n as an integer too (no roundps, which SSE2 lacks).
// - r = x - n ln2 in two steps (Cody-Waite): ln2_hi has 9 significant bits, so n * ln2_hi
//   is exact for |n| < 2^15 and the subtraction loses nothing; ln2_lo adds the remainder.
// - exp(r) = 1 + r + r^2 P(r), P of degree 5 (Cephes expf's minimax coefficients).
// - 2^n is built from exponent bits in two halves, 2^(n/2) and 2^(n - n/2): the first
//   product is exact and only the second rounds, so results that overflow become inf and
//   results below FLT_MIN become correctly rounded subnormals, as IEEE exp gives.
// The input is clamped to [-104, 89] first: exp(-104) rounds to 0 and exp(89) overflows, so
// -inf gives exactly 0 (the masked entries of a row) and +inf gives inf; NaN stays NaN
// through every step. Everything is a select, a multiply or an integer op: no branch, no
// call, no table, so `omp simd` loops around it vectorise. kAtMostZero: the caller
// guarantees x <= 0 or NaN (a value minus its row's maximum or log-sum-exp, as in every
// softmax kernel), so the upper clamp, a no-op there, is left out: the results are the same
// bits, and faster: GCC compiles the two clamps together into four compares and two blends
// around the whole computation (docs/performance.md, "The softmax family's exp without the
// upper clamp").
template <bool kAtMostZero = false>
TG_INLINE float vector_exp(float x) {
    constexpr float kLog2e = 1.44269504088896341f;
    constexpr float kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
    constexpr float kRound = 12582912.0f;  // 1.5 * 2^23
    x = x < -104.0f ? -104.0f : x;
    if (!kAtMostZero) x = x > 89.0f ? 89.0f : x;
    const float shifted = x * kLog2e + kRound;
    const int32_t n = int32_t(bits_of(shifted)) - int32_t(bits_of(kRound));
    const float n_float = shifted - kRound;
    const float r = (x - n_float * kLn2Hi) - n_float * kLn2Lo;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    const float exp_r = (p * (r * r) + r) + 1.0f;
    const int32_t half = n >> 1;  // n in [-150, 128]: both halves are normal powers of two
    const float scale_a = float_from_bits(uint32_t(half + 127) << 23);
    const float scale_b = float_from_bits(uint32_t(n - half + 127) << 23);
    return exp_r * scale_a * scale_b;
}


// tanh(x) in float32 to within ~2 ulp (tests/test_native.py measures it against np.tanh), after
// Cephes tanhf: for |x| < 0.625 the odd polynomial x + x^3 P(x^2), above it
// 1 - 2 / (exp(2|x|) + 1) with the sign of x. Both are computed and one is selected.
// exp(2|x|) overflows to inf from |x| ~ 44.4 on, which gives exactly +-1; NaN stays NaN
// (it fails the comparison, so the polynomial, which keeps it, is selected); -0.0 stays -0.0.
TG_INLINE float vector_tanh(float x) {
    const float magnitude = x < 0.0f ? -x : x;
    const float square = x * x;
    float p = -5.70498872745e-3f;
    p = p * square + 2.06390887954e-2f;
    p = p * square - 5.37397155531e-2f;
    p = p * square + 1.33314422036e-1f;
    p = p * square - 3.33332819422e-1f;
    // tanh has the sign of x; copysign keeps it for -0.0, where the sum would give +0.0
    const float small = std::copysign(p * square * x + x, x);
    const float large = 1.0f - 2.0f / (vector_exp(magnitude + magnitude) + 1.0f);
    const float signed_large = x < 0.0f ? -large : large;
    return magnitude >= 0.625f ? signed_large : small;
}

// The logistic function 1 / (1 + exp(-x)): exp(-x) overflows to inf for x < -88, which gives
// exactly 0, as the value rounds to in float32 anyway from x < -103.
TG_INLINE float vector_sigmoid(float x) { return 1.0f / (1.0f + vector_exp(-x)); }

// exp(x) for x <= 0 or NaN (vector_exp's kAtMostZero): the softmax family's exponentials
TG_INLINE float exp_of_at_most_zero(float x) { return vector_exp<true>(x); }
TG_INLINE double exp_of_at_most_zero(double x) { return std::exp(x); }
TG_INLINE float tanh_of(float x) { return vector_tanh(x); }
TG_INLINE double tanh_of(double x) { return std::tanh(x); }
TG_INLINE float sigmoid_of(float x) { return vector_sigmoid(x); }
TG_INLINE double sigmoid_of(double x) { return 1.0 / (1.0 + std::exp(-x)); }

}  // namespace tg
