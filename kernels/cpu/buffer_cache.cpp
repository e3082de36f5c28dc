// The block cache behind tg::new_array (buffer_cache.h says why it exists).
#include "buffer_cache.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <unordered_map>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace tg {
namespace {

constexpr std::size_t kAlignment = 64;  // a cache line: vector loads never straddle two

// Sizes are rounded up to 1/16 of their power of two, so arrays that differ a little share
// a class and a block wastes at most 1/16 of itself.
std::size_t size_class(std::size_t bytes) {
    std::size_t power = 1;
    while (power < bytes) power <<= 1;
    const std::size_t step = std::max<std::size_t>(power / 16, kAlignment);
    return (bytes + step - 1) / step * step;
}

struct Cache {
    std::mutex mutex;
    std::unordered_map<std::size_t, std::vector<void*>> free_blocks;  // class -> unused blocks
    std::unordered_map<void*, std::size_t> block_class;               // every live block
    std::size_t unused_bytes = 0;
    std::size_t limit = std::size_t(1) << 30;
};

// Never destroyed: capsules of arrays that outlive the module still return blocks here.
Cache& cache() {
    static Cache* instance = new Cache();
    return *instance;
}

void free_unused(Cache& c) {
    for (auto& [bytes, blocks] : c.free_blocks) {
        for (void* block : blocks) {
            c.block_class.erase(block);
            std::free(block);
        }
    }
    c.free_blocks.clear();
    c.unused_bytes = 0;
}

}  // namespace

void* acquire_block(std::size_t bytes) {
    Cache& c = cache();
    const std::size_t rounded = size_class(bytes);
    {
        std::lock_guard<std::mutex> lock(c.mutex);
        auto found = c.free_blocks.find(rounded);
        if (found != c.free_blocks.end() && !found->second.empty()) {
            void* block = found->second.back();
            found->second.pop_back();
            c.unused_bytes -= rounded;
            return block;
        }
    }
    void* block = std::aligned_alloc(kAlignment, rounded);
    if (block == nullptr) {
        empty_cache();  // the cache may be what stands between this array and the memory
        block = std::aligned_alloc(kAlignment, rounded);
        if (block == nullptr) throw std::bad_alloc();
    }
    std::lock_guard<std::mutex> lock(c.mutex);
    c.block_class[block] = rounded;
    return block;
}

void release_block(void* block) {
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mutex);
    const std::size_t rounded = c.block_class.at(block);
    if (c.unused_bytes + rounded > c.limit) {
        c.block_class.erase(block);
        std::free(block);
        return;
    }
    c.free_blocks[rounded].push_back(block);
    c.unused_bytes += rounded;
}

const char* tune_malloc() {
#if defined(__GLIBC__)
    const char* tunables = std::getenv("GLIBC_TUNABLES");
    if (std::getenv("MALLOC_MMAP_THRESHOLD_") || std::getenv("MALLOC_TRIM_THRESHOLD_") ||
        (tunables && std::strstr(tunables, "glibc.malloc"))) {
        return "glibc malloc thresholds as the environment sets them";
    }
    // glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64-bit, and twice it, as its dynamic rule sets
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
    return "glibc malloc: mmap threshold 32 MiB, trim threshold 64 MiB (set by _C)";
#else
    return "malloc untouched (not glibc)";
#endif
}

void set_cache_limit(std::size_t bytes) {
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mutex);
    c.limit = bytes;
    if (c.unused_bytes > c.limit) free_unused(c);
}

std::size_t cache_limit() {
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mutex);
    return c.limit;
}

std::size_t cached_bytes() {
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mutex);
    return c.unused_bytes;
}

void empty_cache() {
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mutex);
    free_unused(c);
}

}  // namespace tg
