// The module tinygrad_like._C: each kernel family registers its functions here.
// backend/native.py wraps them into kernel-table entries and decides which ones are used.
#include "common.h"

void register_elementwise(py::module_& m);
void register_im2col(py::module_& m);
void register_pooling(py::module_& m);
void register_embedding(py::module_& m);
void register_layer_norm(py::module_& m);
void register_optim(py::module_& m);
void register_softmax(py::module_& m);
void register_reduce(py::module_& m);
void register_recurrent(py::module_& m);
void register_winograd(py::module_& m);
void register_blas(py::module_& m);

PYBIND11_MODULE(_C, m) {
    static const char* malloc_setting = tg::tune_malloc();
    m.doc() = "tinygrad_like native CPU kernels (C++, pybind11, a worker pool of their own)";
    register_elementwise(m);
    register_im2col(m);
    register_pooling(m);
    register_embedding(m);
    register_layer_norm(m);
    register_optim(m);
    register_softmax(m);
    register_reduce(m);
    register_recurrent(m);
    register_winograd(m);
    register_blas(m);
    m.def("set_num_threads", &tg::set_num_threads, py::arg("threads"),
          "Threads for the parallel loops (0: one per CPU this process may run on)");
    m.def("get_num_threads", &tg::num_threads);
    m.def("set_cache_limit", &tg::set_cache_limit, py::arg("bytes"),
          "Most bytes of freed output blocks kept for reuse (0: keep none)");
    m.def("cache_limit", &tg::cache_limit);
    m.def("cached_bytes", &tg::cached_bytes, "Bytes of freed output blocks held for reuse now");
    m.def("empty_cache", &tg::empty_cache, "Hand every cached block back to the system");
    m.def("build_info", [] {
        py::dict info;
        info["threads"] = tg::num_threads();
        info["isa"] = TG_MULTIVERSION_ISA;
        info["isa_in_use"] = tg_multiversion_isa_in_use();
        info["compiler"] = __VERSION__;
        info["malloc"] = malloc_setting;
        return info;
    });
}
