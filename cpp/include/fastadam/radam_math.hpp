// The RAdam update of torch.optim.RAdam (variance rectification, L2 or decoupled weight decay,
// maximize), written once for every code path, in the order of torch's single-tensor
// implementation; value types as in adam_math.hpp.
#pragma once

#include <cmath>
#include <cstdint>

#include "fastadam/lerp.hpp"
#include "fastadam/platform.hpp"

namespace fastadam {

struct RadamHyper {
    double lr = 1e-3;
    double beta1 = 0.9;
    double beta2 = 0.999;
    double eps = 1e-8;
    double weight_decay = 0.0;
    bool decoupled = false;
    bool maximize = false;
};

struct RadamScalars {
    double one_minus_beta1, beta2, one_minus_beta2, bias_correction1, lr, sqrt_bias_correction2,
        eps, rect, weight_decay, decay_factor;
    bool rectified;  // rho_t > 5: the adaptive step; otherwise the un-adapted momentum step
    bool maximize, l2_decay, decoupled_decay;
};

inline RadamScalars make_scalars(const RadamHyper& h, std::int64_t step) {
    const double t = static_cast<double>(step);
    const double bc2 = 1.0 - std::pow(h.beta2, t);
    const double rho_inf = 2.0 / (1.0 - h.beta2) - 1.0;
    const double rho_t = rho_inf - 2.0 * t * std::pow(h.beta2, t) / bc2;
    RadamScalars s{};
    s.one_minus_beta1 = 1.0 - h.beta1;
    s.beta2 = h.beta2;
    s.one_minus_beta2 = 1.0 - h.beta2;
    s.bias_correction1 = 1.0 - std::pow(h.beta1, t);
    s.lr = h.lr;
    s.sqrt_bias_correction2 = std::pow(bc2, 0.5);  // torch's ** 0.5 (pow, as Python computes it)
    s.eps = h.eps;
    s.rectified = rho_t > 5.0;
    s.rect = s.rectified ? std::pow((rho_t - 4.0) * (rho_t - 2.0) * rho_inf /
                                        ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t),
                                    0.5)
                         : 1.0;
    s.weight_decay = h.weight_decay;
    s.decay_factor = 1.0 - h.lr * h.weight_decay;
    s.maximize = h.maximize;
    s.l2_decay = h.weight_decay != 0.0 && !h.decoupled;
    s.decoupled_decay = h.weight_decay != 0.0 && h.decoupled;
    return s;
}

template <class V>
struct RadamCoefficients {
    LerpWeight<V> exp_avg_weight;  // 1 - beta1
    V beta2, one_minus_beta2, bias_correction1, lr, sqrt_bias_correction2, eps, rect,
        weight_decay, decay_factor;
    bool rectified, maximize, l2_decay, decoupled_decay;
};

template <class V, class T>
RadamCoefficients<V> broadcast(const RadamScalars& s) {
    auto c = [](double x) { return V(static_cast<T>(x)); };
    return {lerp_weight<V, T>(s.one_minus_beta1),
            c(s.beta2),
            c(s.one_minus_beta2),
            c(s.bias_correction1),
            c(s.lr),
            c(s.sqrt_bias_correction2),
            c(s.eps),
            c(s.rect),
            c(s.weight_decay),
            c(s.decay_factor),
            s.rectified,
            s.maximize,
            s.l2_decay,
            s.decoupled_decay};
}

// One RAdam update of p and the two moments.
template <class V>
FASTADAM_HD void radam_update(V& p, V g, V& exp_avg, V& exp_avg_sq,
                              const RadamCoefficients<V>& c) {
    if (c.maximize) g = -g;
    if (c.decoupled_decay) p = p * c.decay_factor;
    if (c.l2_decay) g = g + c.weight_decay * p;
    exp_avg = lerp_to(exp_avg, g, c.exp_avg_weight);
    exp_avg_sq = exp_avg_sq * c.beta2 + c.one_minus_beta2 * g * g;
    const V corrected = exp_avg / c.bias_correction1;
    if (c.rectified) {
        const V adaptive = c.sqrt_bias_correction2 / (sqrt_of(exp_avg_sq) + c.eps);
        p = p - corrected * c.lr * adaptive * c.rect;
    } else {
        p = p - corrected * c.lr;
    }
}

}  // namespace fastadam
