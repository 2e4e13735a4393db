// AVX-512 path: 16 floats / 8 doubles per zmm register. Built with -mavx512f -mavx512bw
// (every AVX-512 server CPU since Skylake-SP has both; dispatch.cpp checks both) as isa_avx512,
// and once more with -mavx512bf16 as isa_avx512_bf16 (kernel_avx512_bf16.cpp), which differs
// only in its bfloat16 store.
#include <immintrin.h>

#ifndef FASTADAM_AVX512_NAMESPACE
#define FASTADAM_AVX512_NAMESPACE isa_avx512
#endif

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
// bfloat16 <-> float32 on integer lanes: one zero-extending load (vpmovzxwd) and one
// truncating store (vpmovdw), where the generic code of simd.hpp went through 256-bit halves and
// a pack sequence; the same bits as half.hpp's functions.
using U32 = fastadam::simd::IntLanes<16>::U32;
F32 widen(F32, const fastadam::BFloat16* p) {
    const __m512i h =
        _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    return F32::from(_mm512_castsi512_ps(_mm512_slli_epi32(h, 16)));
}
// Every lane holds a value below 2**16, which the truncation keeps.
void store_bfloat16_bits(F32, U32 rounded, fastadam::BFloat16* p) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_cvtepi32_epi16((__m512i)rounded));
}
#if defined(__AVX512BF16__)
// vcvtneps2bf16 rounds to nearest even and makes NaNs quiet exactly as half.hpp does, but it
// flushes subnormal inputs to zero; a vector holding one (rare: |x| < 2**-126) takes the integer
// formula instead. Three vector instructions per store (two mask tests and the conversion)
// where the formula takes nine.
void narrow(F32 x, fastadam::BFloat16* p) {
    const __m512i b = _mm512_castps_si512(x.r);
    const __mmask16 exponent_zero = _mm512_testn_epi32_mask(b, _mm512_set1_epi32(0x7F800000));
    const __mmask16 subnormal =
        _mm512_mask_test_epi32_mask(exponent_zero, b, _mm512_set1_epi32(0x007FFFFF));
    if (__builtin_expect(subnormal != 0, 0)) {
        fastadam::simd::narrow<16, Avx512Tag>(x, p);  // simd.hpp's integer formula
        return;
    }
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), (__m256i)_mm512_cvtneps_pbh(x.r));
}
#endif
// 8-bit state codes: one byte per int32 lane (vpmovzxbd or vpmovsxbd / vpmovdb).
using I32 = fastadam::simd::IntLanes<16>::I32;
I32 load_bytes(F32, const std::uint8_t* p) {
    return (I32)_mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
I32 load_signed_bytes(F32, const std::uint8_t* p) {
    return (I32)_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
void store_bytes(F32, I32 c, std::uint8_t* p) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm512_cvtepi32_epi8((__m512i)c));
}
// Four vectors of 8-bit codes narrowed at once (update_loop.hpp: NarrowsCodeGroups). Signed
// saturation to int16, then to uint8 (or int8), clamps a code to [0, 255] on the way (the
// codes of lowbit_math.hpp before their clamps lie far inside int32), so m's clamp to 127, its
// sign, and v's floor cost one byte-wise instruction per 64 elements each. The packs work within
// 128-bit lanes: lane L holds elements 4L..4L+3 of each of the four vectors, which one dword
// permutation puts back in order.
__m512i packed_bytes_signed(const I32 (&x)[4]) {
    return _mm512_packs_epi16(_mm512_packs_epi32((__m512i)x[0], (__m512i)x[1]),
                              _mm512_packs_epi32((__m512i)x[2], (__m512i)x[3]));
}
__m512i packed_bytes_clamped(const I32 (&x)[4]) {
    return _mm512_packus_epi16(_mm512_packs_epi32((__m512i)x[0], (__m512i)x[1]),
                               _mm512_packs_epi32((__m512i)x[2], (__m512i)x[3]));
}
void store_in_order(__m512i packed, std::uint8_t* p) {
    const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    _mm512_storeu_si512(p, _mm512_permutexvar_epi32(order, packed));
}
void store_exp_avg_group(F32, const I32 (&codes)[4], const I32 (&m_bits)[4], std::uint8_t* p) {
    const __m512i magnitude =
        _mm512_min_epu8(packed_bytes_clamped(codes), _mm512_set1_epi8(fastadam::lowbit::kExpAvgMax));
    // A negative m's bits stay negative through signed saturation: bit 7 of its byte.
    const __m512i sign = packed_bytes_signed(m_bits);
    store_in_order(_mm512_ternarylogic_epi32(magnitude, sign, _mm512_set1_epi8(char(0x80)), 0xF8),
                   p);
}
void store_exp_avg_sq_group(F32, const I32 (&codes)[4], const I32 (&v_bits)[4], std::uint8_t* p) {
    // Non-zero bits stay non-zero through saturation: the floor is 1 exactly where they are.
    const __m512i floor = _mm512_min_epu8(packed_bytes_signed(v_bits), _mm512_set1_epi8(1));
    store_in_order(_mm512_max_epu8(packed_bytes_clamped(codes), floor), p);
}
// A float vector's lower and upper eight lanes as doubles: two vcvtps2pd zmm and one extract
// (GCC 12 builds the generic code from 128-bit pieces: four conversions, two inserts; the
// gradient pre-pass spent twice its time there).
struct DoubleHalves {
    F64::Register lo, hi;
};
DoubleHalves to_double_halves(F32 x) {
    const __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x.r), 1));
    return {(F64::Register)_mm512_cvtps_pd(_mm512_castps512_ps256(x.r)),
            (F64::Register)_mm512_cvtps_pd(hi)};
}
}  // namespace

FASTADAM_DEFINE_RANGE_KERNELS(FASTADAM_AVX512_NAMESPACE, F32, F64, L<float>, L<double>)
