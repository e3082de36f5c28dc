// im2col and col2im for conv2d, the GEMMs themselves stay with BLAS.
//
// im2col copies every kernel tap of the zero-padded input into cols (C*KH*KW, N*OH*OW): one
// row per (channel, tap), one column per output pixel of every image, so one GEMM covers a
// whole batch of images (backend/cpu_conv.py says why). col2im is its adjoint, adding each
// tap back into the input it came from. One (n, c) input plane per task: it owns KH*KW row
// segments of OH*OW columns, and col2im's writes stay inside the plane, so the threads never
// share an output element. Padding is never materialised: each output row splits into a
// zero (or skipped) left edge, an inner run that reads the input directly (a straight copy
// or add at stride 1), and a right edge. The NumPy reference (backend/reference_conv.py) pads a
// copy of the input and makes a strided copy of a 6-D view (im2col), or a zero-padded
// buffer plus KH*KW strided adds (col2im).
#include <algorithm>
#include <array>

#include "common.h"

namespace {

using Pair = std::array<int64_t, 2>;

struct Geometry {
    int64_t height, width, out_h, out_w;
    int64_t kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w;

    // the outputs [first, last) along one axis whose tap at `offset` lies inside [0, size)
    static void inside(int64_t size, int64_t outputs, int64_t stride, int64_t offset,
                       int64_t& first, int64_t& last) {
        first = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
        last = offset >= size ? 0 : std::min(outputs, (size - 1 - offset) / stride + 1);
        first = std::min(first, last);
    }
};

Geometry geometry(int64_t height, int64_t width, Pair kernel, Pair stride, Pair padding,
                  Pair dilation) {
    Geometry g{height,     width,     0,          0,           kernel[0],   kernel[1],
               stride[0],  stride[1], padding[0], padding[1], dilation[0], dilation[1]};
    require(g.kernel_h > 0 && g.kernel_w > 0 && g.stride_h > 0 && g.stride_w > 0 &&
                g.dilation_h > 0 && g.dilation_w > 0 && g.pad_h >= 0 && g.pad_w >= 0,
            "im2col/col2im: kernel, stride and dilation must be positive, padding >= 0");
    g.out_h = (height + 2 * g.pad_h - g.dilation_h * (g.kernel_h - 1) - 1) / g.stride_h + 1;
    g.out_w = (width + 2 * g.pad_w - g.dilation_w * (g.kernel_w - 1) - 1) / g.stride_w + 1;
    require(g.out_h > 0 && g.out_w > 0, "im2col/col2im: the kernel is larger than the input");
    return g;
}

// Walks one plane's part of cols an output row at a time (tap by tap, then output row) and
// calls visit(offset, y, x_offset, first, last): where the OW outputs of that tap and row
// start, from the plane's first element (taps are `row_length` apart: one cols row each), the
// input row the tap reads (possibly outside [0, height): padding), the input column of output
// column 0, and the output columns [first, last) whose tap lies inside the input.
template <typename Visit>
TG_INLINE void for_each_cols_row(const Geometry& g, int64_t row_length, Visit visit) {
    for (int64_t i = 0; i < g.kernel_h; ++i) {
        for (int64_t j = 0; j < g.kernel_w; ++j) {
            const int64_t x_offset = j * g.dilation_w - g.pad_w;
            const int64_t tap_row = (i * g.kernel_w + j) * row_length;
            int64_t first, last;
            Geometry::inside(g.width, g.out_w, g.stride_w, x_offset, first, last);
            for (int64_t oy = 0; oy < g.out_h; ++oy)
                visit(tap_row + oy * g.out_w, oy * g.stride_h + i * g.dilation_h - g.pad_h,
                      x_offset, first, last);
        }
    }
}

// One input plane (strides in elements) -> its KH*KW row segments of cols, from `plane_cols`.
template <typename T>
TG_TARGET_ISA void im2col_plane(const T* x, int64_t stride_y, int64_t stride_x, T* plane_cols,
                                  int64_t row_length, const Geometry& g) {
    for_each_cols_row(g, row_length, [&](int64_t offset, int64_t y, int64_t x_offset,
                                         int64_t first, int64_t last) {
        T* cols = plane_cols + offset;
        if (y < 0 || y >= g.height) {
            std::fill(cols, cols + g.out_w, T(0));
            return;
        }
        std::fill(cols, cols + first, T(0));
        const T* row = x + y * stride_y + x_offset * stride_x;
        if (g.stride_w == 1 && stride_x == 1) {
            std::copy(row + first, row + last, cols + first);
        } else {
            const int64_t step = g.stride_w * stride_x;
            for (int64_t ox = first; ox < last; ++ox) cols[ox] = row[ox * step];
        }
        std::fill(cols + last, cols + g.out_w, T(0));
    });
}

// The adjoint: add one plane's row segments of cols into the (zeroed) contiguous input plane.
template <typename T>
TG_TARGET_ISA void col2im_plane(const T* plane_cols, int64_t row_length, T* x,
                                  const Geometry& g) {
    for_each_cols_row(g, row_length, [&](int64_t offset, int64_t y, int64_t x_offset,
                                         int64_t first, int64_t last) {
        if (y < 0 || y >= g.height) return;
        const T* cols = plane_cols + offset;
        T* row = x + y * g.width + x_offset;
        if (g.stride_w == 1) {
            for (int64_t ox = first; ox < last; ++ox) row[ox] += cols[ox];
        } else {
            for (int64_t ox = first; ox < last; ++ox) row[ox * g.stride_w] += cols[ox];
        }
    });
}

template <typename T>
carray<T> im2col(py::array_t<T, 0> x, Pair kernel, Pair stride, Pair padding, Pair dilation) {
    require(x.ndim() == 4, "im2col: expected an (N, C, H, W) input");
    const int64_t n = x.shape(0), c = x.shape(1);
    const Geometry g = geometry(x.shape(2), x.shape(3), kernel, stride, padding, dilation);
    const int64_t taps = g.kernel_h * g.kernel_w, pixels = g.out_h * g.out_w;
    carray<T> cols = tg::new_array<T>({c * taps, n * pixels});
    const int64_t s0 = x.strides(0) / int64_t(sizeof(T)), s1 = x.strides(1) / int64_t(sizeof(T));
    const int64_t s2 = x.strides(2) / int64_t(sizeof(T)), s3 = x.strides(3) / int64_t(sizeof(T));
    const T* in = x.data();
    T* out = cols.mutable_data();
    {
        py::gil_scoped_release release;
        tg::parallel_for(n * c, n * c * taps * pixels, [&](int64_t plane) {
            const int64_t image = plane / c, channel = plane % c;
            im2col_plane(in + image * s0 + channel * s1, s2, s3,
                         out + channel * taps * n * pixels + image * pixels, n * pixels, g);
        });
    }
    return cols;
}

template <typename T>
carray<T> col2im(carray<T> cols, std::array<int64_t, 4> input_shape, Pair kernel, Pair stride,
                 Pair padding, Pair dilation) {
    const int64_t n = input_shape[0], c = input_shape[1], h = input_shape[2], w = input_shape[3];
    const Geometry g = geometry(h, w, kernel, stride, padding, dilation);
    const int64_t taps = g.kernel_h * g.kernel_w, pixels = g.out_h * g.out_w;
    require(cols.ndim() == 2 && cols.shape(0) == c * taps && cols.shape(1) == n * pixels,
            "col2im: cols must be (C*KH*KW, N*OH*OW) for the given input shape");
    carray<T> x = tg::new_array<T>({n, c, h, w});
    const T* in = cols.data();
    T* out = x.mutable_data();
    {
        py::gil_scoped_release release;
        tg::parallel_for(n * c, n * c * taps * pixels, [&](int64_t plane) {
            const int64_t image = plane / c, channel = plane % c;
            std::fill(out + plane * h * w, out + (plane + 1) * h * w, T(0));
            col2im_plane(in + channel * taps * n * pixels + image * pixels, n * pixels,
                         out + plane * h * w, g);
        });
    }
    return x;
}

template <typename T>
void register_for(py::module_& m) {
    m.def("im2col", &im2col<T>, py::arg("x").noconvert(), py::arg("kernel"), py::arg("stride"),
          py::arg("padding"), py::arg("dilation"));
    m.def("col2im", &col2im<T>, py::arg("cols").noconvert(), py::arg("input_shape"),
          py::arg("kernel"), py::arg("stride"), py::arg("padding"), py::arg("dilation"));
}

}  // namespace

void register_im2col(py::module_& m) {
    register_for<float>(m);
    register_for<double>(m);
}
