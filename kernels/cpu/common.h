// Shared helpers of the native CPU kernels (tinygrad_like._C).
//
// Every kernel family lives in its own .cpp with a `register_<family>(module)` function that
// bindings.cpp calls. Kernels take C-contiguous float32/float64 NumPy arrays (the Python
// wrappers in tinygrad_like/backend/native.py make them so, and send any other dtype to the
// NumPy reference), release the GIL, and split their outer loop over tg::parallel_for
// (parallel.h), a worker pool of our own rather than OpenMP's. Their outputs come from
// tg::new_array (buffer_cache.h), which reuses the blocks of freed large arrays.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <string>

namespace py = pybind11;

// Run-time instruction-set dispatch for the innermost loops: GCC and Clang compile a function
// marked TG_MULTIVERSION three times (AVX-512, AVX2+FMA and the x86-64 baseline; CMakeLists.txt
// lets the AVX-512 clone use full 512-bit vectors) and the dynamic loader
// picks the best one for the CPU it runs on (an ifunc), so one binary runs on every x86-64.
// A lambda handed to tg::parallel_for is a function of its own that would not be cloned, so
// the parallel loop calls a TG_MULTIVERSION function per row or block instead.
#if defined(__x86_64__) && defined(__linux__) && (defined(__GNUC__) || defined(__clang__))
#define TG_MULTIVERSION \
    __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#define TG_MULTIVERSION_ISA \
    "x86-64-v4 (AVX-512) / x86-64-v3 (AVX2+FMA) / x86-64 baseline, chosen at run time"
// The clone the loader picks on this CPU (the same test as the ifunc resolver's), for
// build_info: timings on an AVX2 machine and an AVX-512 one are not comparable.
inline const char* tg_multiversion_isa_in_use() {
    if (__builtin_cpu_supports("x86-64-v4")) return "x86-64-v4 (AVX-512)";
    if (__builtin_cpu_supports("x86-64-v3")) return "x86-64-v3 (AVX2+FMA)";
    return "x86-64 baseline";
}
#else
#define TG_MULTIVERSION
#define TG_MULTIVERSION_ISA "portable baseline"
inline const char* tg_multiversion_isa_in_use() { return "portable baseline"; }
#endif

// A helper of a TG_MULTIVERSION function must be inlined into it to get the clone's ISA.
#define TG_INLINE inline __attribute__((always_inline))

template <typename T>
using carray = py::array_t<T, py::array::c_style>;

#include "buffer_cache.h"
#include "parallel.h"

inline void require(bool ok, const std::string& message) {
    if (!ok) throw py::value_error("tinygrad_like._C: " + message);
}
