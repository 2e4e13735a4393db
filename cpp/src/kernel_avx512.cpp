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
// float16 <-> float32 (vcvtph2ps / vcvtps2ph on zmm are AVX-512F instructions), round to
// nearest even: the same bits as half.hpp's functions, NaNs included.
F32 widen(F32, const fastadam::Half* p) {
    return F32::from(_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))));
}
void narrow(F32 x, fastadam::Half* p) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p),
                        _mm512_cvtps_ph(x.r, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}
}  // namespace

FASTADAM_DEFINE_RANGE_KERNELS(isa_avx512, F32, F64, L<float>, L<double>)
