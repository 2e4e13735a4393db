// The 8-bit optimizer state codes, written once for every code path.
//
// State is kept in blocks of kBlock elements: one byte per element and one float32 scale per
// block (the block's largest magnitude). A byte is a tiny float relative to the scale whose bit
// pattern is a slice of the float32 bit pattern of y = |x| / scale, so encoding and decoding are
// a few integer instructions (add, shift, clamp) and no table or search:
// - exp_avg (m): bit 7 the sign of m, bits 0-6 a magnitude code c: c = 0 is zero, otherwise
//   the float32 with bits kExpAvgBase + (c << 22) (6 exponent bits and 1 mantissa bit: codes
//   from 2**-63 to 1, steps of 33 % and 50 %), times the scale. c = 127 is exactly the scale.
// - exp_avg_sq and max_exp_avg_sq (v, stored as v, not sqrt(v)): the byte c itself, c = 0 zero,
//   otherwise bits kExpAvgSqBase + (c << 21) (6 exponent and 2 mantissa bits: 2**-64 to 1, steps
//   of at most 25 % in v, 12 % in sqrt(v)), times the scale. A non-zero v never encodes to 0
//   (its code is at least 1), so an element with a non-zero m always has a non-zero v.
// Rounding is stochastic and unbiased in the float bit pattern (so exponential moving averages
// whose per-step change is far below a code step still move on average). The rounding offsets
// come from r = (index + key) * kWeyl (mod 2**32), key drawn per step from (seed, step): m adds
// the top 22 bits of r, v the low 21 bits. For one element the offsets of successive steps are
// independent draws; within a step, neighbouring elements get the well-spread offsets of a Weyl
// sequence. r depends only on (seed, step, element index), so the codes never depend on the
// thread or the ISA that wrote them, and it costs one multiply per element. kNearest in place of
// r rounds to nearest instead.
//
// The formulas are templates over I, an int32_t or a GCC vector of int32 lanes: every path runs
// the very same integer operations. (Signed shifts are two's complement as C++20 defines them
// and as GCC and Clang implement them.)
#pragma once

#include <cstdint>

#include "fastadam/half.hpp"
#include "fastadam/platform.hpp"

namespace fastadam::lowbit {

constexpr int kBlock = 256;
constexpr int kFormatVersion = 1;  // the code maps above; stored in state dicts

constexpr std::int32_t kOneBits = 0x3F800000;  // float32 1.0
constexpr int kExpAvgShift = 22;
constexpr std::int32_t kExpAvgMax = 127;
constexpr std::int32_t kExpAvgBase = kOneBits - (kExpAvgMax << kExpAvgShift);
constexpr int kExpAvgSqShift = 21;
constexpr std::int32_t kExpAvgSqMax = 255;
constexpr std::int32_t kExpAvgSqBase = kOneBits - (kExpAvgSqMax << kExpAvgSqShift);
// The rounding multiplier (odd; 2**32 / golden ratio), and the r that rounds to nearest: half a
// code step for both maps.
constexpr std::uint32_t kWeyl = 0x9E3779B1u;
constexpr std::uint32_t kNearest = 0x80100000u;

// Lane-wise maximum and minimum, in the form compilers turn into one pmaxsd / pminsd.
template <class I>
FASTADAM_HD I larger(I a, I b) {
    return a > b ? a : b;
}
template <class I>
FASTADAM_HD I smaller(I a, I b) {
    return a < b ? a : b;
}

template <class I>
FASTADAM_HD I clamp_code(I c, std::int32_t top) {
    const I zero = c - c;  // zero and `top` in I's shape, from scalars
    return smaller(larger(c, zero), zero + top);
}

// The rounding offsets of m and v from r (U: uint32_t or a vector of them).
template <class U>
FASTADAM_HD U exp_avg_offset(U r) {
    return r >> (32 - kExpAvgShift);
}
template <class U>
FASTADAM_HD U exp_avg_sq_offset(U r) {
    return r & ((1u << kExpAvgSqShift) - 1);
}

// The m byte in two steps, so that a vector path may do the second for several vectors at once
// (saturating packs): the magnitude code before its clamp to [0, 127], from the bits of
// y = |m| / scale and its rounding offset; then the byte, from that code and the bits of m (its
// sign is bit 7).
template <class I>
FASTADAM_HD I exp_avg_unclamped(I y_bits, I offset) {
    return (y_bits - kExpAvgBase + offset) >> kExpAvgShift;
}
template <class I>
FASTADAM_HD I encode_exp_avg(I m_bits, I unclamped) {
    return clamp_code(unclamped, kExpAvgMax) | ((m_bits >> 24) & 0x80);
}

// The bits of m / scale from its byte, read as a signed byte (sign-extended: the byte's sign
// bit is already bit 31, where m's sign goes, which saves a mask and a shift per vector).
template <class I>
FASTADAM_HD I decode_exp_avg(I signed_code) {
    const I c = signed_code & 0x7F, zero = c - c;
    const I magnitude = c != zero ? kExpAvgBase + (c << kExpAvgShift) : zero;
    return magnitude | (signed_code & static_cast<std::int32_t>(0x80000000u));
}

// The v byte in two steps, as for m: the code before its clamp to [floor, 255], from the bits of
// y = v / scale and its rounding offset; then the byte, from that code and the bits of v, whose
// floor is 1 where those bits are not 0 (a non-zero v keeps a code >= 1), else 0.
template <class I>
FASTADAM_HD I exp_avg_sq_unclamped(I y_bits, I offset) {
    return (y_bits - kExpAvgSqBase + offset) >> kExpAvgSqShift;
}
template <class I>
FASTADAM_HD I encode_exp_avg_sq(I v_bits, I unclamped) {
    const I zero = v_bits - v_bits, floor = (v_bits != zero) & (zero + 1);
    return smaller(larger(unclamped, floor), zero + kExpAvgSqMax);
}

// The bits of v / scale from its byte.
template <class I>
FASTADAM_HD I decode_exp_avg_sq(I code) {
    const I zero = code - code;
    return code != zero ? kExpAvgSqBase + (code << kExpAvgSqShift) : zero;
}

// r of the element whose index has low word `index_lo` (U: uint32_t or a vector of them), for
// a block's key.
template <class U>
FASTADAM_HD U state_random(U index_lo, std::uint32_t key_of_block) {
    return (index_lo + key_of_block) * kWeyl;
}

// The key of one block: the step's key (state_key) mixed with the high word of the element
// index, which is the same for every element of a block.
inline std::uint32_t block_key(std::uint64_t key, std::int64_t first_index) {
    const auto hi = static_cast<std::uint32_t>(static_cast<std::uint64_t>(first_index) >> 32);
    return static_cast<std::uint32_t>(key) ^ bits::mix32(static_cast<std::uint32_t>(key >> 32) ^ hi);
}

// The step key of the state's rounding (distinct from the parameter's for the same seed).
inline std::uint64_t state_key(std::uint64_t seed, std::int64_t step) {
    return rounding_key(seed ^ 0x5851F42D4C957F2Dull, step);
}

// The float32 factor that maps a block's values into [0, 1]: 1 / scale, rounded up to the next
// float if scale * (1 / scale) < 1, so that the block's largest element always gets the top
// code. Scales below the smallest normal float32 (or not finite) store the block as zeros.
inline float inverse_scale(float& scale) {
    if (!(scale >= 1.17549435e-38f && scale <= 3.40282347e38f)) {
        scale = 0.0f;
        return 0.0f;
    }
    float inv = 1.0f / scale;
    if (scale * inv < 1.0f) inv = bits::to_float(bits::of(inv) + 1);
    return inv;
}

}  // namespace fastadam::lowbit
