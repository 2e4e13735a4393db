// adam_step: one call over many tensors, split into contiguous chunks across the thread pool.
#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <vector>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <system_error>

#if defined(__linux__)
#include <sched.h>
#endif
#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#define FASTADAM_HAVE_FORK 1
#else
#define FASTADAM_HAVE_FORK 0
#endif

#include "fastadam/kernels.hpp"
#include "isa_kernels.hpp"
#include "thread_pool.hpp"

namespace fastadam {

namespace {

// Each worker gets at least this many elements, so that a mid-sized call wakes only the
// threads its work pays for.
constexpr std::int64_t kMinElementsPerThread = 1 << 14;
constexpr std::int64_t kCacheLineBytes = 64;
constexpr std::int64_t kChunksPerThread = 4;

// The process's pool and the thread count asked for. Never destroyed: a daemon thread may still
// be stepping while the process exits (destroying the pool then would join workers under its
// feet), and a forked child abandons its parent's state without touching it (below).
struct PoolState {
    std::mutex mutex;
    std::shared_ptr<ThreadPool> pool;  // guarded by mutex; made on first use
    std::atomic<int> threads{0};       // set_num_threads's count; 0 for the default
};

std::atomic<PoolState*> pool_state{new PoolState};

#if FASTADAM_HAVE_FORK
// In a child of fork() only the forking thread exists: the parent's workers are gone and its
// pool mutex may have been held by a thread that no longer exists. The child therefore drops the
// parent's state unread (leaking a few hundred bytes) and starts its own pool on first use, with
// the thread count the parent had asked for.
void forget_parent_pool() {
    PoolState* parent = pool_state.load(std::memory_order_relaxed);
    auto* fresh = new PoolState;
    fresh->threads.store(parent->threads.load(std::memory_order_relaxed));
    pool_state.store(fresh);
}
[[maybe_unused]] const bool fork_handler_registered = pthread_atfork(nullptr, nullptr, &forget_parent_pool) == 0;
#endif

std::shared_ptr<ThreadPool> make_pool(int threads) {
    try {
        return std::make_shared<ThreadPool>(threads);
    } catch (const std::system_error& e) {
        throw std::runtime_error("fastadam could not start " + std::to_string(threads - 1) +
                                 " worker threads: " + e.what());
    }
}

// A call holds its own reference, so set_num_threads from another thread cannot pull the pool
// from under a running step. Throws (and leaves no pool) if the threads cannot be started.
std::shared_ptr<ThreadPool> get_pool() {
    PoolState& s = *pool_state.load(std::memory_order_acquire);
    std::lock_guard<std::mutex> lock(s.mutex);
    if (!s.pool) {
        const int wanted = s.threads.load();
        s.pool = make_pool(wanted != 0 ? wanted : default_num_threads());
    }
    return s.pool;
}

template <class Tensor>
struct StepJob {
    const Tensor* tensors;
    std::size_t count;
    std::int64_t total;
    RangeKernel<Tensor> kernel;
};

// Where the global element index `g` falls, as (tensor, offset), with the offset rounded down to
// a cache line so that no two threads write the same line.
template <class Tensor>
void locate(const StepJob<Tensor>& job, std::int64_t g, std::size_t& tensor,
            std::int64_t& offset) {
    // A tensor type may ask for a coarser split (8-bit state: whole blocks).
    constexpr std::int64_t line = [] {
        if constexpr (requires { Tensor::split_unit; }) return Tensor::split_unit;
        else return kCacheLineBytes / static_cast<std::int64_t>(sizeof(typename Tensor::value_type));
    }();
    tensor = 0;
    while (tensor < job.count && g >= job.tensors[tensor].size) {
        g -= job.tensors[tensor].size;
        ++tensor;
    }
    offset = g - g % line;
}

// Runs chunk `part` of `parts` equal, contiguous pieces of the call's global element range.
template <class Tensor>
void run_part(void* context, int part, int parts) {
    const auto& job = *static_cast<const StepJob<Tensor>*>(context);
    std::size_t t0, t1;
    std::int64_t o0, o1;
    locate(job, job.total * part / parts, t0, o0);
    locate(job, job.total * (part + 1) / parts, t1, o1);
    for (std::size_t t = t0; t <= t1 && t < job.count; ++t) {
        const std::int64_t begin = t == t0 ? o0 : 0;
        const std::int64_t end = t == t1 ? o1 : job.tensors[t].size;
        if (begin < end) job.kernel(job.tensors[t], begin, end);
    }
}

template <class Tensor>
void step(const Tensor* tensors, std::size_t count, Sweep sweep = Sweep::update) {
    std::int64_t total = 0;
    for (std::size_t i = 0; i < count; ++i) total += tensors[i].size;
    if (total == 0) return;
    StepJob<Tensor> job{tensors, count, total, range_kernel<Tensor>(active_isa(), sweep)};
    if (total < kParallelThreshold) {
        run_part<Tensor>(&job, 0, 1);
        return;
    }
    const std::shared_ptr<ThreadPool> p = get_pool();
    const std::int64_t wanted = std::max<std::int64_t>(1, total / kMinElementsPerThread);
    const int threads = static_cast<int>(std::min<std::int64_t>(p->threads(), wanted));
    // A few chunks per thread, so that a thread the OS runs late leaves its share to the others.
    const int chunks = static_cast<int>(std::min<std::int64_t>(
        {std::int64_t{threads} * kChunksPerThread, wanted, ThreadPool::kMaxChunks}));
    p->run(&run_part<Tensor>, &job, threads == 1 ? 1 : chunks, threads - 1);
}

// amsgrad is on where the scalars say so, and runs where the max array is given: they must agree.
template <class Tensor, class Max>
void check_amsgrad(const Tensor* tensors, std::size_t count, Max Tensor::* max) {
    for (std::size_t i = 0; i < count; ++i)
        if (tensors[i].scalars.amsgrad != (tensors[i].*max != nullptr))
            throw std::invalid_argument(
                "tensor " + std::to_string(i) +
                (tensors[i].scalars.amsgrad ? ": amsgrad is on but the max_exp_avg_sq array is null"
                                            : ": a max_exp_avg_sq array is given without amsgrad"));
}

}  // namespace

#define FASTADAM_STEPS(P)                                                            \
    void adam_step(const AdamTensor<P>* tensors, std::size_t count) {                \
        check_amsgrad(tensors, count, &AdamTensor<P>::max_exp_avg_sq);               \
        step(tensors, count);                                                        \
    }                                                                                \
    void sgd_step(const SgdTensor<P>* tensors, std::size_t count) {                  \
        step(tensors, count);                                                        \
    }                                                                                \
    void adagrad_step(const AdagradTensor<P>* tensors, std::size_t count) {          \
        step(tensors, count);                                                        \
    }                                                                                \
    void rmsprop_step(const RmspropTensor<P>* tensors, std::size_t count) {          \
        step(tensors, count);                                                        \
    }                                                                                \
    void adamax_step(const AdamaxTensor<P>* tensors, std::size_t count) {            \
        step(tensors, count);                                                        \
    }                                                                                \
    void nadam_step(const NadamTensor<P>* tensors, std::size_t count) {              \
        step(tensors, count);                                                        \
    }                                                                                \
    void radam_step(const RadamTensor<P>* tensors, std::size_t count) {              \
        step(tensors, count);                                                        \
    }                                                                                \
    void bandwidth_probe(const AdamTensor<P>* tensors, std::size_t count) {          \
        step(tensors, count, Sweep::bandwidth_probe);                                \
    }
FASTADAM_STEPS(float)
FASTADAM_STEPS(double)
FASTADAM_STEPS(Half)
FASTADAM_STEPS(BFloat16)
#undef FASTADAM_STEPS

#define FASTADAM_STEPS8(P)                                                   \
    void adam8bit_step(const Adam8bitTensor<P>* tensors, std::size_t count) { \
        check_amsgrad(tensors, count, &Adam8bitTensor<P>::max_exp_avg_sq_codes); \
        step(tensors, count);                                                \
    }                                                                        \
    void bandwidth_probe(const Adam8bitTensor<P>* tensors, std::size_t count) { \
        step(tensors, count, Sweep::bandwidth_probe);                        \
    }
FASTADAM_STEPS8(float)
FASTADAM_STEPS8(Half)
FASTADAM_STEPS8(BFloat16)
#undef FASTADAM_STEPS8

namespace {

// grad_stats splits every span into segments of this many elements, counted from the span's
// start, whatever the thread count: the segments and their order fix the reduction.
constexpr std::int64_t kSegment = 1 << 15;

// Runs part(job, k, parts) over `segments` segments holding `total` elements: on the calling
// thread for a small call, otherwise split across the pool (each part a contiguous run of
// segments, so the split never changes what a segment computes).
void run_segments(void (*part)(void*, int, int), void* job, std::int64_t total,
                  std::int64_t segments) {
    if (total < kParallelThreshold) {
        if (segments > 0) part(job, 0, 1);
        return;
    }
    const std::shared_ptr<ThreadPool> p = get_pool();
    const std::int64_t wanted = std::max<std::int64_t>(1, total / kMinElementsPerThread);
    const int threads = static_cast<int>(std::min<std::int64_t>(p->threads(), wanted));
    const int chunks = static_cast<int>(std::min<std::int64_t>(
        {std::int64_t{threads} * kChunksPerThread, segments, ThreadPool::kMaxChunks}));
    p->run(part, job, threads == 1 ? 1 : chunks, threads - 1);
}

struct StatsJob {
    const GradSpan* spans;
    const std::int64_t* first_segment;  // span k's segments are [first[k], first[k + 1])
    SegmentSum* out;                    // one per segment
    std::int64_t segments;
    SegmentKernel kernel;
};

void run_stats_part(void* context, int part, int parts) {
    const auto& job = *static_cast<const StatsJob*>(context);
    const std::int64_t s0 = job.segments * part / parts, s1 = job.segments * (part + 1) / parts;
    std::size_t k = 0;
    for (std::int64_t seg = s0; seg < s1; ++seg) {
        while (seg >= job.first_segment[k + 1]) ++k;
        const GradSpan& span = job.spans[k];
        const std::int64_t begin = (seg - job.first_segment[k]) * kSegment;
        job.out[seg] = job.kernel(span, begin, std::min(span.size, begin + kSegment));
    }
}

}  // namespace

GradStats grad_stats(const GradSpan* spans, std::size_t count) {
    // Kept per calling thread and reused: after the first step of a given size, no allocation.
    thread_local std::vector<std::int64_t> first;
    thread_local std::vector<SegmentSum> partial;
    first.resize(count + 1);
    std::int64_t total = 0;
    first[0] = 0;
    for (std::size_t k = 0; k < count; ++k) {
        total += spans[k].size;
        first[k + 1] = first[k] + (spans[k].size + kSegment - 1) / kSegment;
    }
    const std::int64_t segments = first[count];
    partial.resize(static_cast<std::size_t>(segments));
    StatsJob job{spans, first.data(), partial.data(), segments, segment_kernel(active_isa())};
    run_segments(&run_stats_part, &job, total, segments);
    GradStats stats;
    for (const SegmentSum& s : partial) {
        stats.sum_of_squares += s.sum_of_squares;
        stats.finite = stats.finite && s.finite;
    }
    stats.finite = stats.finite && std::isfinite(stats.sum_of_squares);
    return stats;
}

double largest_magnitude(const GradSpan* spans, std::size_t count) {
    double largest = 0.0;
    for (std::size_t k = 0; k < count; ++k) {
        const GradSpan& s = spans[k];
        for (std::int64_t i = 0; i < s.size; ++i) {
            float x = 0.0f;
            switch (s.type) {
                case ElementType::float32: x = static_cast<const float*>(s.data)[i]; break;
                case ElementType::float16: x = to_float(static_cast<const Half*>(s.data)[i]); break;
                case ElementType::bfloat16:
                    x = to_float(static_cast<const BFloat16*>(s.data)[i]);
                    break;
                case ElementType::float64: break;  // multiplied in double
            }
            largest = std::max(largest, static_cast<double>(std::fabs(x)));
        }
    }
    return largest;
}

GradDecision decide(const GradPolicy& policy, const GradStats& stats, const GradSpan* spans,
                    std::size_t count) {
    GradDecision d;
    d.grad_norm = std::sqrt(stats.sum_of_squares) / policy.grad_scale;
    double clip = 1.0;
    if (policy.max_grad_norm > 0.0) {
        clip = policy.max_grad_norm / (d.grad_norm + 1e-6);
        if (clip > 1.0) clip = 1.0;  // NaN stays NaN, as torch.clamp(max=1) leaves it
    }
    d.grad_multiplier = (1.0 / policy.grad_scale) * clip;
    bool finite = stats.finite && std::isfinite(d.grad_norm);
    // Every magnitude is at most sqrt(sum_of_squares), so only a bound within a factor of two
    // of float32's overflow (2**128) sends this to read the gradients again.
    const float multiplier32 = static_cast<float>(d.grad_multiplier);
    if (finite && multiplier32 > 1.0f &&
        std::sqrt(stats.sum_of_squares) * multiplier32 >= 0x1p127) {
        const auto largest = static_cast<float>(largest_magnitude(spans, count));
        finite = !std::isinf(largest * multiplier32);
    }
    d.skip = policy.skip_nonfinite && !finite;
    return d;
}

namespace {

// The value of environment variable `name` without surrounding whitespace; empty when unset.
std::string environment(const char* name) {
    const char* value = std::getenv(name);
    if (value == nullptr) return "";
    const std::string s(value);
    const auto begin = s.find_first_not_of(" \t\n\r\f\v");
    if (begin == std::string::npos) return "";
    return s.substr(begin, s.find_last_not_of(" \t\n\r\f\v") - begin + 1);
}

}  // namespace

// --- swats_step: SWATS's update with its dot products, split like grad_stats -----------------

namespace {

template <class P>
struct SwatsJob {
    const SwatsTensor<P>* tensors;
    const std::int64_t* first_segment;  // tensor k's segments are [first[k], first[k + 1])
    DotSums* out;                       // one per segment
    std::int64_t segments;
    SwatsKernel<P> kernel;
};

template <class P>
void run_swats_part(void* context, int part, int parts) {
    const auto& job = *static_cast<const SwatsJob<P>*>(context);
    const std::int64_t s0 = job.segments * part / parts, s1 = job.segments * (part + 1) / parts;
    std::size_t k = 0;
    for (std::int64_t seg = s0; seg < s1; ++seg) {
        while (seg >= job.first_segment[k + 1]) ++k;
        const SwatsTensor<P>& t = job.tensors[k];
        const std::int64_t begin = (seg - job.first_segment[k]) * kSegment;
        job.out[seg] = job.kernel(t, begin, std::min(t.size, begin + kSegment));
    }
}

// Segments of kSegment elements counted from each tensor's start, whatever the thread count;
// each tensor's dot products add its segments' sums in order: the same bits on every split.
template <class P>
void swats(const SwatsTensor<P>* tensors, std::size_t count) {
    thread_local std::vector<std::int64_t> first;
    thread_local std::vector<DotSums> partial;
    first.resize(count + 1);
    std::int64_t total = 0;
    first[0] = 0;
    for (std::size_t k = 0; k < count; ++k) {
        total += tensors[k].size;
        first[k + 1] = first[k] + (tensors[k].size + kSegment - 1) / kSegment;
    }
    const std::int64_t segments = first[count];
    partial.resize(static_cast<std::size_t>(segments));
    SwatsJob<P> job{tensors, first.data(), partial.data(), segments,
                    swats_kernel<P>(active_isa())};
    run_segments(&run_swats_part<P>, &job, total, segments);
    for (std::size_t k = 0; k < count; ++k) {
        double step_step = 0.0, step_grad = 0.0;
        for (std::int64_t seg = first[k]; seg < first[k + 1]; ++seg) {
            step_step += partial[seg].step_step;
            step_grad += partial[seg].step_grad;
        }
        if (tensors[k].dots != nullptr) {
            tensors[k].dots[0] = step_step;
            tensors[k].dots[1] = step_grad;
        }
    }
}

}  // namespace

void swats_step(const SwatsTensor<float>* t, std::size_t n) { swats(t, n); }
void swats_step(const SwatsTensor<double>* t, std::size_t n) { swats(t, n); }
void swats_step(const SwatsTensor<Half>* t, std::size_t n) { swats(t, n); }
void swats_step(const SwatsTensor<BFloat16>* t, std::size_t n) { swats(t, n); }

int default_num_threads() {
    const std::string env = environment("FASTADAM_NUM_THREADS");
    if (!env.empty()) {
        char* end = nullptr;
        errno = 0;
        const long n = std::strtol(env.c_str(), &end, 10);
        if (std::isdigit(static_cast<unsigned char>(env[0])) && *end == '\0' && errno == 0 &&
            n >= 1 && n <= kMaxThreads)
            return static_cast<int>(n);
        throw std::invalid_argument("FASTADAM_NUM_THREADS must be an integer from 1 to " +
                                    std::to_string(kMaxThreads) + ", got '" +
                                    std::getenv("FASTADAM_NUM_THREADS") + "'");
    }
#if defined(__linux__)
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
#endif
    return std::max(1u, std::thread::hardware_concurrency());
}

int num_threads() { return get_pool()->threads(); }

void start_threads() { get_pool(); }

void set_num_threads(int n) {
    if (n < 1 || n > kMaxThreads)
        throw std::invalid_argument("num_threads must be from 1 to " + std::to_string(kMaxThreads) +
                                    ", got " + std::to_string(n));
    PoolState& s = *pool_state.load(std::memory_order_acquire);
    std::lock_guard<std::mutex> lock(s.mutex);
    if (!s.pool || s.pool->threads() != n)
        s.pool = make_pool(n);  // the old workers stop when its last user returns
    s.threads.store(n);
}

}  // namespace fastadam
