// Per-ISA range kernels, each defined in its own translation unit (kernel_<isa>.cpp) that is
// compiled with that ISA's flags. Only dispatch.cpp calls them, after checking the CPU.
#pragma once

#include <cstdint>

#include "fastadam/kernels.hpp"

#define FASTADAM_DECLARE_ISA(ns)                                                        \
    namespace fastadam::ns {                                                            \
    void adam_range(const AdamTensor<float>& t, std::int64_t begin, std::int64_t end);  \
    void adam_range(const AdamTensor<double>& t, std::int64_t begin, std::int64_t end); \
    void probe_range(const AdamTensor<float>& t, std::int64_t begin, std::int64_t end); \
    void probe_range(const AdamTensor<double>& t, std::int64_t begin, std::int64_t end); \
    }

FASTADAM_DECLARE_ISA(isa_scalar)
#if defined(FASTADAM_HAVE_AVX2)
FASTADAM_DECLARE_ISA(isa_avx2)
#endif
#if defined(FASTADAM_HAVE_AVX512)
FASTADAM_DECLARE_ISA(isa_avx512)
#endif
#if defined(FASTADAM_HAVE_NEON)
FASTADAM_DECLARE_ISA(isa_neon)
#endif

#undef FASTADAM_DECLARE_ISA

namespace fastadam {
template <class T>
using RangeKernel = void (*)(const AdamTensor<T>&, std::int64_t, std::int64_t);

enum class Sweep { adam, bandwidth_probe };

// The range kernel of an ISA; the caller has checked that the CPU supports it.
template <class T>
RangeKernel<T> range_kernel(Isa isa, Sweep sweep);
}  // namespace fastadam
