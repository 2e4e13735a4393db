// AVX2 path: 8 floats / 4 doubles per ymm register. Built with -mavx2 -mf16c; FMA is deliberately
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
// float16 <-> float32 with F16C (vcvtph2ps / vcvtps2ph, round to nearest even): the same bits
// as half.hpp's functions, NaNs included.
F32 widen(F32, const fastadam::Half* p) {
    return F32::from(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
}
void narrow(F32 x, fastadam::Half* p) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p),
                     _mm256_cvtps_ph(x.r, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

// bfloat16 <-> float32 on integer lanes. The generic code of simd.hpp widens 16-bit lanes in
// 128-bit halves and narrows them through a shuffle sequence on AVX2 (which has no vpmovdw);
// these use one zero-extending load and one 128-bit pack instead, with the same bits as
// half.hpp's functions.
using U32 = fastadam::simd::IntLanes<8>::U32;
F32 widen(F32, const fastadam::BFloat16* p) {
    const __m256i h = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return F32::from(_mm256_castsi256_ps(_mm256_slli_epi32(h, 16)));
}
// Every lane below 2**16, so the signed-to-unsigned saturation of vpackusdw keeps it as it is.
void store_low_halves(__m256i lanes, fastadam::BFloat16* p) {
    const __m128i packed =
        _mm_packus_epi32(_mm256_castsi256_si128(lanes), _mm256_extracti128_si256(lanes, 1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), packed);
}
void store_bfloat16_bits(F32, U32 rounded, fastadam::BFloat16* p) {
    store_low_halves(reinterpret_cast<__m256i>(rounded), p);
}
// bits::bfloat16_nearest rearranged for AVX2: the quiet bit (0x40 << 16) is set before the one
// shift right, and a NaN is found by an unordered compare, which holds exactly where
// (x & 0x7FFFFFFF) > 0x7F800000.
void narrow(F32 x, fastadam::BFloat16* p) {
    const __m256i u = _mm256_castps_si256(x.r);
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    const __m256i rounded = _mm256_add_epi32(_mm256_add_epi32(u, _mm256_set1_epi32(0x7FFF)), lsb);
    const __m256i quiet = _mm256_or_si256(u, _mm256_set1_epi32(0x400000));
    const __m256 nan = _mm256_cmp_ps(x.r, x.r, _CMP_UNORD_Q);
    const __m256 top =
        _mm256_blendv_ps(_mm256_castsi256_ps(rounded), _mm256_castsi256_ps(quiet), nan);
    store_low_halves(_mm256_srli_epi32(_mm256_castps_si256(top), 16), p);
}
// 8-bit state codes: one byte per int32 lane (vpmovzxbd or vpmovsxbd; two saturating packs,
// exact for the codes' range 0-255).
using I32 = fastadam::simd::IntLanes<8>::I32;
I32 load_bytes(F32, const std::uint8_t* p) {
    return (I32)_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
}
I32 load_signed_bytes(F32, const std::uint8_t* p) {
    return (I32)_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
}
void store_bytes(F32, I32 c, std::uint8_t* p) {
    const __m256i x = (__m256i)c;
    const __m128i words = _mm_packus_epi32(_mm256_castsi256_si128(x), _mm256_extracti128_si256(x, 1));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(p), _mm_packus_epi16(words, words));
}
// Four vectors of 8-bit codes narrowed at once (update_loop.hpp: NarrowsCodeGroups), as the
// AVX-512 file does: signed saturation to int16, then to uint8 (or int8), clamps to [0, 255] on
// the way; the packs work within 128-bit lanes (lane L holds elements 4L..4L+3 of each vector),
// and one dword permutation restores the order.
__m256i packed_bytes_signed(const I32 (&x)[4]) {
    return _mm256_packs_epi16(_mm256_packs_epi32((__m256i)x[0], (__m256i)x[1]),
                              _mm256_packs_epi32((__m256i)x[2], (__m256i)x[3]));
}
__m256i packed_bytes_clamped(const I32 (&x)[4]) {
    return _mm256_packus_epi16(_mm256_packs_epi32((__m256i)x[0], (__m256i)x[1]),
                               _mm256_packs_epi32((__m256i)x[2], (__m256i)x[3]));
}
void store_in_order(__m256i packed, std::uint8_t* p) {
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm256_permutevar8x32_epi32(packed, order));
}
void store_exp_avg_group(F32, const I32 (&codes)[4], const I32 (&m_bits)[4], std::uint8_t* p) {
    const __m256i magnitude =
        _mm256_min_epu8(packed_bytes_clamped(codes), _mm256_set1_epi8(fastadam::lowbit::kExpAvgMax));
    // A negative m's bits stay negative through signed saturation: bit 7 of its byte.
    const __m256i sign = _mm256_and_si256(packed_bytes_signed(m_bits), _mm256_set1_epi8(char(0x80)));
    store_in_order(_mm256_or_si256(magnitude, sign), p);
}
void store_exp_avg_sq_group(F32, const I32 (&codes)[4], const I32 (&v_bits)[4], std::uint8_t* p) {
    // Non-zero bits stay non-zero through saturation: the floor is 1 exactly where they are.
    const __m256i floor = _mm256_min_epu8(packed_bytes_signed(v_bits), _mm256_set1_epi8(1));
    store_in_order(_mm256_max_epu8(packed_bytes_clamped(codes), floor), p);
}
// A float vector's lower and upper four lanes as doubles: two vcvtps2pd ymm and one extract
// (GCC 12 builds the generic code from 64-bit pieces: four conversions, two inserts).
struct DoubleHalves {
    F64::Register lo, hi;
};
DoubleHalves to_double_halves(F32 x) {
    return {(F64::Register)_mm256_cvtps_pd(_mm256_castps256_ps128(x.r)),
            (F64::Register)_mm256_cvtps_pd(_mm256_extractf128_ps(x.r, 1))};
}
}  // namespace

FASTADAM_DEFINE_RANGE_KERNELS(isa_avx2, F32, F64, L<float>, L<double>)
