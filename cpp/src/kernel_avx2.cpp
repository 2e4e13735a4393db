// AVX2 path: 8 floats / 4 doubles per ymm register. Built with -mavx2 only; FMA is deliberately
// not used, so results are bitwise identical to the scalar and AVX-512 paths.
#include <immintrin.h>

#include "update_loop.hpp"
#include "isa_kernels.hpp"
#include "simd.hpp"

namespace {
struct Avx2Tag {};
template <class T>
using L = fastadam::simd::Lane<T, Avx2Tag>;
using F32 = fastadam::simd::Vec<float, 8, Avx2Tag>;
using F64 = fastadam::simd::Vec<double, 4, Avx2Tag>;
F32 sqrt_of(F32 a) { return F32::from(_mm256_sqrt_ps(a.r)); }
F64 sqrt_of(F64 a) { return F64::from(_mm256_sqrt_pd(a.r)); }
}  // namespace

FASTADAM_DEFINE_RANGE_KERNELS(isa_avx2, F32, F64, L<float>, L<double>)
