// Checks every ISA path of this build that the CPU runs against the scalar path (bitwise) and
// against a long-double evaluation of the same formula (relative error), for Adam, SGD and
// Adagrad, float and double, on random data with awkward sizes and unaligned starts.
// Built and run by tests/test_cpp_paths.py; also the way to check the NEON path on an x86
// machine under qemu-aarch64 (see tests/cpp/README.md).
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "fastadam/kernels.hpp"

using namespace fastadam;

namespace {

int failures = 0;

void expect(bool ok, const char* what, const char* isa, int n) {
    if (!ok) {
        ++failures;
        std::printf("FAIL %s isa=%s n=%d\n", what, isa, n);
    }
}

template <class T>
struct Data {
    std::vector<T> p, g, m, v, vmax;
    explicit Data(int n, unsigned seed) : p(n + 1), g(n + 1), m(n + 1), v(n + 1), vmax(n + 1) {
        std::mt19937 rng(seed);
        std::normal_distribution<T> normal(0, 1);
        std::uniform_real_distribution<T> uniform(0, 1);
        for (int i = 0; i <= n; ++i) {
            p[i] = normal(rng);
            g[i] = normal(rng);
            m[i] = T(0.1) * normal(rng);
            v[i] = T(0.1) * uniform(rng);
            vmax[i] = v[i] * T(1.5);
        }
    }
};

// Runs one optimizer over data starting at element 1 (unaligned), using the active ISA.
template <class T>
void run_adam(Data<T>& d, int n, const AdamHyper& h, bool amsgrad) {
    AdamTensor<T> t;
    t.param = d.p.data() + 1;
    t.grad = d.g.data() + 1;
    t.exp_avg = d.m.data() + 1;
    t.exp_avg_sq = d.v.data() + 1;
    t.max_exp_avg_sq = amsgrad ? d.vmax.data() + 1 : nullptr;
    t.size = n;
    t.scalars = make_scalars(h, 7);
    adam_step(&t, 1);
}

template <class T>
void run_sgd(Data<T>& d, int n, const SgdHyper& h, bool first) {
    SgdTensor<T> t;
    t.param = d.p.data() + 1;
    t.grad = d.g.data() + 1;
    t.momentum_buffer = h.momentum != 0 ? d.m.data() + 1 : nullptr;
    t.size = n;
    t.scalars = make_scalars(h, first);
    sgd_step(&t, 1);
}

template <class T>
void run_adagrad(Data<T>& d, int n, const AdagradHyper& h) {
    AdagradTensor<T> t;
    t.param = d.p.data() + 1;
    t.grad = d.g.data() + 1;
    t.state_sum = d.v.data() + 1;
    t.size = n;
    t.scalars = make_scalars(h, 3);
    adagrad_step(&t, 1);
}

// The Adam formula of DESIGN.md section 2 in long double, for the relative-error check.
template <class T>
long double adam_reference(const Data<T>& d0, int i, const AdamHyper& h, bool amsgrad) {
    long double p = d0.p[i], g = d0.g[i], m = d0.m[i], v = d0.v[i];
    if (h.maximize) g = -g;
    if (h.weight_decay != 0 && !h.decoupled) g += h.weight_decay * p;
    if (h.weight_decay != 0 && h.decoupled) p *= 1 - h.lr * h.weight_decay;
    m = h.beta1 * m + (1 - h.beta1) * g;
    v = h.beta2 * v + (1 - h.beta2) * g * g;
    if (amsgrad) v = std::max<long double>(d0.vmax[i], v);
    const long double bc1 = 1 - std::pow((long double)h.beta1, 7);
    const long double bc2 = 1 - std::pow((long double)h.beta2, 7);
    return p - (h.lr / bc1) * m / (std::sqrt(v) / std::sqrt(bc2) + h.eps);
}

template <class T>
void check_type(const char* type_name) {
    const std::vector<int> sizes = {0, 1, 3, 7, 15, 16, 17, 31, 33, 63, 65, 1000, 100003};
    for (Isa isa : available_isas()) {
        for (int n : sizes) {
            AdamHyper h;
            h.lr = 1e-2;
            h.weight_decay = 0.1;
            for (int variant = 0; variant < 4; ++variant) {
                h.decoupled = variant & 1;
                h.maximize = variant & 2;
                const bool amsgrad = variant == 3;
                Data<T> base(n, 1234 + n), scalar_run = base, isa_run = base;
                set_isa(Isa::scalar);
                run_adam(scalar_run, n, h, amsgrad);
                set_isa(isa);
                run_adam(isa_run, n, h, amsgrad);
                expect(std::memcmp(scalar_run.p.data(), isa_run.p.data(), sizeof(T) * (n + 1)) == 0 &&
                           std::memcmp(scalar_run.v.data(), isa_run.v.data(), sizeof(T) * (n + 1)) == 0,
                       "adam bitwise vs scalar", isa_name(isa), n);
                expect(isa_run.p[0] == base.p[0], "adam sentinel before", isa_name(isa), n);
                for (int i = 1; i <= n; ++i) {
                    const long double want = adam_reference(base, i, h, amsgrad);
                    const long double scale = std::fabs(want) + std::fabs((long double)base.p[i]) + h.lr;
                    const long double tol = sizeof(T) == 4 ? 2e-6L : 1e-14L;
                    if (std::fabs(isa_run.p[i] - want) > tol * scale) {
                        expect(false, "adam vs long double", isa_name(isa), n);
                        break;
                    }
                }
            }
            SgdHyper s;
            s.lr = 0.05;
            s.momentum = 0.9;
            s.nesterov = true;
            s.weight_decay = 0.01;
            Data<T> sb(n, 99 + n), s_scalar = sb, s_isa = sb;
            set_isa(Isa::scalar);
            run_sgd(s_scalar, n, s, false);
            set_isa(isa);
            run_sgd(s_isa, n, s, false);
            expect(std::memcmp(s_scalar.p.data(), s_isa.p.data(), sizeof(T) * (n + 1)) == 0,
                   "sgd bitwise vs scalar", isa_name(isa), n);
            AdagradHyper a;
            a.lr_decay = 0.01;
            a.weight_decay = 0.01;
            Data<T> ab(n, 7 + n), a_scalar = ab, a_isa = ab;
            set_isa(Isa::scalar);
            run_adagrad(a_scalar, n, a);
            set_isa(isa);
            run_adagrad(a_isa, n, a);
            expect(std::memcmp(a_scalar.p.data(), a_isa.p.data(), sizeof(T) * (n + 1)) == 0,
                   "adagrad bitwise vs scalar", isa_name(isa), n);
        }
        std::printf("%s %s: checked\n", type_name, isa_name(isa));
    }
}

}  // namespace

int main() {
    for (int threads : {1, 3}) {
        set_num_threads(threads);
        check_type<float>("float32");
        check_type<double>("float64");
    }
    std::printf("%s\n", failures == 0 ? "all ISA paths agree" : "FAILURES");
    return failures == 0 ? 0 : 1;
}
