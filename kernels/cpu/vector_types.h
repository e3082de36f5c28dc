// GCC/Clang vector types of the module's width: 16 bytes on the baseline, 32 for x86-64-v3,
// 64 for x86-64-v4 (CMakeLists.txt builds one module per level). Arithmetic on them is one
// IEEE operation per lane. For loops the vectoriser cannot be asked to write: streaming
// stores (streaming.h) and register-blocked products (short_attention.cpp). Functions on them
// are TG_VECTOR_INLINE (common.h).
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>

namespace tg {

constexpr int64_t kVectorBytes = std::string_view(TG_ISA_LEVEL) == "x86-64-v4"   ? 64
                                 : std::string_view(TG_ISA_LEVEL) == "x86-64-v3" ? 32
                                                                                 : 16;

template <typename T>
struct Vector {
    typedef T type __attribute__((vector_size(kVectorBytes)));
    static constexpr int64_t lanes = kVectorBytes / int64_t(sizeof(T));
};

template <typename T>
using vector_t = typename Vector<T>::type;

template <typename T>
TG_VECTOR_INLINE vector_t<T> load_vector(const T* from) {
    vector_t<T> v;
    std::memcpy(&v, from, sizeof v);
    return v;
}

template <typename T>
TG_VECTOR_INLINE void store_vector(T* to, vector_t<T> v) {
    std::memcpy(to, &v, sizeof v);
}

// count rounded up to a whole number of vectors of T
template <typename T>
constexpr int64_t vector_padded(int64_t count) {
    return (count + Vector<T>::lanes - 1) / Vector<T>::lanes * Vector<T>::lanes;
}

}  // namespace tg
