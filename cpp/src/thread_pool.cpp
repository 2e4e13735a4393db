#include "thread_pool.hpp"

#include <chrono>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define FASTADAM_CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define FASTADAM_CPU_RELAX() asm volatile("yield")
#else
#define FASTADAM_CPU_RELAX() ((void)0)
#endif

namespace fastadam {

namespace {
// A worker spins this long for the next call before it sleeps: optimizer steps come back to
// back in a training loop, and waking a sleeping thread costs several microseconds.
constexpr auto kSpinTime = std::chrono::microseconds(200);
}  // namespace

ThreadPool::ThreadPool(int threads) {
    for (int i = 1; i < threads; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
    publish(kStopWord);
    for (auto& w : workers_) w.join();
}

// Stores the new generation word and wakes sleeping workers. Both sides use seq_cst: a worker
// counts itself in sleepers_ before it re-reads generation_, the caller stores generation_
// before it reads sleepers_, so at least one of them sees the other.
void ThreadPool::publish(std::uint64_t word) {
    generation_.store(word);
    if (sleepers_.load() > 0) {
        std::lock_guard<std::mutex> lock(sleep_mutex_);
        wake_.notify_all();
    }
}

void ThreadPool::run(Task task, void* context, int parts) {
    if (parts <= 1 || workers_.empty()) {
        task(context, 0, 1);
        return;
    }
    std::lock_guard<std::mutex> lock(run_mutex_);
    task_ = task;
    context_ = context;
    pending_.store(parts - 1, std::memory_order_relaxed);
    const std::uint64_t run_count = (generation_.load(std::memory_order_relaxed) >> 16) + 1;
    publish((run_count << 16) | static_cast<std::uint64_t>(parts));
    task(context, 0, parts);
    while (pending_.load(std::memory_order_acquire) != 0) FASTADAM_CPU_RELAX();
}

void ThreadPool::worker_loop(int index) {
    std::uint64_t seen = 0;  // the word before the first run, even if this thread starts late
    for (;;) {
        // Spin for a while, then sleep until the generation word changes.
        const auto spin_until = std::chrono::steady_clock::now() + kSpinTime;
        std::uint64_t now;
        for (int n = 0; (now = generation_.load(std::memory_order_acquire)) == seen; ++n) {
            if ((n & 255) == 255 && std::chrono::steady_clock::now() > spin_until) {
                std::unique_lock<std::mutex> lock(sleep_mutex_);
                sleepers_.fetch_add(1);
                wake_.wait(lock, [&] { return generation_.load() != seen; });
                sleepers_.fetch_sub(1);
            } else {
                FASTADAM_CPU_RELAX();
            }
        }
        seen = now;
        if (now == kStopWord) return;
        const int parts = static_cast<int>(now & 0xffff);
        if (index < parts) {
            task_(context_, index, parts);
            pending_.fetch_sub(1, std::memory_order_acq_rel);
        }
    }
}

}  // namespace fastadam
