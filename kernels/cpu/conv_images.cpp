// conv2d one image at a time, for batches of small images: im2col fused with each image's
// GEMM, and Winograd's transforms with its 36 GEMMs (winograd_conv2d_images, at the end).
//
// The batched im2col (im2col.cpp) lays every image of a chunk side by side in one cols
// (C*KH*KW, N*OH*OW), so one GEMM covers the chunk, but its product is (K, N*OH*OW): NumPy
// then copies it to NCHW, and the backward copies grad the other way, on one thread. Here each
// task takes a range of images, and per image writes that image's cols (C*KH*KW, OH*OW) into a
// buffer of its own, which stays in cache, and runs the image's GEMM on its thread against
// NCHW directly:
//
//   forward          out[n]    = W (K, C*KH*KW) @ cols[n]               (+ bias per row)
//   backward-data    cols      = W^T @ grad[n], added back into dx[n] by col2im
//   backward-weight  dW^T     += cols[n] (C*KH*KW, OH*OW) @ grad[n]^T, a sum per range
//
// backend/cpu_conv.py says when these are used. The per-range sums of backward-weight are
// added in range order, and the ranges depend on the shapes alone, not on the thread count,
// so its rounding is the same on any number of threads.
#include <memory>
#include <optional>

#include <vector>

#include "blas.h"
#include "common.h"
#include "im2col.h"
#include "winograd.h"

namespace {

using tg::conv::Geometry;
using tg::conv::Pair;
using tg::winograd::input_transform_plane;
using tg::winograd::kPoints;
using tg::winograd::kSpan;
using tg::winograd::kTile;
using tg::winograd::output_adjoint_plane;
using tg::winograd::output_transform_plane;
using tg::winograd::tile_counts;

// A task's scratch buffer, left uninitialised (std::vector would zero it, a pass over the
// memory that every use overwrites first).
template <typename T>
class Buffer {
  public:
    explicit Buffer(int64_t size) : data_(new T[size]) {}
    T* data() { return data_.get(); }

  private:
    std::unique_ptr<T[]> data_;
};

// The sums backward-weight keeps, one per range of images (more ranges than threads, so a
// thread that lost its core costs only its share; each sum is one weight-sized array).
constexpr int64_t kWeightGradientRanges = 16;

// An (N, C, H, W) input's geometry, checked against the filters' (K, C, KH, KW).
struct Problem {
    Geometry g;
    int64_t images, channels, filters, taps, pixels;

    int64_t patch() const { return channels * taps; }  // one cols column: C*KH*KW
};

Problem problem(std::array<int64_t, 4> input_shape, std::array<int64_t, 4> weight_shape,
                Pair stride, Pair padding, Pair dilation, const char* op) {
    require(weight_shape[1] == input_shape[1] && weight_shape[1] > 0,
            std::string(op) + ": the weight's input channels differ from the input's, or are 0");
    Problem p{tg::conv::geometry(input_shape[2], input_shape[3], {weight_shape[2], weight_shape[3]},
                                 stride, padding, dilation),
              input_shape[0], input_shape[1], weight_shape[0], weight_shape[2] * weight_shape[3],
              0};
    p.pixels = p.g.out_h * p.g.out_w;
    return p;
}

// An (N, C, H, W) input's strides, in elements: the kernels read it in place, views included.
template <typename T>
std::array<int64_t, 4> element_strides(const py::array_t<T, 0>& x) {
    std::array<int64_t, 4> strides{};
    for (int axis = 0; axis < 4; ++axis) strides[axis] = x.strides(axis) / int64_t(sizeof(T));
    return strides;
}

std::array<int64_t, 4> shape4(const py::array& a, const char* what) {
    require(a.ndim() == 4, std::string(what) + " must have 4 dimensions");
    return {a.shape(0), a.shape(1), a.shape(2), a.shape(3)};
}

// One image's cols (C*KH*KW, OH*OW), from an input image with element strides s1, s2, s3.
template <typename T>
TG_TARGET_ISA void image_cols(const T* image, int64_t s1, int64_t s2, int64_t s3, T* cols,
                                const Problem& p) {
    for (int64_t c = 0; c < p.channels; ++c)
        tg::conv::im2col_plane(image + c * s1, s2, s3, cols + c * p.taps * p.pixels, p.pixels,
                               p.g);
}

template <typename T>
TG_TARGET_ISA void add_bias(T* out, const T* bias, int64_t filters, int64_t pixels) {
    for (int64_t k = 0; k < filters; ++k) {
        T* row = out + k * pixels;
        const T value = bias[k];
#pragma omp simd
        for (int64_t i = 0; i < pixels; ++i) row[i] += value;
    }
}

template <typename T>
TG_TARGET_ISA void add_image_back(const T* cols, T* image, const Problem& p) {
    const int64_t plane = p.g.height * p.g.width;
    std::fill(image, image + p.channels * plane, T(0));
    for (int64_t c = 0; c < p.channels; ++c)
        tg::conv::col2im_plane(cols + c * p.taps * p.pixels, p.pixels, image + c * plane, p.g);
}

// range_body(range, begin, end, cols) over ranges of images, each with a cols buffer of its
// own, the GIL released and BLAS on the calling task's thread.
template <typename T, typename RangeBody>
void over_image_ranges(const Problem& p, int64_t ranges, RangeBody range_body) {
    py::gil_scoped_release release;
    tg::SingleThreadedBlas single_threaded;
    tg::parallel_ranges(p.images, ranges, [&](int64_t range, int64_t begin, int64_t end) {
        Buffer<T> cols(p.patch() * p.pixels);
        range_body(range, begin, end, cols.data());
    });
}

int64_t ranges_for(const Problem& p) {
    return tg::range_count(p.images, p.images * p.patch() * p.pixels);
}

template <typename T>
carray<T> conv2d_images(py::array_t<T, 0> x, carray<T> weight, std::optional<carray<T>> bias,
                        Pair stride, Pair padding, Pair dilation) {
    require(tg::has_blas(), "conv2d_images: no BLAS routines were set (set_blas)");
    const Problem p = problem(shape4(x, "conv2d_images: x"),
                              shape4(weight, "conv2d_images: weight"), stride, padding, dilation,
                              "conv2d_images");
    require(!bias || (bias->ndim() == 1 && bias->shape(0) == p.filters),
            "conv2d_images: the bias is not (K,)");
    carray<T> out = tg::new_array<T>({p.images, p.filters, p.g.out_h, p.g.out_w});
    const std::array<int64_t, 4> s = element_strides(x);
    const T* in = x.data();
    const T* w = weight.data();
    const T* b = bias ? bias->data() : nullptr;
    T* y = out.mutable_data();
    over_image_ranges<T>(p, ranges_for(p), [&](int64_t, int64_t begin, int64_t end, T* cols) {
        for (int64_t n = begin; n < end; ++n) {
            image_cols(in + n * s[0], s[1], s[2], s[3], cols, p);
            T* image_out = y + n * p.filters * p.pixels;
            tg::gemm<T>(false, false, p.filters, p.pixels, p.patch(), w, p.patch(), cols,
                        p.pixels, T(0), image_out, p.pixels);
            if (b) add_bias(image_out, b, p.filters, p.pixels);
        }
    });
    return out;
}

template <typename T>
carray<T> conv2d_images_backward_input(carray<T> grad, carray<T> weight,
                                       std::array<int64_t, 4> input_shape, Pair stride,
                                       Pair padding, Pair dilation) {
    const char* op = "conv2d_images_backward_input";
    require(tg::has_blas(), std::string(op) + ": no BLAS routines were set (set_blas)");
    const Problem p =
        problem(input_shape, shape4(weight, "conv2d_images_backward_input: weight"), stride,
                padding, dilation, op);
    require(grad.ndim() == 4 && grad.shape(0) == p.images && grad.shape(1) == p.filters &&
                grad.shape(2) == p.g.out_h && grad.shape(3) == p.g.out_w,
            std::string(op) + ": grad is not (N, K, OH, OW) for the input and weight shapes");
    carray<T> dx = tg::new_array<T>({input_shape[0], input_shape[1], input_shape[2],
                                     input_shape[3]});
    const T* dy = grad.data();
    const T* w = weight.data();
    T* out = dx.mutable_data();
    const int64_t image_size = p.channels * p.g.height * p.g.width;
    over_image_ranges<T>(p, ranges_for(p), [&](int64_t, int64_t begin, int64_t end, T* cols) {
        for (int64_t n = begin; n < end; ++n) {
            tg::gemm<T>(true, false, p.patch(), p.pixels, p.filters, w, p.patch(),
                        dy + n * p.filters * p.pixels, p.pixels, T(0), cols, p.pixels);
            add_image_back(cols, out + n * image_size, p);
        }
    });
    return dx;
}

template <typename T>
carray<T> conv2d_images_backward_weight(carray<T> grad, py::array_t<T, 0> x,
                                        std::array<int64_t, 4> weight_shape, Pair stride,
                                        Pair padding, Pair dilation) {
    const char* op = "conv2d_images_backward_weight";
    require(tg::has_blas(), std::string(op) + ": no BLAS routines were set (set_blas)");
    const Problem p = problem(shape4(x, "conv2d_images_backward_weight: x"), weight_shape,
                              stride, padding, dilation, op);
    require(grad.ndim() == 4 && grad.shape(0) == p.images && grad.shape(1) == p.filters &&
                grad.shape(2) == p.g.out_h && grad.shape(3) == p.g.out_w,
            std::string(op) + ": grad is not (N, K, OH, OW) for the input and weight shapes");
    carray<T> dweight = tg::new_array<T>({weight_shape[0], weight_shape[1], weight_shape[2],
                                          weight_shape[3]});
    const int64_t size = p.patch() * p.filters;
    T* dw = dweight.mutable_data();
    if (p.images == 0) {
        std::fill(dw, dw + size, T(0));
        return dweight;
    }
    // by the shapes alone (see the top of the file): several ranges only where the work
    // would be shared out at all
    const int64_t ranges = p.images * p.patch() * p.pixels > tg::kParallelGrain
                               ? std::min(p.images, kWeightGradientRanges)
                               : 1;
    Buffer<T> sums(ranges * size);  // each (C*KH*KW, K): dW^T
    const std::array<int64_t, 4> s = element_strides(x);
    const T* in = x.data();
    const T* dy = grad.data();
    over_image_ranges<T>(p, ranges, [&](int64_t range, int64_t begin, int64_t end, T* cols) {
        T* sum = sums.data() + range * size;
        for (int64_t n = begin; n < end; ++n) {
            image_cols(in + n * s[0], s[1], s[2], s[3], cols, p);
            // cols @ grad[n]^T: OpenBLAS runs this orientation of the skinny product faster
            // than grad[n] @ cols^T (docs/performance.md, "conv2d one image at a time")
            tg::gemm<T>(false, true, p.patch(), p.filters, p.pixels, cols, p.pixels,
                        dy + n * p.filters * p.pixels, p.pixels, n == begin ? T(0) : T(1), sum,
                        p.filters);
        }
    });
    // dW[k, j] = the ranges' dW^T[j, k], added in range order
    {
        py::gil_scoped_release release;
        const T* partial = sums.data();
        tg::parallel_for(p.filters, ranges * size, [&](int64_t k) {
            for (int64_t j = 0; j < p.patch(); ++j) {
                T total = partial[j * p.filters + k];
                for (int64_t r = 1; r < ranges; ++r) total += partial[r * size + j * p.filters + k];
                dw[k * p.patch() + j] = total;
            }
        });
    }
    return dweight;
}

// One image's V (36, C, TH*TW), from an input image read through the strides s.
template <typename T>
void transformed_image(const T* image, const std::array<int64_t, 4>& s, int64_t channels,
                       int64_t height, int64_t width, Pair padding, Pair tiles, T* v, T* rows) {
    const int64_t per_image = tiles[0] * tiles[1];
    for (int64_t channel = 0; channel < channels; ++channel)
        input_transform_plane(image + channel * s[1], s[2], s[3], height, width, padding, tiles,
                              v + channel * per_image, channels * per_image, rows);
}

// Winograd F(4x4, 3x3) one image at a time (winograd.h): each task transforms an image's
// input into a V of its own (36, C, TH*TW), runs the 36 GEMMs M[e] = U[e] @ V[e] (U, the
// transformed filters, is (36, K, C)) and transforms M into the image's output, so V and M
// stay in the task's cache and the pool meets no barrier between the three steps
// (winograd.cpp's chunked transforms run each step over the pool in turn, around
// native_blas.py's batched GEMM).
template <typename T>
carray<T> winograd_conv2d_images(py::array_t<T, 0> x, carray<T> u,
                                 std::optional<carray<T>> bias, Pair padding, Pair output_hw) {
    require(tg::has_blas(), "winograd_conv2d_images: no BLAS routines were set (set_blas)");
    require(x.ndim() == 4 && u.ndim() == 3 && u.shape(0) == kPoints && u.shape(2) == x.shape(1),
            "winograd_conv2d_images: expected x (N, C, H, W) and U (36, K, C)");
    const int64_t n = x.shape(0), c = x.shape(1), height = x.shape(2), width = x.shape(3);
    const int64_t k = u.shape(1), out_h = output_hw[0], out_w = output_hw[1];
    require(!bias || bias->size() == k, "winograd_conv2d_images: bias must have K elements");
    require(padding[0] >= 0 && padding[1] >= 0 && out_h > 0 && out_w > 0,
            "winograd_conv2d_images: padding must be >= 0 and the output not empty");
    const Pair tiles = tile_counts(out_h, out_w);
    const int64_t per_image = tiles[0] * tiles[1];
    carray<T> y = tg::new_array<T>({n, k, out_h, out_w});
    const std::array<int64_t, 4> s = element_strides(x);
    const T* in = x.data();
    const T* filters = u.data();
    const T* shift = bias ? bias->data() : nullptr;
    T* out = y.mutable_data();
    const int64_t scratch = std::max((2 * kSpan + 1) * kTile * (tiles[1] + 1),
                                     kTile * kSpan * tiles[1]);
    {
        py::gil_scoped_release release;
        tg::SingleThreadedBlas single_threaded;
        tg::parallel_ranges(n, tg::range_count(n, n * kPoints * (c + k) * per_image),
                            [&](int64_t, int64_t begin, int64_t end) {
            Buffer<T> v(kPoints * c * per_image), m(kPoints * k * per_image), rows(scratch);
            for (int64_t image = begin; image < end; ++image) {
                transformed_image(in + image * s[0], s, c, height, width, padding, tiles,
                                  v.data(), rows.data());
                for (int64_t e = 0; e < kPoints; ++e)
                    tg::gemm<T>(false, false, k, per_image, c, filters + e * k * c, c,
                                v.data() + e * c * per_image, per_image, T(0),
                                m.data() + e * k * per_image, per_image);
                for (int64_t channel = 0; channel < k; ++channel)
                    output_transform_plane(m.data() + channel * per_image, k * per_image, tiles,
                                           out_h, out_w, shift ? shift[channel] : T(0),
                                           out + (image * k + channel) * out_h * out_w,
                                           rows.data());
            }
        });
    }
    return y;
}

// Backward-weight one image at a time, as winograd_conv2d_images: each task transforms an
// image's input (V) and its output gradient (dM = the output transform's adjoint), and adds
// dM[e] @ V[e]^T into a sum of its own, for its range of images. The ranges follow the
// shapes alone (at most kWinogradGradientRanges: each sum is 36 weight-sized matrices), and
// their sums are added in order, so the rounding is the same on any number of threads.
// Returns dU (36, K, C); cpu_winograd.filter_transform_adjoint makes it dW.
constexpr int64_t kWinogradGradientRanges = 8;

template <typename T>
carray<T> winograd_backward_weight_images(carray<T> grad, py::array_t<T, 0> x, Pair padding) {
    require(tg::has_blas(),
            "winograd_backward_weight_images: no BLAS routines were set (set_blas)");
    require(grad.ndim() == 4 && x.ndim() == 4 && grad.shape(0) == x.shape(0),
            "winograd_backward_weight_images: expected grad (N, K, OH, OW) and x (N, C, H, W)");
    const int64_t n = x.shape(0), c = x.shape(1), height = x.shape(2), width = x.shape(3);
    const int64_t k = grad.shape(1), out_h = grad.shape(2), out_w = grad.shape(3);
    require(padding[0] >= 0 && padding[1] >= 0 && out_h > 0 && out_w > 0,
            "winograd_backward_weight_images: padding must be >= 0 and grad not empty");
    const Pair tiles = tile_counts(out_h, out_w);
    const int64_t per_image = tiles[0] * tiles[1], size = kPoints * k * c;
    carray<T> grad_u = tg::new_array<T>({kPoints, k, c});
    T* total = grad_u.mutable_data();
    if (n == 0) {
        std::fill(total, total + size, T(0));
        return grad_u;
    }
    const int64_t ranges = std::min(n, kWinogradGradientRanges);
    Buffer<T> sums(ranges * size);  // the first image of a range writes its sum, the rest add
    const std::array<int64_t, 4> s = element_strides(x);
    const T* in = x.data();
    const T* dy = grad.data();
    const int64_t scratch = std::max((2 * kSpan + 1) * kTile * (tiles[1] + 1),
                                     (kTile + kSpan) * kTile * tiles[1]);
    {
        py::gil_scoped_release release;
        tg::SingleThreadedBlas single_threaded;
        tg::parallel_ranges(n, ranges, [&](int64_t range, int64_t begin, int64_t end) {
            Buffer<T> v(kPoints * c * per_image), dm(kPoints * k * per_image), rows(scratch);
            T* sum = sums.data() + range * size;
            for (int64_t image = begin; image < end; ++image) {
                transformed_image(in + image * s[0], s, c, height, width, padding, tiles,
                                  v.data(), rows.data());
                for (int64_t channel = 0; channel < k; ++channel)
                    output_adjoint_plane(dy + (image * k + channel) * out_h * out_w, tiles,
                                         out_h, out_w, dm.data() + channel * per_image,
                                         k * per_image, rows.data());
                const T beta = image == begin ? T(0) : T(1);
                for (int64_t e = 0; e < kPoints; ++e)
                    tg::gemm<T>(false, true, k, c, per_image, dm.data() + e * k * per_image,
                                per_image, v.data() + e * c * per_image, per_image, beta,
                                sum + e * k * c, c);
            }
        });
        const T* partial = sums.data();
        tg::parallel_for(size, ranges * size, [&](int64_t i) {
            T value = partial[i];
            for (int64_t r = 1; r < ranges; ++r) value += partial[r * size + i];
            total[i] = value;
        });
    }
    return grad_u;
}

template <typename T>
void register_for(py::module_& m) {
    m.def("conv2d_images", &conv2d_images<T>, py::arg("x").noconvert(),
          py::arg("weight").noconvert(), py::arg("bias").noconvert() = py::none(),
          py::arg("stride"), py::arg("padding"), py::arg("dilation"));
    m.def("conv2d_images_backward_input", &conv2d_images_backward_input<T>,
          py::arg("grad").noconvert(), py::arg("weight").noconvert(), py::arg("input_shape"),
          py::arg("stride"), py::arg("padding"), py::arg("dilation"));
    m.def("conv2d_images_backward_weight", &conv2d_images_backward_weight<T>,
          py::arg("grad").noconvert(), py::arg("x").noconvert(), py::arg("weight_shape"),
          py::arg("stride"), py::arg("padding"), py::arg("dilation"));
    m.def("winograd_conv2d_images", &winograd_conv2d_images<T>, py::arg("x").noconvert(),
          py::arg("u").noconvert(), py::arg("bias").noconvert() = py::none(),
          py::arg("padding"), py::arg("output_hw"));
    m.def("winograd_backward_weight_images", &winograd_backward_weight_images<T>,
          py::arg("grad").noconvert(), py::arg("x").noconvert(), py::arg("padding"));
}

}  // namespace

void register_conv_images(py::module_& m) {
    register_for<float>(m);
    register_for<double>(m);
}
