// The geometry of a convolution's taps and the per-plane im2col/col2im loops, shared by the
// batched im2col/col2im (im2col.cpp) and the convolutions one image at a time (conv_images.cpp).
// Padding is never materialised: each output row splits into a zero (or skipped) left edge,
// an inner run that reads the input directly (a straight copy or add at stride 1), and a
// right edge.
#pragma once

#include <algorithm>
#include <array>

#include "common.h"

namespace tg::conv {

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

inline Geometry geometry(int64_t height, int64_t width, Pair kernel, Pair stride,
                         Pair padding, Pair dilation) {
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

}  // namespace tg::conv
