// 2-D max and average pooling, forward and backward.
//
// One (n, c) plane per task, so no two threads write the same element. Each output walks its
// window's taps directly, with padding handled by bounds checks rather than a padded copy;
// the NumPy reference (backend/reference_conv.py) copies the padded windows out of a strided view
// before reducing, then scatters gradients with bincount or KH*KW strided adds.
//
// Max pooling keeps the reference's tie and NaN rules exactly: taps are visited row-major,
// a padded tap counts as -inf, a later tap wins only if strictly greater, and the first NaN
// wins outright (np.argmax). The index is the flat h * W + w of the winning tap.
#include <algorithm>
#include <array>
#include <cmath>
#include <limits>

#include "common.h"

namespace {

using Pair = std::array<int64_t, 2>;

struct Window {
    int64_t height, width, out_h, out_w, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w,
        dilation_h, dilation_w;
};

Window window(int64_t height, int64_t width, Pair kernel, Pair stride, Pair padding,
              Pair dilation, const char* op) {
    Window w{height,     width,     0,          0,           kernel[0],   kernel[1],
             stride[0],  stride[1], padding[0], padding[1], dilation[0], dilation[1]};
    require(w.kernel_h > 0 && w.kernel_w > 0 && w.stride_h > 0 && w.stride_w > 0 &&
                w.dilation_h > 0 && w.dilation_w > 0 && w.pad_h >= 0 && w.pad_w >= 0,
            std::string(op) + ": kernel, stride and dilation must be positive, padding >= 0");
    w.out_h = (height + 2 * w.pad_h - w.dilation_h * (w.kernel_h - 1) - 1) / w.stride_h + 1;
    w.out_w = (width + 2 * w.pad_w - w.dilation_w * (w.kernel_w - 1) - 1) / w.stride_w + 1;
    require(w.out_h > 0 && w.out_w > 0, std::string(op) + ": the window is larger than the input");
    return w;
}

// The taps of one window from its top-left element, row-major: a later tap wins only if
// strictly greater, a NaN wins over any number, and the first NaN stays (np.argmax's rules).
// KH and KW are compile-time for the common 2x2 and 3x3 windows so the loops unroll; 0 means
// read them from w.
template <int KH, int KW, typename T>
TG_INLINE void max_of_window(const T* corner, const Window& w, T& best, int64_t& best_offset) {
    const int64_t kernel_h = KH ? KH : w.kernel_h, kernel_w = KW ? KW : w.kernel_w;
    best = corner[0];
    best_offset = 0;
    for (int64_t i = 0; i < kernel_h; ++i) {
        for (int64_t j = 0; j < kernel_w; ++j) {
            const int64_t offset = i * w.dilation_h * w.width + j * w.dilation_w;
            const T value = corner[offset];
            // no short-circuit, so the compiler may use selects: which tap wins is a coin toss
            const bool wins = (value > best) | ((value != value) & (best == best));
            best = wins ? value : best;
            best_offset = wins ? offset : best_offset;
        }
    }
}

// Padding: taps outside the input count as -inf (so they never win), checked per tap.
template <typename T>
TG_INLINE void max_of_padded_window(const T* x, int64_t y0, int64_t x0, const Window& w,
                                    T& best, int64_t& best_index) {
    bool first = true;
    for (int64_t i = 0; i < w.kernel_h; ++i) {
        const int64_t y = y0 + i * w.dilation_h;
        for (int64_t j = 0; j < w.kernel_w; ++j) {
            const int64_t xx = x0 + j * w.dilation_w;
            const bool inside = y >= 0 && y < w.height && xx >= 0 && xx < w.width;
            const T value = inside ? x[y * w.width + xx] : -std::numeric_limits<T>::infinity();
            if (first || value > best || (std::isnan(value) && !std::isnan(best))) {
                best = value;
                best_index = y * w.width + xx;
                first = false;
            }
        }
    }
}

// Without padding every tap is inside the plane: no bounds checks in the inner loop.
template <int KH, int KW, typename T>
TG_TARGET_ISA void max_pool_plane(const T* x, T* out, int64_t* indices, const Window& w) {
    for (int64_t oy = 0; oy < w.out_h; ++oy) {
        for (int64_t ox = 0; ox < w.out_w; ++ox) {
            const int64_t corner = oy * w.stride_h * w.width + ox * w.stride_w;
            T best;  // in a register: written through `out`, every tap would go to memory
            int64_t offset;
            max_of_window<KH, KW>(x + corner, w, best, offset);
            *out++ = best;
            *indices++ = corner + offset;
        }
    }
}

// max_of_window's rule for one later tap: strictly greater, or the first NaN. Written with
// || and && because GCC 12 vectorises the 2x2 loop below with this form and not with the
// bitwise one (-fopt-info-vec: "no vectype").
template <typename T>
TG_INLINE bool wins_over(T value, T best) {
    return (value > best) || (value != value && best == best);
}

// 2x2 windows at stride 2 without dilation, the pooling of most CNNs, a run of 16 outputs at
// a time: the taps of output i are top[2i], top[2i + 1], bottom[2i], bottom[2i + 1], compared
// in max_of_window's order and by its rule. The fixed trip count makes this one straight
// vector body with no remainder loop; the winner's index in the input plane is
// first_index + 2i, plus 1 for a right tap and `width` for a bottom one.
constexpr int64_t kPoolRun = 16;

template <typename T>
TG_INLINE void max_pool_2x2_run(const T* top, const T* bottom, int64_t first_index,
                                int64_t width, T* out, int64_t* indices) {
#pragma omp simd
    for (int64_t i = 0; i < kPoolRun; ++i) {
        const T first = top[2 * i], second = top[2 * i + 1];
        const T third = bottom[2 * i], fourth = bottom[2 * i + 1];
        const bool second_wins = wins_over(second, first);
        const T best_of_two = second_wins ? second : first;
        const int64_t offset_of_two = second_wins ? 1 : 0;
        const bool third_wins = wins_over(third, best_of_two);
        const T best_of_three = third_wins ? third : best_of_two;
        const int64_t offset_of_three = third_wins ? width : offset_of_two;
        const bool fourth_wins = wins_over(fourth, best_of_three);
        out[i] = fourth_wins ? fourth : best_of_three;
        indices[i] = first_index + 2 * i + (fourth_wins ? width + 1 : offset_of_three);
    }
}

// Each output row reads two whole input rows, in runs of 16 outputs. The last, partial run
// (all of a row shorter than 16, such as a 26x26 plane's 13 outputs) goes through the same
// vector body on a copy of its taps padded to a full run. A plain loop's remainder is scalar
// code that branches on every comparison, and a branch on which of two random values is
// larger is mispredicted half the time (docs/performance.md, "max_pool2d 2x2/2 on short rows").
template <typename T>
TG_TARGET_ISA void max_pool_2x2_plane(const T* x, T* out, int64_t* indices, const Window& w) {
    const int64_t width = w.width, full_runs_end = w.out_w - w.out_w % kPoolRun;
    for (int64_t oy = 0; oy < w.out_h; ++oy) {
        const T* top = x + 2 * oy * width;
        const T* bottom = top + width;
        T* row_out = out + oy * w.out_w;
        int64_t* row_indices = indices + oy * w.out_w;
        const int64_t row_start = 2 * oy * width;
        for (int64_t ox = 0; ox < full_runs_end; ox += kPoolRun)
            max_pool_2x2_run(top + 2 * ox, bottom + 2 * ox, row_start + 2 * ox, width,
                             row_out + ox, row_indices + ox);
        const int64_t rest = w.out_w - full_runs_end;
        if (rest == 0) continue;
        T top_taps[2 * kPoolRun] = {}, bottom_taps[2 * kPoolRun] = {}, run_out[kPoolRun];
        int64_t run_indices[kPoolRun];
        std::copy(top + 2 * full_runs_end, top + 2 * w.out_w, top_taps);
        std::copy(bottom + 2 * full_runs_end, bottom + 2 * w.out_w, bottom_taps);
        max_pool_2x2_run(top_taps, bottom_taps, row_start + 2 * full_runs_end, width, run_out,
                         run_indices);
        std::copy(run_out, run_out + rest, row_out + full_runs_end);
        std::copy(run_indices, run_indices + rest, row_indices + full_runs_end);
    }
}

template <typename T>
TG_TARGET_ISA void max_pool_padded_plane(const T* x, T* out, int64_t* indices,
                                           const Window& w) {
    for (int64_t oy = 0; oy < w.out_h; ++oy) {
        for (int64_t ox = 0; ox < w.out_w; ++ox) {
            T best;
            int64_t index;
            max_of_padded_window(x, oy * w.stride_h - w.pad_h, ox * w.stride_w - w.pad_w, w,
                                 best, index);
            *out++ = best;
            *indices++ = index;
        }
    }
}

template <typename T>
TG_TARGET_ISA void avg_pool_plane(const T* x, T* out, const Window& w, bool count_include_pad) {
    for (int64_t oy = 0; oy < w.out_h; ++oy) {
        const int64_t y0 = oy * w.stride_h - w.pad_h;
        const int64_t ys = std::max<int64_t>(y0, 0), ye = std::min(y0 + w.kernel_h, w.height);
        for (int64_t ox = 0; ox < w.out_w; ++ox) {
            const int64_t x0 = ox * w.stride_w - w.pad_w;
            const int64_t xs = std::max<int64_t>(x0, 0), xe = std::min(x0 + w.kernel_w, w.width);
            T sum = 0;
            for (int64_t y = ys; y < ye; ++y)
                for (int64_t xx = xs; xx < xe; ++xx) sum += x[y * w.width + xx];
            const int64_t divisor =
                count_include_pad ? w.kernel_h * w.kernel_w : (ye - ys) * (xe - xs);
            *out++ = sum / T(divisor);
        }
    }
}

template <typename T>
TG_TARGET_ISA void avg_pool_backward_plane(const T* grad, T* dx, const Window& w,
                                             bool count_include_pad) {
    for (int64_t oy = 0; oy < w.out_h; ++oy) {
        const int64_t y0 = oy * w.stride_h - w.pad_h;
        const int64_t ys = std::max<int64_t>(y0, 0), ye = std::min(y0 + w.kernel_h, w.height);
        for (int64_t ox = 0; ox < w.out_w; ++ox) {
            const int64_t x0 = ox * w.stride_w - w.pad_w;
            const int64_t xs = std::max<int64_t>(x0, 0), xe = std::min(x0 + w.kernel_w, w.width);
            const int64_t divisor =
                count_include_pad ? w.kernel_h * w.kernel_w : (ye - ys) * (xe - xs);
            const T share = *grad++ / T(divisor);
            for (int64_t y = ys; y < ye; ++y)
                for (int64_t xx = xs; xx < xe; ++xx) dx[y * w.width + xx] += share;
        }
    }
}

template <typename T>
py::tuple max_pool2d(carray<T> x, Pair kernel, Pair stride, Pair padding, Pair dilation) {
    require(x.ndim() == 4, "max_pool2d: expected an (N, C, H, W) input");
    const int64_t n = x.shape(0), c = x.shape(1), h = x.shape(2), width = x.shape(3);
    const Window w = window(h, width, kernel, stride, padding, dilation, "max_pool2d");
    carray<T> out = tg::new_array<T>({n, c, w.out_h, w.out_w});
    carray<int64_t> indices = tg::new_array<int64_t>({n, c, w.out_h, w.out_w});
    const T* in = x.data();
    T* o = out.mutable_data();
    int64_t* idx = indices.mutable_data();
    const int64_t plane_in = h * width, plane_out = w.out_h * w.out_w;
    {
        py::gil_scoped_release release;
        auto plane = &max_pool_plane<0, 0, T>;
        if (w.kernel_h == 2 && w.kernel_w == 2) plane = &max_pool_plane<2, 2, T>;
        if (w.kernel_h == 3 && w.kernel_w == 3) plane = &max_pool_plane<3, 3, T>;
        if (w.kernel_h == 2 && w.kernel_w == 2 && w.stride_h == 2 && w.stride_w == 2 &&
            w.dilation_h == 1 && w.dilation_w == 1)
            plane = &max_pool_2x2_plane<T>;
        if (w.pad_h > 0 || w.pad_w > 0) plane = &max_pool_padded_plane<T>;
        tg::parallel_for(n * c, n * c * plane_in, [&](int64_t p) {
            plane(in + p * plane_in, o + p * plane_out, idx + p * plane_out, w);
        });
    }
    return py::make_tuple(out, indices);
}

template <typename T>
carray<T> max_pool2d_backward(carray<T> grad, carray<int64_t> indices,
                              std::array<int64_t, 4> input_shape) {
    const int64_t n = input_shape[0], c = input_shape[1];
    const int64_t plane_in = input_shape[2] * input_shape[3];
    require(grad.ndim() == 4 && indices.ndim() == 4 && grad.shape(0) == n &&
                grad.shape(1) == c && grad.size() == indices.size(),
            "max_pool2d_backward: grad and indices must be (N, C, OH, OW) of the input's N, C");
    const int64_t plane_out = grad.shape(2) * grad.shape(3);
    carray<T> dx = tg::new_array<T>({n, c, input_shape[2], input_shape[3]});
    const T* g = grad.data();
    const int64_t* idx = indices.data();
    T* d = dx.mutable_data();
    {
        py::gil_scoped_release release;
        tg::parallel_for(n * c, n * c * plane_in, [&](int64_t p) {
            T* plane = d + p * plane_in;
            std::fill(plane, plane + plane_in, T(0));
            for (int64_t o = p * plane_out; o < (p + 1) * plane_out; ++o)
                if (idx[o] >= 0 && idx[o] < plane_in) plane[idx[o]] += g[o];
        });
    }
    return dx;
}

template <typename T>
carray<T> avg_pool2d(carray<T> x, Pair kernel, Pair stride, Pair padding,
                     bool count_include_pad) {
    require(x.ndim() == 4, "avg_pool2d: expected an (N, C, H, W) input");
    const int64_t n = x.shape(0), c = x.shape(1), h = x.shape(2), width = x.shape(3);
    const Window w = window(h, width, kernel, stride, padding, {1, 1}, "avg_pool2d");
    carray<T> out = tg::new_array<T>({n, c, w.out_h, w.out_w});
    const T* in = x.data();
    T* o = out.mutable_data();
    const int64_t plane_in = h * width, plane_out = w.out_h * w.out_w;
    {
        py::gil_scoped_release release;
        tg::parallel_for(n * c, n * c * plane_in, [&](int64_t p) {
            avg_pool_plane(in + p * plane_in, o + p * plane_out, w, count_include_pad);
        });
    }
    return out;
}

template <typename T>
carray<T> avg_pool2d_backward(carray<T> grad, std::array<int64_t, 4> input_shape, Pair kernel,
                              Pair stride, Pair padding, bool count_include_pad) {
    const int64_t n = input_shape[0], c = input_shape[1], h = input_shape[2];
    const int64_t width = input_shape[3];
    const Window w = window(h, width, kernel, stride, padding, {1, 1}, "avg_pool2d_backward");
    require(grad.ndim() == 4 && grad.shape(0) == n && grad.shape(1) == c &&
                grad.shape(2) == w.out_h && grad.shape(3) == w.out_w,
            "avg_pool2d_backward: grad must have the pooled output's shape");
    carray<T> dx = tg::new_array<T>({n, c, h, width});
    const T* g = grad.data();
    T* d = dx.mutable_data();
    const int64_t plane_in = h * width, plane_out = w.out_h * w.out_w;
    {
        py::gil_scoped_release release;
        tg::parallel_for(n * c, n * c * plane_in, [&](int64_t p) {
            std::fill(d + p * plane_in, d + (p + 1) * plane_in, T(0));
            avg_pool_backward_plane(g + p * plane_out, d + p * plane_in, w, count_include_pad);
        });
    }
    return dx;
}

template <typename T>
void register_for(py::module_& m) {
    m.def("max_pool2d", &max_pool2d<T>, py::arg("x").noconvert(), py::arg("kernel"),
          py::arg("stride"), py::arg("padding"), py::arg("dilation"));
    m.def("max_pool2d_backward", &max_pool2d_backward<T>, py::arg("grad").noconvert(),
          py::arg("indices").noconvert(), py::arg("input_shape"));
    m.def("avg_pool2d", &avg_pool2d<T>, py::arg("x").noconvert(), py::arg("kernel"),
          py::arg("stride"), py::arg("padding"), py::arg("count_include_pad"));
    m.def("avg_pool2d_backward", &avg_pool2d_backward<T>, py::arg("grad").noconvert(),
          py::arg("input_shape"), py::arg("kernel"), py::arg("stride"), py::arg("padding"),
          py::arg("count_include_pad"));
}

}  // namespace

void register_pooling(py::module_& m) {
    register_for<float>(m);
    register_for<double>(m);
}
