// SWATS (Keskar & Socher, "Improving Generalization Performance by Switching from Adam to SGD",
// 2017, Algorithm 1): Adam, then SGD with momentum once the SGD learning rate projected from
// Adam's steps has settled. Its element-wise parts are Adam's step (adam_math.hpp, with Keras's
// epsilon as the paper writes it: p -= lr * sqrt(bc2) / bc1 * m / (sqrt(v) + eps)) and SGD's
// (sgd_math.hpp: buf = beta1 * buf + g, p -= (1 - beta1) * Lambda * buf); this header holds
// their per-call scalars. The dot products of Adam's step with itself and with the gradient,
// which decide the switch, are summed by the kernel in the same pass (kernels.hpp: swats_step).
#pragma once

#include <cstdint>

#include "fastadam/adam_math.hpp"
#include "fastadam/sgd_math.hpp"

namespace fastadam {

struct SwatsHyper {
    double lr = 1e-3;
    double beta1 = 0.9;
    double beta2 = 0.999;
    double eps = 1e-9;
    double weight_decay = 0.0;  // L2, added to the gradient in both phases
    bool maximize = false;
    bool sgd_phase = false;     // switched: SGD with momentum beta1 and learning rate sgd_lr
    double sgd_lr = 0.0;        // Lambda = lambda_k / (1 - beta2^k) at the switch
};

struct SwatsScalars {
    AdamScalars adam;
    SgdScalars sgd;
    bool sgd_phase;
};

inline SwatsScalars make_scalars(const SwatsHyper& h, std::int64_t step) {
    AdamHyper a;
    a.lr = h.lr;
    a.beta1 = h.beta1;
    a.beta2 = h.beta2;
    a.eps = h.eps;
    a.weight_decay = h.weight_decay;
    a.maximize = h.maximize;
    a.keras_eps = true;
    SgdHyper s;
    s.lr = (1.0 - h.beta1) * h.sgd_lr;
    s.momentum = h.beta1;
    s.weight_decay = h.weight_decay;
    s.maximize = h.maximize;
    // The buffer starts at zero at the switch (the paper's v <- 0): beta1 * 0 + g is g.
    return {make_scalars(a, step), make_scalars(s, false), h.sgd_phase};
}

}  // namespace fastadam
