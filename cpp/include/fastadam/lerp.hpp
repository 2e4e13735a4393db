// torch's lerp (ATen's Lerp.h: start + w * (end - start) for |w| < 0.5, end - (end - start) *
// (1 - w) otherwise), without fused multiply-add, for the running averages that torch updates
// with lerp_ (NAdam, RAdam, Adamax, centered RMSprop). The branch is taken once per call.
#pragma once

#include <cmath>

#include "fastadam/platform.hpp"

namespace fastadam {

template <class V>
struct LerpWeight {
    V weight, one_minus_weight;  // both in the value type, 1 - w computed there as torch does
    bool small;                  // |w| < 0.5
};

// The weight rounded once to T, as torch rounds its Python float to the tensor's opmath type.
template <class V, class T>
LerpWeight<V> lerp_weight(double w) {
    const T wt = static_cast<T>(w);
    return {V(wt), V(static_cast<T>(T(1) - wt)), std::fabs(wt) < T(0.5)};
}

template <class V>
FASTADAM_HD V lerp_to(V start, V end, const LerpWeight<V>& w) {
    return w.small ? start + w.weight * (end - start) : end - (end - start) * w.one_minus_weight;
}

}  // namespace fastadam
