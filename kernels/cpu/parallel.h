// The threads of the native kernels: a small pool whose idle workers sleep.
//
// Why not OpenMP's parallel loops: libgomp is one runtime per process, configured by whichever
// library loads it first. PyTorch loads it with spinning waits, and a spinning team fights
// OpenBLAS's threads for the cores every time a kernel hands over to a GEMM
// (docs/performance.md, "The native pool"). These workers block on a condition variable
// between jobs, so BLAS gets the cores back at once, whoever was imported first.
// `#pragma omp simd` still vectorises the inner loops (it needs no runtime).
//
// A job is a count of tasks; the caller and the workers claim them one at a time from an
// atomic counter, so a worker that wakes late only means the caller runs more of them.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>

namespace tg {

// Work below this many elements runs on the calling thread: waking a worker costs more.
constexpr int64_t kParallelGrain = 1 << 18;

int num_threads();
void set_num_threads(int threads);  // 0: one per CPU this process may run on

// Calls task(i) for every i in [0, tasks) on the pool (the caller included); returns when all
// are done. Called from inside a task, or with one thread, it runs them in order here.
void run_tasks(int64_t tasks, const std::function<void(int64_t)>& task);

// A hint to the CPU that this thread is polling a flag another thread will set.
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
}

// Ranges per thread. One per thread would be enough on idle cores, but a worker can lose
// its core for a while: right after a GEMM, OpenBLAS's threads spin waiting for the next
// one, and on 2 cores the pool's worker then runs at half speed. With one range each, the
// caller finishes its half and waits for the worker's; with several, it claims the ranges
// the worker has not reached (tasks are claimed one at a time); docs/performance.md, "The
// native pool", has the measurements.
constexpr int64_t kRangesPerThread = 4;

// How many contiguous ranges parallel_ranges should cut [0, count) into: kRangesPerThread
// per thread when `work` (elements touched) is above kParallelGrain, else one.
inline int64_t range_count(int64_t count, int64_t work) {
    return work > kParallelGrain
               ? std::max<int64_t>(1, std::min<int64_t>(kRangesPerThread * num_threads(), count))
               : 1;
}

// For kernels that add up per-range partial results: a number of ranges set by the work alone
// (one per kParallelGrain elements touched, at most kMaxFixedRanges), never by the thread
// count, so the order of those additions, and with it the rounding, is the same whatever
// set_num_threads says and on every machine. On 2 threads 4M elements make 16 ranges.
constexpr int64_t kMaxFixedRanges = 64;

inline int64_t fixed_range_count(int64_t count, int64_t work) {
    return std::max<int64_t>(1, std::min({count, work / kParallelGrain, kMaxFixedRanges}));
}

// range_body(range, begin, end) for `ranges` contiguous ranges covering [0, count), in
// parallel. The range index lets a caller keep per-range partial results and combine them in
// order afterwards (its buffers sized by the same `ranges`).
template <typename RangeBody>
void parallel_ranges(int64_t count, int64_t ranges, RangeBody range_body) {
    if (count <= 0) return;
    if (ranges <= 1) {
        range_body(int64_t(0), int64_t(0), count);
        return;
    }
    run_tasks(ranges, [&](int64_t r) {
        range_body(r, r * count / ranges, (r + 1) * count / ranges);
    });
}

// body(i) for every i in [0, count), split into contiguous ranges as above.
template <typename Body>
void parallel_for(int64_t count, int64_t work, Body body) {
    parallel_ranges(count, range_count(count, work), [&](int64_t, int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) body(i);
    });
}

// body(i) for every i, each claimed on its own: for items of very different sizes.
template <typename Body>
void parallel_items(int64_t count, int64_t work, Body body) {
    if (work <= kParallelGrain || num_threads() == 1) {
        for (int64_t i = 0; i < count; ++i) body(i);
        return;
    }
    run_tasks(count, [&](int64_t i) { body(i); });
}

}  // namespace tg
