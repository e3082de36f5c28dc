// Attention over short key sequences, forward and backward, one head at a time on the pool.
//
// The tiled path (backend/cpu_attention.py) does its FLOPs in batched BLAS calls on 64x64
// blocks, which pays for long sequences. With a few dozen keys a head's whole problem fits
// in L1 (the Transformer benchmark's: 64 queries and keys of 32 dimensions), and there the
// calls, their packing and the Python and threads between them cost more than the arithmetic
// (docs/performance.md, "CPU attention: short sequences"). Here one pool task takes a range
// of heads, and each head is a few small products in registers (small_gemm) over blocks of
// query rows, with the softmax between them; the backward recomputes the probabilities from
// lse, as the tiled path does. Every head is one task's, so the results do not depend on the
// thread count.
//
// Scores are (q * scale) . k, the tiled path's rounding order; row sums accumulate in double.
// This file is compiled with fused multiply-adds, as softmax.cpp (CMakeLists.txt).
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "common.h"
#include "vector_math.h"
#include "vector_types.h"

namespace {

using tg::exp_of_at_most_zero;
using tg::vector_padded;
using tg::vector_t;

constexpr int64_t kRowBlock = 32;  // query rows per block: the depth of the dK and dV updates

// c[i, 0:n) = (accumulate ? c[i, 0:n) : 0) + sum_k a(i, k) * b[k, 0:n) for i in [0, R), with
// a(i, k) = a[i * a_row + k * a_col], in registers: R rows by one or two vectors of columns.
template <int R, bool accumulate, typename T>
TG_VECTOR_INLINE void gemm_rows(int64_t n, int64_t depth, const T* a, int64_t a_row,
                                int64_t a_col, const T* b, int64_t ldb, T* c, int64_t ldc) {
    using V = vector_t<T>;
    constexpr int64_t W = tg::Vector<T>::lanes;
    int64_t col = 0;
    for (; col + 2 * W <= n; col += 2 * W) {
        V acc[R][2];
        for (int r = 0; r < R; ++r) {
            acc[r][0] = accumulate ? tg::load_vector(c + r * ldc + col) : V{};
            acc[r][1] = accumulate ? tg::load_vector(c + r * ldc + col + W) : V{};
        }
        for (int64_t k = 0; k < depth; ++k) {
            const V b0 = tg::load_vector(b + k * ldb + col);
            const V b1 = tg::load_vector(b + k * ldb + col + W);
            for (int r = 0; r < R; ++r) {
                const T ak = a[r * a_row + k * a_col];
                acc[r][0] += ak * b0;
                acc[r][1] += ak * b1;
            }
        }
        for (int r = 0; r < R; ++r) {
            tg::store_vector(c + r * ldc + col, acc[r][0]);
            tg::store_vector(c + r * ldc + col + W, acc[r][1]);
        }
    }
    for (; col < n; col += W) {
        V acc[R];
        for (int r = 0; r < R; ++r) acc[r] = accumulate ? tg::load_vector(c + r * ldc + col) : V{};
        for (int64_t k = 0; k < depth; ++k) {
            const V b0 = tg::load_vector(b + k * ldb + col);
            for (int r = 0; r < R; ++r) acc[r] += a[r * a_row + k * a_col] * b0;
        }
        for (int r = 0; r < R; ++r) tg::store_vector(c + r * ldc + col, acc[r]);
    }
}

// gemm_rows over `rows` rows, four at a time; n is a whole number of vectors, and b's and c's
// rows (ldb, ldc) at least that long.
template <bool accumulate, typename T>
TG_VECTOR_INLINE void small_gemm(int64_t rows, int64_t n, int64_t depth, const T* a,
                                 int64_t a_row, int64_t a_col, const T* b, int64_t ldb, T* c,
                                 int64_t ldc) {
    int64_t i = 0;
    for (; i + 4 <= rows; i += 4) {
        gemm_rows<4, accumulate>(n, depth, a + i * a_row, a_row, a_col, b, ldb, c + i * ldc, ldc);
    }
    for (; i < rows; ++i) {
        gemm_rows<1, accumulate>(n, depth, a + i * a_row, a_row, a_col, b, ldb, c + i * ldc, ldc);
    }
}

struct Shape {
    int64_t heads, queries, keys, dim, dim_v;
    bool causal;

    // keys query i sees: PyTorch's top-left causal alignment, key j iff j <= i
    int64_t visible(int64_t i) const { return causal ? std::min(i + 1, keys) : keys; }
};

// A head's operands, copied with their rows padded to whole vectors (zeros in the padding),
// and the blocks of rows in between. One per task.
template <typename T>
struct Scratch {
    int64_t keys_p, dim_p, dim_v_p;
    std::vector<T> keys_t, values_t, keys_rows, values_rows, q_rows, g_rows, p, ds, out_rows,
        dk, dv;

    explicit Scratch(const Shape& s)
        : keys_p(vector_padded<T>(s.keys)), dim_p(vector_padded<T>(s.dim)),
          dim_v_p(vector_padded<T>(s.dim_v)), keys_t(s.dim * keys_p), values_t(s.dim_v * keys_p),
          keys_rows(s.keys * dim_p), values_rows(s.keys * dim_v_p), q_rows(kRowBlock * dim_p),
          g_rows(kRowBlock * dim_v_p), p(kRowBlock * keys_p), ds(kRowBlock * keys_p),
          out_rows(kRowBlock * std::max(dim_p, dim_v_p)), dk(s.keys * dim_p),
          dv(s.keys * dim_v_p) {}
};

// rows (count, width) into `to` with rows of `stride`, or transposed (width, stride)
template <typename T>
void copy_padded(const T* rows, int64_t count, int64_t width, T* to, int64_t stride,
                 bool transposed) {
    for (int64_t r = 0; r < count; ++r)
        for (int64_t c = 0; c < width; ++c)
            (transposed ? to[c * stride + r] : to[r * stride + c]) = rows[r * width + c];
}

// Block of query rows [first, first + rows): the keys any of them sees, and that many
// rounded up to whole vectors (the score columns computed).
struct RowBlock {
    int64_t first, rows, keys_seen, columns;
};

template <typename T>
RowBlock row_block(const Shape& s, int64_t first) {
    const int64_t rows = std::min(kRowBlock, s.queries - first);
    const int64_t seen = s.visible(first + rows - 1);
    return {first, rows, seen, vector_padded<T>(seen)};
}

// q rows times scale, into rows of dim_p
template <typename T>
TG_INLINE void scaled_rows(const T* q, const RowBlock& b, const Shape& s, T scale, T* to,
                           int64_t dim_p) {
    for (int64_t r = 0; r < b.rows; ++r) {
        const T* row = q + (b.first + r) * s.dim;
#pragma omp simd
        for (int64_t d = 0; d < s.dim; ++d) to[r * dim_p + d] = row[d] * scale;
    }
}

template <typename T>
TG_TARGET_ISA void forward_head(const T* q, const T* k, const T* v, T* out, T* lse, T scale,
                                const Shape& s, Scratch<T>& w) {
    copy_padded(k, s.keys, s.dim, w.keys_t.data(), w.keys_p, true);
    copy_padded(v, s.keys, s.dim_v, w.values_rows.data(), w.dim_v_p, false);
    T *q_rows = w.q_rows.data(), *p = w.p.data(), *o = w.out_rows.data();
    T inverse[kRowBlock];  // each row's 1 / sum
    for (int64_t first = 0; first < s.queries; first += kRowBlock) {
        const RowBlock b = row_block<T>(s, first);
        scaled_rows(q, b, s, scale, q_rows, w.dim_p);
        small_gemm<false>(b.rows, b.columns, s.dim, q_rows, w.dim_p, 1, w.keys_t.data(),
                          w.keys_p, p, w.keys_p);
        for (int64_t r = 0; r < b.rows; ++r) {
            T* row = p + r * w.keys_p;
            const int64_t visible = s.visible(first + r);
            T top = row[0];
            for (int64_t j = 1; j < visible; ++j) top = row[j] > top ? row[j] : top;
            double sum = 0;
#pragma omp simd reduction(+ : sum)
            for (int64_t j = 0; j < visible; ++j) {
                row[j] = exp_of_at_most_zero(row[j] - top);
                sum += row[j];
            }
            std::fill(row + visible, row + b.columns, T(0));
            lse[first + r] = top + T(std::log(sum));
            inverse[r] = T(1.0 / sum);
        }
        small_gemm<false>(b.rows, w.dim_v_p, b.keys_seen, p, w.keys_p, 1, w.values_rows.data(),
                          w.dim_v_p, o, w.dim_v_p);
        for (int64_t r = 0; r < b.rows; ++r) {
            T* to = out + (first + r) * s.dim_v;
#pragma omp simd
            for (int64_t e = 0; e < s.dim_v; ++e) to[e] = o[r * w.dim_v_p + e] * inverse[r];
        }
    }
}

// dV += P^T dO, dP = dO V^T, dS = P * (dP - delta), dQ = dS K * scale, dK += dS^T (Q * scale)
template <typename T>
TG_TARGET_ISA void backward_head(const T* grad, const T* q, const T* k, const T* v,
                                 const T* out, const T* lse, T* dq, T* dk, T* dv, T scale,
                                 const Shape& s, Scratch<T>& w) {
    copy_padded(k, s.keys, s.dim, w.keys_t.data(), w.keys_p, true);
    copy_padded(k, s.keys, s.dim, w.keys_rows.data(), w.dim_p, false);
    copy_padded(v, s.keys, s.dim_v, w.values_t.data(), w.keys_p, true);
    std::fill(w.dk.begin(), w.dk.end(), T(0));
    std::fill(w.dv.begin(), w.dv.end(), T(0));
    T *q_rows = w.q_rows.data(), *g_rows = w.g_rows.data(), *p = w.p.data(), *ds = w.ds.data();
    T* dq_rows = w.out_rows.data();
    for (int64_t first = 0; first < s.queries; first += kRowBlock) {
        const RowBlock b = row_block<T>(s, first);
        scaled_rows(q, b, s, scale, q_rows, w.dim_p);
        copy_padded(grad + first * s.dim_v, b.rows, s.dim_v, g_rows, w.dim_v_p, false);
        small_gemm<false>(b.rows, b.columns, s.dim, q_rows, w.dim_p, 1, w.keys_t.data(),
                          w.keys_p, p, w.keys_p);
        small_gemm<false>(b.rows, b.columns, s.dim_v, g_rows, w.dim_v_p, 1, w.values_t.data(),
                          w.keys_p, ds, w.keys_p);  // dP
        for (int64_t r = 0; r < b.rows; ++r) {
            const int64_t i = first + r, visible = s.visible(i);
            const T *g = g_rows + r * w.dim_v_p, *o = out + i * s.dim_v;
            double delta = 0;
#pragma omp simd reduction(+ : delta)
            for (int64_t e = 0; e < s.dim_v; ++e) delta += double(g[e]) * o[e];
            const T row_lse = lse[i], delta_t = T(delta);
            T *p_row = p + r * w.keys_p, *ds_row = ds + r * w.keys_p;
#pragma omp simd
            for (int64_t j = 0; j < visible; ++j) {
                p_row[j] = exp_of_at_most_zero(p_row[j] - row_lse);
                ds_row[j] = p_row[j] * (ds_row[j] - delta_t);
            }
            std::fill(p_row + visible, p_row + b.columns, T(0));
            std::fill(ds_row + visible, ds_row + b.columns, T(0));
        }
        small_gemm<false>(b.rows, w.dim_p, b.keys_seen, ds, w.keys_p, 1, w.keys_rows.data(),
                          w.dim_p, dq_rows, w.dim_p);
        for (int64_t r = 0; r < b.rows; ++r) {
            T* to = dq + (first + r) * s.dim;
#pragma omp simd
            for (int64_t d = 0; d < s.dim; ++d) to[d] = dq_rows[r * w.dim_p + d] * scale;
        }
        // key j's rows: dK[j] += sum_r dS[r, j] q_rows[r], dV[j] += sum_r P[r, j] dO[r]
        small_gemm<true>(b.keys_seen, w.dim_p, b.rows, ds, 1, w.keys_p, q_rows, w.dim_p,
                         w.dk.data(), w.dim_p);
        small_gemm<true>(b.keys_seen, w.dim_v_p, b.rows, p, 1, w.keys_p, g_rows, w.dim_v_p,
                         w.dv.data(), w.dim_v_p);
    }
    for (int64_t j = 0; j < s.keys; ++j) {
        std::copy_n(w.dk.data() + j * w.dim_p, s.dim, dk + j * s.dim);
        std::copy_n(w.dv.data() + j * w.dim_v_p, s.dim_v, dv + j * s.dim_v);
    }
}

Shape shape_of(const py::array& q, const py::array& k, const py::array& v, bool causal) {
    require(q.ndim() == 3 && k.ndim() == 3 && v.ndim() == 3 && k.shape(0) == q.shape(0) &&
                v.shape(0) == q.shape(0) && k.shape(2) == q.shape(2) && v.shape(1) == k.shape(1),
            "short_attention: expected q (Z, L, D), k (Z, S, D) and v (Z, S, Dv), got q " +
                shape_text(q) + ", k " + shape_text(k) + ", v " + shape_text(v));
    require(q.shape(1) > 0 && k.shape(1) > 0 && q.shape(2) > 0 && v.shape(2) > 0,
            "short_attention: empty sequences or heads are the tiled path's, got q " +
                shape_text(q) + ", k " + shape_text(k) + ", v " + shape_text(v));
    return Shape{q.shape(0), q.shape(1), k.shape(1), q.shape(2), v.shape(2), causal};
}

// body(head, scratch) for every head, in ranges of heads on the pool, one scratch per range
template <typename T, typename Body>
void over_heads(const Shape& s, Body body) {
    py::gil_scoped_release release;
    const int64_t work = s.heads * s.queries * s.keys * (s.dim + s.dim_v);
    tg::parallel_ranges(s.heads, tg::range_count(s.heads, work),
                        [&](int64_t, int64_t begin, int64_t end) {
                            Scratch<T> scratch(s);
                            for (int64_t z = begin; z < end; ++z) body(z, scratch);
                        });
}

template <typename T>
py::tuple forward(carray<T> q, carray<T> k, carray<T> v, bool causal, double scale) {
    const Shape s = shape_of(q, k, v, causal);
    carray<T> out = tg::new_array<T>({s.heads, s.queries, s.dim_v});
    carray<T> lse = tg::new_array<T>({s.heads, s.queries});
    const T *pq = q.data(), *pk = k.data(), *pv = v.data();
    T *po = out.mutable_data(), *pl = lse.mutable_data();
    over_heads<T>(s, [&](int64_t z, Scratch<T>& scratch) {
        forward_head(pq + z * s.queries * s.dim, pk + z * s.keys * s.dim,
                     pv + z * s.keys * s.dim_v, po + z * s.queries * s.dim_v,
                     pl + z * s.queries, T(scale), s, scratch);
    });
    return py::make_tuple(out, lse);
}

template <typename T>
py::tuple backward(carray<T> grad, carray<T> q, carray<T> k, carray<T> v, carray<T> out,
                   carray<T> lse, bool causal, double scale) {
    const Shape s = shape_of(q, k, v, causal);
    require(grad.ndim() == 3 && out.ndim() == 3 && grad.shape(0) == s.heads &&
                grad.shape(1) == s.queries && grad.shape(2) == s.dim_v &&
                out.shape(0) == s.heads && out.shape(1) == s.queries && out.shape(2) == s.dim_v &&
                lse.ndim() == 2 && lse.shape(0) == s.heads && lse.shape(1) == s.queries,
            "short_attention_backward: expected grad and out (Z, L, Dv) and lse (Z, L) for q " +
                shape_text(q) + " and v " + shape_text(v) + ", got grad " + shape_text(grad) +
                ", out " + shape_text(out) + ", lse " + shape_text(lse));
    carray<T> dq = tg::new_array<T>({s.heads, s.queries, s.dim});
    carray<T> dk = tg::new_array<T>({s.heads, s.keys, s.dim});
    carray<T> dv = tg::new_array<T>({s.heads, s.keys, s.dim_v});
    const T *pg = grad.data(), *pq = q.data(), *pk = k.data(), *pv = v.data();
    const T *po = out.data(), *pl = lse.data();
    T *gq = dq.mutable_data(), *gk = dk.mutable_data(), *gv = dv.mutable_data();
    over_heads<T>(s, [&](int64_t z, Scratch<T>& scratch) {
        const int64_t query_rows = z * s.queries, key_rows = z * s.keys;
        backward_head(pg + query_rows * s.dim_v, pq + query_rows * s.dim, pk + key_rows * s.dim,
                      pv + key_rows * s.dim_v, po + query_rows * s.dim_v, pl + query_rows,
                      gq + query_rows * s.dim, gk + key_rows * s.dim, gv + key_rows * s.dim_v,
                      T(scale), s, scratch);
    });
    return py::make_tuple(dq, dk, dv);
}

template <typename T>
void register_for(py::module_& m) {
    m.def("short_attention", &forward<T>, py::arg("q").noconvert(), py::arg("k").noconvert(),
          py::arg("v").noconvert(), py::arg("is_causal"), py::arg("scale"));
    m.def("short_attention_backward", &backward<T>, py::arg("grad").noconvert(),
          py::arg("q").noconvert(), py::arg("k").noconvert(), py::arg("v").noconvert(),
          py::arg("out").noconvert(), py::arg("lse").noconvert(), py::arg("is_causal"),
          py::arg("scale"));
}

}  // namespace

void register_short_attention(py::module_& m) {
    register_for<float>(m);
    register_for<double>(m);
}
