// A persistent pool of worker threads for splitting one kernel call.
//
// We use our own pool rather than OpenMP: fastadam lives in processes that already load torch's
// and NumPy's BLAS threading runtimes, and several OpenMP runtimes in one process are a known
// source of oversubscription and crashes. The pool allocates nothing per call.
//
// A call is cut into chunks that the caller and the woken workers claim one at a time from a
// shared counter. A worker that the OS has not scheduled yet (a busy machine, other processes'
// threads) therefore never holds the caller up: the caller takes its chunks instead. Which thread
// runs a chunk never changes the result, because each element's arithmetic is independent.
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
    using Task = void (*)(void* context, int chunk, int chunks);

    explicit ThreadPool(int threads);  // threads counts the caller: threads - 1 workers
    ~ThreadPool();
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    int threads() const { return static_cast<int>(workers_.size()) + 1; }

    // Runs task(context, c, chunks) once for every chunk c in [0, chunks), on the calling thread
    // and on up to helpers (< threads()) workers, and returns when all chunks are done. Calls
    // from several threads are serialised.
    void run(Task task, void* context, int chunks, int helpers);

    static constexpr int kMaxChunks = (1 << 20) - 1;

private:
    void worker_loop(int index);
    void publish(std::uint64_t word);
    void claim_and_run(std::uint64_t run);

    std::vector<std::thread> workers_;
    std::mutex run_mutex_;
    std::uint64_t runs_ = 0;  // guarded by run_mutex_
    Task task_ = nullptr;     // written before claim_ opens a run; read after a claim succeeds
    void* context_ = nullptr;
    // The claim counter: run number (24 bits) | chunk count (20 bits) | next chunk (20 bits).
    // Claiming a chunk is a compare-and-swap on the whole word, so a late thread can never claim
    // a chunk of a run other than the one it was woken for.
    std::atomic<std::uint64_t> claim_{0};
    std::atomic<int> done_{0};  // chunks finished in the open run
    // Wake-up word: run number in the high bits, the number of helpers wanted in the low 16.
    std::atomic<std::uint64_t> generation_{0};
    std::atomic<int> sleepers_{0};  // workers blocked on wake_ (publish skips notify when 0)
    std::mutex sleep_mutex_;
    std::condition_variable wake_;
    static constexpr std::uint64_t kStopWord = ~std::uint64_t{0};
};

}  // namespace fastadam
