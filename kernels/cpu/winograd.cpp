// The data transforms of Winograd F(4x4, 3x3) convolution; the 36 GEMMs between them stay
// with BLAS, and the (tiny) filter transforms with NumPy. backend/cpu_winograd.py has the
// algorithm, the matrices, and the NumPy references these are tested against.
//
// Layout: a transformed array is (36, channels, tiles), tiles numbered (image, tile row,
// tile column). One (image, channel) plane per task: its tiles are a contiguous run of
// each of the 36 matrices, so no two threads write the same element.
//
// The per-plane transforms are in winograd.h.
#include <algorithm>
#include <array>
#include <optional>
#include <vector>

#include "common.h"
#include "winograd.h"

namespace {

using tg::winograd::kPoints;
using tg::winograd::kSpan;
using tg::winograd::kTile;
using tg::winograd::Pair;
using tg::winograd::tile_counts;
using tg::winograd::input_transform_plane;
using tg::winograd::output_adjoint_plane;
using tg::winograd::output_transform_plane;

template <typename T>
carray<T> input_transform(py::array_t<T, 0> x, Pair padding, Pair tiles) {
    require(x.ndim() == 4, "winograd_input_transform: expected an (N, C, H, W) input");
    require(padding[0] >= 0 && padding[1] >= 0 && tiles[0] > 0 && tiles[1] > 0,
            "winograd_input_transform: padding must be >= 0 and tiles > 0");
    const int64_t n = x.shape(0), c = x.shape(1), height = x.shape(2), width = x.shape(3);
    const int64_t per_image = tiles[0] * tiles[1], matrix_stride = c * n * per_image;
    carray<T> v({kPoints, c, n * per_image});
    const int64_t s0 = x.strides(0) / int64_t(sizeof(T)), s1 = x.strides(1) / int64_t(sizeof(T));
    const int64_t s2 = x.strides(2) / int64_t(sizeof(T)), s3 = x.strides(3) / int64_t(sizeof(T));
    const T* in = x.data();
    T* out = v.mutable_data();
    {
        py::gil_scoped_release release;
        const int64_t scratch = (2 * kSpan + 1) * kTile * (tiles[1] + 1);
        tg::parallel_ranges(n * c, tg::range_count(n * c, kPoints * matrix_stride),
                            [&](int64_t, int64_t begin, int64_t end) {
            std::vector<T> rows(scratch);
            for (int64_t plane = begin; plane < end; ++plane) {
                const int64_t image = plane / c, channel = plane % c;
                input_transform_plane(in + image * s0 + channel * s1, s2, s3, height, width,
                                      padding, tiles,
                                      out + channel * n * per_image + image * per_image,
                                      matrix_stride, rows.data());
            }
        });
    }
    return v;
}

template <typename T>
carray<T> output_transform(carray<T> m, std::array<int64_t, 4> output_shape,
                           std::optional<carray<T>> bias, std::optional<carray<T>> into) {
    const int64_t n = output_shape[0], k = output_shape[1];
    const int64_t out_h = output_shape[2], out_w = output_shape[3];
    const Pair tiles = tile_counts(out_h, out_w);
    const int64_t per_image = tiles[0] * tiles[1], matrix_stride = k * n * per_image;
    require(m.ndim() == 3 && m.shape(0) == kPoints && m.shape(1) == k &&
                m.shape(2) == n * per_image,
            "winograd_output_transform: M must be (36, K, N*TH*TW) for the output shape");
    require(!bias || bias->size() == k, "winograd_output_transform: bias must have K elements");
    // `into` (a slice of the caller's output, say) spares the copy out of a new array
    require(!into || (into->ndim() == 4 && into->shape(0) == n && into->shape(1) == k &&
                      into->shape(2) == out_h && into->shape(3) == out_w),
            "winograd_output_transform: `into` must have the output shape");
    carray<T> y = into ? *into : carray<T>({n, k, out_h, out_w});
    const T* in = m.data();
    const T* shift = bias ? bias->data() : nullptr;
    T* out = y.mutable_data();
    {
        py::gil_scoped_release release;
        tg::parallel_ranges(n * k, tg::range_count(n * k, kPoints * matrix_stride),
                            [&](int64_t, int64_t begin, int64_t end) {
            std::vector<T> rows(kTile * kSpan * tiles[1]);
            for (int64_t plane = begin; plane < end; ++plane) {
                const int64_t image = plane / k, channel = plane % k;
                output_transform_plane(in + channel * n * per_image + image * per_image,
                                       matrix_stride, tiles, out_h, out_w,
                                       shift ? shift[channel] : T(0),
                                       out + plane * out_h * out_w, rows.data());
            }
        });
    }
    return y;
}

template <typename T>
carray<T> output_transform_adjoint(carray<T> grad) {
    require(grad.ndim() == 4, "winograd_output_transform_adjoint: expected (N, K, OH, OW)");
    const int64_t n = grad.shape(0), k = grad.shape(1), out_h = grad.shape(2),
                  out_w = grad.shape(3);
    const Pair tiles = tile_counts(out_h, out_w);
    const int64_t per_image = tiles[0] * tiles[1], matrix_stride = k * n * per_image;
    carray<T> dm({kPoints, k, n * per_image});
    const T* in = grad.data();
    T* out = dm.mutable_data();
    {
        py::gil_scoped_release release;
        const int64_t scratch = (kTile + kSpan) * kTile * tiles[1];
        tg::parallel_ranges(n * k, tg::range_count(n * k, kPoints * matrix_stride),
                            [&](int64_t, int64_t begin, int64_t end) {
            std::vector<T> rows(scratch);
            for (int64_t plane = begin; plane < end; ++plane) {
                const int64_t image = plane / k, channel = plane % k;
                output_adjoint_plane(in + plane * out_h * out_w, tiles, out_h, out_w,
                                     out + channel * n * per_image + image * per_image,
                                     matrix_stride, rows.data());
            }
        });
    }
    return dm;
}

template <typename T>
void register_for(py::module_& m) {
    m.def("winograd_input_transform", &input_transform<T>, py::arg("x").noconvert(),
          py::arg("padding"), py::arg("tiles"));
    m.def("winograd_output_transform", &output_transform<T>, py::arg("m").noconvert(),
          py::arg("output_shape"), py::arg("bias").noconvert() = py::none(),
          py::arg("into").noconvert() = py::none());
    m.def("winograd_output_transform_adjoint", &output_transform_adjoint<T>,
          py::arg("grad").noconvert());
}

}  // namespace

void register_winograd(py::module_& m) {
    register_for<float>(m);
    register_for<double>(m);
}
