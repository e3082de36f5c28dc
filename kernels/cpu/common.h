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

// Instruction sets: the kernels are built once per level (CMakeLists.txt), each build a module
// of its own (TG_MODULE_NAME): _C for the portable baseline and, on x86-64, _C_x86_64_v3
// (AVX2+FMA) and _C_x86_64_v4 (AVX-512). In the latter two, a function marked TG_TARGET_ISA
// is compiled for the module's level (TG_ISA_TARGET); everything else stays on the baseline.
// backend/native.py imports the best build this CPU runs, or the one TINYGRAD_LIKE_ISA names.
// A lambda handed to tg::parallel_for is a function of its own that would not get the
// attribute, so the parallel loop calls a TG_TARGET_ISA function per row or block instead.
#if defined(TG_ISA_TARGET)
#define TG_TARGET_ISA __attribute__((target(TG_ISA_TARGET)))
#else
#define TG_TARGET_ISA
#endif

// A helper of a TG_TARGET_ISA function must be inlined into it to be compiled for its level.
#define TG_INLINE inline __attribute__((always_inline))

// One written on GCC/Clang vector types (streaming.h) needs the level's attribute as well: its
// vector operations are lowered to the registers of its own level before it is inlined.
#define TG_VECTOR_INLINE TG_INLINE TG_TARGET_ISA

template <typename T>
using carray = py::array_t<T, py::array::c_style>;

#include "buffer_cache.h"
#include "parallel.h"

inline void require(bool ok, const std::string& message) {
    if (!ok) throw py::value_error("tinygrad_like._C: " + message);
}

// An array's shape as Python writes it, "(2, 3)" or "(5,)", for error messages
inline std::string shape_text(const py::array& a) {
    std::string text = "(";
    for (py::ssize_t d = 0; d < a.ndim(); ++d) {
        text += (d ? ", " : "") + std::to_string(a.shape(d));
    }
    return text + (a.ndim() == 1 ? ",)" : ")");
}
