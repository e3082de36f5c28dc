// Where the native kernels' large output arrays come from: a cache of freed blocks.
//
// A training step allocates the same large arrays every time (activations, gradients, im2col
// buffers) and frees them again. glibc serves blocks that large with fresh mmap'd or
// re-grown heap pages and returns them to the system on free, so every step pays a page
// fault per 4 KiB touched: ~4,000 for one 16 MiB array, measured as over a third of the
// softmax benchmark's time. Like tinygrad's LRUAllocator and PyTorch's CUDA caching
// allocator, a freed block is kept here, keyed by its size class, and handed to the next
// array of that class, whose pages are then already mapped.
//
// Blocks of at least kCachedMinBytes are cached, up to a limit on the bytes held while
// unused (set_cache_limit, 0 turns caching off); smaller arrays come from NumPy as usual.
// An output owns its block through a capsule, so a NumPy view keeps it alive and the last
// reference returns it. Every call happens with the GIL held, and a mutex guards the lists
// anyway.
#pragma once

#include <cstddef>
#include <vector>

#include <pybind11/numpy.h>

namespace tg {

constexpr std::size_t kCachedMinBytes = std::size_t(1) << 20;

void* acquire_block(std::size_t bytes);  // a block of at least `bytes`, never null
void release_block(void* block);         // back to the cache, or to the system past the limit

// Raise glibc's thresholds for mmap'd blocks and for trimming the heap to the values glibc
// itself moves to once a program frees a 32 MiB block (its dynamic threshold), so a training
// run is in that state from its first step rather than page-faulting its mid-sized NumPy
// arrays (128 KiB to 32 MiB) in again every step until some large temporary happens to be
// freed (docs/performance.md, "glibc's mmap and trim thresholds").
// Left alone where the environment sets either threshold (MALLOC_MMAP_THRESHOLD_,
// MALLOC_TRIM_THRESHOLD_, GLIBC_TUNABLES) and off glibc. Returns what it did, in words.
const char* tune_malloc();

void set_cache_limit(std::size_t bytes);
std::size_t cache_limit();
std::size_t cached_bytes();  // held now, unused
void empty_cache();          // hand every unused block back to the system

// A new C-contiguous array of `shape`, from the cache when it is large enough.
template <typename T>
using output_array = pybind11::array_t<T, pybind11::array::c_style>;

template <typename T>
output_array<T> new_array(const std::vector<pybind11::ssize_t>& shape) {
    std::size_t count = 1;
    for (pybind11::ssize_t extent : shape) count *= std::size_t(extent);
    if (count * sizeof(T) < kCachedMinBytes || cache_limit() == 0) return output_array<T>(shape);
    void* block = acquire_block(count * sizeof(T));
    pybind11::capsule owner(block, [](void* data) { release_block(data); });
    return output_array<T>(shape, static_cast<T*>(block), owner);
}

}  // namespace tg
