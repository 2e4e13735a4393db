// Chooses the instruction-set path once, from the CPU's features at run time (never from the
// build host's), and lets callers force another one.
#include <atomic>
#include <stdexcept>
#include <type_traits>

#include "fastadam/kernels.hpp"
#include "isa_kernels.hpp"

namespace fastadam {

namespace {

bool cpu_supports(Isa isa) {
    switch (isa) {
        case Isa::scalar:
            return true;
#if defined(FASTADAM_HAVE_AVX2)
        case Isa::avx2:  // float16 conversions use F16C (every AVX2 CPU we know has it)
            return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c");
#endif
#if defined(FASTADAM_HAVE_AVX512)
        case Isa::avx512:  // byte and word lanes (the 8-bit codes' packs) need AVX-512BW
            return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
#endif
#if defined(FASTADAM_HAVE_AVX512_BF16)
        case Isa::avx512_bf16:
            return cpu_supports(Isa::avx512) && __builtin_cpu_supports("avx512bf16");
#endif
#if defined(FASTADAM_HAVE_NEON)
        case Isa::neon:
            return true;  // Advanced SIMD is mandatory on aarch64
#endif
        default:
            return false;  // not compiled into this build
    }
}

// Every ISA, best first.
constexpr Isa kIsas[] = {Isa::avx512_bf16, Isa::avx512, Isa::avx2, Isa::neon, Isa::scalar};

Isa best_isa() { return available_isas().front(); }

std::atomic<Isa>& current_isa() {
    static std::atomic<Isa> isa{best_isa()};
    return isa;
}

}  // namespace

std::vector<Isa> available_isas() {
    std::vector<Isa> out;
    for (Isa isa : kIsas)
        if (cpu_supports(isa)) out.push_back(isa);
    return out;
}

Isa active_isa() { return current_isa().load(std::memory_order_relaxed); }

void set_isa(Isa isa) {
    if (!cpu_supports(isa))
        throw std::invalid_argument(std::string("ISA '") + isa_name(isa) +
                                    "' is not available on this CPU or in this build");
    current_isa().store(isa, std::memory_order_relaxed);
}

const char* isa_name(Isa isa) {
    switch (isa) {
        case Isa::scalar: return "scalar";
        case Isa::avx2: return "avx2";
        case Isa::avx512: return "avx512";
        case Isa::avx512_bf16: return "avx512bf16";
        case Isa::neon: return "neon";
    }
    return "unknown";
}

Isa isa_from_name(const std::string& name) {
    std::string names;
    for (Isa isa : kIsas) {
        if (name == isa_name(isa)) return isa;
        names += (names.empty() ? "" : ", ") + std::string(isa_name(isa));
    }
    throw std::invalid_argument("unknown ISA '" + name + "' (expected one of: " + names + ")");
}

// Probe kernels exist for the Adam tensors only (Adam's access patterns are the ones
// benchmarked).
template <class Tensor>
RangeKernel<Tensor> pick(RangeKernel<Tensor> update, RangeKernel<Tensor> probe, Sweep sweep) {
    return sweep == Sweep::update ? update : probe;
}

#define FASTADAM_KERNEL_OF(ns)                                                                \
    if constexpr (std::is_same_v<Tensor, AdamTensor<typename Tensor::value_type>> ||          \
                  std::is_same_v<Tensor, Adam8bitTensor<typename Tensor::value_type>>)        \
        return pick<Tensor>(&ns::update_range, &ns::probe_range, sweep);                      \
    else                                                                                      \
        return &ns::update_range

template <class Tensor>
RangeKernel<Tensor> range_kernel(Isa isa, Sweep sweep) {
    switch (isa) {
#if defined(FASTADAM_HAVE_AVX2)
        case Isa::avx2: FASTADAM_KERNEL_OF(isa_avx2);
#endif
#if defined(FASTADAM_HAVE_AVX512)
        case Isa::avx512: FASTADAM_KERNEL_OF(isa_avx512);
#endif
#if defined(FASTADAM_HAVE_AVX512_BF16)
        case Isa::avx512_bf16: FASTADAM_KERNEL_OF(isa_avx512_bf16);
#endif
#if defined(FASTADAM_HAVE_NEON)
        case Isa::neon: FASTADAM_KERNEL_OF(isa_neon);
#endif
        default: FASTADAM_KERNEL_OF(isa_scalar);
    }
}

#define FASTADAM_INSTANTIATE(P)                                            \
    template RangeKernel<AdamTensor<P>> range_kernel(Isa, Sweep);          \
    template RangeKernel<SgdTensor<P>> range_kernel(Isa, Sweep);           \
    template RangeKernel<AdagradTensor<P>> range_kernel(Isa, Sweep);      \
    template RangeKernel<RmspropTensor<P>> range_kernel(Isa, Sweep);      \
    template RangeKernel<AdamaxTensor<P>> range_kernel(Isa, Sweep);       \
    template RangeKernel<NadamTensor<P>> range_kernel(Isa, Sweep);        \
    template RangeKernel<RadamTensor<P>> range_kernel(Isa, Sweep);
FASTADAM_INSTANTIATE(float)
FASTADAM_INSTANTIATE(double)
FASTADAM_INSTANTIATE(Half)
FASTADAM_INSTANTIATE(BFloat16)
#undef FASTADAM_INSTANTIATE
template RangeKernel<Adam8bitTensor<float>> range_kernel(Isa, Sweep);
template RangeKernel<Adam8bitTensor<Half>> range_kernel(Isa, Sweep);
template RangeKernel<Adam8bitTensor<BFloat16>> range_kernel(Isa, Sweep);

template <class P>
SwatsKernel<P> swats_kernel(Isa isa) {
    switch (isa) {
#if defined(FASTADAM_HAVE_AVX2)
        case Isa::avx2: return &isa_avx2::swats_range;
#endif
#if defined(FASTADAM_HAVE_AVX512)
        case Isa::avx512: return &isa_avx512::swats_range;
#endif
#if defined(FASTADAM_HAVE_AVX512_BF16)
        case Isa::avx512_bf16: return &isa_avx512_bf16::swats_range;
#endif
#if defined(FASTADAM_HAVE_NEON)
        case Isa::neon: return &isa_neon::swats_range;
#endif
        default: return &isa_scalar::swats_range;
    }
}
template SwatsKernel<float> swats_kernel(Isa);
template SwatsKernel<double> swats_kernel(Isa);
template SwatsKernel<Half> swats_kernel(Isa);
template SwatsKernel<BFloat16> swats_kernel(Isa);

SegmentKernel segment_kernel(Isa isa) {
    switch (isa) {
#if defined(FASTADAM_HAVE_AVX2)
        case Isa::avx2: return &isa_avx2::grad_segment;
#endif
#if defined(FASTADAM_HAVE_AVX512)
        case Isa::avx512: return &isa_avx512::grad_segment;
#endif
#if defined(FASTADAM_HAVE_AVX512_BF16)
        case Isa::avx512_bf16: return &isa_avx512_bf16::grad_segment;
#endif
#if defined(FASTADAM_HAVE_NEON)
        case Isa::neon: return &isa_neon::grad_segment;
#endif
        default: return &isa_scalar::grad_segment;
    }
}

}  // namespace fastadam
