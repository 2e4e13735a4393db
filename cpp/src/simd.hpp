// Thin value wrappers that let adam_update (adam_math.hpp) run on SIMD registers.
//
// Every wrapper carries an ISA tag type. Each kernel translation unit declares its tag in an
// anonymous namespace, which gives every instantiation (wrappers, loops, adam_update) internal
// linkage: the linker can never merge an AVX2-compiled helper into the scalar path.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <utility>

#include "fastadam/half.hpp"

namespace fastadam::simd {

// W lanes of T in one register, using GCC/Clang vector extensions: + - * / compile to the
// instructions of the flags the including file is built with (ymm for -mavx2, zmm for
// -mavx512f -mavx512bw). sqrt_of is supplied per ISA by the kernel file, next to its tag.
template <class T, int W, class IsaTag>
struct Vec {
    typedef T Register __attribute__((vector_size(W * sizeof(T))));
    using value_type = T;
    static constexpr int width = W;
    Register r;

    Vec() = default;
    explicit Vec(T scalar) {
        for (int i = 0; i < W; ++i) r[i] = scalar;
    }
    static Vec from(Register x) {
        Vec v;
        v.r = x;
        return v;
    }
    static Vec load(const T* p) {
        Vec v;
        std::memcpy(&v.r, p, sizeof(Register));  // an unaligned vector load
        return v;
    }
    void store(T* p) const { std::memcpy(p, &r, sizeof(Register)); }

    friend Vec operator+(Vec a, Vec b) { return from(a.r + b.r); }
    friend Vec operator-(Vec a, Vec b) { return from(a.r - b.r); }
    friend Vec operator*(Vec a, Vec b) { return from(a.r * b.r); }
    friend Vec operator/(Vec a, Vec b) { return from(a.r / b.r); }
    friend Vec operator-(Vec a) { return from(-a.r); }
    // (a > b ? a : b), lane by lane: the semantics of x86 maxps, and of Lane's max_of below.
    friend Vec max_of(Vec a, Vec b) { return from(a.r > b.r ? a.r : b.r); }
};

// One lane: the scalar path, and the tail of every vector loop, so that the tail runs the same
// element function as the body.
template <class T, class IsaTag>
struct Lane {
    using value_type = T;
    static constexpr int width = 1;
    T x;

    Lane() = default;
    explicit Lane(T scalar) : x(scalar) {}
    static Lane load(const T* p) { return Lane(*p); }
    void store(T* p) const { *p = x; }

    friend Lane operator+(Lane a, Lane b) { return Lane(a.x + b.x); }
    friend Lane operator-(Lane a, Lane b) { return Lane(a.x - b.x); }
    friend Lane operator*(Lane a, Lane b) { return Lane(a.x * b.x); }
    friend Lane operator/(Lane a, Lane b) { return Lane(a.x / b.x); }
    friend Lane operator-(Lane a) { return Lane(-a.x); }
    friend Lane max_of(Lane a, Lane b) { return a.x > b.x ? a : b; }
    friend Lane sqrt_of(Lane a) { return Lane(std::sqrt(a.x)); }
};

// --- 16-bit storage (half.hpp defines the conversions) ----------------------------------------
// widen(V{}, p) loads V::width 16-bit values as float lanes; narrow(x, p) stores x rounded to
// nearest even; narrow_stochastic(x, p, key, i) stores x rounded stochastically (bfloat16).
// Lanes use half.hpp's functions; float vectors use the integer formulas of half.hpp for
// bfloat16 and, for float16, the ISA's conversion instructions, which each kernel file defines
// next to its tag (found by argument-dependent lookup like sqrt_of). A kernel file may likewise
// define bfloat16 widen, narrow and store_bfloat16_bits where the generic code compiles poorly
// for its ISA; those must give the bits of half.hpp's functions.

template <class Tag>
Lane<float, Tag> widen(Lane<float, Tag>, const Half* p) {
    return Lane<float, Tag>(to_float(*p));
}
template <class Tag>
void narrow(Lane<float, Tag> x, Half* p) {
    *p = to_half(x.x);
}
template <class Tag>
Lane<float, Tag> widen(Lane<float, Tag>, const BFloat16* p) {
    return Lane<float, Tag>(to_float(*p));
}
template <class Tag>
void narrow(Lane<float, Tag> x, BFloat16* p) {
    *p = to_bfloat16(x.x);
}
template <class Tag>
void narrow_stochastic(Lane<float, Tag> x, BFloat16* p, std::uint64_t key, std::int64_t i) {
    *p = to_bfloat16_stochastic(x.x, key, i);
}

// Integer lanes matching a float vector of W lanes.
template <int W>
struct IntLanes {
    typedef std::uint32_t U32 __attribute__((vector_size(W * 4)));
    typedef std::int32_t I32 __attribute__((vector_size(W * 4)));
    typedef std::uint16_t U16 __attribute__((vector_size(W * 2)));
    typedef std::uint8_t U8 __attribute__((vector_size(W)));
};

template <int W, class Tag>
Vec<float, W, Tag> widen(Vec<float, W, Tag>, const BFloat16* p) {
    typename IntLanes<W>::U16 h;
    std::memcpy(&h, p, sizeof h);
    const auto u = __builtin_convertvector(h, typename IntLanes<W>::U32) << 16;
    Vec<float, W, Tag> v;
    std::memcpy(&v.r, &u, sizeof u);
    return v;
}

// Stores the low 16 bits of each lane (every lane holds a value below 2**16). The first argument
// only carries the ISA tag, so that a kernel file can supply a faster store for its vector.
template <int W, class Tag>
void store_bfloat16_bits(Vec<float, W, Tag>, typename IntLanes<W>::U32 rounded, BFloat16* p) {
    const auto h = __builtin_convertvector(rounded, typename IntLanes<W>::U16);
    std::memcpy(p, &h, sizeof h);
}

template <int W, class Tag>
typename IntLanes<W>::U32 bits_of(Vec<float, W, Tag> x) {
    typename IntLanes<W>::U32 u;
    std::memcpy(&u, &x.r, sizeof u);
    return u;
}

template <int W, class Tag>
void narrow(Vec<float, W, Tag> x, BFloat16* p) {
    store_bfloat16_bits(x, bits::bfloat16_nearest(bits_of(x)), p);
}

// Forced inline: GCC otherwise keeps it out of line (it has many callers), and every call then
// rebuilds its dozen vector constants.
template <int W, class Tag>
[[gnu::always_inline]] inline void narrow_stochastic(Vec<float, W, Tag> x, BFloat16* p,
                                                     std::uint64_t key, std::int64_t i) {
    using U32 = typename IntLanes<W>::U32;
    U32 lo, iota;
    for (int k = 0; k < W; ++k) iota[k] = static_cast<std::uint32_t>(k);
    const auto base = static_cast<std::uint64_t>(i);
    lo = static_cast<std::uint32_t>(base) + iota;
    // Lanes whose low word wrapped past 2**32 carry one into the high word (mask -1 -> +1).
    const U32 hi = static_cast<std::uint32_t>(base >> 32) - (U32)(lo < iota);
    const U32 random = bits::rounding_bits(lo, hi, key);
    store_bfloat16_bits(x, bits::bfloat16_stochastic(bits_of(x), random), p);
}

// --- int32 lanes for the 8-bit state codes (lowbit_math.hpp) ---------------------------------
// IntOf<V>: the int32 lanes (I) and uint32 lanes (U) of a float value type; int_bits/from_bits
// reinterpret; load_bytes/store_bytes move one code byte per lane (load_signed_bytes
// sign-extends it); low_index gives the low words of the element indices i, i + 1, ...;
// largest_lane the largest lane of a non-negative value.
template <class V>
struct IntOf;
template <int W, class Tag>
struct IntOf<Vec<float, W, Tag>> {
    using I = typename IntLanes<W>::I32;
    using U = typename IntLanes<W>::U32;
};
template <class Tag>
struct IntOf<Lane<float, Tag>> {
    using I = std::int32_t;
    using U = std::uint32_t;
};

template <int W, class Tag>
typename IntLanes<W>::I32 int_bits(Vec<float, W, Tag> x) {
    typename IntLanes<W>::I32 u;
    std::memcpy(&u, &x.r, sizeof u);
    return u;
}
template <class Tag>
std::int32_t int_bits(Lane<float, Tag> x) {
    std::int32_t u;
    std::memcpy(&u, &x.x, sizeof u);
    return u;
}
template <int W, class Tag>
Vec<float, W, Tag> from_bits(Vec<float, W, Tag>, typename IntLanes<W>::I32 u) {
    Vec<float, W, Tag> v;
    std::memcpy(&v.r, &u, sizeof u);
    return v;
}
template <class Tag>
Lane<float, Tag> from_bits(Lane<float, Tag>, std::int32_t u) {
    float x;
    std::memcpy(&x, &u, sizeof x);
    return Lane<float, Tag>(x);
}
template <int W, class Tag>
typename IntLanes<W>::I32 load_bytes(Vec<float, W, Tag>, const std::uint8_t* p) {
    typename IntLanes<W>::U8 b;
    std::memcpy(&b, p, sizeof b);
    return __builtin_convertvector(b, typename IntLanes<W>::I32);
}
template <class Tag>
std::int32_t load_bytes(Lane<float, Tag>, const std::uint8_t* p) {
    return *p;
}
// The same bytes read as int8 and sign-extended (bit 7 becomes bits 8-31).
template <int W, class Tag>
typename IntLanes<W>::I32 load_signed_bytes(Vec<float, W, Tag>, const std::uint8_t* p) {
    typedef std::int8_t S8 __attribute__((vector_size(W)));
    S8 b;
    std::memcpy(&b, p, sizeof b);
    return __builtin_convertvector(b, typename IntLanes<W>::I32);
}
template <class Tag>
std::int32_t load_signed_bytes(Lane<float, Tag>, const std::uint8_t* p) {
    return static_cast<std::int8_t>(*p);
}
template <int W>
void store_bytes(typename IntLanes<W>::I32 c, std::uint8_t* p) {
    const auto b = __builtin_convertvector(c, typename IntLanes<W>::U8);
    std::memcpy(p, &b, sizeof b);
}
template <int W, class Tag>
void store_bytes(Vec<float, W, Tag>, typename IntLanes<W>::I32 c, std::uint8_t* p) {
    store_bytes<W>(c, p);
}
template <class Tag>
void store_bytes(Lane<float, Tag>, std::int32_t c, std::uint8_t* p) {
    *p = static_cast<std::uint8_t>(c);
}
template <int W, class Tag>
typename IntLanes<W>::U32 low_index(Vec<float, W, Tag>, std::int64_t i) {
    typename IntLanes<W>::U32 u;
    for (int k = 0; k < W; ++k) u[k] = static_cast<std::uint32_t>(k);
    return u + static_cast<std::uint32_t>(i);
}
template <class Tag>
std::uint32_t low_index(Lane<float, Tag>, std::int64_t i) {
    return static_cast<std::uint32_t>(i);
}
template <int W, class Tag>
typename IntLanes<W>::I32 as_signed(typename IntLanes<W>::U32 u, Vec<float, W, Tag>) {
    return (typename IntLanes<W>::I32)u;
}
template <class Tag>
std::int32_t as_signed(std::uint32_t u, Lane<float, Tag>) {
    return static_cast<std::int32_t>(u);
}
// The lower or upper half of a vector's lanes (Offset 0 or N / 2), as a register shuffle.
template <std::size_t Offset, class V, std::size_t... K>
auto lanes_from(V v, std::index_sequence<K...>) {
    return __builtin_shufflevector(v, v, (K + Offset)...);
}
template <int N, class V>
auto low_half(V v) {
    return lanes_from<0>(v, std::make_index_sequence<N / 2>{});
}
template <int N, class V>
auto high_half(V v) {
    return lanes_from<N / 2>(v, std::make_index_sequence<N / 2>{});
}
// The largest of N lanes, halving the vector each time (log2 N dependent maxima where a scan
// took N - 1: at the end of every 8-bit block that scan was a long scalar chain).
template <class T, int N, class V>
T largest_of(V v) {
    if constexpr (N == 2) {
        return v[1] > v[0] ? v[1] : v[0];
    } else {
        const auto lo = low_half<N>(v), hi = high_half<N>(v);
        return largest_of<T, N / 2>(hi > lo ? hi : lo);
    }
}
// The largest of the uint32 lanes of a float vector's shape (the first argument carries the type).
template <int W, class Tag>
std::uint32_t largest_unsigned_lane(Vec<float, W, Tag>, typename IntLanes<W>::U32 u) {
    if constexpr (W == 1) return u[0]; else return largest_of<std::uint32_t, W>(u);
}
template <class Tag>
std::uint32_t largest_unsigned_lane(Lane<float, Tag>, std::uint32_t u) {
    return u;
}
template <class T, int W, class Tag>
T largest_lane(Vec<T, W, Tag> x) {
    if constexpr (W == 1) return x.r[0]; else return largest_of<T, W>(x.r);
}
template <class T, class Tag>
T largest_lane(Lane<T, Tag> x) {
    return x.x;
}

// --- doubles for reductions -----------------------------------------------------------------
// The lanes of a value as doubles (a vector of the same width, or a plain double).
template <class T, int W, class Tag>
auto to_doubles(Vec<T, W, Tag> x) {
    typedef double D __attribute__((vector_size(W * sizeof(double))));
    return __builtin_convertvector(x.r, D);
}
template <class T, class Tag>
double to_doubles(Lane<T, Tag> x) {
    return static_cast<double>(x.x);
}

// The lower and upper halves of x's lanes as doubles, each a vector of the register's width.
// (to_doubles of a float vector is twice a register wide; GCC keeps such a value in memory, so an
// accumulator of it went through the stack on every iteration.)
template <class T, int W, class Tag>
auto to_double_halves(Vec<T, W, Tag> x) {
    static_assert(W % 2 == 0);
    typedef double D __attribute__((vector_size(W / 2 * sizeof(double))));
    struct Halves {
        D lo, hi;
    };
    return Halves{__builtin_convertvector(low_half<W>(x.r), D),
                  __builtin_convertvector(high_half<W>(x.r), D)};
}

}  // namespace fastadam::simd
