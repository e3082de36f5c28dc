// Binary arithmetic (+ - * /) and ReLU (forward and backward) on large float arrays, split
// over the worker pool.
//
// A NumPy ufunc runs on one core. On arrays of a million elements that one core is the
// bottleneck: memory traffic and the first-touch page faults of the fresh output both go
// faster with every core on them (PyTorch's CPU ops run on all of them). Each element is one
// IEEE operation, exactly NumPy's, so the results are the same bits. backend/native.py sends
// only same-shape C-contiguous operands (or one array and a Python scalar) above the pool's
// grain here; everything smaller or broadcasting stays with NumPy, whose per-call overhead
// is lower.
#include <algorithm>
#include <vector>

#include "common.h"

namespace {

enum class Op { kAdd, kSub, kMul, kDiv };

template <Op op, typename T>
TG_INLINE T apply(T a, T b) {
    if constexpr (op == Op::kAdd) return a + b;
    if constexpr (op == Op::kSub) return a - b;
    if constexpr (op == Op::kMul) return a * b;
    return a / b;
}

// out[i] = a[i] op b[i]; a scalar operand has step 0 (the loop is compiled for each case, so
// the step is a constant the vectoriser sees)
template <Op op, typename T, int64_t a_step, int64_t b_step>
TG_TARGET_ISA void binary_block(const T* a, const T* b, T* out, int64_t count) {
#pragma omp simd
    for (int64_t i = 0; i < count; ++i) out[i] = apply<op>(a[i * a_step], b[i * b_step]);
}

constexpr int64_t kBlock = 1 << 16;  // elements per task: 256 KiB of float32 output

// block(begin, count) over [0, size) in kBlock pieces on the pool, without the GIL
template <typename Block>
void for_blocks(int64_t size, Block block) {
    py::gil_scoped_release release;
    tg::parallel_for((size + kBlock - 1) / kBlock, size, [&](int64_t index) {
        const int64_t begin = index * kBlock;
        block(begin, std::min(kBlock, size - begin));
    });
}

template <Op op, typename T, int64_t a_step, int64_t b_step>
carray<T> run(const T* a, const T* b, const std::vector<py::ssize_t>& shape, int64_t size) {
    carray<T> out = tg::new_array<T>(shape);
    T* o = out.mutable_data();
    for_blocks(size, [&](int64_t begin, int64_t count) {
        binary_block<op, T, a_step, b_step>(a + begin * a_step, b + begin * b_step, o + begin,
                                            count);
    });
    return out;
}

// max(x, 0) with np.maximum(x, 0)'s bits: a NaN stays NaN, -0.0 becomes +0.0
template <typename T>
TG_TARGET_ISA void relu_block(const T* x, T* out, int64_t count) {
#pragma omp simd
    for (int64_t i = 0; i < count; ++i) out[i] = (x[i] > T(0) || x[i] != x[i]) ? x[i] : T(0);
}

// grad where x > 0, else 0 (np.where(x > 0, grad, 0), PyTorch's threshold_backward: a NaN
// or inf gradient behind an inactive unit does not leak through)
template <typename T>
TG_TARGET_ISA void relu_backward_block(const T* grad, const T* x, T* out, int64_t count) {
#pragma omp simd
    for (int64_t i = 0; i < count; ++i) out[i] = x[i] > T(0) ? grad[i] : T(0);
}

std::vector<py::ssize_t> shape_of(const py::array& array) {
    return std::vector<py::ssize_t>(array.shape(), array.shape() + array.ndim());
}

template <Op op, typename T>
carray<T> arrays(carray<T> a, carray<T> b) {
    require(a.ndim() == b.ndim() && std::equal(a.shape(), a.shape() + a.ndim(), b.shape()),
            "binary ops: both arrays must have one shape (NumPy handles broadcasting)");
    return run<op, T, 1, 1>(a.data(), b.data(), shape_of(a), a.size());
}

// NumPy's rule for a Python scalar beside a float array: the scalar becomes the array's dtype
template <Op op, typename T>
carray<T> array_scalar(carray<T> a, double b) {
    const T scalar = T(b);
    return run<op, T, 1, 0>(a.data(), &scalar, shape_of(a), a.size());
}

template <Op op, typename T>
carray<T> scalar_array(double a, carray<T> b) {
    const T scalar = T(a);
    return run<op, T, 0, 1>(&scalar, b.data(), shape_of(b), b.size());
}

template <typename T>
carray<T> relu(carray<T> x) {
    carray<T> out = tg::new_array<T>(shape_of(x));
    const T* in = x.data();
    T* o = out.mutable_data();
    for_blocks(x.size(), [&](int64_t begin, int64_t count) {
        relu_block(in + begin, o + begin, count);
    });
    return out;
}

template <typename T>
carray<T> relu_backward(carray<T> grad, carray<T> x) {
    require(grad.ndim() == x.ndim() && std::equal(x.shape(), x.shape() + x.ndim(), grad.shape()),
            "relu_backward: grad and x must have one shape");
    carray<T> out = tg::new_array<T>(shape_of(x));
    const T *g = grad.data(), *in = x.data();
    T* o = out.mutable_data();
    for_blocks(x.size(), [&](int64_t begin, int64_t count) {
        relu_backward_block(g + begin, in + begin, o + begin, count);
    });
    return out;
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
