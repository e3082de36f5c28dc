// Shared helpers of the native CPU kernels (tinygrad_like._C).
//
// Every kernel family lives in its own .cpp with a `register_<family>(module)` function that
// bindings.cpp calls. Kernels take C-contiguous float32/float64 NumPy arrays (the Python
// wrappers in tinygrad_like/backend/native.py make them so, and send any other dtype to the
// NumPy reference), release the GIL, and parallelise their outer loop with OpenMP.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <string>

namespace py = pybind11;

// Run-time instruction-set dispatch for the innermost loops: GCC and Clang compile a function
// marked TG_MULTIVERSION twice (AVX2+FMA and the x86-64 baseline) and the dynamic loader
// picks the best one for the CPU it runs on (an ifunc), so one binary runs on every x86-64.
// OpenMP outlines the body of a parallel loop into a function of its own that would not be
// cloned, so the parallel loop calls a TG_MULTIVERSION function per row or block instead.
#if defined(__x86_64__) && defined(__linux__) && (defined(__GNUC__) || defined(__clang__))
#define TG_MULTIVERSION __attribute__((target_clones("arch=x86-64-v3", "default")))
#define TG_MULTIVERSION_ISA "x86-64-v3 (AVX2+FMA) / x86-64 baseline, chosen at run time"
#else
#define TG_MULTIVERSION
#define TG_MULTIVERSION_ISA "portable baseline"
#endif

// A helper of a TG_MULTIVERSION function must be inlined into it to get the clone's ISA.
#define TG_INLINE inline __attribute__((always_inline))

template <typename T>
using carray = py::array_t<T, py::array::c_style>;

#ifdef _OPENMP
#include <omp.h>
#endif

// Threads of the parallel loops; 0 means OpenMP's default. backend/native.py sets 1 when the
// process's OpenMP runtime was configured before _C loaded with idle threads that spin
// (torch imported first): those spinning threads would take the cores from OpenBLAS.
inline int g_num_threads = 0;

inline int tg_threads() {
#ifdef _OPENMP
    return g_num_threads > 0 ? g_num_threads : omp_get_max_threads();
#else
    return 1;
#endif
}

// Work below this many elements runs on one thread: waking the OpenMP team costs more, and
// on a loaded machine a team of threads can wait a whole time slice at its barrier.
constexpr int64_t kParallelGrain = 1 << 18;

inline void require(bool ok, const std::string& message) {
    if (!ok) throw py::value_error("tinygrad_like._C: " + message);
}
