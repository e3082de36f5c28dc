// conv2d one image at a time, im2col and GEMM fused, for batches of small images.
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

#include "blas.h"
#include "common.h"
#include "im2col.h"

namespace {

using tg::conv::Geometry;
using tg::conv::Pair;

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
        std::unique_ptr<T[]> cols(new T[p.patch() * p.pixels]);
        range_body(range, begin, end, cols.get());
    });
}

int64_t ranges_for(const Problem& p) {
    return tg::range_count(p.images, p.images * p.patch() * p.pixels);
}

template <typename T>
carray<T> conv2d_images(py::array_t<T, 0> x, carray<T> weight, std::optional<carray<T>> bias,
                        Pair stride, Pair padding, Pair dilation) {
    require(tg::has_blas(), "conv2d_images: no BLAS routines were set (set_blas)");
    const Problem p = problem(shape4(x, "conv2d_images: x"), shape4(weight, "conv2d_images: weight"),
                              stride, padding, dilation, "conv2d_images");
    require(!bias || (bias->ndim() == 1 && bias->shape(0) == p.filters),
            "conv2d_images: the bias is not (K,)");
    carray<T> out = tg::new_array<T>({p.images, p.filters, p.g.out_h, p.g.out_w});
    const int64_t s0 = x.strides(0) / int64_t(sizeof(T)), s1 = x.strides(1) / int64_t(sizeof(T));
    const int64_t s2 = x.strides(2) / int64_t(sizeof(T)), s3 = x.strides(3) / int64_t(sizeof(T));
    const T* in = x.data();
    const T* w = weight.data();
    const T* b = bias ? bias->data() : nullptr;
    T* y = out.mutable_data();
    over_image_ranges<T>(p, ranges_for(p), [&](int64_t, int64_t begin, int64_t end, T* cols) {
        for (int64_t n = begin; n < end; ++n) {
            image_cols(in + n * s0, s1, s2, s3, cols, p);
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
    std::unique_ptr<T[]> sums(new T[ranges * size]);  // each (C*KH*KW, K): dW^T
    const int64_t s0 = x.strides(0) / int64_t(sizeof(T)), s1 = x.strides(1) / int64_t(sizeof(T));
    const int64_t s2 = x.strides(2) / int64_t(sizeof(T)), s3 = x.strides(3) / int64_t(sizeof(T));
    const T* in = x.data();
    const T* dy = grad.data();
    over_image_ranges<T>(p, ranges, [&](int64_t range, int64_t begin, int64_t end, T* cols) {
        T* sum = sums.get() + range * size;
        for (int64_t n = begin; n < end; ++n) {
            image_cols(in + n * s0, s1, s2, s3, cols, p);
            // cols @ grad[n]^T: OpenBLAS runs this orientation of the skinny product faster
            // than grad[n] @ cols^T (0.052 against 0.060 ms for the CNN's second conv)
            tg::gemm<T>(false, true, p.patch(), p.filters, p.pixels, cols, p.pixels,
                        dy + n * p.filters * p.pixels, p.pixels, n == begin ? T(0) : T(1), sum,
                        p.filters);
        }
    });
    // dW[k, j] = the ranges' dW^T[j, k], added in range order
    {
        py::gil_scoped_release release;
        tg::parallel_for(p.filters, ranges * size, [&](int64_t k) {
            for (int64_t j = 0; j < p.patch(); ++j) {
                T total = sums[j * p.filters + k];
                for (int64_t r = 1; r < ranges; ++r) total += sums[r * size + j * p.filters + k];
                dw[k * p.patch() + j] = total;
            }
        });
    }
    return dweight;
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
}

}  // namespace

void register_conv_images(py::module_& m) {
    register_for<float>(m);
    register_for<double>(m);
}
