// im2col and col2im for conv2d, the GEMMs themselves stay with BLAS.
//
// im2col copies every kernel tap of the zero-padded input into cols (C*KH*KW, N*OH*OW): one
// row per (channel, tap), one column per output pixel of every image, so one GEMM covers a
// whole batch of images (backend/cpu_conv.py says why). col2im is its adjoint, adding each
// tap back into the input it came from. One (n, c) input plane per task: it owns KH*KW row
// segments of OH*OW columns, and col2im's writes stay inside the plane, so the threads never
// share an output element (the per-plane loops are in im2col.h). The NumPy reference
// (backend/reference_conv.py) pads a copy of the input and makes a strided copy of a 6-D view
// (im2col), or a zero-padded buffer plus KH*KW strided adds (col2im).
#include <algorithm>
#include <array>

#include "common.h"
#include "im2col.h"

namespace {

using tg::conv::col2im_plane;
using tg::conv::Geometry;
using tg::conv::geometry;
using tg::conv::im2col_plane;
using tg::conv::Pair;

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
