// Softmax and log-softmax over the rows of an (R, C) array, forward and backward, and the
// fused cross-entropy of (N, C) logits against class indices (forward keeps only each row's
// log-sum-exp; backward rebuilds the probabilities from it).
//
// One row per OpenMP iteration: a row of 1024 float32 is 4 KiB and stays in L1 while it is
// read two or three times (max, then exp and sum, then scale), so main memory sees one read
// of x and one write of the output. The NumPy reference (backend/cpu.py) makes about five
// full passes with temporaries for the forward and four for the backward. Row sums
// accumulate in double.
//
// The exp must vectorise to make this pay: float32 uses vector_exp (vector_math.h), a
// branch-free polynomial the compiler vectorises; float64 calls std::exp per element (the
// fused passes still save the memory traffic). The forward pass is then bound by the
// polynomial's arithmetic, not by memory, so this file alone is compiled with fused
// multiply-adds (CMakeLists.txt).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "common.h"
#include "streaming.h"
#include "vector_math.h"

namespace {

// every exponent here is at most zero: a value minus its row maximum or log-sum-exp, or a
// log-probability
using tg::exp_of_at_most_zero;
using tg::vector_exp;

// 32 running maxima (four AVX2 vectors of float32), not one: a single vector max chain
// waits on its own latency at every step.
template <typename T>
TG_INLINE T row_max(const T* x, int64_t columns) {
    constexpr int64_t kLanes = 32;
    T lanes[kLanes];
    for (int64_t j = 0; j < kLanes; ++j) lanes[j] = -INFINITY;
    int64_t c = 0;
    for (; c + kLanes <= columns; c += kLanes)
#pragma omp simd
        for (int64_t j = 0; j < kLanes; ++j) lanes[j] = x[c + j] > lanes[j] ? x[c + j] : lanes[j];
    for (; c < columns; ++c) lanes[0] = x[c] > lanes[0] ? x[c] : lanes[0];
    T top = lanes[0];
    for (int64_t j = 1; j < kLanes; ++j) top = lanes[j] > top ? lanes[j] : top;
    return top;
}

template <typename T>
TG_INLINE double row_sum(const T* x, int64_t columns) {
    double sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int64_t c = 0; c < columns; ++c) sum += x[c];
    return sum;
}

// The backward's output, when it is larger than the caches, is written with streaming stores
// (streaming.h), through an element function taken on scalars or vector lanes alike. The
// forward's is not: it is bound by vector_exp's arithmetic, and streamed it ran slower
// (docs/performance.md, "Streaming stores").
template <typename T>
struct SoftmaxGrad {
    T dot;

    template <typename V>
    TG_VECTOR_INLINE V operator()(V y, V grad) const { return y * (grad - dot); }
};

template <typename T>
TG_TARGET_ISA void softmax_row(const T* x, T* out, int64_t columns) {
    const T top = row_max(x, columns);
#pragma omp simd
    for (int64_t c = 0; c < columns; ++c) out[c] = exp_of_at_most_zero(x[c] - top);
    const T scale = T(1.0 / row_sum(out, columns));
#pragma omp simd
    for (int64_t c = 0; c < columns; ++c) out[c] *= scale;
}

template <typename T>
TG_TARGET_ISA void log_softmax_row(const T* x, T* out, int64_t columns) {
    const T top = row_max(x, columns);
#pragma omp simd
    for (int64_t c = 0; c < columns; ++c)
        out[c] = exp_of_at_most_zero(x[c] - top);  // out as scratch
    const T log_sum = T(std::log(row_sum(out, columns)));
#pragma omp simd
    for (int64_t c = 0; c < columns; ++c) out[c] = (x[c] - top) - log_sum;
}

// y * (g - <g, y>)
template <typename T>
TG_TARGET_ISA void softmax_backward_row(const T* grad, const T* out, T* dx, int64_t columns,
                                        bool streaming) {
    double dot = 0;
#pragma omp simd reduction(+ : dot)
    for (int64_t c = 0; c < columns; ++c) dot += double(grad[c]) * out[c];
    const SoftmaxGrad<T> softmax_grad{T(dot)};
    if (streaming) {
        tg::stream_map(dx, columns, softmax_grad, tg::Operand<T, 1>{out}, tg::Operand<T, 1>{grad});
        return;
    }
#pragma omp simd
    for (int64_t c = 0; c < columns; ++c) dx[c] = softmax_grad(out[c], grad[c]);
}

// g - exp(y) * sum(g); never streamed (`streaming` unused): vector_exp is written for the
// vectoriser, not on vector types
template <typename T>
TG_TARGET_ISA void log_softmax_backward_row(const T* grad, const T* out, T* dx, int64_t columns,
                                            bool /*streaming*/) {
    double sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int64_t c = 0; c < columns; ++c) sum += grad[c];
    const T sum_t = T(sum);
#pragma omp simd
    for (int64_t c = 0; c < columns; ++c) dx[c] = grad[c] - exp_of_at_most_zero(out[c]) * sum_t;
}

template <typename T, void (*Row)(const T*, T*, int64_t)>
carray<T> forward(carray<T> x) {
    require(x.ndim() == 2, "softmax: expected a 2-D (rows, columns) input");
    const int64_t rows = x.shape(0), columns = x.shape(1);
    carray<T> out = tg::new_array<T>({rows, columns});
    const T* in = x.data();
    T* o = out.mutable_data();
    {
        py::gil_scoped_release release;
        tg::parallel_for(rows, rows * columns, [&](int64_t row) {
            Row(in + row * columns, o + row * columns, columns);
        });
    }
    return out;
}

template <typename T, void (*Row)(const T*, const T*, T*, int64_t, bool)>
carray<T> backward(carray<T> grad, carray<T> out) {
    require(grad.ndim() == 2 && out.ndim() == 2 && grad.shape(0) == out.shape(0) &&
                grad.shape(1) == out.shape(1),
            "softmax_backward: grad and out must be (rows, columns) of the same shape");
    const int64_t rows = out.shape(0), columns = out.shape(1);
    carray<T> dx = tg::new_array<T>({rows, columns});
    const T *g = grad.data(), *y = out.data();
    T* d = dx.mutable_data();
    const bool streaming = tg::streams(dx.nbytes());
    {
        py::gil_scoped_release release;
        tg::parallel_ranges(rows, tg::range_count(rows, rows * columns),
                            [&](int64_t, int64_t begin, int64_t end) {
            for (int64_t row = begin; row < end; ++row) {
                const int64_t at = row * columns;
                Row(g + at, y + at, d + at, columns, streaming);
            }
            if (streaming) tg::stream_fence();
        });
    }
    return dx;
}

// One row's cross-entropy: lse = max + log(sum(exp(x - max))), and the loss
// lse - (1 - s) x[target] - (s / C) sum(x), the smoothing term only when s != 0 (a masked
// -inf logit must not make 0 * -inf = NaN). Sums in double, as for softmax.
template <typename T>
TG_TARGET_ISA void cross_entropy_row(const T* x, int64_t columns, int64_t target, bool kept,
                                       double smoothing, T* loss, T* lse) {
    const T top = row_max(x, columns);
    double sum = 0, total = 0;
#pragma omp simd reduction(+ : sum, total)
    for (int64_t c = 0; c < columns; ++c) {
        sum += exp_of_at_most_zero(x[c] - top);
        total += x[c];
    }
    const double row_lse = double(top) + std::log(sum);
    *lse = T(row_lse);
    double value = row_lse - (1 - smoothing) * double(x[target]);
    if (smoothing != 0) value -= smoothing / double(columns) * total;
    *loss = kept ? T(value) : T(0);
}

// g (exp(x - lse) - s / C - (1 - s) [c == target]), zero on an ignored row
template <typename T>
TG_TARGET_ISA void cross_entropy_backward_row(const T* x, int64_t columns, int64_t target,
                                                T scale, T lse, T smoothing, T* dx) {
    const T uniform = smoothing / T(columns);
#pragma omp simd
    for (int64_t c = 0; c < columns; ++c)
        dx[c] = (exp_of_at_most_zero(x[c] - lse) - uniform) * scale;
    dx[target] -= (T(1) - smoothing) * scale;
}

// One key block of tiled attention's online softmax, for one row of scores s (in place):
// the running max m and sum l move to the block, s becomes exp(s - m_new), and the factor
// exp(m_old - m_new) that rescales the row's output accumulator is returned. A row with no
// visible key yet keeps m = -inf and is shifted by 0 (not by -inf: -inf - -inf is NaN).
template <typename T>
TG_TARGET_ISA T online_softmax_row(T* s, int64_t columns, T* running_max, T* running_sum) {
    const T block_top = row_max(s, columns);
    const T previous = *running_max;
    const T top = block_top > previous ? block_top : previous;
    const T shift = top == -INFINITY ? T(0) : top;
#pragma omp simd
    for (int64_t c = 0; c < columns; ++c) s[c] = exp_of_at_most_zero(s[c] - shift);
    const T rescale = exp_of_at_most_zero(previous - shift);
    *running_sum = T(double(*running_sum) * rescale + row_sum(s, columns));
    *running_max = top;
    return rescale;
}

// One block row of tiled attention's backward, in place: s (the row's scores) becomes the
// probabilities P = exp(s - lse), and ds (holding dO V^T) becomes dS = P * (ds - delta),
// delta = rowsum(dO * O). A row with lse = +inf (no visible key) gets P = 0 and dS = 0.
template <typename T>
TG_TARGET_ISA void attention_backward_row(T* s, T* ds, int64_t columns, T lse, T delta) {
#pragma omp simd
    for (int64_t c = 0; c < columns; ++c) {
        const T probability = exp_of_at_most_zero(s[c] - lse);
        s[c] = probability;
        ds[c] = probability * (ds[c] - delta);
    }
}

// the class of each row, checked: kept rows need 0 <= target < C; ignored rows read class 0
std::vector<int64_t> checked_targets(const carray<int64_t>& target, int64_t rows,
                                     int64_t columns, int64_t ignore_index, const char* op) {
    require(target.ndim() == 1 && target.shape(0) == rows,
            std::string(op) + ": expected target (N,) for logits (N, C)");
    std::vector<int64_t> classes(rows);
    const int64_t* t = target.data();
    for (int64_t r = 0; r < rows; ++r) {
        if (t[r] == ignore_index) {
            classes[r] = -1;
        } else if (t[r] < 0 || t[r] >= columns) {
            throw py::index_error(std::string(op) + ": target " + std::to_string(t[r]) +
                                  " is out of range for " + std::to_string(columns) + " classes");
        } else {
            classes[r] = t[r];
        }
    }
    return classes;
}

template <typename T>
py::tuple cross_entropy(carray<T> logits, carray<int64_t> target, int64_t ignore_index,
                        double smoothing) {
    require(logits.ndim() == 2 && logits.shape(1) > 0,
            "cross_entropy: expected logits (N, C) with C > 0");
    const int64_t rows = logits.shape(0), columns = logits.shape(1);
    const std::vector<int64_t> classes =
        checked_targets(target, rows, columns, ignore_index, "cross_entropy");
    carray<T> losses({rows}), lse({rows});
    const T* x = logits.data();
    T *loss_out = losses.mutable_data(), *lse_out = lse.mutable_data();
    {
        py::gil_scoped_release release;
        tg::parallel_for(rows, rows * columns, [&](int64_t r) {
            const bool kept = classes[r] >= 0;
            cross_entropy_row(x + r * columns, columns, kept ? classes[r] : 0, kept, smoothing,
                              loss_out + r, lse_out + r);
        });
    }
    return py::make_tuple(losses, lse);
}

template <typename T>
carray<T> cross_entropy_backward(carray<T> grad, carray<T> logits, carray<int64_t> target,
                                 carray<T> lse, int64_t ignore_index, double smoothing) {
    require(logits.ndim() == 2 && grad.ndim() == 1 && lse.ndim() == 1 &&
                grad.shape(0) == logits.shape(0) && lse.shape(0) == logits.shape(0),
            "cross_entropy_backward: expected grad (N,), logits (N, C) and lse (N,)");
    const int64_t rows = logits.shape(0), columns = logits.shape(1);
    const std::vector<int64_t> classes =
        checked_targets(target, rows, columns, ignore_index, "cross_entropy_backward");
    carray<T> dx = tg::new_array<T>({rows, columns});
    const T *x = logits.data(), *g = grad.data(), *row_lse = lse.data();
    T* d = dx.mutable_data();
    {
        py::gil_scoped_release release;
        tg::parallel_for(rows, rows * columns, [&](int64_t r) {
            T* out = d + r * columns;
            if (classes[r] < 0) {
                std::fill(out, out + columns, T(0));
                return;
            }
            cross_entropy_backward_row(x + r * columns, columns, classes[r], g[r], row_lse[r],
                                       T(smoothing), out);
        });
    }
    return dx;
}

TG_TARGET_ISA void exp_array(const float* x, float* out, int64_t size) {
#pragma omp simd
    for (int64_t i = 0; i < size; ++i) out[i] = vector_exp(x[i]);
}

// scores (R, C), row_max and row_sum (R,): one online-softmax step over every row, in place;
// returns each row's rescale factor. It runs on the calling thread: tiled attention calls
// it from one Python thread per core, each on its own group of heads (cpu_attention.py).
template <typename T>
carray<T> online_softmax_step(py::array_t<T> scores, py::array_t<T> running_max,
                              py::array_t<T> running_sum) {
    const bool ok = scores.ndim() == 2 && running_max.ndim() == 1 && running_sum.ndim() == 1 &&
                    running_max.shape(0) == scores.shape(0) &&
                    running_sum.shape(0) == scores.shape(0);
    require(ok, "online_softmax_step: expected scores (R, C) and row_max, row_sum (R,)");
    for (const py::array* array : {&scores, &running_max, &running_sum})
        require((array->flags() & py::array::c_style) && array->writeable(),
                "online_softmax_step: scores, row_max and row_sum must be C-contiguous and "
                "writeable");
    const int64_t rows = scores.shape(0), columns = scores.shape(1);
    carray<T> rescale = tg::new_array<T>({rows});
    T *s = scores.mutable_data(), *m = running_max.mutable_data(),
      *l = running_sum.mutable_data(), *r = rescale.mutable_data();
    {
        py::gil_scoped_release release;
        for (int64_t row = 0; row < rows; ++row)
            r[row] = online_softmax_row(s + row * columns, columns, m + row, l + row);
    }
    return rescale;
}

// scores and dscores (R, C), lse and delta (R,): attention_backward_row over every row, in
// place, on the calling thread (as online_softmax_step).
template <typename T>
void attention_backward_step(py::array_t<T> scores, carray<T> lse, py::array_t<T> dscores,
                             carray<T> delta) {
    const bool ok = scores.ndim() == 2 && dscores.ndim() == 2 && lse.ndim() == 1 &&
                    delta.ndim() == 1 && dscores.shape(0) == scores.shape(0) &&
                    dscores.shape(1) == scores.shape(1) && lse.shape(0) == scores.shape(0) &&
                    delta.shape(0) == scores.shape(0);
    require(ok, "attention_backward_step: expected scores, dscores (R, C) and lse, delta (R,)");
    for (const py::array* array : {&scores, &dscores})
        require((array->flags() & py::array::c_style) && array->writeable(),
                "attention_backward_step: scores and dscores must be C-contiguous and writeable");
    const int64_t rows = scores.shape(0), columns = scores.shape(1);
    T *s = scores.mutable_data(), *ds = dscores.mutable_data();
    const T *l = lse.data(), *d = delta.data();
    py::gil_scoped_release release;
    for (int64_t row = 0; row < rows; ++row)
        attention_backward_row(s + row * columns, ds + row * columns, columns, l[row], d[row]);
}

carray<float> vector_exp_array(carray<float> x) {
    carray<float> out(std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim()));
    exp_array(x.data(), out.mutable_data(), x.size());
    return out;
}

template <typename T>
void register_for(py::module_& m) {
    m.def("softmax", &forward<T, softmax_row<T>>, py::arg("x").noconvert());
    m.def("log_softmax", &forward<T, log_softmax_row<T>>, py::arg("x").noconvert());
    m.def("softmax_backward", &backward<T, softmax_backward_row<T>>,
          py::arg("grad").noconvert(), py::arg("out").noconvert());
    m.def("log_softmax_backward", &backward<T, log_softmax_backward_row<T>>,
          py::arg("grad").noconvert(), py::arg("out").noconvert());
    m.def("cross_entropy", &cross_entropy<T>, py::arg("logits").noconvert(),
          py::arg("target").noconvert(), py::arg("ignore_index"), py::arg("label_smoothing"));
    m.def("cross_entropy_backward", &cross_entropy_backward<T>, py::arg("grad").noconvert(),
          py::arg("logits").noconvert(), py::arg("target").noconvert(), py::arg("lse").noconvert(),
          py::arg("ignore_index"), py::arg("label_smoothing"));
    m.def("online_softmax_step", &online_softmax_step<T>, py::arg("scores").noconvert(),
          py::arg("row_max").noconvert(), py::arg("row_sum").noconvert());
    m.def("attention_backward_step", &attention_backward_step<T>, py::arg("scores").noconvert(),
          py::arg("lse").noconvert(), py::arg("dscores").noconvert(), py::arg("delta").noconvert());
}

}  // namespace

void register_softmax(py::module_& m) {
    register_for<float>(m);
    register_for<double>(m);
    m.def("vector_exp", &vector_exp_array, py::arg("x").noconvert(),
          "The float32 exp of the softmax kernels, elementwise (for its accuracy test).");
}
