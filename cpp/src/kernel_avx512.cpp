// AVX-512 path: 16 floats / 8 doubles per zmm register. Built with -mavx512f.
#include <immintrin.h>

#include "update_loop.hpp"
#include "isa_kernels.hpp"
#include "simd.hpp"

namespace {
struct Avx512Tag {};
template <class T>
using L = fastadam::simd::Lane<T, Avx512Tag>;
using F32 = fastadam::simd::Vec<float, 16, Avx512Tag>;
using F64 = fastadam::simd::Vec<double, 8, Avx512Tag>;
F32 sqrt_of(F32 a) { return F32::from(_mm512_sqrt_ps(a.r)); }
F64 sqrt_of(F64 a) { return F64::from(_mm512_sqrt_pd(a.r)); }
}  // namespace

FASTADAM_DEFINE_RANGE_KERNELS(isa_avx512, F32, F64, L<float>, L<double>)
