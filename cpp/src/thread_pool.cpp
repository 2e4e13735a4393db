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

constexpr std::uint64_t kFieldMask = (1u << 20) - 1;
constexpr std::uint64_t run_of(std::uint64_t claim) { return claim >> 40; }
constexpr std::uint64_t chunks_of(std::uint64_t claim) { return (claim >> 20) & kFieldMask; }
constexpr std::uint64_t next_of(std::uint64_t claim) { return claim & kFieldMask; }

}  // namespace

ThreadPool::ThreadPool(int threads) {
    try {
        workers_.reserve(static_cast<std::size_t>(threads > 1 ? threads - 1 : 0));
        for (int i = 1; i < threads; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
    } catch (...) {
        // Threads refused (std::system_error): stop the workers already started, or their
        // std::thread objects would terminate the process when destroyed.
        publish(kStopWord);
        for (auto& w : workers_) w.join();
        throw;
    }
}

ThreadPool::~ThreadPool() {
    publish(kStopWord);
    for (auto& w : workers_) w.join();
}

// Stores the new wake-up word and wakes sleeping workers. Both sides use seq_cst: a worker
// counts itself in sleepers_ before it re-reads generation_, the caller stores generation_
// before it reads sleepers_, so at least one of them sees the other.
void ThreadPool::publish(std::uint64_t word) {
    generation_.store(word);
    if (sleepers_.load() > 0) {
        std::lock_guard<std::mutex> lock(sleep_mutex_);
        wake_.notify_all();
    }
}

// Claims chunks of run `run` until none is left (or another run has opened) and runs them.
void ThreadPool::claim_and_run(std::uint64_t run) {
    std::uint64_t claim = claim_.load(std::memory_order_acquire);
    for (;;) {
        if (run_of(claim) != run || next_of(claim) >= chunks_of(claim)) return;
        if (!claim_.compare_exchange_weak(claim, claim + 1, std::memory_order_acquire))
            continue;  // `claim` now holds the current word; look again
        // The chunk is ours, so the run is still open and task_/context_ are this run's.
        task_(context_, static_cast<int>(next_of(claim)), static_cast<int>(chunks_of(claim)));
        done_.fetch_add(1, std::memory_order_release);
        claim = claim_.load(std::memory_order_acquire);
    }
}

void ThreadPool::run(Task task, void* context, int chunks, int helpers) {
    if (chunks <= 0) return;
    if (chunks == 1 || helpers <= 0 || workers_.empty()) {
        for (int c = 0; c < chunks; ++c) task(context, c, chunks);
        return;
    }
    std::lock_guard<std::mutex> lock(run_mutex_);
    const std::uint64_t run = ++runs_ & ((std::uint64_t{1} << 24) - 1);
    task_ = task;
    context_ = context;
    done_.store(0, std::memory_order_relaxed);
    claim_.store((run << 40) | (static_cast<std::uint64_t>(chunks) << 20),
                 std::memory_order_release);
    publish((run << 16) | static_cast<std::uint64_t>(helpers));
    claim_and_run(run);
    while (done_.load(std::memory_order_acquire) != chunks) FASTADAM_CPU_RELAX();
}

void ThreadPool::worker_loop(int index) {
    std::uint64_t seen = 0;  // the word before the first run, even if this thread starts late
    for (;;) {
        // Spin for a while, then sleep until the wake-up word changes.
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
        if (index <= static_cast<int>(now & 0xffff)) claim_and_run(now >> 16);
    }
}

}  // namespace fastadam
