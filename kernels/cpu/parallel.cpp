// The worker pool behind parallel.h.
#include "parallel.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__linux__)
#include <sched.h>
#include <unistd.h>
#endif

namespace tg {
namespace {

// One job's tasks and counters. Workers hold it by shared_ptr: one that wakes after the job
// is over still finds valid counters, claims nothing, and never touches the finished task.
struct Job {
    const std::function<void(int64_t)>* task;
    int64_t tasks;
    std::atomic<int64_t> next{0}, finished{0};
};

thread_local bool t_inside_task = false;

// How long a caller that has run out of tasks polls for the workers' last ones before it
// sleeps. A sleeping caller is woken by the last worker through the kernel, which on a VM
// takes tens of microseconds: a tenth of the MLP training step (docs/performance.md, "The
// native pool"). It polls by yielding, so that a thread waiting for its core (another
// process's, where several share the cores) runs meanwhile. The workers never poll: a
// polling worker takes a core from the Python thread and from other libraries'.
constexpr auto kCallerPoll = std::chrono::microseconds(200);

class Pool {
public:
    explicit Pool(int threads) {
        for (int i = 1; i < threads; ++i) workers_.emplace_back([this] { work(); });
    }

    ~Pool() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            stopping_ = true;
        }
        wake_.notify_all();
        for (std::thread& worker : workers_) worker.join();
    }

    int threads() const { return int(workers_.size()) + 1; }

    void run(int64_t tasks, const std::function<void(int64_t)>& task) {
        std::lock_guard<std::mutex> one_job_at_a_time(run_mutex_);  // callers without the GIL
        auto job = std::make_shared<Job>();
        job->task = &task;
        job->tasks = tasks;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            job_ = job;
            ++generation_;
        }
        wake_.notify_all();
        drain(*job);
        const auto poll_until = std::chrono::steady_clock::now() + kCallerPoll;
        while (job->finished.load(std::memory_order_acquire) != tasks &&
               std::chrono::steady_clock::now() < poll_until) {
            std::this_thread::yield();
        }
        std::unique_lock<std::mutex> lock(mutex_);
        done_.wait(lock, [&] { return job->finished.load() == tasks; });
        job_.reset();
    }

private:
    void drain(Job& job) {
        t_inside_task = true;
        for (int64_t i; (i = job.next.fetch_add(1)) < job.tasks;) {
            (*job.task)(i);
            if (job.finished.fetch_add(1) + 1 == job.tasks) {
                std::lock_guard<std::mutex> lock(mutex_);  // so the caller cannot miss it
                done_.notify_all();
            }
        }
        t_inside_task = false;
    }

    void work() {
        uint64_t seen = 0;
        for (;;) {
            std::shared_ptr<Job> job;
            {
                std::unique_lock<std::mutex> lock(mutex_);
                wake_.wait(lock, [&] { return stopping_ || generation_ != seen; });
                if (stopping_) return;
                seen = generation_;
                job = job_;
            }
            if (job) drain(*job);
        }
    }

    std::vector<std::thread> workers_;
    std::mutex run_mutex_, mutex_;
    std::condition_variable wake_, done_;
    std::shared_ptr<Job> job_;
    uint64_t generation_ = 0;
    bool stopping_ = false;
};

int default_threads() {
#if defined(__linux__)
    cpu_set_t cpus;
    if (sched_getaffinity(0, sizeof cpus, &cpus) == 0) return std::max(1, CPU_COUNT(&cpus));
#endif
    return int(std::max(1u, std::thread::hardware_concurrency()));
}

int process_id() {
#if defined(__linux__)
    return int(getpid());
#else
    return 0;
#endif
}

std::mutex g_pool_mutex;
std::shared_ptr<Pool> g_pool;  // a caller holds its own reference while it runs a job
int g_pool_pid = 0;

std::shared_ptr<Pool> pool() {
    std::lock_guard<std::mutex> lock(g_pool_mutex);
    if (g_pool && g_pool_pid != process_id()) {
        // A forked child has the parent's memory but none of its threads: leak the old pool
        // (joining threads that do not exist would hang) and start a new one.
        new std::shared_ptr<Pool>(std::move(g_pool));
    }
    if (!g_pool) {
        g_pool = std::make_shared<Pool>(default_threads());
        g_pool_pid = process_id();
    }
    return g_pool;
}

}  // namespace

int num_threads() { return pool()->threads(); }

void set_num_threads(int threads) {
    auto replacement = std::make_shared<Pool>(threads > 0 ? threads : default_threads());
    std::shared_ptr<Pool> old = pool();
    {
        std::lock_guard<std::mutex> lock(g_pool_mutex);
        g_pool = std::move(replacement);
    }
    // `old` joins its idle workers when the last job still running on it lets go
}

void run_tasks(int64_t tasks, const std::function<void(int64_t)>& task) {
    std::shared_ptr<Pool> workers = t_inside_task || tasks <= 1 ? nullptr : pool();
    if (!workers || workers->threads() == 1) {
        for (int64_t i = 0; i < tasks; ++i) task(i);
        return;
    }
    workers->run(tasks, task);
}

}  // namespace tg
