// The Adagrad update of torch.optim.Adagrad (lr decay, L2 weight decay, maximize), written once
// for every code path; value types as in adam_math.hpp.
#pragma once

#include <cstdint>

#include "fastadam/platform.hpp"

namespace fastadam {

struct AdagradHyper {
    double lr = 1e-2;
    double lr_decay = 0.0;
    double weight_decay = 0.0;
    double eps = 1e-10;
    bool maximize = false;
};

struct AdagradScalars {
    double clr, weight_decay, eps;  // clr = lr / (1 + (step - 1) * lr_decay)
    bool maximize;
};

inline AdagradScalars make_scalars(const AdagradHyper& h, std::int64_t step) {
    const double clr = h.lr / (1.0 + static_cast<double>(step - 1) * h.lr_decay);
    return {clr, h.weight_decay, h.eps, h.maximize};
}

template <class V>
struct AdagradCoefficients {
    V clr, weight_decay, eps;
    bool maximize, l2_decay;
};

template <class V, class T>
AdagradCoefficients<V> broadcast(const AdagradScalars& s) {
    auto c = [](double x) { return V(static_cast<T>(x)); };
    return {c(s.clr), c(s.weight_decay), c(s.eps), s.maximize, s.weight_decay != 0.0};
}

// One Adagrad update of p and of the running sum of squared gradients.
template <class V>
FASTADAM_HD void adagrad_update(V& p, V g, V& state_sum, const AdagradCoefficients<V>& c) {
    if (c.maximize) g = -g;
    if (c.l2_decay) g = g + c.weight_decay * p;
    state_sum = state_sum + g * g;
    p = p - c.clr * (g / (sqrt_of(state_sum) + c.eps));
}

}  // namespace fastadam
