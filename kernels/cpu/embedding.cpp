// Embedding backward: scatter-add the rows of grad (N, D) into dweight (num_weights, D).
//
// np.add.at (the NumPy reference in backend/reference_conv.py) takes a slow path per element; here
// each grad row is one vector add into its weight row. Rows can repeat (a small vocabulary
// repeats constantly), so the threads split the D columns instead of the N rows: each owns
// a band of columns of every weight row and no two write the same element.
#include <algorithm>

#include "common.h"

namespace {

constexpr int64_t kBand = 64;  // columns per thread task: whole cache lines, vector-friendly

template <typename T>
TG_TARGET_ISA void scatter_band(const T* grad, const int64_t* indices, T* dweight,
                                  int64_t rows, int64_t dim, int64_t first, int64_t last) {
    for (int64_t r = 0; r < rows; ++r) {
        const T* source = grad + r * dim;
        T* target = dweight + indices[r] * dim;
        for (int64_t c = first; c < last; ++c) target[c] += source[c];
    }
}

template <typename T>
carray<T> embedding_backward(carray<T> grad, carray<int64_t> indices, int64_t num_weights,
                             int64_t padding_idx) {
    require(grad.ndim() == 2 && indices.ndim() == 1 && indices.shape(0) == grad.shape(0),
            "embedding_backward: expected grad (N, D) and indices (N,)");
    const int64_t rows = grad.shape(0), dim = grad.shape(1);
    carray<int64_t> wrapped({rows});  // negative indices count from the end, as in NumPy
    const int64_t* in = indices.data();
    int64_t* idx = wrapped.mutable_data();
    for (int64_t r = 0; r < rows; ++r) {
        idx[r] = in[r] < 0 ? in[r] + num_weights : in[r];
        if (idx[r] < 0 || idx[r] >= num_weights)
            throw py::index_error("embedding_backward: index " + std::to_string(in[r]) +
                                  " is out of range for " + std::to_string(num_weights) +
                                  " embeddings");
    }
    carray<T> dweight = tg::new_array<T>({num_weights, dim});
    const T* g = grad.data();
    T* d = dweight.mutable_data();
    {
        py::gil_scoped_release release;
        std::fill(d, d + num_weights * dim, T(0));
        const int64_t bands = (dim + kBand - 1) / kBand;
        tg::parallel_for(bands, rows * dim, [&](int64_t b) {
            scatter_band(g, idx, d, rows, dim, b * kBand, std::min(dim, (b + 1) * kBand));
        });
        if (padding_idx >= 0 && padding_idx < num_weights)
            std::fill(d + padding_idx * dim, d + (padding_idx + 1) * dim, T(0));
    }
    return dweight;
}

template <typename T>
void register_for(py::module_& m) {
    m.def("embedding_backward", &embedding_backward<T>, py::arg("grad").noconvert(),
          py::arg("indices").noconvert(), py::arg("num_weights"), py::arg("padding_idx"));
}

}  // namespace

void register_embedding(py::module_& m) {
    register_for<float>(m);
    register_for<double>(m);
}
