// The named-field builders (fastadam/builders.hpp): each setter sets its own field and no other,
// unset fields keep the struct's defaults, and a tensor built by name steps exactly like one
// filled in field by field. Exits 1 with a message on the first difference.
#include <cstdio>
#include <fastadam/builders.hpp>
#include <stdexcept>
#include <vector>

namespace {

int failures = 0;

void check(bool ok, const char* what) {
    if (!ok) {
        std::printf("FAILED: %s\n", what);
        ++failures;
    }
}

// Compile-time: the builders are constexpr and leave unset fields at their defaults.
constexpr fastadam::AdamHyper kHyper = fastadam::adam_hyper().lr(0.05).betas(0.8, 0.99);
static_assert(kHyper.lr == 0.05 && kHyper.beta1 == 0.8 && kHyper.beta2 == 0.99);
static_assert(kHyper.eps == fastadam::AdamHyper{}.eps && !kHyper.amsgrad && kHyper.bias_correction);
static_assert(fastadam::adam_hyper().keras_eps(true).build().keras_eps && !kHyper.keras_eps);

}  // namespace

int main() {
    using namespace fastadam;
    {
        AdamHyper expected;
        expected.lr = 0.01;
        expected.beta1 = 0.85;
        expected.beta2 = 0.95;
        expected.eps = 1e-6;
        expected.weight_decay = 0.1;
        expected.decoupled = true;
        expected.amsgrad = true;
        expected.maximize = true;
        expected.bias_correction = false;
        const AdamHyper built = adam_hyper()
                                    .bias_correction(false)
                                    .maximize(true)
                                    .amsgrad(true)
                                    .decoupled(true)
                                    .weight_decay(0.1)
                                    .eps(1e-6)
                                    .beta2(0.95)
                                    .beta1(0.85)
                                    .lr(0.01);
        check(built.lr == expected.lr && built.beta1 == expected.beta1 &&
                  built.beta2 == expected.beta2 && built.eps == expected.eps &&
                  built.weight_decay == expected.weight_decay &&
                  built.decoupled == expected.decoupled && built.amsgrad == expected.amsgrad &&
                  built.maximize == expected.maximize &&
                  built.bias_correction == expected.bias_correction,
              "AdamHyper: every setter sets its field");
        const AdamHyper one = adam_hyper().weight_decay(0.5);
        AdamHyper only = AdamHyper{};
        only.weight_decay = 0.5;
        check(one.lr == only.lr && one.beta1 == only.beta1 && one.beta2 == only.beta2 &&
                  one.eps == only.eps && one.weight_decay == 0.5 && !one.decoupled &&
                  !one.amsgrad && !one.maximize && one.bias_correction,
              "AdamHyper: one setter changes one field");
    }
    {
        const SgdHyper s = sgd_hyper()
                               .lr(0.1)
                               .momentum(0.9)
                               .dampening(0.2)
                               .weight_decay(0.3)
                               .nesterov(true)
                               .maximize(true);
        check(s.lr == 0.1 && s.momentum == 0.9 && s.dampening == 0.2 && s.weight_decay == 0.3 &&
                  s.nesterov && s.maximize,
              "SgdHyper: every setter sets its field");
        const SgdHyper d = sgd_hyper().momentum(0.5);
        check(d.lr == SgdHyper{}.lr && d.dampening == 0.0 && !d.nesterov,
              "SgdHyper: defaults kept");
        const AdagradHyper a =
            adagrad_hyper().lr(0.2).lr_decay(0.01).weight_decay(0.02).eps(1e-5).maximize(true);
        check(a.lr == 0.2 && a.lr_decay == 0.01 && a.weight_decay == 0.02 && a.eps == 1e-5 &&
                  a.maximize,
              "AdagradHyper: every setter sets its field");
        check(adagrad_hyper().lr(0.3).build().eps == AdagradHyper{}.eps,
              "AdagradHyper: defaults kept");
    }
    {
        // A tensor built by name and one filled in field by field take the same step.
        const int n = 1000;
        std::vector<float> p1(n), p2(n), g(n), m1(n, 0.0f), m2(n, 0.0f), v1(n, 0.0f), v2(n, 0.0f),
            x1(n, 0.0f), x2(n, 0.0f);
        for (int i = 0; i < n; ++i) {
            p1[i] = p2[i] = 0.001f * float(i % 97) - 0.05f;
            g[i] = 0.01f * float(i % 13) - 0.06f;
        }
        const AdamHyper hyper = adam_hyper().lr(0.01).amsgrad(true).weight_decay(0.1);
        AdamTensor<float> by_field;
        by_field.param = p1.data();
        by_field.grad = g.data();
        by_field.exp_avg = m1.data();
        by_field.exp_avg_sq = v1.data();
        by_field.max_exp_avg_sq = x1.data();
        by_field.size = n;
        by_field.scalars = make_scalars(hyper, 3);
        const AdamTensor<float> by_name = adam_tensor<float>()
                                              .scalars(make_scalars(hyper, 3))
                                              .size(n)
                                              .max_exp_avg_sq(x2.data())
                                              .exp_avg_sq(v2.data())
                                              .exp_avg(m2.data())
                                              .grad(g.data())
                                              .param(p2.data());
        check(by_name.scalars.step_size == by_field.scalars.step_size &&
                  by_name.scalars.inv_sqrt_bc2 == by_field.scalars.inv_sqrt_bc2 &&
                  by_name.scalars.l2_decay == by_field.scalars.l2_decay,
              "AdamTensor: scalars set");
        adam_step(&by_field, 1);
        adam_step(&by_name, 1);
        check(p1 == p2 && m1 == m2 && v1 == v2 && x1 == x2, "AdamTensor: the same step");
        check(p1 != std::vector<float>(n, 0.0f), "AdamTensor: the step changed param");

        std::vector<double> q(4, 1.0), h(4, 0.5), buf(4, 0.0), sum(4, 0.0);
        const SgdTensor<double> st =
            sgd_tensor<double>()
                .param(q.data())
                .grad(h.data())
                .momentum_buffer(buf.data())
                .size(4)
                .scalars(make_scalars(sgd_hyper().lr(0.1).momentum(0.9), true));
        check(st.param == q.data() && st.grad == h.data() && st.momentum_buffer == buf.data() &&
                  st.size == 4 && st.scalars.lr == 0.1 && st.scalars.first_step,
              "SgdTensor: every setter sets its field");
        const AdagradTensor<double> at = adagrad_tensor<double>()
                                             .param(q.data())
                                             .grad(h.data())
                                             .state_sum(sum.data())
                                             .size(4)
                                             .scalars(make_scalars(adagrad_hyper(), 1));
        check(at.param == q.data() && at.grad == h.data() && at.state_sum == sum.data() &&
                  at.size == 4 && at.scalars.clr == AdagradHyper{}.lr,
              "AdagradTensor: every setter sets its field");
        sgd_step(&st, 1);
        adagrad_step(&at, 1);
        check(q[0] != 1.0 && buf[0] == 0.5 && sum[0] == 0.25, "SGD and Adagrad stepped");
    }
    {
        // A bfloat16 parameter with a float32 master copy and stochastic rounding: the fields of
        // every tensor type, built by name and field by field, take the same step.
        const int n = 300;
        std::vector<BFloat16> p1(n), p2(n), g(n);
        std::vector<float> w1(n), w2(n), m1(n, 0.0f), m2(n, 0.0f), v1(n, 0.0f), v2(n, 0.0f);
        for (int i = 0; i < n; ++i) {
            w1[i] = w2[i] = 0.01f * float(i % 31) - 0.1f;
            p1[i] = p2[i] = to_bfloat16(w1[i]);
            g[i] = to_bfloat16(0.02f * float(i % 7) - 0.05f);
        }
        const std::uint64_t key = rounding_key(42, 3);
        AdamTensor<BFloat16> by_field;
        by_field.param = p1.data();
        by_field.grad = g.data();
        by_field.master = w1.data();
        by_field.exp_avg = m1.data();
        by_field.exp_avg_sq = v1.data();
        by_field.size = n;
        by_field.grad_multiplier = 0.5;
        by_field.rounding = Rounding::stochastic;
        by_field.rounding_key = key;
        by_field.scalars = make_scalars(adam_hyper().lr(0.01).build(), 3);
        const AdamTensor<BFloat16> by_name = adam_tensor<BFloat16>()
                                                 .rounding_key(key)
                                                 .rounding(Rounding::stochastic)
                                                 .grad_multiplier(0.5)
                                                 .scalars(make_scalars(adam_hyper().lr(0.01), 3))
                                                 .size(n)
                                                 .exp_avg_sq(v2.data())
                                                 .exp_avg(m2.data())
                                                 .master(w2.data())
                                                 .grad(g.data())
                                                 .param(p2.data());
        check(by_name.master == w2.data() && by_name.grad_multiplier == 0.5 &&
                  by_name.rounding == Rounding::stochastic && by_name.rounding_key == key &&
                  by_name.max_exp_avg_sq == nullptr,
              "AdamTensor<BFloat16>: every setter sets its field");
        adam_step(&by_field, 1);
        adam_step(&by_name, 1);
        bool same = w1 == w2 && m1 == m2 && v1 == v2;
        for (int i = 0; i < n; ++i) same = same && p1[i].bits == p2[i].bits;
        check(same, "AdamTensor<BFloat16>: the same step");
        check(m1[1] != 0.0f, "AdamTensor<BFloat16>: the step changed exp_avg");
    }
    {
        // adam_step refuses a tensor whose max_exp_avg_sq disagrees with its scalars' amsgrad,
        // before writing anything (also when another tensor of the call is fine).
        const int n = 300;
        std::vector<float> p(n, 1.0f), g(n, 0.5f), m(n, 0.0f), v(n, 0.0f), x(n, 0.0f);
        const auto base = adam_tensor<float>().param(p.data()).grad(g.data()).exp_avg(m.data())
                              .exp_avg_sq(v.data()).size(n);
        const AdamTensor<float> good = base.scalars(make_scalars(adam_hyper(), 1));
        const AdamTensor<float> missing = base.scalars(make_scalars(adam_hyper().amsgrad(true), 1));
        const AdamTensor<float> extra =
            base.max_exp_avg_sq(x.data()).scalars(make_scalars(adam_hyper(), 1));
        for (const AdamTensor<float>& bad : {missing, extra}) {
            const AdamTensor<float> call[2] = {good, bad};
            bool threw = false;
            try {
                adam_step(call, 2);
            } catch (const std::invalid_argument&) {
                threw = true;
            }
            check(threw && p == std::vector<float>(n, 1.0f) && m == std::vector<float>(n, 0.0f),
                  "adam_step: amsgrad and max_exp_avg_sq disagree: refused, nothing written");
        }
    }
    if (failures) return 1;
    std::printf("builders: all fields set by name\n");
    return 0;
}
