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
//
// The whole GRU sequence, forward and backward (reference_rnn.py's gru_sequence and its
// backward), runs here too, its steps' GEMMs and gates shared out by blocks of hidden units
// (the section "a whole GRU layer direction" below).
#include <algorithm>
#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "blas.h"
#include "common.h"
#include "vector_math.h"

namespace {

using tg::sigmoid_of;
using tg::tanh_of;

// r, z, n, h_n (hp's third part, kept for backward) and h' for `count` units of one row: x
// and hp hold the units' r, z and n parts `x_gap` and `hp_gap` apart (the hidden size, for
// whole (3H,) rows), h and the outputs the units themselves
template <typename T>
TG_TARGET_ISA void gru_units(const T* x, int64_t x_gap, const T* hp, int64_t hp_gap,
                               const T* h, T* out, T* r, T* z, T* n, T* h_n, int64_t count) {
#pragma omp simd
    for (int64_t j = 0; j < count; ++j) {
        const T reset = sigmoid_of(x[j] + hp[j]);
        const T update = sigmoid_of(x[x_gap + j] + hp[hp_gap + j]);
        const T candidate = tanh_of(x[2 * x_gap + j] + reset * hp[2 * hp_gap + j]);
        r[j] = reset;
        z[j] = update;
        n[j] = candidate;
        h_n[j] = hp[2 * hp_gap + j];
        out[j] = candidate + update * (h[j] - candidate);
    }
}

// The backward of gru_units for `count` units of one row: grad + carry (the gradient from
// the output and from the next step) -> d x_proj and d h_proj (their r, z, n parts `gap`
// apart, the hidden size for whole (3H,) rows) and d h along the direct path.
template <typename T>
TG_TARGET_ISA void gru_backward_units(const T* grad, const T* carry, const T* r, const T* z,
                                        const T* n, const T* h_n, const T* h, T* d_x, T* d_hp,
                                        int64_t gap, T* d_h, int64_t count) {
#pragma omp simd
    for (int64_t j = 0; j < count; ++j) {
        const T g = grad[j] + carry[j], reset = r[j], update = z[j], candidate = n[j];
        const T d_n = g * (T(1) - update) * (T(1) - candidate * candidate);
        const T d_r = d_n * h_n[j] * reset * (T(1) - reset);
        const T d_z = g * (h[j] - candidate) * update * (T(1) - update);
        d_x[j] = d_hp[j] = d_r;
        d_x[gap + j] = d_hp[gap + j] = d_z;
        d_x[2 * gap + j] = d_n;
        d_hp[2 * gap + j] = d_n * reset;
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
    require(false, std::string(what) + ": expected (" + std::to_string(rows) + ", " +
                       std::to_string(columns) + "), got " + shape_text(a));
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
            gru_units(x + row * 3 * hidden, hidden, hp + row * 3 * hidden, hidden,
                      state + row * hidden, o + row * hidden, s + row * hidden,
                      s + plane + row * hidden, s + 2 * plane + row * hidden,
                      s + 3 * plane + row * hidden, hidden);
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
        const std::vector<T> no_carry(hidden, T(0));
        tg::parallel_for(rows, 12 * rows * hidden, [&](int64_t row) {
            const int64_t at = row * hidden;
            gru_backward_units(g + at, no_carry.data(), rr + at, zz + at, nn + at, hn + at,
                               hh + at, dx + 3 * at, dhp + 3 * at, hidden, dh + at, hidden);
        });
    }
    return py::make_tuple(d_x, d_hp, d_h);
}

// ---- a whole GRU layer direction ------------------------------------------------------------
//
// reference_rnn.gru_sequence's loops, here. A forward step is h_proj = h @ W_hh^T (+ b_hh)
// and the gates; a backward step the gates' backward, then d h = d h_direct + d h_proj @ W_hh.
// The hidden units are cut into blocks, one per thread, and each step's work into one task per
// block: the GEMMs of a block read only its slices of W_hh, which stay in that thread's cache
// from step to step. A step needs all of the previous one's h (or d h), so the tasks run in
// stages (run_stages): the pool's threads are woken once for the whole sequence instead of
// for every step's GEMM (docs/performance.md, "The GRU sequence on the pool").

// Work (multiply-adds per step) below which a sequence runs on one thread, as a GEMM does
// (blas.cpp, kGemmParallelWork).
constexpr int64_t kSequenceParallelWork = int64_t(1) << 21;

// Blocks of hidden units for a step of `work` multiply-adds: one per thread, of at least 16
// units (below that a GEMM call spends its time packing).
int64_t unit_blocks(int64_t hidden, int64_t work) {
    return work >= kSequenceParallelWork ? std::clamp<int64_t>(tg::num_threads(), 1, hidden / 16)
                                         : 1;
}

void wait_until(const std::atomic<int64_t>& done, int64_t count) {
    for (int spins = 0; done.load(std::memory_order_acquire) < count; ++spins) {
        if (spins < 4096) {
            tg::cpu_relax();
        } else {
            std::this_thread::yield();  // the thread it waits for has lost its core
        }
    }
}

// body(stage, block) for every stage in order and every block of each, on the pool. The tasks
// (stage, block) are claimed in order from one counter, and each waits until the previous
// stage's are done. A thread that claims a task has finished its earlier ones, and every task
// it waits for was claimed before, by a thread that is running it, so the wait ends; on one
// thread the tasks run in order. Two tasks of one block never run at once, so a block may
// keep scratch buffers of its own.
template <typename Body>
void run_stages(int64_t stages, int64_t blocks, Body body) {
    std::atomic<int64_t> next{0}, done{0};
    const int64_t tasks = stages * blocks;
    tg::run_tasks(blocks, [&](int64_t) {
        for (int64_t task = next.fetch_add(1); task < tasks; task = next.fetch_add(1)) {
            wait_until(done, task / blocks * blocks);
            body(task / blocks, task % blocks);
            done.fetch_add(1, std::memory_order_release);
        }
    });
}

// Units [first, first + count) of block `block` of `blocks`.
struct Units {
    int64_t first, count;
    Units(int64_t block, int64_t blocks, int64_t hidden)
        : first(block * hidden / blocks), count((block + 1) * hidden / blocks - first) {}
};

// The gates of one step for units [first, first + count) of every row: hp holds the block's
// r, z, n parts of h_proj, (rows, 3 * count), and gets b_hh added first.
template <typename T>
TG_TARGET_ISA void gru_block(const T* x, T* hp, const T* bias, const T* h, T* out, T* r,
                               T* z, T* n, T* h_n, int64_t rows, int64_t hidden, Units units) {
    for (int64_t row = 0; row < rows; ++row) {
        T* parts = hp + row * 3 * units.count;
        if (bias) {
            for (int64_t part = 0; part < 3; ++part) {
#pragma omp simd
                for (int64_t j = 0; j < units.count; ++j)
                    parts[part * units.count + j] += bias[part * hidden + units.first + j];
            }
        }
        const int64_t at = row * hidden + units.first;
        gru_units(x + row * 3 * hidden + units.first, hidden, parts, units.count, h + at,
                  out + at, r + at, z + at, n + at, h_n + at, units.count);
    }
}

// x_proj (L, N, 3H), h0 (N, H), W_hh (3H, H), b_hh (3H,) or None -> (out (L, N, H), gates
// (4, L, N, H): r, z, n and h_n of every step, what gru_sequence_backward reads)
template <typename T>
py::tuple gru_sequence(carray<T> x_proj, carray<T> h0, carray<T> weight_hh,
                       std::optional<carray<T>> bias_hh, bool reverse) {
    require(tg::has_blas(), "gru_sequence: no BLAS routines were set (set_blas)");
    require(h0.ndim() == 2 && h0.shape(0) > 0 && h0.shape(1) > 0,
            "gru_sequence: expected a non-empty h0 (N, H)");
    const int64_t rows = h0.shape(0), hidden = h0.shape(1);
    require(x_proj.ndim() == 3 && x_proj.shape(1) == rows && x_proj.shape(2) == 3 * hidden,
            "gru_sequence: x_proj is not (L, N, 3H) for h0 (N, H)");
    require_rows(weight_hh, 3 * hidden, hidden, "gru_sequence: weight_hh");
    require(!bias_hh || (bias_hh->ndim() == 1 && bias_hh->shape(0) == 3 * hidden),
            "gru_sequence: bias_hh is not (3H,)");
    const int64_t length = x_proj.shape(0), plane = rows * hidden;
    carray<T> out = tg::new_array<T>({length, rows, hidden});
    carray<T> gates = tg::new_array<T>({int64_t(4), length, rows, hidden});
    const T *x = x_proj.data(), *start = h0.data(), *w = weight_hh.data();
    const T* bias = bias_hh ? bias_hh->data() : nullptr;
    T *o = out.mutable_data(), *saved = gates.mutable_data();
    const int64_t blocks = unit_blocks(hidden, 3 * plane * hidden);
    const int64_t widest = (hidden + blocks - 1) / blocks;
    std::vector<T> hp(blocks * rows * 3 * widest);  // each block's part of h_proj
    {
        py::gil_scoped_release release;
        tg::SingleThreadedBlas single_threaded;
        run_stages(length, blocks, [&](int64_t step, int64_t block) {
            const Units units(block, blocks, hidden);
            const int64_t t = reverse ? length - 1 - step : step;
            const T* h = step == 0 ? start : o + (reverse ? t + 1 : t - 1) * plane;
            T* parts = hp.data() + block * rows * 3 * widest;
            for (int64_t part = 0; part < 3; ++part)
                tg::gemm<T>(false, true, rows, units.count, hidden, h, hidden,
                            w + (part * hidden + units.first) * hidden, hidden, T(0),
                            parts + part * units.count, 3 * units.count);
            T* step_gates = saved + t * plane;
            gru_block(x + t * 3 * plane, parts, bias, h, o + t * plane, step_gates,
                      step_gates + length * plane, step_gates + 2 * length * plane,
                      step_gates + 3 * length * plane, rows, hidden, units);
        });
    }
    return py::make_tuple(out, gates);
}

// grad_out (L, N, H), the forward's gates (4, L, N, H), h0 (N, H), out (L, N, H) and W_hh
// (3H, H) -> (d x_proj (L, N, 3H), d h_proj (L, N, 3H), d h0 (N, H)); the weight and bias
// gradients are sums over d h_proj, one GEMM for the caller. Each step is two stages: the
// gates' backward for a block's units, then that block's units of d h, which need all of the
// step's d h_proj.
template <typename T>
py::tuple gru_sequence_backward(carray<T> grad_out, carray<T> gates, carray<T> h0,
                                carray<T> out, carray<T> weight_hh, bool reverse) {
    require(tg::has_blas(), "gru_sequence_backward: no BLAS routines were set (set_blas)");
    require(h0.ndim() == 2 && h0.shape(0) > 0 && h0.shape(1) > 0,
            "gru_sequence_backward: expected a non-empty h0 (N, H)");
    const int64_t rows = h0.shape(0), hidden = h0.shape(1);
    require(out.ndim() == 3 && out.shape(1) == rows && out.shape(2) == hidden &&
                grad_out.ndim() == 3 && grad_out.shape(0) == out.shape(0) &&
                grad_out.shape(1) == rows && grad_out.shape(2) == hidden,
            "gru_sequence_backward: grad_out and out are not (L, N, H) for h0 (N, H)");
    const int64_t length = out.shape(0), plane = rows * hidden;
    require(gates.ndim() == 4 && gates.shape(0) == 4 && gates.shape(1) == length &&
                gates.shape(2) == rows && gates.shape(3) == hidden,
            "gru_sequence_backward: gates are not (4, L, N, H)");
    require_rows(weight_hh, 3 * hidden, hidden, "gru_sequence_backward: weight_hh");
    carray<T> d_x = tg::new_array<T>({length, rows, 3 * hidden});
    carray<T> d_hp = tg::new_array<T>({length, rows, 3 * hidden});
    carray<T> d_h0 = tg::new_array<T>({rows, hidden});
    const T *g = grad_out.data(), *saved = gates.data(), *start = h0.data(), *o = out.data(),
            *w = weight_hh.data();
    T *dx = d_x.mutable_data(), *dhp = d_hp.mutable_data();
    // d h flowing into each step, by step parity, and each step's direct part
    std::vector<T> carry(2 * plane, T(0)), direct(plane);
    const int64_t blocks = unit_blocks(hidden, 3 * plane * hidden);
    {
        py::gil_scoped_release release;
        tg::SingleThreadedBlas single_threaded;
        run_stages(2 * length, blocks, [&](int64_t stage, int64_t block) {
            const Units units(block, blocks, hidden);
            const int64_t step = stage / 2, t = reverse ? step : length - 1 - step;
            const T* into = carry.data() + (step % 2) * plane;
            T* onward = carry.data() + ((step + 1) % 2) * plane;
            if (stage % 2 == 0) {  // the gates' backward for this block's units
                const T* h = (reverse ? t == length - 1 : t == 0)
                                 ? start
                                 : o + (reverse ? t + 1 : t - 1) * plane;
                const T* step_gates = saved + t * plane;
                for (int64_t row = 0; row < rows; ++row) {
                    const int64_t at = row * hidden + units.first;
                    const int64_t wide = t * 3 * plane + row * 3 * hidden + units.first;
                    gru_backward_units(g + t * plane + at, into + at, step_gates + at,
                                       step_gates + length * plane + at,
                                       step_gates + 2 * length * plane + at,
                                       step_gates + 3 * length * plane + at, h + at, dx + wide,
                                       dhp + wide, hidden, direct.data() + at, units.count);
                }
            } else {  // d h for this block's units: direct + d h_proj @ W_hh[:, units]
                for (int64_t row = 0; row < rows; ++row)
                    std::copy_n(direct.data() + row * hidden + units.first, units.count,
                                onward + row * hidden + units.first);
                tg::gemm<T>(false, false, rows, units.count, 3 * hidden, dhp + t * 3 * plane,
                            3 * hidden, w + units.first, hidden, T(1), onward + units.first,
                            hidden);
            }
        });
    }
    std::copy_n(carry.data() + (length % 2) * plane, plane, d_h0.mutable_data());
    return py::make_tuple(d_x, d_hp, d_h0);
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
    m.def("gru_sequence", &gru_sequence<T>, py::arg("x_proj").noconvert(),
          py::arg("h0").noconvert(), py::arg("weight_hh").noconvert(),
          py::arg("bias_hh").noconvert() = py::none(), py::arg("reverse") = false);
    m.def("gru_sequence_backward", &gru_sequence_backward<T>, py::arg("grad_out").noconvert(),
          py::arg("gates").noconvert(), py::arg("h0").noconvert(), py::arg("out").noconvert(),
          py::arg("weight_hh").noconvert(), py::arg("reverse") = false);
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
