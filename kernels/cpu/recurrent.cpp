// The GRU and LSTM gate arithmetic of one time step, forward and backward, fused into one
// pass per row: the native versions of backend/reference_rnn.py's gru_gates, lstm_gates and their
// backward (that file has the equations and PyTorch's gate order).
//
// At recurrent batch sizes the NumPy reference is a dozen ufunc calls on (N, H) slices per
// step, each with its temporary; here each element is read once and every output written
// once. sigmoid and tanh are vector_math.h's (float32) or std::exp and std::tanh (float64);
// sigmoid is 1 / (1 + exp(-x)), one exp and one division, where the reference's
// (tanh(x / 2) + 1) / 2 made the forward no faster than NumPy's. Rows go to the pool when a
// step is large; a typical step (32 x 256) runs on the calling thread.
#include <string>
#include <vector>

#include "common.h"
#include "vector_math.h"

namespace {

using tg::sigmoid_of;
using tg::tanh_of;

// r, z, n, h_n (hp's third part, kept for backward) and h' for one row: x and hp are (3H,)
// rows, h and the outputs (H,)
template <typename T>
TG_TARGET_ISA void gru_row(const T* x, const T* hp, const T* h, T* out, T* r, T* z, T* n,
                             T* h_n, int64_t hidden) {
#pragma omp simd
    for (int64_t j = 0; j < hidden; ++j) {
        const T reset = sigmoid_of(x[j] + hp[j]);
        const T update = sigmoid_of(x[hidden + j] + hp[hidden + j]);
        const T candidate = tanh_of(x[2 * hidden + j] + reset * hp[2 * hidden + j]);
        r[j] = reset;
        z[j] = update;
        n[j] = candidate;
        h_n[j] = hp[2 * hidden + j];
        out[j] = candidate + update * (h[j] - candidate);
    }
}

template <typename T>
TG_TARGET_ISA void gru_backward_row(const T* grad, const T* r, const T* z, const T* n,
                                      const T* h_n, const T* h, T* d_x, T* d_hp, T* d_h,
                                      int64_t hidden) {
#pragma omp simd
    for (int64_t j = 0; j < hidden; ++j) {
        const T g = grad[j], reset = r[j], update = z[j], candidate = n[j];
        const T d_n = g * (T(1) - update) * (T(1) - candidate * candidate);
        const T d_r = d_n * h_n[j] * reset * (T(1) - reset);
        const T d_z = g * (h[j] - candidate) * update * (T(1) - update);
        d_x[j] = d_hp[j] = d_r;
        d_x[hidden + j] = d_hp[hidden + j] = d_z;
        d_x[2 * hidden + j] = d_n;
        d_hp[2 * hidden + j] = d_n * reset;
        d_h[j] = g * update;
    }
}

// gates (i, f, g, o) after their nonlinearities, c' and h' for one row: pre-activations are
// x + hp, (4H,) rows
template <typename T>
TG_TARGET_ISA void lstm_row(const T* x, const T* hp, const T* c, T* gates, T* h_new,
                              T* c_new, T* tanh_c, int64_t hidden) {
#pragma omp simd
    for (int64_t j = 0; j < hidden; ++j) {
        const T input = sigmoid_of(x[j] + hp[j]);
        const T forget = sigmoid_of(x[hidden + j] + hp[hidden + j]);
        const T cell = tanh_of(x[2 * hidden + j] + hp[2 * hidden + j]);
        const T output = sigmoid_of(x[3 * hidden + j] + hp[3 * hidden + j]);
        gates[j] = input;
        gates[hidden + j] = forget;
        gates[2 * hidden + j] = cell;
        gates[3 * hidden + j] = output;
        const T state = forget * c[j] + input * cell;
        const T squashed = tanh_of(state);
        c_new[j] = state;
        tanh_c[j] = squashed;
        h_new[j] = output * squashed;
    }
}

template <typename T>
TG_TARGET_ISA void lstm_backward_row(const T* d_h, const T* d_c_new, const T* gates,
                                       const T* c, const T* tanh_c, T* d_pre, T* d_c_prev,
                                       int64_t hidden) {
#pragma omp simd
    for (int64_t j = 0; j < hidden; ++j) {
        const T input = gates[j], forget = gates[hidden + j], cell = gates[2 * hidden + j],
                output = gates[3 * hidden + j], squashed = tanh_c[j];
        const T d_c = d_c_new[j] + d_h[j] * output * (T(1) - squashed * squashed);
        d_pre[j] = d_c * cell * input * (T(1) - input);
        d_pre[hidden + j] = d_c * c[j] * forget * (T(1) - forget);
        d_pre[2 * hidden + j] = d_c * input * (T(1) - cell * cell);
        d_pre[3 * hidden + j] = d_h[j] * squashed * output * (T(1) - output);
        d_c_prev[j] = d_c * forget;
    }
}

void require_rows(const py::array& a, int64_t rows, int64_t columns, const char* what) {
    if (a.ndim() == 2 && a.shape(0) == rows && a.shape(1) == columns) return;
    std::string shape = "(";
    for (py::ssize_t d = 0; d < a.ndim(); ++d) shape += (d ? ", " : "") + std::to_string(a.shape(d));
    require(false, std::string(what) + ": expected (" + std::to_string(rows) + ", " +
                       std::to_string(columns) + "), got " + shape + ")");
}

// x_proj, h_proj (N, 3H) and h (N, H) -> (h' (N, H), r z n h_n as one (4, N, H) array)
template <typename T>
py::tuple gru_gates(carray<T> x_proj, carray<T> h_proj, carray<T> h) {
    require(h.ndim() == 2, "gru_gates: expected h (N, H)");
    const int64_t rows = h.shape(0), hidden = h.shape(1);
    require_rows(x_proj, rows, 3 * hidden, "gru_gates: x_proj");
    require_rows(h_proj, rows, 3 * hidden, "gru_gates: h_proj");
    carray<T> out({rows, hidden}), saved({int64_t(4), rows, hidden});
    const T *x = x_proj.data(), *hp = h_proj.data(), *state = h.data();
    T *o = out.mutable_data(), *s = saved.mutable_data();
    const int64_t plane = rows * hidden;
    {
        py::gil_scoped_release release;
        tg::parallel_for(rows, 7 * plane, [&](int64_t row) {
            gru_row(x + row * 3 * hidden, hp + row * 3 * hidden, state + row * hidden,
                    o + row * hidden, s + row * hidden, s + plane + row * hidden,
                    s + 2 * plane + row * hidden, s + 3 * plane + row * hidden, hidden);
        });
    }
    return py::make_tuple(out, saved);
}

// grad, r, z, n, h_n, h (N, H) -> (d x_proj (N, 3H), d h_proj (N, 3H), d h (N, H))
template <typename T>
py::tuple gru_gates_backward(carray<T> grad, carray<T> r, carray<T> z, carray<T> n,
                             carray<T> h_n, carray<T> h) {
    require(h.ndim() == 2, "gru_gates_backward: expected h (N, H)");
    const int64_t rows = h.shape(0), hidden = h.shape(1);
    for (const py::array& a : {grad, r, z, n, h_n})
        require_rows(a, rows, hidden, "gru_gates_backward: grad and saved gates");
    carray<T> d_x({rows, 3 * hidden}), d_hp({rows, 3 * hidden}), d_h({rows, hidden});
    const T *g = grad.data(), *rr = r.data(), *zz = z.data(), *nn = n.data(),
            *hn = h_n.data(), *hh = h.data();
    T *dx = d_x.mutable_data(), *dhp = d_hp.mutable_data(), *dh = d_h.mutable_data();
    {
        py::gil_scoped_release release;
        tg::parallel_for(rows, 12 * rows * hidden, [&](int64_t row) {
            const int64_t at = row * hidden;
            gru_backward_row(g + at, rr + at, zz + at, nn + at, hn + at, hh + at,
                             dx + 3 * at, dhp + 3 * at, dh + at, hidden);
        });
    }
    return py::make_tuple(d_x, d_hp, d_h);
}

// x_proj, h_proj (N, 4H) and c (N, H) -> ((h', c') as (2, N, H), gates (N, 4H), tanh(c'))
template <typename T>
py::tuple lstm_gates(carray<T> x_proj, carray<T> h_proj, carray<T> c) {
    require(c.ndim() == 2, "lstm_gates: expected c (N, H)");
    const int64_t rows = c.shape(0), hidden = c.shape(1);
    require_rows(x_proj, rows, 4 * hidden, "lstm_gates: x_proj");
    require_rows(h_proj, rows, 4 * hidden, "lstm_gates: h_proj");
    carray<T> state({int64_t(2), rows, hidden}), gates({rows, 4 * hidden}),
        tanh_c({rows, hidden});
    const T *x = x_proj.data(), *hp = h_proj.data(), *cc = c.data();
    T *st = state.mutable_data(), *gt = gates.mutable_data(), *tc = tanh_c.mutable_data();
    const int64_t plane = rows * hidden;
    {
        py::gil_scoped_release release;
        tg::parallel_for(rows, 8 * plane, [&](int64_t row) {
            const int64_t at = row * hidden;
            lstm_row(x + 4 * at, hp + 4 * at, cc + at, gt + 4 * at, st + at, st + plane + at,
                     tc + at, hidden);
        });
    }
    return py::make_tuple(state, gates, tanh_c);
}

// grad (2, N, H) of (h', c'), gates (N, 4H), c, tanh(c') (N, H) -> (d pre (N, 4H), d c)
template <typename T>
py::tuple lstm_gates_backward(carray<T> grad, carray<T> gates, carray<T> c, carray<T> tanh_c) {
    require(c.ndim() == 2, "lstm_gates_backward: expected c (N, H)");
    const int64_t rows = c.shape(0), hidden = c.shape(1);
    require(grad.ndim() == 3 && grad.shape(0) == 2 && grad.shape(1) == rows &&
                grad.shape(2) == hidden,
            "lstm_gates_backward: expected grad (2, N, H)");
    require_rows(gates, rows, 4 * hidden, "lstm_gates_backward: gates");
    require_rows(tanh_c, rows, hidden, "lstm_gates_backward: tanh_c");
    carray<T> d_pre({rows, 4 * hidden}), d_c({rows, hidden});
    const T *g = grad.data(), *gt = gates.data(), *cc = c.data(), *tc = tanh_c.data();
    T *dp = d_pre.mutable_data(), *dc = d_c.mutable_data();
    const int64_t plane = rows * hidden;
    {
        py::gil_scoped_release release;
        tg::parallel_for(rows, 10 * plane, [&](int64_t row) {
            const int64_t at = row * hidden;
            lstm_backward_row(g + at, g + plane + at, gt + 4 * at, cc + at, tc + at,
                              dp + 4 * at, dc + at, hidden);
        });
    }
    return py::make_tuple(d_pre, d_c);
}

template <typename T>
void register_for(py::module_& m) {
    m.def("gru_gates", &gru_gates<T>, py::arg("x_proj").noconvert(),
          py::arg("h_proj").noconvert(), py::arg("h").noconvert());
    m.def("gru_gates_backward", &gru_gates_backward<T>, py::arg("grad").noconvert(),
          py::arg("r").noconvert(), py::arg("z").noconvert(), py::arg("n").noconvert(),
          py::arg("h_n").noconvert(), py::arg("h").noconvert());
    m.def("lstm_gates", &lstm_gates<T>, py::arg("x_proj").noconvert(),
          py::arg("h_proj").noconvert(), py::arg("c").noconvert());
    m.def("lstm_gates_backward", &lstm_gates_backward<T>, py::arg("grad").noconvert(),
          py::arg("gates").noconvert(), py::arg("c").noconvert(), py::arg("tanh_c").noconvert());
}

TG_TARGET_ISA void tanh_array(const float* x, float* out, int64_t size) {
#pragma omp simd
    for (int64_t i = 0; i < size; ++i) out[i] = tg::vector_tanh(x[i]);
}

carray<float> vector_tanh_array(carray<float> x) {
    carray<float> out(std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim()));
    tanh_array(x.data(), out.mutable_data(), x.size());
    return out;
}

}  // namespace

void register_recurrent(py::module_& m) {
    register_for<float>(m);
    register_for<double>(m);
    m.def("vector_tanh", &vector_tanh_array, py::arg("x").noconvert(),
          "The float32 tanh of the recurrent kernels, elementwise (for its accuracy test).");
}
