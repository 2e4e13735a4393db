// The one streaming loop behind every CPU path: full vectors over the range, then the remaining
// elements one lane at a time through the same update function.
#pragma once

#include <cstdint>

#include "fastadam/adam_math.hpp"
#include "fastadam/kernels.hpp"

namespace fastadam::loop {

// Loads element block i of every array of t into V registers, applies `update`, stores back.
template <class V, bool Amsgrad, class T, class Update>
inline void apply_at(const AdamTensor<T>& t, std::int64_t i, const Update& update) {
    V p = V::load(t.param + i);
    V m = V::load(t.exp_avg + i);
    V v = V::load(t.exp_avg_sq + i);
    V vmax = Amsgrad ? V::load(t.max_exp_avg_sq + i) : V(T(0));
    update(p, V::load(t.grad + i), m, v, vmax);
    p.store(t.param + i);
    m.store(t.exp_avg + i);
    v.store(t.exp_avg_sq + i);
    if constexpr (Amsgrad) vmax.store(t.max_exp_avg_sq + i);
}

// Elements [begin, end) of t: vectors while a whole one fits, then single lanes.
// `make_update(tag)` returns the update for the value type of tag (Vec or Lane).
template <class Vec, class Lane, bool Amsgrad, class T, class MakeUpdate>
void sweep(const AdamTensor<T>& t, std::int64_t begin, std::int64_t end, const MakeUpdate& make) {
    const auto vec_update = make(Vec{});
    const auto lane_update = make(Lane{});
    std::int64_t i = begin;
    for (; i + Vec::width <= end; i += Vec::width) apply_at<Vec, Amsgrad>(t, i, vec_update);
    for (; i < end; ++i) apply_at<Lane, Amsgrad>(t, i, lane_update);
}

template <class Vec, class Lane, bool Amsgrad, class T>
void adam_sweep(const AdamTensor<T>& t, std::int64_t begin, std::int64_t end) {
    sweep<Vec, Lane, Amsgrad>(t, begin, end, [&t](auto tag) {
        using V = decltype(tag);
        return [c = broadcast<V, T>(t.scalars)](V& p, V g, V& m, V& v, V& vmax) {
            adam_update<Amsgrad>(p, g, m, v, vmax, c);
        };
    });
}

// The Adam update of elements [begin, end) of one tensor.
template <class Vec, class Lane, class T>
void adam_range(const AdamTensor<T>& t, std::int64_t begin, std::int64_t end) {
    if (t.max_exp_avg_sq != nullptr)
        adam_sweep<Vec, Lane, true>(t, begin, end);
    else
        adam_sweep<Vec, Lane, false>(t, begin, end);
}

// Adam's memory traffic without its arithmetic (read p, g, m, v; write p, m, v, one add each):
// the bandwidth reference that benchmarks compare the Adam step with.
template <class Vec, class Lane, class T>
void probe_range(const AdamTensor<T>& t, std::int64_t begin, std::int64_t end) {
    sweep<Vec, Lane, false>(t, begin, end, [](auto tag) {
        using V = decltype(tag);
        return [](V& p, V g, V& m, V& v, V&) {
            p = p + g;
            m = m + g;
            v = v + g;
        };
    });
}

}  // namespace fastadam::loop

// Defines the range kernels of one ISA in namespace fastadam::<ns>, from its vector types.
#define FASTADAM_DEFINE_RANGE_KERNELS(ns, F32, F64, L32, L64)                           \
    namespace fastadam::ns {                                                            \
    void adam_range(const AdamTensor<float>& t, std::int64_t b, std::int64_t e) {       \
        loop::adam_range<F32, L32>(t, b, e);                                            \
    }                                                                                   \
    void adam_range(const AdamTensor<double>& t, std::int64_t b, std::int64_t e) {      \
        loop::adam_range<F64, L64>(t, b, e);                                            \
    }                                                                                   \
    void probe_range(const AdamTensor<float>& t, std::int64_t b, std::int64_t e) {      \
        loop::probe_range<F32, L32>(t, b, e);                                           \
    }                                                                                   \
    void probe_range(const AdamTensor<double>& t, std::int64_t b, std::int64_t e) {     \
        loop::probe_range<F64, L64>(t, b, e);                                           \
    }                                                                                   \
    }
