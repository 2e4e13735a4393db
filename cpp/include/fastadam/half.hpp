// 16-bit floating-point storage types (IEEE binary16 and bfloat16) and their conversions.
//
// Parameters and gradients may be stored in these types; the update always runs in float32 and
// rounds the parameter once on store. Every code path must produce the same bits, so the
// conversions are defined here exactly, and the SIMD paths are tested against these functions:
// - widening is exact; a float16 NaN becomes a quiet float32 NaN with its sign and payload
//   (the behaviour of x86 F16C and of AArch64 FCVT); a bfloat16 is the top half of a float32;
// - narrowing rounds to nearest, ties to even; too large a value becomes inf; a NaN becomes a
//   quiet NaN with its sign and the top bits of its payload (again F16C and FCVT);
// - stochastic rounding to bfloat16 adds 16 random bits below the bfloat16 lsb and truncates,
//   so a value rounds up with probability equal to its distance from the lower neighbour, in
//   ulps. The random bits come from a counter-based hash of (key, element index), so a result
//   never depends on the thread or the ISA that computed it.
// The integer formulas are templates over U, a uint32_t or a vector of them (GCC vector
// extensions), so the scalar path and the SIMD paths run the very same operations.
#pragma once

#include <cstdint>
#include <cstring>

#include "fastadam/platform.hpp"

namespace fastadam {

// Storage only: arithmetic happens after widening to float.
struct Half {
    std::uint16_t bits;
};
struct BFloat16 {
    std::uint16_t bits;
};

// The optimizer state type of a parameter type: float32 for the 16-bit types.
template <class P>
struct state_of {
    using type = P;
};
template <>
struct state_of<Half> {
    using type = float;
};
template <>
struct state_of<BFloat16> {
    using type = float;
};
template <class P>
using state_of_t = typename state_of<P>::type;

template <class P>
constexpr bool is_16bit = sizeof(P) == 2;

namespace bits {

inline std::uint32_t of(float x) {
    std::uint32_t u;
    std::memcpy(&u, &x, sizeof u);
    return u;
}
inline float to_float(std::uint32_t u) {
    float x;
    std::memcpy(&x, &u, sizeof x);
    return x;
}

// float32 bits -> bfloat16 bits (in the low 16 bits of each lane), round to nearest even.
template <class U>
FASTADAM_HD U bfloat16_nearest(U x) {
    const U rounded = (x + 0x7FFFu + ((x >> 16) & 1u)) >> 16;
    const U quiet_nan = (x >> 16) | 0x40u;
    return (x & 0x7FFFFFFFu) > 0x7F800000u ? quiet_nan : rounded;
}

// float32 bits -> bfloat16 bits, rounded up or down at random: `random` holds 32 random bits
// per lane, of which the top 16 are used.
template <class U>
FASTADAM_HD U bfloat16_stochastic(U x, U random) {
    const U rounded = (x + (random >> 16)) >> 16;
    const U quiet_nan = (x >> 16) | 0x40u;
    return (x & 0x7FFFFFFFu) > 0x7F800000u ? quiet_nan : rounded;
}

// A 32-bit integer hash with full avalanche (multiply-xorshift; constants from
// Wellons' "lowbias32" search).
template <class U>
FASTADAM_HD U mix32(U x) {
    x ^= x >> 16;
    x *= 0x7FEB352Du;
    x ^= x >> 15;
    x *= 0x846CA68Bu;
    x ^= x >> 16;
    return x;
}

// The random bits of element (hi:lo) for a rounding key: two hash rounds, so that indices past
// 2**32 do not repeat the stream.
template <class U>
FASTADAM_HD U rounding_bits(U lo, U hi, std::uint64_t key) {
    const auto k0 = static_cast<std::uint32_t>(key), k1 = static_cast<std::uint32_t>(key >> 32);
    return mix32(mix32(lo ^ k0) ^ hi ^ k1);
}

}  // namespace bits

// The key of one parameter's stochastic rounding at one step: a SplitMix64 finalisation of
// (seed, step), computed once per call.
inline std::uint64_t rounding_key(std::uint64_t seed, std::int64_t step) {
    auto splitmix = [](std::uint64_t z) {
        z += 0x9E3779B97F4A7C15ull;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    };
    return splitmix(splitmix(seed) ^ static_cast<std::uint64_t>(step));
}

inline float to_float(BFloat16 h) { return bits::to_float(std::uint32_t{h.bits} << 16); }

inline BFloat16 to_bfloat16(float x) {
    return {static_cast<std::uint16_t>(bits::bfloat16_nearest(bits::of(x)))};
}

inline BFloat16 to_bfloat16_stochastic(float x, std::uint64_t key, std::int64_t index) {
    const auto i = static_cast<std::uint64_t>(index);
    const std::uint32_t r = bits::rounding_bits(static_cast<std::uint32_t>(i),
                                                static_cast<std::uint32_t>(i >> 32), key);
    return {static_cast<std::uint16_t>(bits::bfloat16_stochastic(bits::of(x), r))};
}

inline float to_float(Half h) {
    const std::uint32_t sign = std::uint32_t(h.bits & 0x8000u) << 16;
    const std::uint32_t exponent = (h.bits >> 10) & 0x1Fu;
    std::uint32_t mantissa = h.bits & 0x3FFu;
    if (exponent == 0x1F)  // inf, or NaN made quiet
        return bits::to_float(sign | 0x7F800000u | (mantissa << 13) | (mantissa ? 0x400000u : 0u));
    if (exponent != 0) return bits::to_float(sign | ((exponent + 112) << 23) | (mantissa << 13));
    if (mantissa == 0) return bits::to_float(sign);
    // Subnormal: normalise the mantissa, lowering the exponent once per shift.
    std::uint32_t e = 113;
    while ((mantissa & 0x400u) == 0) {
        mantissa <<= 1;
        --e;
    }
    return bits::to_float(sign | (e << 23) | ((mantissa & 0x3FFu) << 13));
}

inline Half to_half(float x) {
    const std::uint32_t u = bits::of(x);
    const auto sign = static_cast<std::uint16_t>((u >> 16) & 0x8000u);
    const std::uint32_t a = u & 0x7FFFFFFFu;
    if (a > 0x7F800000u)  // NaN: quiet, keeping the top of the payload
        return {static_cast<std::uint16_t>(sign | 0x7E00u | ((a >> 13) & 0x3FFu))};
    if (a >= 0x38800000u) {  // |x| >= 2**-14: a normal half, or inf
        const std::uint32_t b = a - 0x38000000u;  // rebias the exponent from 127 to 15
        const std::uint32_t r = (b + 0xFFFu + ((b >> 13) & 1u)) >> 13;
        return {static_cast<std::uint16_t>(sign | (r >= 0x7C00u ? 0x7C00u : r))};
    }
    if (a <= 0x33000000u) return {sign};  // |x| <= 2**-25 rounds to zero (the tie to even)
    // Subnormal half: the value in units of 2**-24, rounded to nearest even.
    const std::uint32_t m = (a & 0x7FFFFFu) | 0x800000u;
    const std::uint32_t shift = 126 - (a >> 23);  // from 14 (2**-15) to 24 (2**-25)
    const std::uint32_t r = m >> shift, rest = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    return {static_cast<std::uint16_t>(sign | (r + (rest > half || (rest == half && (r & 1)))))};
}

}  // namespace fastadam
