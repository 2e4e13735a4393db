// A persistent pool of worker threads for splitting one kernel call.
//
// We use our own pool rather than OpenMP: fastadam lives in processes that already load torch's
// and NumPy's BLAS threading runtimes, and several OpenMP runtimes in one process are a known
// source of oversubscription and crashes. The pool allocates nothing per call.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace fastadam {

class ThreadPool {
public:
    using Task = void (*)(void* context, int part, int parts);

    explicit ThreadPool(int threads);  // threads counts the caller: threads - 1 workers
    ~ThreadPool();
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    int threads() const { return static_cast<int>(workers_.size()) + 1; }

    // Runs task(context, part, parts) for part = 0 .. parts-1 (parts <= threads()), part 0 on
    // the calling thread, and returns when all parts are done. Calls from several threads are
    // serialised.
    void run(Task task, void* context, int parts);

private:
    void worker_loop(int index);
    void publish(std::uint64_t word);

    std::vector<std::thread> workers_;
    std::mutex run_mutex_;
    Task task_ = nullptr;
    void* context_ = nullptr;
    // One word per run: a run counter in the high bits, the run's part count in the low 16 bits.
    // A worker reads both in one load, so a late worker can never pair one run's counter with
    // the next run's part count and run a part twice.
    std::atomic<std::uint64_t> generation_{0};
    std::atomic<int> pending_{0};  // parts still running in workers
    std::atomic<int> sleepers_{0};  // workers blocked on wake_ (the caller skips notify when 0)
    std::mutex sleep_mutex_;
    std::condition_variable wake_;
    static constexpr std::uint64_t kStopWord = ~std::uint64_t{0};
};

}  // namespace fastadam
