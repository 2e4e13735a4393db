// The one streaming loop behind every CPU path: full vectors over the range, then the remaining
// elements one lane at a time through the same adam_update.
#pragma once

#include <cstdint>

#include "fastadam/adam_math.hpp"
#include "fastadam/kernels.hpp"

namespace fastadam::loop {

template <bool Amsgrad, class V, class T>
inline void update_at(const AdamTensor<T>& t, std::int64_t i, const AdamCoefficients<V>& c) {
    V p = V::load(t.param + i);
    V m = V::load(t.exp_avg + i);
    V v = V::load(t.exp_avg_sq + i);
    V vmax = Amsgrad ? V::load(t.max_exp_avg_sq + i) : V(T(0));
    adam_update<Amsgrad>(p, V::load(t.grad + i), m, v, vmax, c);
    p.store(t.param + i);
    m.store(t.exp_avg + i);
    v.store(t.exp_avg_sq + i);
    if constexpr (Amsgrad) vmax.store(t.max_exp_avg_sq + i);
}

template <bool Amsgrad, class Vec, class Lane, class T>
void update_range(const AdamTensor<T>& t, std::int64_t begin, std::int64_t end) {
    const auto vec_coeffs = broadcast<Vec, T>(t.scalars);
    const auto lane_coeffs = broadcast<Lane, T>(t.scalars);
    std::int64_t i = begin;
    for (; i + Vec::width <= end; i += Vec::width) update_at<Amsgrad>(t, i, vec_coeffs);
    for (; i < end; ++i) update_at<Amsgrad>(t, i, lane_coeffs);
}

// Updates elements [begin, end) of one tensor.
template <class Vec, class Lane, class T>
void adam_range(const AdamTensor<T>& t, std::int64_t begin, std::int64_t end) {
    if (t.max_exp_avg_sq != nullptr)
        update_range<true, Vec, Lane>(t, begin, end);
    else
        update_range<false, Vec, Lane>(t, begin, end);
}

}  // namespace fastadam::loop
