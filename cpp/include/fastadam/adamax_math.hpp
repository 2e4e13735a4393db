// The Adamax update of torch.optim.Adamax (L2 weight decay, maximize), written once for every
// code path, in the order of torch's single-tensor implementation; value types as in
// adam_math.hpp.
#pragma once

#include <cmath>
#include <cstdint>

#include "fastadam/lerp.hpp"
#include "fastadam/platform.hpp"

namespace fastadam {

struct AdamaxHyper {
    double lr = 2e-3;
    double beta1 = 0.9;
    double beta2 = 0.999;
    double eps = 1e-8;
    double weight_decay = 0.0;
    bool maximize = false;
};

struct AdamaxScalars {
    double one_minus_beta1, beta2, eps, weight_decay;
    double clr;  // lr / (1 - beta1^t)
    bool maximize;
};

inline AdamaxScalars make_scalars(const AdamaxHyper& h, std::int64_t step) {
    const double bias_correction = 1.0 - std::pow(h.beta1, static_cast<double>(step));
    return {1.0 - h.beta1, h.beta2, h.eps, h.weight_decay, h.lr / bias_correction, h.maximize};
}

template <class V>
struct AdamaxCoefficients {
    LerpWeight<V> exp_avg_weight;  // 1 - beta1
    V beta2, eps, weight_decay, clr;
    bool maximize, l2_decay;
};

template <class V, class T>
AdamaxCoefficients<V> broadcast(const AdamaxScalars& s) {
    auto c = [](double x) { return V(static_cast<T>(x)); };
    return {lerp_weight<V, T>(s.one_minus_beta1), c(s.beta2), c(s.eps), c(s.weight_decay),
            c(s.clr), s.maximize, s.weight_decay != 0.0};
}

// One Adamax update of p, the first moment and the exponentially weighted infinity norm.
template <class V>
FASTADAM_HD void adamax_update(V& p, V g, V& exp_avg, V& exp_inf, const AdamaxCoefficients<V>& c) {
    if (c.maximize) g = -g;
    if (c.l2_decay) g = g + c.weight_decay * p;
    exp_avg = lerp_to(exp_avg, g, c.exp_avg_weight);
    // |g| as max(g, -g): a zero may come out as -0, which adding eps (>= +0) makes +0.
    exp_inf = max_of(exp_inf * c.beta2, max_of(g, -g) + c.eps);
    p = p - c.clr * exp_avg / exp_inf;
}

}  // namespace fastadam
