// The RMSprop update of torch.optim.RMSprop (centered, momentum, L2 weight decay, maximize),
// written once for every code path, in the order of torch's single-tensor implementation; value
// types as in adam_math.hpp.
#pragma once

#include <cstdint>

#include "fastadam/lerp.hpp"
#include "fastadam/platform.hpp"

namespace fastadam {

struct RmspropHyper {
    double lr = 1e-2;
    double alpha = 0.99;
    double eps = 1e-8;
    double weight_decay = 0.0;
    double momentum = 0.0;
    bool centered = false;
    bool maximize = false;
};

// RMSprop's update does not depend on the step count (torch counts steps all the same).
struct RmspropScalars {
    double lr, alpha, one_minus_alpha, eps, weight_decay, momentum;
    bool maximize;
};

inline RmspropScalars make_scalars(const RmspropHyper& h, std::int64_t /*step*/) {
    return {h.lr, h.alpha, 1.0 - h.alpha, h.eps, h.weight_decay, h.momentum, h.maximize};
}

template <class V>
struct RmspropCoefficients {
    V lr, alpha, one_minus_alpha, eps, weight_decay, momentum;
    LerpWeight<V> grad_avg_weight;  // 1 - alpha
    bool maximize, l2_decay;
};

template <class V, class T>
RmspropCoefficients<V> broadcast(const RmspropScalars& s) {
    auto c = [](double x) { return V(static_cast<T>(x)); };
    return {c(s.lr),       c(s.alpha),    c(s.one_minus_alpha),
            c(s.eps),      c(s.weight_decay), c(s.momentum),
            lerp_weight<V, T>(s.one_minus_alpha), s.maximize, s.weight_decay != 0.0};
}

// One RMSprop update of p, the running mean of squares and, when Centered, the running mean of
// gradients, and, with Momentum, the momentum buffer.
template <bool Centered, bool Momentum, class V>
FASTADAM_HD void rmsprop_update(V& p, V g, V& square_avg, V& grad_avg, V& buf,
                                const RmspropCoefficients<V>& c) {
    if (c.maximize) g = -g;
    if (c.l2_decay) g = g + c.weight_decay * p;
    square_avg = square_avg * c.alpha + c.one_minus_alpha * g * g;
    V avg;
    if constexpr (Centered) {
        grad_avg = lerp_to(grad_avg, g, c.grad_avg_weight);
        avg = sqrt_of(square_avg - grad_avg * grad_avg);
    } else {
        avg = sqrt_of(square_avg);
    }
    avg = avg + c.eps;
    if constexpr (Momentum) {
        buf = buf * c.momentum + g / avg;
        p = p - c.lr * buf;
    } else {
        p = p - c.lr * g / avg;
    }
}

}  // namespace fastadam
