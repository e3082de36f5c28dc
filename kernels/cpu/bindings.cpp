// The module tinygrad_like._C: each kernel family registers its functions here.
// backend/native.py wraps them into kernel-table entries and decides which ones are used.
#ifdef _OPENMP
#include <omp.h>
#endif

#include "common.h"

void register_im2col(py::module_& m);
void register_pooling(py::module_& m);
void register_embedding(py::module_& m);
void register_layer_norm(py::module_& m);
void register_optim(py::module_& m);
void register_softmax(py::module_& m);

PYBIND11_MODULE(_C, m) {
    m.doc() = "tinygrad_like native CPU kernels (C++, pybind11, OpenMP)";
    register_im2col(m);
    register_pooling(m);
    register_embedding(m);
    register_layer_norm(m);
    register_optim(m);
    register_softmax(m);
    m.def("set_num_threads", [](int threads) { g_num_threads = threads; },
          "Threads for the parallel loops (0: OpenMP's default)");
    m.def("build_info", [] {
        py::dict info;
#ifdef _OPENMP
        info["openmp"] = true;
        info["max_threads"] = tg_threads();
#else
        info["openmp"] = false;
        info["max_threads"] = 1;
#endif
        info["isa"] = TG_MULTIVERSION_ISA;
        info["compiler"] = __VERSION__;
        return info;
    });
}
