// NEON path (aarch64): 4 floats / 2 doubles per q register. Advanced SIMD is part of every
// aarch64 CPU, so this path needs no extra flags.
#include <arm_neon.h>

#include "update_loop.hpp"
#include "isa_kernels.hpp"
#include "simd.hpp"

namespace {
struct NeonTag {};
template <class T>
using L = fastadam::simd::Lane<T, NeonTag>;
using F32 = fastadam::simd::Vec<float, 4, NeonTag>;
using F64 = fastadam::simd::Vec<double, 2, NeonTag>;
F32 sqrt_of(F32 a) { return F32::from(vsqrtq_f32(a.r)); }
F64 sqrt_of(F64 a) { return F64::from(vsqrtq_f64(a.r)); }
// float16 <-> float32 with FCVTL / FCVTN (round to nearest even under the default FPCR; NaNs
// made quiet with their payload): the same bits as half.hpp's functions.
F32 widen(F32, const fastadam::Half* p) {
    return F32::from(vcvt_f32_f16(vld1_f16(reinterpret_cast<const float16_t*>(p))));
}
void narrow(F32 x, fastadam::Half* p) {
    vst1_f16(reinterpret_cast<float16_t*>(p), vcvt_f16_f32(x.r));
}
}  // namespace

FASTADAM_DEFINE_RANGE_KERNELS(isa_neon, F32, F64, L<float>, L<double>)
