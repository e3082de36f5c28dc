// Binary arithmetic (+ - * /) and ReLU (forward and backward) on large float arrays, split
// over the worker pool.
//
// A NumPy ufunc runs on one core. On arrays of a million elements that one core is the
// bottleneck: memory traffic and the first-touch page faults of the fresh output both go
// faster with every core on them (PyTorch's CPU ops run on all of them). Each element is one
// IEEE operation, exactly NumPy's, so the results are the same bits. backend/native.py sends
// only same-shape C-contiguous operands (or one array and a Python scalar) above the pool's
// grain here; everything smaller or broadcasting stays with NumPy, whose per-call overhead
// is lower. Outputs larger than the caches are written with streaming stores (streaming.h).
#include <algorithm>
#include <vector>

#include "common.h"
#include "streaming.h"

namespace {

enum class Op { kAdd, kSub, kMul, kDiv };

// The element functions take scalars or vector_t lanes alike (streaming.h), so the plain and
// the streaming loops compute the same bits.
template <Op op>
struct Arithmetic {
    template <typename V>
    TG_VECTOR_INLINE V operator()(V a, V b) const {
        if constexpr (op == Op::kAdd) return a + b;
        if constexpr (op == Op::kSub) return a - b;
        if constexpr (op == Op::kMul) return a * b;
        return a / b;
    }
};

// max(x, 0) with np.maximum(x, 0)'s bits: a NaN stays NaN, -0.0 becomes +0.0
struct Relu {
    template <typename V>
    TG_VECTOR_INLINE V operator()(V x) const { return ((x > V{}) | (x != x)) ? x : V{}; }
};

// grad where x > 0, else 0 (np.where(x > 0, grad, 0), PyTorch's threshold_backward: a NaN
// or inf gradient behind an inactive unit does not leak through)
struct ReluBackward {
    template <typename V>
    TG_VECTOR_INLINE V operator()(V grad, V x) const { return x > V{} ? grad : V{}; }
};

// out[i] = f(inputs.at(i)...) on one block; an operand of step 0 is a scalar (the loop is
// compiled for each case, so the step is a constant the vectoriser sees)
template <typename T, typename F, typename... Operands>
TG_TARGET_ISA void map_block(T* out, int64_t count, bool streaming, F f, Operands... inputs) {
    if (streaming) {
        tg::stream_map(out, count, f, inputs...);
        tg::stream_fence();
        return;
    }
#pragma omp simd
    for (int64_t i = 0; i < count; ++i) out[i] = f(inputs.at(i)...);
}

constexpr int64_t kBlock = 1 << 16;  // elements per task: 256 KiB of float32 output

// A new array of `shape` holding f(inputs...) elementwise, computed in kBlock pieces on the
// pool without the GIL, with streaming stores when it is larger than the caches.
template <typename T, typename F, typename... Operands>
carray<T> map(const std::vector<py::ssize_t>& shape, int64_t size, F f, Operands... inputs) {
    carray<T> out = tg::new_array<T>(shape);
    T* o = out.mutable_data();
    const bool streaming = tg::streams(size * int64_t(sizeof(T)));
    py::gil_scoped_release release;
    tg::parallel_for((size + kBlock - 1) / kBlock, size, [&](int64_t index) {
        const int64_t begin = index * kBlock;
        map_block(o + begin, std::min(kBlock, size - begin), streaming, f,
                  inputs.offset(begin)...);
    });
    return out;
}

template <typename T>
using Array = tg::Operand<T, 1>;
template <typename T>
using Scalar = tg::Operand<T, 0>;

std::vector<py::ssize_t> shape_of(const py::array& array) {
    return std::vector<py::ssize_t>(array.shape(), array.shape() + array.ndim());
}

void require_same_shape(const py::array& a, const py::array& b, const char* what) {
    require(a.ndim() == b.ndim() && std::equal(a.shape(), a.shape() + a.ndim(), b.shape()),
            what);
}

template <Op op, typename T>
carray<T> arrays(carray<T> a, carray<T> b) {
    require_same_shape(a, b, "binary ops: both arrays must have one shape (NumPy handles "
                             "broadcasting)");
    return map<T>(shape_of(a), a.size(), Arithmetic<op>{}, Array<T>{a.data()},
                  Array<T>{b.data()});
}

// NumPy's rule for a Python scalar beside a float array: the scalar becomes the array's dtype
template <Op op, typename T>
carray<T> array_scalar(carray<T> a, double b) {
    const T scalar = T(b);
    return map<T>(shape_of(a), a.size(), Arithmetic<op>{}, Array<T>{a.data()},
                  Scalar<T>{&scalar});
}

template <Op op, typename T>
carray<T> scalar_array(double a, carray<T> b) {
    const T scalar = T(a);
    return map<T>(shape_of(b), b.size(), Arithmetic<op>{}, Scalar<T>{&scalar},
                  Array<T>{b.data()});
}

template <typename T>
carray<T> relu(carray<T> x) {
    return map<T>(shape_of(x), x.size(), Relu{}, Array<T>{x.data()});
}

template <typename T>
carray<T> relu_backward(carray<T> grad, carray<T> x) {
    require_same_shape(grad, x, "relu_backward: grad and x must have one shape");
    return map<T>(shape_of(x), x.size(), ReluBackward{}, Array<T>{grad.data()},
                  Array<T>{x.data()});
}

template <Op op, typename T>
void register_op(py::module_& m, const char* name) {
    m.def(name, &arrays<op, T>, py::arg("a").noconvert(), py::arg("b").noconvert());
    m.def(name, &array_scalar<op, T>, py::arg("a").noconvert(), py::arg("b"));
    m.def(name, &scalar_array<op, T>, py::arg("a"), py::arg("b").noconvert());
}

template <typename T>
void register_for(py::module_& m) {
    register_op<Op::kAdd, T>(m, "add");
    register_op<Op::kSub, T>(m, "sub");
    register_op<Op::kMul, T>(m, "mul");
    register_op<Op::kDiv, T>(m, "div");
    m.def("relu", &relu<T>, py::arg("x").noconvert());
    m.def("relu_backward", &relu_backward<T>, py::arg("grad").noconvert(),
          py::arg("x").noconvert());
}

}  // namespace

void register_elementwise(py::module_& m) {
    register_for<float>(m);
    register_for<double>(m);
    m.attr("parallel_grain") = tg::kParallelGrain;
}
