// Public C++ entry points of the CPU kernels. A C++ training loop includes this header and links
// the fastadam::cpu library; the Python module is a thin layer over the same functions.
#pragma once

#include <cstddef>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "fastadam/adagrad_math.hpp"
#include "fastadam/adam_math.hpp"
#include "fastadam/adamax_math.hpp"
#include "fastadam/half.hpp"
#include "fastadam/lowbit_math.hpp"
#include "fastadam/nadam_math.hpp"
#include "fastadam/radam_math.hpp"
#include "fastadam/rmsprop_math.hpp"
#include "fastadam/sgd_math.hpp"
#include "fastadam/swats_math.hpp"

namespace fastadam {

// What every optimizer's parameter set shares. P is the parameter and gradient storage type
// (float, double, Half or BFloat16); S the type of the optimizer state, float for the 16-bit
// types (the update runs in S and the parameter is rounded once on store).
enum class Rounding : std::uint8_t {
    nearest,     // round to nearest even
    stochastic,  // BFloat16 only: unbiased random rounding keyed by rounding_key and the index
};

template <class P, class S>
struct ParamArrays {
    using value_type = P;
    using state_type = S;
    P* param = nullptr;
    const P* grad = nullptr;
    // 16-bit P only, or null: a float32 master copy that the update reads and writes; param is
    // written as its rounding.
    S* master = nullptr;
    std::int64_t size = 0;
    // Multiplies the gradient on load when != 1 (loss-scale removal and clipping together; see
    // grad_multiplier below).
    double grad_multiplier = 1.0;
    Rounding rounding = Rounding::nearest;
    std::uint64_t rounding_key = 0;  // rounding_key(seed, step) from half.hpp
};

// One parameter set updated in place. The arrays hold `size` contiguous elements each and must
// not overlap; max_exp_avg_sq is null unless the update uses amsgrad.
template <class P, class S = state_of_t<P>>
struct AdamTensor : ParamArrays<P, S> {
    S* exp_avg = nullptr;
    S* exp_avg_sq = nullptr;
    S* max_exp_avg_sq = nullptr;
    AdamScalars scalars{};  // from make_scalars(hyper, step); may differ between tensors
};

// One parameter set with 8-bit Adam state (lowbit_math.hpp): per state, one byte per element and
// one float32 scale per block of lowbit::kBlock elements ((size + kBlock - 1) / kBlock scales).
// max_exp_avg_sq_codes/_scales are null unless the update uses amsgrad. The state's stochastic
// rounding is keyed by state_key (lowbit::state_key(seed, step)). Parameters are float32, or
// float16/bfloat16 (optionally with a float32 master copy or stochastic rounding).
template <class P>
struct Adam8bitTensor : ParamArrays<P, float> {
    static constexpr std::int64_t split_unit = lowbit::kBlock;  // threads split on blocks
    std::uint8_t* exp_avg_codes = nullptr;
    float* exp_avg_scales = nullptr;
    std::uint8_t* exp_avg_sq_codes = nullptr;
    float* exp_avg_sq_scales = nullptr;
    std::uint8_t* max_exp_avg_sq_codes = nullptr;
    float* max_exp_avg_sq_scales = nullptr;
    AdamScalars scalars{};
    std::uint64_t state_key = 0;
};

// One parameter set for SGD; momentum_buffer is null when momentum is 0.
template <class P, class S = state_of_t<P>>
struct SgdTensor : ParamArrays<P, S> {
    S* momentum_buffer = nullptr;
    SgdScalars scalars{};
};

// One parameter set for Adagrad.
template <class P, class S = state_of_t<P>>
struct AdagradTensor : ParamArrays<P, S> {
    S* state_sum = nullptr;
    AdagradScalars scalars{};
};

// One parameter set for RMSprop; grad_avg is null unless centered, momentum_buffer null when
// momentum is 0.
template <class P, class S = state_of_t<P>>
struct RmspropTensor : ParamArrays<P, S> {
    S* square_avg = nullptr;
    S* grad_avg = nullptr;
    S* momentum_buffer = nullptr;
    RmspropScalars scalars{};
};

// One parameter set for Adamax.
template <class P, class S = state_of_t<P>>
struct AdamaxTensor : ParamArrays<P, S> {
    S* exp_avg = nullptr;
    S* exp_inf = nullptr;
    AdamaxScalars scalars{};
};

// One parameter set for NAdam.
template <class P, class S = state_of_t<P>>
struct NadamTensor : ParamArrays<P, S> {
    S* exp_avg = nullptr;
    S* exp_avg_sq = nullptr;
    NadamScalars scalars{};
};

// One parameter set for RAdam.
template <class P, class S = state_of_t<P>>
struct RadamTensor : ParamArrays<P, S> {
    S* exp_avg = nullptr;
    S* exp_avg_sq = nullptr;
    RadamScalars scalars{};
};

// One parameter set for SWATS: Adam's moments, the SGD phase's momentum buffer (null before the
// switch), and where swats_step writes the set's two dot products.
template <class P, class S = state_of_t<P>>
struct SwatsTensor : ParamArrays<P, S> {
    S* exp_avg = nullptr;
    S* exp_avg_sq = nullptr;
    S* momentum_buffer = nullptr;
    SwatsScalars scalars{};
    // Adam phase: dots[0] = sum of step * step, dots[1] = sum of step * grad, over the set, where
    // step is what the update subtracted from p and grad the gradient it used. In double, in a
    // fixed order (as grad_stats sums). The SGD phase writes zeros.
    double* dots = nullptr;
};

// Update every tensor of the list in one call: the work is split across the thread pool in
// contiguous chunks that may span tensors. Results do not depend on the thread count.
// adam_step and adam8bit_step throw std::invalid_argument, before writing anything, for a
// tensor whose max_exp_avg_sq array (codes) is given while its scalars.amsgrad is false, or
// missing while it is true.
#define FASTADAM_STEP_DECLARATIONS(P)                               \
    void adam_step(const AdamTensor<P>* tensors, std::size_t count);       \
    void sgd_step(const SgdTensor<P>* tensors, std::size_t count);         \
    void adagrad_step(const AdagradTensor<P>* tensors, std::size_t count); \
    void rmsprop_step(const RmspropTensor<P>* tensors, std::size_t count); \
    void adamax_step(const AdamaxTensor<P>* tensors, std::size_t count);   \
    void nadam_step(const NadamTensor<P>* tensors, std::size_t count);     \
    void radam_step(const RadamTensor<P>* tensors, std::size_t count);     \
    void swats_step(const SwatsTensor<P>* tensors, std::size_t count);     \
    void bandwidth_probe(const AdamTensor<P>* tensors, std::size_t count);
FASTADAM_STEP_DECLARATIONS(float)
FASTADAM_STEP_DECLARATIONS(double)
FASTADAM_STEP_DECLARATIONS(Half)
FASTADAM_STEP_DECLARATIONS(BFloat16)
#undef FASTADAM_STEP_DECLARATIONS
// The 8-bit state step and its probe (the same bytes moved: p += g, every code += 1, every scale
// += 1, no decoding), for float32, float16 and bfloat16 parameters.
#define FASTADAM_STEP8_DECLARATIONS(P)                                         \
    void adam8bit_step(const Adam8bitTensor<P>* tensors, std::size_t count); \
    void bandwidth_probe(const Adam8bitTensor<P>* tensors, std::size_t count);
FASTADAM_STEP8_DECLARATIONS(float)
FASTADAM_STEP8_DECLARATIONS(Half)
FASTADAM_STEP8_DECLARATIONS(BFloat16)
#undef FASTADAM_STEP8_DECLARATIONS
// (bandwidth_probe: Adam's memory traffic without its math (p += g, m += g, v += g; with a
// master copy, master += g and p = its rounding), split exactly like adam_step: the machine's
// bandwidth for this access pattern, which benchmarks report the step against.)

// --- The pre-pass of a step that looks at all gradients first --------------------------------
enum class ElementType : std::uint8_t { float32, float64, float16, bfloat16 };

struct GradSpan {
    const void* data = nullptr;
    ElementType type = ElementType::float32;
    std::int64_t size = 0;
};

struct GradStats {
    double sum_of_squares = 0.0;  // of the gradients as stored (before any multiplier)
    bool finite = true;           // no inf or NaN among them
};

// One threaded pass over every gradient of a step, whatever their types. The sum runs in double
// in a fixed order (16 interleaved partial sums per 2**15-element segment, segments added in
// order), so the result is the same on every ISA and thread count.
GradStats grad_stats(const GradSpan* spans, std::size_t count);

// What a step does with its gradients, from the user's options and the pre-pass.
struct GradPolicy {
    double grad_scale = 1.0;     // the factor the loss was multiplied by (divided out)
    double max_grad_norm = 0.0;  // > 0: clip the global norm to this (torch's clip_grad_norm_)
    bool skip_nonfinite = false; // write nothing when a gradient is inf or NaN
};

struct GradDecision {
    bool skip = false;
    double grad_norm = 0.0;        // of the unscaled gradients
    double grad_multiplier = 1.0;  // for ParamArrays::grad_multiplier
};

inline bool needs_grad_stats(const GradPolicy& policy) {
    return policy.max_grad_norm > 0.0 || policy.skip_nonfinite;
}

// multiplier = (1 / grad_scale) * min(1, max_grad_norm / (norm + 1e-6)), in double, rounded
// once to the state type by the kernel. A non-finite norm without skip_nonfinite gives what
// torch's clip_grad_norm_ gives (a NaN or zero coefficient). The step counts as non-finite too
// where a finite gradient times the multiplier overflows (grad_scale < 1): the update would
// write inf and NaN. The spans are those given to grad_stats, and are read again only in that
// rare case (largest_magnitude).
GradDecision decide(const GradPolicy& policy, const GradStats& stats, const GradSpan* spans,
                    std::size_t count);

// The largest magnitude among the spans' gradients that the kernels multiply in float32 (every
// type but float64); one plain pass on the calling thread.
double largest_magnitude(const GradSpan* spans, std::size_t count);

// Instruction-set paths. `available_isas` lists those compiled into this build that this CPU
// can run, best first; the best one is active until `set_isa` picks another.
enum class Isa { scalar, avx2, avx512, neon, avx512_bf16 };
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
