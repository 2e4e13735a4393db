// The SGD update of torch.optim.SGD (momentum, dampening, Nesterov, L2 weight decay, maximize),
// written once for every code path; value types as in adam_math.hpp.
#pragma once

#include "fastadam/platform.hpp"

namespace fastadam {

struct SgdHyper {
    double lr = 1e-3;
    double momentum = 0.0;
    double dampening = 0.0;
    double weight_decay = 0.0;
    bool nesterov = false;
    bool maximize = false;
};

// Double-precision per-call values; `first_step` makes the momentum buffer a copy of the
// gradient, as torch does when a parameter has no buffer yet.
struct SgdScalars {
    double lr, momentum, one_minus_dampening, weight_decay;
    bool nesterov, maximize, first_step;
};

inline SgdScalars make_scalars(const SgdHyper& h, bool first_step) {
    return {h.lr, h.momentum, 1.0 - h.dampening, h.weight_decay, h.nesterov, h.maximize,
            first_step};
}

template <class V>
struct SgdCoefficients {
    V lr, momentum, one_minus_dampening, weight_decay;
    bool nesterov, maximize, first_step, l2_decay;
};

template <class V, class T>
SgdCoefficients<V> broadcast(const SgdScalars& s) {
    auto c = [](double x) { return V(static_cast<T>(x)); };
    return {c(s.lr),       c(s.momentum), c(s.one_minus_dampening), c(s.weight_decay),
            s.nesterov,    s.maximize,    s.first_step,             s.weight_decay != 0.0};
}

// One SGD update of p (and of the momentum buffer `buf` when Momentum is on).
template <bool Momentum, class V>
FASTADAM_HD void sgd_update(V& p, V g, V& buf, const SgdCoefficients<V>& c) {
    if (c.maximize) g = -g;
    if (c.l2_decay) g = g + c.weight_decay * p;
    if constexpr (Momentum) {
        buf = c.first_step ? g : c.momentum * buf + c.one_minus_dampening * g;
        g = c.nesterov ? g + c.momentum * buf : buf;
    }
    p = p - c.lr * g;
}

}  // namespace fastadam
