// The Adam update of DESIGN.md section 2, written once for every code path.
//
// `adam_update` is a template over a value type V: a plain float/double on CUDA, a one-lane
// wrapper for the scalar path and vector tails, or a SIMD vector wrapper (AVX2, AVX-512, NEON).
// V must provide + - * / and unary -, and the functions sqrt_of(V) and max_of(V, V) must be
// reachable by argument-dependent lookup. Every path performs the same IEEE operations in the
// same order with no fused multiply-add, so all paths give bitwise identical results.
#pragma once

#include <cmath>
#include <cstdint>

#include "fastadam/platform.hpp"

namespace fastadam {

// Hyper-parameters of one Adam update, as the user gives them.
struct AdamHyper {
    double lr = 1e-3;
    double beta1 = 0.9;
    double beta2 = 0.999;
    double eps = 1e-8;
    double weight_decay = 0.0;
    bool decoupled = false;  // AdamW: decay the parameter instead of adding to the gradient
    bool amsgrad = false;
    bool maximize = false;
    bool bias_correction = true;
    // Where eps enters: false, torch's lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps); true, Keras's
    // (tf.keras.optimizers.Adam) lr * sqrt(bc2) / bc1 * m / (sqrt(v) + eps), whose eps is not
    // scaled by the bias correction (the two differ where sqrt(v) is near eps).
    bool keras_eps = false;
};

// Per-call coefficients in the kernel's value type. They are derived from AdamHyper and the
// step count in double precision (make_coefficients), then rounded once to the value type.
template <class V>
struct AdamCoefficients {
    V beta1, one_minus_beta1;
    V beta2, one_minus_beta2;
    V eps;
    V weight_decay;  // for L2 (Adam) weight decay: g += weight_decay * p
    V decay_factor;  // for decoupled (AdamW) weight decay: p *= 1 - lr * weight_decay
    V step_size;     // lr / (1 - beta1^t)
    V inv_sqrt_bc2;  // 1 / sqrt(1 - beta2^t)
    bool maximize, l2_decay, decoupled_decay;
};

// The double-precision values behind AdamCoefficients for step t (1-based). `amsgrad` is
// AdamHyper's: adam_step and adam8bit_step refuse a tensor whose max_exp_avg_sq array is there
// without it, or missing with it (the kernels run amsgrad exactly where the array is given).
struct AdamScalars {
    double beta1, one_minus_beta1, beta2, one_minus_beta2, eps, weight_decay, decay_factor,
        step_size, inv_sqrt_bc2;
    bool maximize, l2_decay, decoupled_decay;
    bool amsgrad;
};

inline AdamScalars make_scalars(const AdamHyper& h, std::int64_t step) {
    const double t = static_cast<double>(step);
    const double bc1 = h.bias_correction ? 1.0 - std::pow(h.beta1, t) : 1.0;
    const double bc2 = h.bias_correction ? 1.0 - std::pow(h.beta2, t) : 1.0;
    AdamScalars s{};
    s.beta1 = h.beta1;
    s.one_minus_beta1 = 1.0 - h.beta1;
    s.beta2 = h.beta2;
    s.one_minus_beta2 = 1.0 - h.beta2;
    s.eps = h.eps;
    s.weight_decay = h.weight_decay;
    s.decay_factor = 1.0 - h.lr * h.weight_decay;
    if (h.keras_eps) {
        // Keras's alpha = lr * sqrt(1 - beta2^t) / (1 - beta1^t); the element function's
        // sqrt(v) * 1 is exact, so it computes alpha * m / (sqrt(v) + eps).
        s.step_size = h.lr * std::sqrt(bc2) / bc1;
        s.inv_sqrt_bc2 = 1.0;
    } else {
        s.step_size = h.lr / bc1;
        s.inv_sqrt_bc2 = 1.0 / std::sqrt(bc2);
    }
    s.maximize = h.maximize;
    s.l2_decay = h.weight_decay != 0.0 && !h.decoupled;
    s.decoupled_decay = h.weight_decay != 0.0 && h.decoupled;
    s.amsgrad = h.amsgrad;
    return s;
}

// Rounds the double scalars once to T and broadcasts them into V (V must be constructible
// from T).
template <class V, class T>
AdamCoefficients<V> broadcast(const AdamScalars& s) {
    auto c = [](double x) { return V(static_cast<T>(x)); };
    return AdamCoefficients<V>{c(s.beta1),        c(s.one_minus_beta1), c(s.beta2),
                               c(s.one_minus_beta2), c(s.eps),          c(s.weight_decay),
                               c(s.decay_factor), c(s.step_size),       c(s.inv_sqrt_bc2),
                               s.maximize,        s.l2_decay,           s.decoupled_decay};
}

// The Adam update of m, v (and vmax when amsgrad is on) and of p's decoupled decay, returning
// the step that adam_update subtracts from p; g becomes the gradient the moments saw (after
// maximize and L2 decay). SWATS reads both for its dot products.
template <bool Amsgrad, class V>
FASTADAM_HD V adam_step_of(V& p, V& g, V& m, V& v, V& vmax, const AdamCoefficients<V>& c) {
    if (c.maximize) g = -g;
    if (c.l2_decay) g = g + c.weight_decay * p;
    if (c.decoupled_decay) p = p * c.decay_factor;
    m = c.beta1 * m + c.one_minus_beta1 * g;
    v = c.beta2 * v + c.one_minus_beta2 * g * g;
    V second_moment = v;
    if constexpr (Amsgrad) {
        vmax = max_of(vmax, v);
        second_moment = vmax;
    }
    const V denom = sqrt_of(second_moment) * c.inv_sqrt_bc2 + c.eps;
    return c.step_size * m / denom;
}

// One Adam update of p, m, v (and vmax when amsgrad is on) from gradient g.
template <bool Amsgrad, class V>
FASTADAM_HD void adam_update(V& p, V g, V& m, V& v, V& vmax, const AdamCoefficients<V>& c) {
    const V step = adam_step_of<Amsgrad>(p, g, m, v, vmax, c);
    p = p - step;
}

}  // namespace fastadam
