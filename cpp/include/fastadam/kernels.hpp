// Public C++ entry points of the CPU kernels. A C++ training loop includes this header and links
// the fastadam::cpu library; the Python module is a thin layer over the same functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "fastadam/adagrad_math.hpp"
#include "fastadam/adam_math.hpp"
#include "fastadam/sgd_math.hpp"

namespace fastadam {

// One parameter set updated in place. The arrays hold `size` contiguous elements each and must
// not overlap; max_exp_avg_sq is null unless the update uses amsgrad.
template <class T>
struct AdamTensor {
    using value_type = T;
    T* param = nullptr;
    const T* grad = nullptr;
    T* exp_avg = nullptr;
    T* exp_avg_sq = nullptr;
    T* max_exp_avg_sq = nullptr;
    std::int64_t size = 0;
    AdamScalars scalars{};  // from make_scalars(hyper, step); may differ between tensors
};

// One parameter set for SGD; momentum_buffer is null when momentum is 0.
template <class T>
struct SgdTensor {
    using value_type = T;
    T* param = nullptr;
    const T* grad = nullptr;
    T* momentum_buffer = nullptr;
    std::int64_t size = 0;
    SgdScalars scalars{};
};

// One parameter set for Adagrad.
template <class T>
struct AdagradTensor {
    using value_type = T;
    T* param = nullptr;
    const T* grad = nullptr;
    T* state_sum = nullptr;
    std::int64_t size = 0;
    AdagradScalars scalars{};
};

// Update every tensor of the list in one call: the work is split across the thread pool in
// contiguous chunks that may span tensors. Results do not depend on the thread count.
void adam_step(const AdamTensor<float>* tensors, std::size_t count);
void adam_step(const AdamTensor<double>* tensors, std::size_t count);
void sgd_step(const SgdTensor<float>* tensors, std::size_t count);
void sgd_step(const SgdTensor<double>* tensors, std::size_t count);
void adagrad_step(const AdagradTensor<float>* tensors, std::size_t count);
void adagrad_step(const AdagradTensor<double>* tensors, std::size_t count);

// Adam's memory traffic without its math (p += g, m += g, v += g), split exactly like adam_step:
// the machine's bandwidth for this access pattern, which benchmarks report the step against.
void bandwidth_probe(const AdamTensor<float>* tensors, std::size_t count);
void bandwidth_probe(const AdamTensor<double>* tensors, std::size_t count);

// Instruction-set paths. `available_isas` lists those compiled into this build that this CPU
// can run, best first; the best one is active until `set_isa` picks another.
enum class Isa { scalar, avx2, avx512, neon };
std::vector<Isa> available_isas();
Isa active_isa();
void set_isa(Isa isa);  // throws std::invalid_argument if the CPU or build lacks it
const char* isa_name(Isa isa);
Isa isa_from_name(const std::string& name);  // throws std::invalid_argument for unknown names

// Threads used by adam_step, the calling thread included. The default is the number of CPUs
// this process may run on (its affinity mask), or FASTADAM_NUM_THREADS (an integer from 1 to
// kMaxThreads; surrounding whitespace is ignored and an empty value counts as unset).
constexpr int kMaxThreads = 1024;
int num_threads();
void set_num_threads(int n);  // 1 <= n <= kMaxThreads; throws std::invalid_argument otherwise
int default_num_threads();    // throws std::invalid_argument for a bad FASTADAM_NUM_THREADS

// The worker threads start on the first call large enough to use them. A caller that runs
// several kernels as one all-or-nothing step starts them first: this throws (std::runtime_error,
// or std::invalid_argument for a bad FASTADAM_NUM_THREADS) if they cannot be started, and
// afterwards no kernel call can fail. A forked child starts its own on first use.
void start_threads();

// Calls with fewer elements than this stay on the calling thread: waking a worker costs more
// than the work it would take over. (Measured on 2 cores, float32: at 2**15 elements two threads
// take 14.7 us against 19.5 us on one; at 2**14 the whole step is 15 us.)
constexpr std::int64_t kParallelThreshold = 1 << 15;

}  // namespace fastadam
