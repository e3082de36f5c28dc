// Writing a large output around the caches.
//
// An ordinary store to a line that is not in the cache first reads that line from memory
// (write-allocate), so an elementwise op on arrays larger than the caches moves its output
// twice: c = a * b reads a, b and c and writes c, four lines of traffic for every three it
// needs. Streaming (non-temporal) stores write whole lines without reading them first, and
// leave the inputs in the cache. Smaller outputs are likely still cached when the next op
// reads them, and there ordinary stores are the faster ones (streaming_min_bytes;
// docs/performance.md, "Streaming stores").
//
// The streaming loops are written on vector_types.h's vectors of the module's width: the
// vectoriser cannot be told to stream its stores, and staging a piece in L1 to copy it out
// costs more than it saves.
// Arithmetic on these types is the same IEEE operation per lane as the scalar loop's.
// Without SSE2 (not x86-64) nothing streams.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>

#include "vector_types.h"

#if defined(__SSE2__)
#include <immintrin.h>
#endif

namespace tg {

#if defined(__SSE2__)
constexpr bool kCanStream = true;
#else
constexpr bool kCanStream = false;
#endif

// The smallest output written with streaming stores by default: a quarter of the 32 MiB L3 of
// the machine it was measured on, about where an op's inputs and output together stop fitting
// (docs/performance.md, "Streaming stores"). A constant, not read from the CPU: in a VM,
// CPUID's figure (glibc's sysconf said 320 MiB there) need not be the cache a process gets.
constexpr int64_t kDefaultStreamingMinBytes = int64_t(8) << 20;

inline std::atomic<int64_t>& streaming_min_bytes() {
    static std::atomic<int64_t> bytes{kDefaultStreamingMinBytes};
    return bytes;
}

// 0: back to the default. Tests set 1 to take the streaming loops at every size.
inline void set_streaming_min_bytes(int64_t bytes) {
    streaming_min_bytes().store(bytes > 0 ? bytes : kDefaultStreamingMinBytes);
}

inline bool streams(int64_t output_bytes) {
    return kCanStream && output_bytes >= streaming_min_bytes().load(std::memory_order_relaxed);
}

// An input of stream_map: `step` 1 for an array, 0 for a scalar.
template <typename T, int64_t step>
struct Operand {
    const T* data;

    TG_VECTOR_INLINE T at(int64_t i) const { return data[i * step]; }

    Operand offset(int64_t begin) const { return Operand{data + begin * step}; }

    TG_VECTOR_INLINE vector_t<T> vector_at(int64_t i) const {
        if constexpr (step == 0) {
            return data[0] - vector_t<T>{};  // the scalar in every lane (- 0 keeps a -0.0)
        } else {
            return load_vector(data + i);
        }
    }
};

// Elements before `out` reaches the vector alignment streaming stores need.
template <typename T>
inline int64_t unaligned_head(const T* out, int64_t count) {
    const auto misalignment = int64_t(reinterpret_cast<uintptr_t>(out) % kVectorBytes);
    const int64_t head = misalignment == 0 ? 0 : (kVectorBytes - misalignment) / sizeof(T);
    return head < count ? head : count;
}

// `to` aligned to kVectorBytes
template <typename T>
TG_VECTOR_INLINE void stream_vector(T* to, vector_t<T> v) {
#if defined(__SSE2__)
    if constexpr (kVectorBytes == 64) {
        _mm512_stream_si512(reinterpret_cast<__m512i*>(to), (__m512i)v);
    } else if constexpr (kVectorBytes == 32) {
        _mm256_stream_si256(reinterpret_cast<__m256i*>(to), (__m256i)v);
    } else {
        _mm_stream_si128(reinterpret_cast<__m128i*>(to), (__m128i)v);
    }
#else
    std::memcpy(to, &v, sizeof v);
#endif
}

// Streaming stores are weakly ordered: fence a task's before it is counted done, so that
// whoever reads the output next sees them.
inline void stream_fence() {
#if defined(__SSE2__)
    _mm_sfence();
#endif
}

// out[i] = f(inputs.at(i)...) for i in [0, count), with streaming stores. f is called on
// scalars at the unaligned ends and on vector_t<T> in between, and must give the same value
// per lane either way (one IEEE operation per element does). The caller is a TG_TARGET_ISA
// function and f's operator() TG_VECTOR_INLINE, so that all of it is compiled at the module's
// level (common.h).
template <typename T, typename F, typename... Operands>
TG_VECTOR_INLINE void stream_map(T* out, int64_t count, F f, Operands... inputs) {
    constexpr int64_t lanes = Vector<T>::lanes;
    int64_t i = 0;
    for (const int64_t head = unaligned_head(out, count); i < head; ++i) {
        out[i] = f(inputs.at(i)...);
    }
    for (; i + lanes <= count; i += lanes) stream_vector(out + i, f(inputs.vector_at(i)...));
    for (; i < count; ++i) out[i] = f(inputs.at(i)...);
}

}  // namespace tg
