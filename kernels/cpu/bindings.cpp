// The module tinygrad_like._C (or its build for another instruction-set level, TG_MODULE_NAME):
// each kernel family registers its functions here. backend/native.py picks the build, wraps
// its functions into kernel-table entries and decides which ones are used.
#include "common.h"
#include "streaming.h"

namespace {

// The instruction-set levels this CPU runs, best first, as the names CMakeLists.txt builds
// (the same test GCC's own function multiversioning makes).
py::list cpu_isa_levels() {
    py::list levels;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v4")) levels.append("x86-64-v4");
    if (__builtin_cpu_supports("x86-64-v3")) levels.append("x86-64-v3");
#endif
    levels.append("baseline");
    return levels;
}

}  // namespace

void register_elementwise(py::module_& m);
void register_im2col(py::module_& m);
void register_conv_images(py::module_& m);
void register_pooling(py::module_& m);
void register_embedding(py::module_& m);
void register_layer_norm(py::module_& m);
void register_optim(py::module_& m);
void register_softmax(py::module_& m);
void register_short_attention(py::module_& m);
void register_reduce(py::module_& m);
void register_recurrent(py::module_& m);
void register_winograd(py::module_& m);
void register_blas(py::module_& m);

PYBIND11_MODULE(TG_MODULE_NAME, m) {
    static const char* malloc_setting = tg::tune_malloc();
    m.doc() = "tinygrad_like native CPU kernels (C++, pybind11, a worker pool of their own)";
    register_elementwise(m);
    register_im2col(m);
    register_conv_images(m);
    register_pooling(m);
    register_embedding(m);
    register_layer_norm(m);
    register_optim(m);
    register_softmax(m);
    register_short_attention(m);
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
    m.def("set_streaming_min_bytes", &tg::set_streaming_min_bytes, py::arg("bytes"),
          "Smallest output written with streaming stores (0: the default, 8 MiB)");
    m.def("streaming_min_bytes", [] { return tg::streaming_min_bytes().load(); });
    m.def("cpu_isa_levels", &cpu_isa_levels,
          "The instruction-set levels this CPU runs, best first ('baseline' always)");
    m.def("build_info", [] {
        py::dict info;
        info["threads"] = tg::num_threads();
        info["isa"] = TG_ISA_LEVEL;
        info["compiler"] = __VERSION__;
        info["malloc"] = malloc_setting;
        info["streaming_stores"] = tg::kCanStream;
        return info;
    });
}
