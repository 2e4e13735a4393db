// The NAdam update of torch.optim.NAdam (momentum decay, L2 or decoupled weight decay,
// maximize), written once for every code path, in the order of torch's single-tensor
// implementation; value types as in adam_math.hpp.
#pragma once

#include <cmath>
#include <cstdint>

#include "fastadam/lerp.hpp"
#include "fastadam/platform.hpp"

namespace fastadam {

struct NadamHyper {
    double lr = 2e-3;
    double beta1 = 0.9;
    double beta2 = 0.999;
    double eps = 1e-8;
    double weight_decay = 0.0;
    double momentum_decay = 4e-3;
    bool decoupled = false;  // decay the parameter (AdamW-style) instead of adding to the gradient
    bool maximize = false;
};

// mu_t = beta1 * (1 - 0.5 * 0.96^(t * momentum_decay)), the momentum coefficient of step t.
inline double nadam_mu(const NadamHyper& h, double t) {
    return h.beta1 * (1.0 - 0.5 * std::pow(0.96, t * h.momentum_decay));
}

// mu_1 * ... * mu_t as torch keeps it: a float32 scalar (torch's default scalar dtype, whatever
// the parameter's dtype) multiplied in float32 by each mu rounded to float32. `from` and
// `product` continue an earlier product (of steps 1..from); pass 0 and 1 to start.
// The loop skips what cannot change the result. mu never decreases with t (and stays below
// beta1 < 1), so once a step leaves the product unchanged (0, a subnormal that rounding holds,
// or a mu that rounds to 1), every later step does too; and once mu rounds to what beta1 rounds
// to, every later mu does, so pow is no longer needed. A run resumed at step 2**40 costs at most
// about 120 / (1 - beta1) multiplications, not 2**40.
inline float nadam_mu_product(const NadamHyper& h, std::int64_t step, std::int64_t from = 0,
                              float product = 1.0f) {
    const float limit = static_cast<float>(h.beta1);
    std::int64_t i = from + 1;
    for (; i <= step; ++i) {
        const float mu = static_cast<float>(nadam_mu(h, static_cast<double>(i)));
        const float next = product * mu;
        if (next == product) return product;
        product = next;
        if (mu == limit) break;
    }
    for (++i; i <= step; ++i) {
        const float next = product * limit;
        if (next == product) break;
        product = next;
    }
    return product;
}

struct NadamScalars {
    double one_minus_beta1, beta2, one_minus_beta2, bias_correction2, eps, weight_decay,
        decay_factor;
    double grad_coef;     // -lr * (1 - mu_t) / (1 - mu_product_t)
    double exp_avg_coef;  // -lr * mu_{t+1} / (1 - mu_product_t * mu_{t+1})
    bool maximize, l2_decay, decoupled_decay;
};

// `mu_product` is nadam_mu_product(h, step).
inline NadamScalars make_scalars(const NadamHyper& h, std::int64_t step, float mu_product) {
    const double t = static_cast<double>(step);
    const double mu = nadam_mu(h, t), mu_next = nadam_mu(h, t + 1.0);
    const double product = static_cast<double>(mu_product);
    const double product_next = product * mu_next;
    NadamScalars s{};
    s.one_minus_beta1 = 1.0 - h.beta1;
    s.beta2 = h.beta2;
    s.one_minus_beta2 = 1.0 - h.beta2;
    s.bias_correction2 = 1.0 - std::pow(h.beta2, t);
    s.eps = h.eps;
    s.weight_decay = h.weight_decay;
    s.decay_factor = 1.0 - h.lr * h.weight_decay;
    s.grad_coef = -h.lr * (1.0 - mu) / (1.0 - product);
    s.exp_avg_coef = -h.lr * mu_next / (1.0 - product_next);
    s.maximize = h.maximize;
    s.l2_decay = h.weight_decay != 0.0 && !h.decoupled;
    s.decoupled_decay = h.weight_decay != 0.0 && h.decoupled;
    return s;
}

template <class V>
struct NadamCoefficients {
    LerpWeight<V> exp_avg_weight;  // 1 - beta1
    V beta2, one_minus_beta2, bias_correction2, eps, weight_decay, decay_factor, grad_coef,
        exp_avg_coef;
    bool maximize, l2_decay, decoupled_decay;
};

template <class V, class T>
NadamCoefficients<V> broadcast(const NadamScalars& s) {
    auto c = [](double x) { return V(static_cast<T>(x)); };
    return {lerp_weight<V, T>(s.one_minus_beta1),
            c(s.beta2),
            c(s.one_minus_beta2),
            c(s.bias_correction2),
            c(s.eps),
            c(s.weight_decay),
            c(s.decay_factor),
            c(s.grad_coef),
            c(s.exp_avg_coef),
            s.maximize,
            s.l2_decay,
            s.decoupled_decay};
}

// One NAdam update of p and the two moments.
template <class V>
FASTADAM_HD void nadam_update(V& p, V g, V& exp_avg, V& exp_avg_sq,
                              const NadamCoefficients<V>& c) {
    if (c.maximize) g = -g;
    if (c.decoupled_decay) p = p * c.decay_factor;
    if (c.l2_decay) g = g + c.weight_decay * p;
    exp_avg = lerp_to(exp_avg, g, c.exp_avg_weight);
    exp_avg_sq = exp_avg_sq * c.beta2 + c.one_minus_beta2 * g * g;
    const V denom = sqrt_of(exp_avg_sq / c.bias_correction2) + c.eps;
    p = p + c.grad_coef * g / denom;
    p = p + c.exp_avg_coef * exp_avg / denom;
}

}  // namespace fastadam
