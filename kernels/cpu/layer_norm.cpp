// Layer normalisation over the rows of an (R, C) array, forward and backward.
//
// One row at a time, entirely in cache: forward reads x twice (mean, then the centred sum
// of squares: the two-pass variance NumPy also uses, so rounding stays close) and writes
// out once; backward reads grad and x once for the two row sums and again to write dx. The
// NumPy reference (backend/reference_norm.py) makes about ten full passes with temporaries.
// Statistics accumulate in double. dweight and dbias are column sums over the rows: each
// range of rows sums into private columns, added up at the end in range order.
#include <cmath>
#include <vector>

#include "common.h"

namespace {

template <typename T>
TG_TARGET_ISA void normalize_row(const T* x, const T* weight, const T* bias, T* out,
                                   int64_t columns, double eps, T* mean_out, T* rstd_out) {
    double sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int64_t c = 0; c < columns; ++c) sum += x[c];
    const double mean = sum / columns;
    double squares = 0;
#pragma omp simd reduction(+ : squares)
    for (int64_t c = 0; c < columns; ++c) {
        const double d = x[c] - mean;
        squares += d * d;
    }
    const T rstd = T(1.0 / std::sqrt(squares / columns + eps));
    const T mean_t = T(mean);
    for (int64_t c = 0; c < columns; ++c) {
        T value = (x[c] - mean_t) * rstd;
        if (weight) value *= weight[c];
        if (bias) value += bias[c];
        out[c] = value;
    }
    *mean_out = mean_t;
    *rstd_out = rstd;
}

// dx for one row; adds grad * x^ and grad into the thread's dweight / dbias columns
template <typename T>
TG_TARGET_ISA void backward_row(const T* grad, const T* x, const T* weight, T mean, T rstd,
                                  T* dx, int64_t columns, double* dweight, double* dbias) {
    double sum_g = 0, sum_g_xhat = 0;
#pragma omp simd reduction(+ : sum_g, sum_g_xhat)
    for (int64_t c = 0; c < columns; ++c) {
        const double xhat = double(x[c] - mean) * rstd;
        const double g = weight ? double(grad[c]) * weight[c] : double(grad[c]);
        sum_g += g;
        sum_g_xhat += g * xhat;
    }
    const T mean_g = T(sum_g / columns), mean_g_xhat = T(sum_g_xhat / columns);
    // two loops rather than one with the weight tests inside: that one stayed scalar
    if (weight) {
#pragma omp simd
        for (int64_t c = 0; c < columns; ++c) {
            const T xhat = (x[c] - mean) * rstd;
            dx[c] = rstd * (grad[c] * weight[c] - mean_g - xhat * mean_g_xhat);
            dweight[c] += double(grad[c]) * xhat;
            dbias[c] += grad[c];
        }
    } else {
#pragma omp simd
        for (int64_t c = 0; c < columns; ++c) {
            const T xhat = (x[c] - mean) * rstd;
            dx[c] = rstd * (grad[c] - mean_g - xhat * mean_g_xhat);
            dbias[c] += grad[c];
        }
    }
}

template <typename T>
const T* optional_data(const std::optional<carray<T>>& array, int64_t columns,
                       const char* name) {
    if (!array) return nullptr;
    require(array->ndim() == 1 && array->shape(0) == columns,
            std::string("layer_norm: ") + name + " must have shape (C,)");
    return array->data();
}

template <typename T>
py::tuple layer_norm(carray<T> x, std::optional<carray<T>> weight,
                     std::optional<carray<T>> bias, double eps) {
    require(x.ndim() == 2, "layer_norm: expected a 2-D (rows, columns) input");
    const int64_t rows = x.shape(0), columns = x.shape(1);
    const T* w = optional_data(weight, columns, "weight");
    const T* b = optional_data(bias, columns, "bias");
    carray<T> out = tg::new_array<T>({rows, columns});
    carray<T> mean = tg::new_array<T>({rows});
    carray<T> rstd = tg::new_array<T>({rows});
    const T* in = x.data();
    T *o = out.mutable_data(), *m = mean.mutable_data(), *r = rstd.mutable_data();
    {
        py::gil_scoped_release release;
        tg::parallel_for(rows, rows * columns, [&](int64_t row) {
            normalize_row(in + row * columns, w, b, o + row * columns, columns, eps, m + row,
                          r + row);
        });
    }
    return py::make_tuple(out, mean, rstd);
}

template <typename T>
py::tuple layer_norm_backward(carray<T> grad, carray<T> x, carray<T> mean, carray<T> rstd,
                              std::optional<carray<T>> weight) {
    require(x.ndim() == 2 && grad.ndim() == 2 && grad.shape(0) == x.shape(0) &&
                grad.shape(1) == x.shape(1),
            "layer_norm_backward: grad and x must be (rows, columns) of the same shape");
    const int64_t rows = x.shape(0), columns = x.shape(1);
    require(mean.ndim() == 1 && rstd.ndim() == 1 && mean.shape(0) == rows &&
                rstd.shape(0) == rows,
            "layer_norm_backward: mean and rstd must have shape (rows,)");
    const T* w = optional_data(weight, columns, "weight");
    carray<T> dx = tg::new_array<T>({rows, columns});
    carray<T> dweight = tg::new_array<T>({columns});
    carray<T> dbias = tg::new_array<T>({columns});
    const T *g = grad.data(), *in = x.data(), *m = mean.data(), *r = rstd.data();
    T* d = dx.mutable_data();
    // Each range of rows sums its own dweight/dbias partials; they are added up in range
    // order afterwards, and the ranges follow the shape alone, so the result depends neither
    // on which thread finished first nor on how many threads there are.
    const int64_t ranges = tg::fixed_range_count(rows, rows * columns);
    std::vector<double> partial_dweight(w ? ranges * columns : 0, 0.0);
    std::vector<double> partial_dbias(ranges * columns, 0.0);
    {
        py::gil_scoped_release release;
        tg::parallel_ranges(rows, ranges, [&](int64_t range, int64_t begin, int64_t end) {
            double* range_dweight = w ? partial_dweight.data() + range * columns : nullptr;
            double* range_dbias = partial_dbias.data() + range * columns;
            for (int64_t row = begin; row < end; ++row)
                backward_row(g + row * columns, in + row * columns, w, m[row], r[row],
                             d + row * columns, columns, range_dweight, range_dbias);
        });
    }
    std::vector<double> total_dweight(columns, 0.0), total_dbias(columns, 0.0);
    for (int64_t range = 0; range < ranges; ++range)
        for (int64_t c = 0; c < columns; ++c) {
            if (w) total_dweight[c] += partial_dweight[range * columns + c];
            total_dbias[c] += partial_dbias[range * columns + c];
        }
    T *dw = dweight.mutable_data(), *db = dbias.mutable_data();
    for (int64_t c = 0; c < columns; ++c) {
        dw[c] = T(total_dweight[c]);
        db[c] = T(total_dbias[c]);
    }
    return py::make_tuple(dx, w ? py::object(dweight) : py::none(), dbias);
}

template <typename T>
void register_for(py::module_& m) {
    m.def("layer_norm", &layer_norm<T>, py::arg("x").noconvert(), py::arg("weight").none(true),
          py::arg("bias").none(true), py::arg("eps"));
    m.def("layer_norm_backward", &layer_norm_backward<T>, py::arg("grad").noconvert(),
          py::arg("x").noconvert(), py::arg("mean").noconvert(), py::arg("rstd").noconvert(),
          py::arg("weight").none(true));
}

}  // namespace

void register_layer_norm(py::module_& m) {
    register_for<float>(m);
    register_for<double>(m);
}
