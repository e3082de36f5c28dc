// The pieces of Winograd F(4x4, 3x3) convolution that work on one plane: the 1-D transforms
// and the per-plane input transform, output transform and output adjoint, shared by the
// chunked transforms (winograd.cpp) and the convolution one image at a time
// (conv_images.cpp). backend/cpu_winograd.py has the algorithm, the matrices, and the NumPy
// references these are tested against.
//
// Each 2-D transform is two passes of 1-D transforms. The input transform and the output
// adjoint stage the rows one tile row reads in a zero-padded buffer and run the first pass
// along whole rows (a vector loop over the width), so padding and a ragged last tile cost
// no per-element bounds checks; the second pass then works tile by tile.
#pragma once

#include <algorithm>
#include <array>

#include "common.h"

namespace tg::winograd {

using Pair = std::array<int64_t, 2>;
constexpr int64_t kTile = 4;              // outputs per tile side
constexpr int64_t kSpan = kTile + 2;      // inputs a tile reads per side
constexpr int64_t kPoints = kSpan * kSpan;  // transformed values per tile

// B^T d for one column or row d0..d5 of an input tile (cpu_winograd.B_T, its zeros skipped)
template <typename T>
TG_INLINE void input_1d(T d0, T d1, T d2, T d3, T d4, T d5, T* out, int64_t out_step) {
    out[0] = T(4) * d0 - T(5) * d2 + d4;
    out[out_step] = -T(4) * d1 - T(4) * d2 + d3 + d4;
    out[2 * out_step] = T(4) * d1 - T(4) * d2 - d3 + d4;
    out[3 * out_step] = -T(2) * d1 - d2 + T(2) * d3 + d4;
    out[4 * out_step] = T(2) * d1 - d2 - T(2) * d3 + d4;
    out[5 * out_step] = T(4) * d1 - T(5) * d3 + d5;
}

// A^T m for one column or row m of a transformed tile (cpu_winograd.A_T)
template <typename T>
TG_INLINE void output_1d(const T* m, int64_t step, T* out) {
    const T m0 = m[0], m1 = m[step], m2 = m[2 * step], m3 = m[3 * step], m4 = m[4 * step],
            m5 = m[5 * step];
    out[0] = m0 + m1 + m2 + m3 + m4;
    out[1] = m1 - m2 + T(2) * m3 - T(2) * m4;
    out[2] = m1 + m2 + T(4) * m3 + T(4) * m4;
    out[3] = m1 - m2 + T(8) * m3 - T(8) * m4 + m5;
}

// A g (A^T's transpose) for one column or row g0..g3 of a gradient tile: output_1d's adjoint
template <typename T>
TG_INLINE void output_adjoint_1d(T g0, T g1, T g2, T g3, T* out, int64_t out_step) {
    out[0] = g0;
    out[out_step] = g0 + g1 + g2 + g3;
    out[2 * out_step] = g0 - g1 + g2 - g3;
    out[3 * out_step] = g0 + T(2) * g1 + T(4) * g2 + T(8) * g3;
    out[4 * out_step] = g0 - T(2) * g1 + T(4) * g2 - T(8) * g3;
    out[5 * out_step] = g3;
}

// The rows a tile row reads are staged "by phase": phase p of a row holds its elements
// 4t + p, so the values at 4 tw + j that tile tw needs are element tw (j < 4) or tw + 1
// (j >= 4) of phase j % 4, and both passes are vector loops over contiguous arrays.
struct Phases {
    int64_t length;  // elements per phase: one per tile, plus one for the 2-wide overlap
    int64_t row() const { return kTile * length; }
};

// One input plane (strides in elements) -> its tiles in the 36 matrices of V, each
// `matrix_stride` apart. `scratch` holds 2 * kSpan + 1 phased rows.
template <typename T>
TG_TARGET_ISA void input_transform_plane(const T* x, int64_t stride_y, int64_t stride_x,
                                           int64_t height, int64_t width, Pair padding,
                                           Pair tiles, T* v, int64_t matrix_stride,
                                           T* scratch) {
    const Phases phases{tiles[1] + 1};
    const int64_t n = phases.length, row_size = phases.row();
    T* staged = scratch;                      // kSpan zero-padded input rows, phased
    T* combined = scratch + kSpan * row_size;  // B^T applied down their columns
    T* line = combined + kSpan * row_size;     // one zero-padded row before phasing
    const int64_t first = padding[1], last = std::min(row_size, width + padding[1]);
    std::fill(line, line + row_size, T(0));
    for (int64_t th = 0; th < tiles[0]; ++th) {
        for (int64_t r = 0; r < kSpan; ++r) {
            T* row = staged + r * row_size;
            const int64_t y = kTile * th + r - padding[0];
            if (y < 0 || y >= height) {
                std::fill(row, row + row_size, T(0));
                continue;
            }
            const T* in = x + y * stride_y - padding[1] * stride_x;
            for (int64_t xx = first; xx < last; ++xx) line[xx] = in[xx * stride_x];
            for (int64_t t = 0; t < n; ++t)
                for (int64_t p = 0; p < kTile; ++p) row[p * n + t] = line[kTile * t + p];
        }
#pragma omp simd
        for (int64_t e = 0; e < row_size; ++e)
            input_1d(staged[e], staged[row_size + e], staged[2 * row_size + e],
                     staged[3 * row_size + e], staged[4 * row_size + e],
                     staged[5 * row_size + e], combined + e, row_size);
        T* out = v + th * tiles[1];
        for (int64_t a = 0; a < kSpan; ++a) {
            const T* p0 = combined + a * row_size;
            const T *p1 = p0 + n, *p2 = p0 + 2 * n, *p3 = p0 + 3 * n;
            T* tiles_out = out + a * kSpan * matrix_stride;
#pragma omp simd
            for (int64_t tw = 0; tw < tiles[1]; ++tw)
                input_1d(p0[tw], p1[tw], p2[tw], p3[tw], p0[tw + 1], p1[tw + 1], tiles_out + tw,
                         matrix_stride);
        }
    }
}

// One output plane's tiles (in the 36 matrices of M, `matrix_stride` apart) -> the plane,
// cropped to out_h x out_w, plus `bias`. Each tile row runs A^T down the tiles' columns
// for all its tiles at once (vector loops over contiguous runs of M), into `scratch`
// (kTile * kSpan * tiles[1] values), then along each tile's rows.
template <typename T>
TG_TARGET_ISA void output_transform_plane(const T* m, int64_t matrix_stride, Pair tiles,
                                            int64_t out_h, int64_t out_w, T bias, T* y,
                                            T* scratch) {
    const int64_t count = tiles[1];
    for (int64_t th = 0; th < tiles[0]; ++th) {
        const T* in = m + th * count;
        for (int64_t j = 0; j < kSpan; ++j) {  // scratch[i][j][tw]: row i, column j
            T* column = scratch + j * count;
#pragma omp simd
            for (int64_t tw = 0; tw < count; ++tw) {
                T outputs[kTile];
                output_1d(in + j * matrix_stride + tw, kSpan * matrix_stride, outputs);
                for (int64_t i = 0; i < kTile; ++i) column[i * kSpan * count + tw] = outputs[i];
            }
        }
        const int64_t rows = std::min(kTile, out_h - kTile * th);
        for (int64_t i = 0; i < rows; ++i) {
            T* out = y + (kTile * th + i) * out_w;
            const T* row = scratch + i * kSpan * count;
            for (int64_t tw = 0; tw < count; ++tw) {
                T outputs[kTile];
                output_1d(row + tw, count, outputs);
                const int64_t cols = std::min(kTile, out_w - kTile * tw);
                for (int64_t j = 0; j < cols; ++j) out[kTile * tw + j] = outputs[j] + bias;
            }
        }
    }
}

// One gradient plane (out_h x out_w, contiguous) -> its tiles in the 36 matrices of dM.
// `scratch` holds kTile + kSpan phased rows (one phase element per tile).
template <typename T>
TG_TARGET_ISA void output_adjoint_plane(const T* grad, Pair tiles, int64_t out_h,
                                          int64_t out_w, T* dm, int64_t matrix_stride,
                                          T* scratch) {
    const int64_t n = tiles[1], row_size = kTile * n;
    T* staged = scratch;                        // kTile gradient rows, zero past the edges
    T* combined = scratch + kTile * row_size;  // A applied down their columns
    for (int64_t th = 0; th < tiles[0]; ++th) {
        for (int64_t r = 0; r < kTile; ++r) {
            T* row = staged + r * row_size;
            const int64_t y = kTile * th + r;
            std::fill(row, row + row_size, T(0));
            if (y >= out_h) continue;
            const T* in = grad + y * out_w;
            for (int64_t xx = 0; xx < out_w; ++xx) row[(xx % kTile) * n + xx / kTile] = in[xx];
        }
#pragma omp simd
        for (int64_t e = 0; e < row_size; ++e)
            output_adjoint_1d(staged[e], staged[row_size + e], staged[2 * row_size + e],
                              staged[3 * row_size + e], combined + e, row_size);
        T* out = dm + th * tiles[1];
        for (int64_t a = 0; a < kSpan; ++a) {
            const T* p0 = combined + a * row_size;
            const T *p1 = p0 + n, *p2 = p0 + 2 * n, *p3 = p0 + 3 * n;
            T* tiles_out = out + a * kSpan * matrix_stride;
#pragma omp simd
            for (int64_t tw = 0; tw < n; ++tw)
                output_adjoint_1d(p0[tw], p1[tw], p2[tw], p3[tw], tiles_out + tw, matrix_stride);
        }
    }
}

inline Pair tile_counts(int64_t out_h, int64_t out_w) {
    return {(out_h + kTile - 1) / kTile, (out_w + kTile - 1) / kTile};
}

}  // namespace tg::winograd
