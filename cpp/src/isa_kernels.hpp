// Per-ISA range kernels, each defined in its own translation unit (kernel_<isa>.cpp) that is
// compiled with that ISA's flags (FASTADAM_DEFINE_RANGE_KERNELS in update_loop.hpp). Only
// dispatch.cpp calls them, after checking the CPU.
#pragma once

#include <cstdint>

#include "fastadam/kernels.hpp"

namespace fastadam {
// One segment's share of grad_stats (update_loop.hpp: sum_squares).
struct SegmentSum {
    double sum_of_squares;
    bool finite;  // checked for float64 data, whose squares may overflow; others: from the sum
};
// One segment's share of a SWATS set's dot products (update_loop.hpp: swats_range).
struct DotSums {
    double step_step, step_grad;
};
}  // namespace fastadam

#define FASTADAM_DECLARE_RANGE(name, Tensor) \
    void name(const Tensor& t, std::int64_t begin, std::int64_t end);
#define FASTADAM_DECLARE_RANGES_OF(P)                    \
    FASTADAM_DECLARE_RANGE(update_range, AdamTensor<P>)    \
    FASTADAM_DECLARE_RANGE(update_range, SgdTensor<P>)     \
    FASTADAM_DECLARE_RANGE(update_range, AdagradTensor<P>) \
    FASTADAM_DECLARE_RANGE(update_range, RmspropTensor<P>) \
    FASTADAM_DECLARE_RANGE(update_range, AdamaxTensor<P>)  \
    FASTADAM_DECLARE_RANGE(update_range, NadamTensor<P>)   \
    FASTADAM_DECLARE_RANGE(update_range, RadamTensor<P>)   \
    FASTADAM_DECLARE_RANGE(probe_range, AdamTensor<P>)   \
    DotSums swats_range(const SwatsTensor<P>& t, std::int64_t begin, std::int64_t end);
#define FASTADAM_DECLARE_RANGES8_OF(P)                       \
    FASTADAM_DECLARE_RANGE(update_range, Adam8bitTensor<P>) \
    FASTADAM_DECLARE_RANGE(probe_range, Adam8bitTensor<P>)
#define FASTADAM_DECLARE_ISA(ns)                                                   \
    namespace fastadam::ns {                                                       \
    FASTADAM_DECLARE_RANGES8_OF(float)                                             \
    FASTADAM_DECLARE_RANGES8_OF(Half)                                              \
    FASTADAM_DECLARE_RANGES8_OF(BFloat16)                                          \
    FASTADAM_DECLARE_RANGES_OF(float)                                              \
    FASTADAM_DECLARE_RANGES_OF(double)                                             \
    FASTADAM_DECLARE_RANGES_OF(Half)                                               \
    FASTADAM_DECLARE_RANGES_OF(BFloat16)                                           \
    SegmentSum grad_segment(const GradSpan& s, std::int64_t begin, std::int64_t end); \
    }

FASTADAM_DECLARE_ISA(isa_scalar)
#if defined(FASTADAM_HAVE_AVX2)
FASTADAM_DECLARE_ISA(isa_avx2)
#endif
#if defined(FASTADAM_HAVE_AVX512)
FASTADAM_DECLARE_ISA(isa_avx512)
#endif
#if defined(FASTADAM_HAVE_AVX512_BF16)
FASTADAM_DECLARE_ISA(isa_avx512_bf16)
#endif
#if defined(FASTADAM_HAVE_NEON)
FASTADAM_DECLARE_ISA(isa_neon)
#endif

#undef FASTADAM_DECLARE_ISA
#undef FASTADAM_DECLARE_RANGES_OF
#undef FASTADAM_DECLARE_RANGES8_OF
#undef FASTADAM_DECLARE_RANGE

namespace fastadam {

template <class Tensor>
using RangeKernel = void (*)(const Tensor&, std::int64_t, std::int64_t);

enum class Sweep { update, bandwidth_probe };

// The range kernel of an ISA for one tensor type; the caller has checked the CPU supports it.
template <class Tensor>
RangeKernel<Tensor> range_kernel(Isa isa, Sweep sweep);

using SegmentKernel = SegmentSum (*)(const GradSpan&, std::int64_t, std::int64_t);
SegmentKernel segment_kernel(Isa isa);

template <class P>
using SwatsKernel = DotSums (*)(const SwatsTensor<P>&, std::int64_t, std::int64_t);
template <class P>
SwatsKernel<P> swats_kernel(Isa isa);

}  // namespace fastadam
