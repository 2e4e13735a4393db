// Thin value wrappers that let adam_update (adam_math.hpp) run on SIMD registers.
//
// Every wrapper carries an ISA tag type. Each kernel translation unit declares its tag in an
// anonymous namespace, which gives every instantiation (wrappers, loops, adam_update) internal
// linkage: the linker can never merge an AVX2-compiled helper into the scalar path.
#pragma once

#include <cmath>
#include <cstring>

namespace fastadam::simd {

// W lanes of T in one register, using GCC/Clang vector extensions: + - * / compile to the
// instructions of the flags the including file is built with (ymm for -mavx2, zmm for
// -mavx512f). sqrt_of is supplied per ISA by the kernel file, next to its tag.
template <class T, int W, class IsaTag>
struct Vec {
    typedef T Register __attribute__((vector_size(W * sizeof(T))));
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

}  // namespace fastadam::simd
