// The one streaming loop behind every CPU path and every optimizer: full vectors over a range,
// then the remaining elements one lane at a time through the same update function.
//
// Adding an optimizer: its element function in cpp/include/fastadam/<name>_math.hpp, its tensor
// type in kernels.hpp, a range_of overload below, one line in FASTADAM_DEFINE_RANGE_KERNELS and
// in isa_kernels.hpp, and its binding.
#pragma once

#include <cstdint>
#include <type_traits>

#include "fastadam/kernels.hpp"

namespace fastadam::loop {

// Calls body(V{}, i) on each block of [begin, end): V = Vec while a whole vector fits, then
// V = Lane. The V{} argument only carries the type.
template <class Vec, class Lane, class Body>
inline void sweep(std::int64_t begin, std::int64_t end, const Body& body) {
    std::int64_t i = begin;
    for (; i + Vec::width <= end; i += Vec::width) body(Vec{}, i);
    for (; i < end; ++i) body(Lane{}, i);
}

// A rule's coefficients for both value types of a sweep, each rounded once from the scalars.
template <class Vec, class Lane, class CoeffVec, class CoeffLane>
struct BothCoefficients {
    CoeffVec vec;
    CoeffLane lane;
    template <class V>
    const auto& get() const {
        if constexpr (std::is_same_v<V, Vec>) return vec; else return lane;
    }
};

template <class Vec, class Lane, class T, class Scalars>
auto coefficients(const Scalars& s) {
    using CV = decltype(broadcast<Vec, T>(s));
    using CL = decltype(broadcast<Lane, T>(s));
    return BothCoefficients<Vec, Lane, CV, CL>{broadcast<Vec, T>(s), broadcast<Lane, T>(s)};
}

template <class Vec, class Lane, bool Amsgrad, class T>
void adam_sweep(const AdamTensor<T>& t, std::int64_t begin, std::int64_t end) {
    const auto c = coefficients<Vec, Lane, T>(t.scalars);
    sweep<Vec, Lane>(begin, end, [&](auto tag, std::int64_t i) {
        using V = decltype(tag);
        V p = V::load(t.param + i), m = V::load(t.exp_avg + i), v = V::load(t.exp_avg_sq + i);
        V vmax = Amsgrad ? V::load(t.max_exp_avg_sq + i) : V(T(0));
        adam_update<Amsgrad>(p, V::load(t.grad + i), m, v, vmax, c.template get<V>());
        p.store(t.param + i);
        m.store(t.exp_avg + i);
        v.store(t.exp_avg_sq + i);
        if constexpr (Amsgrad) vmax.store(t.max_exp_avg_sq + i);
    });
}

template <class Vec, class Lane, class T>
void range_of(const AdamTensor<T>& t, std::int64_t begin, std::int64_t end) {
    if (t.max_exp_avg_sq != nullptr)
        adam_sweep<Vec, Lane, true>(t, begin, end);
    else
        adam_sweep<Vec, Lane, false>(t, begin, end);
}

template <class Vec, class Lane, bool Momentum, class T>
void sgd_sweep(const SgdTensor<T>& t, std::int64_t begin, std::int64_t end) {
    const auto c = coefficients<Vec, Lane, T>(t.scalars);
    sweep<Vec, Lane>(begin, end, [&](auto tag, std::int64_t i) {
        using V = decltype(tag);
        V p = V::load(t.param + i);
        V buf = Momentum && !t.scalars.first_step ? V::load(t.momentum_buffer + i) : V(T(0));
        sgd_update<Momentum>(p, V::load(t.grad + i), buf, c.template get<V>());
        p.store(t.param + i);
        if constexpr (Momentum) buf.store(t.momentum_buffer + i);
    });
}

template <class Vec, class Lane, class T>
void range_of(const SgdTensor<T>& t, std::int64_t begin, std::int64_t end) {
    if (t.momentum_buffer != nullptr)
        sgd_sweep<Vec, Lane, true>(t, begin, end);
    else
        sgd_sweep<Vec, Lane, false>(t, begin, end);
}

template <class Vec, class Lane, class T>
void range_of(const AdagradTensor<T>& t, std::int64_t begin, std::int64_t end) {
    const auto c = coefficients<Vec, Lane, T>(t.scalars);
    sweep<Vec, Lane>(begin, end, [&](auto tag, std::int64_t i) {
        using V = decltype(tag);
        V p = V::load(t.param + i), sum = V::load(t.state_sum + i);
        adagrad_update(p, V::load(t.grad + i), sum, c.template get<V>());
        p.store(t.param + i);
        sum.store(t.state_sum + i);
    });
}

// Adam's memory traffic without its arithmetic (read p, g, m, v; write p, m, v, one add each):
// the bandwidth reference that benchmarks compare the Adam step with.
template <class Vec, class Lane, class T>
void probe_range(const AdamTensor<T>& t, std::int64_t begin, std::int64_t end) {
    sweep<Vec, Lane>(begin, end, [&](auto tag, std::int64_t i) {
        using V = decltype(tag);
        const V g = V::load(t.grad + i);
        (V::load(t.param + i) + g).store(t.param + i);
        (V::load(t.exp_avg + i) + g).store(t.exp_avg + i);
        (V::load(t.exp_avg_sq + i) + g).store(t.exp_avg_sq + i);
    });
}

}  // namespace fastadam::loop

// Defines the range kernels of one ISA in namespace fastadam::<ns>, from its value types: an
// update_range overload per optimizer tensor type and dtype, and the bandwidth probe.
#define FASTADAM_RANGE_KERNEL(name, impl, Tensor, V, L)                                  \
    void name(const Tensor& t, std::int64_t b, std::int64_t e) { loop::impl<V, L>(t, b, e); }
#define FASTADAM_DEFINE_RANGE_KERNELS(ns, F32, F64, L32, L64)                           \
    namespace fastadam::ns {                                                            \
    FASTADAM_RANGE_KERNEL(update_range, range_of, AdamTensor<float>, F32, L32)          \
    FASTADAM_RANGE_KERNEL(update_range, range_of, AdamTensor<double>, F64, L64)         \
    FASTADAM_RANGE_KERNEL(update_range, range_of, SgdTensor<float>, F32, L32)           \
    FASTADAM_RANGE_KERNEL(update_range, range_of, SgdTensor<double>, F64, L64)          \
    FASTADAM_RANGE_KERNEL(update_range, range_of, AdagradTensor<float>, F32, L32)       \
    FASTADAM_RANGE_KERNEL(update_range, range_of, AdagradTensor<double>, F64, L64)      \
    FASTADAM_RANGE_KERNEL(probe_range, probe_range, AdamTensor<float>, F32, L32)        \
    FASTADAM_RANGE_KERNEL(probe_range, probe_range, AdamTensor<double>, F64, L64)       \
    }
