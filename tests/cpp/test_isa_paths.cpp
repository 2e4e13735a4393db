// Checks every ISA path of this build that the CPU runs against the scalar path (bitwise) and
// against a long-double evaluation of the same formula (relative error), for Adam, SGD and
// Adagrad, float and double, on random data with awkward sizes and unaligned starts; and, for
// float16 and bfloat16 parameters, every conversion (all 65536 patterns widened, float32
// patterns rounded), every parameter mode (direct, master copy, stochastic rounding, gradient
// multiplier) bitwise against the scalar path, and the gradient pre-pass.
// Built and run by tests/test_cpp_paths.py; also the way to check the NEON path on an x86
// machine under qemu-aarch64 (see tests/cpp/README.md).
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <type_traits>
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
    AdamHyper with_amsgrad = h;
    with_amsgrad.amsgrad = amsgrad;
    t.scalars = make_scalars(with_amsgrad, 7);
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

// --- 16-bit parameters -------------------------------------------------------------------------

template <class P>
P from_bits(std::uint16_t b) {
    P x;
    x.bits = b;
    return x;
}

float to_f(Half h) { return to_float(h); }
float to_f(BFloat16 h) { return to_float(h); }
std::uint16_t round_bits(float x, Half) { return to_half(x).bits; }
std::uint16_t round_bits(float x, BFloat16) { return to_bfloat16(x).bits; }

std::uint32_t float_bits(float x) {
    std::uint32_t u;
    std::memcpy(&u, &x, 4);
    return u;
}
float bits_float(std::uint32_t u) {
    float x;
    std::memcpy(&x, &u, 4);
    return x;
}

// All 65536 patterns widened and stored back (SGD with lr = 0 and zero gradients) on every ISA:
// the identity, except that a NaN comes back quiet.
template <class P>
void check_roundtrip(const char* type_name) {
    const int n = 65536;
    for (Isa isa : available_isas()) {
        set_isa(isa);
        std::vector<P> p(n), g(n, from_bits<P>(0));
        for (int i = 0; i < n; ++i) p[i] = from_bits<P>(static_cast<std::uint16_t>(i));
        SgdTensor<P> t;
        t.param = p.data();
        t.grad = g.data();
        t.size = n;
        t.scalars = make_scalars(SgdHyper{0.0}, false);
        sgd_step(&t, 1);
        int bad = 0;
        for (int i = 0; i < n; ++i) {
            const bool nan = std::isnan(to_f(from_bits<P>(static_cast<std::uint16_t>(i))));
            const std::uint16_t quiet = sizeof(P) == 2 && std::is_same_v<P, Half> ? 0x0200 : 0x0040;
            const std::uint16_t want = static_cast<std::uint16_t>(nan ? i | quiet : i);
            bad += p[i].bits != want;
        }
        if (bad) std::printf("  %d of 65536 patterns wrong\n", bad);
        expect(bad == 0, "roundtrip of every pattern", isa_name(isa), n);
        std::printf("%s %s: roundtrip checked\n", type_name, isa_name(isa));
    }
}

// float32 patterns rounded (an Adam step with lr = 0 and a master copy writes the master's
// rounding) on every ISA, against half.hpp's scalar functions; and those against known values.
template <class P>
void check_rounding(const char* type_name) {
    std::vector<std::uint32_t> patterns;
    std::mt19937 rng(42);
    for (std::uint32_t hi = 0; hi < 65536; ++hi)  // every sign, exponent and top mantissa bits
        for (std::uint32_t lo : {0x0000u, 0x0001u, 0x0FFFu, 0x1000u, 0x1001u, 0x1FFFu, 0x2000u,
                                 0x7FFFu, 0x8000u, 0x8001u, 0xFFFFu, std::uint32_t(rng() & 0xFFFFu)})
            patterns.push_back(hi << 16 | lo);
    for (int e = 100; e <= 114; ++e)  // float16 subnormals: ties at every bit position
        for (int bit = 0; bit < 24; ++bit)
            for (int k = 0; k < 8; ++k) {
                const std::uint32_t m = (rng() & 0x7FFFFFu) & ~((2u << bit) - 1);
                for (std::uint32_t d : {0u, 1u, 0xFFFFFFFFu})
                    patterns.push_back(((std::uint32_t(e) << 23) | m | (1u << bit)) + d);
            }
    for (int k = 0; k < 200000; ++k) patterns.push_back(static_cast<std::uint32_t>(rng()));
    const int n = static_cast<int>(patterns.size());
    std::vector<float> want_master(n);
    std::vector<std::uint16_t> want(n);
    for (int i = 0; i < n; ++i) {
        want_master[i] = bits_float(patterns[i]) - 0.0f;  // what the kernel computes: p - 0
        want[i] = round_bits(want_master[i], P{});
    }
    for (Isa isa : available_isas()) {
        set_isa(isa);
        std::vector<P> p(n);
        std::vector<float> master(n), g16(n), m(n, 0.0f), v(n, 0.0f);
        std::vector<P> g(n, from_bits<P>(0));
        for (int i = 0; i < n; ++i) master[i] = bits_float(patterns[i]);
        AdamTensor<P> t;
        t.param = p.data();
        t.grad = g.data();
        t.master = master.data();
        t.exp_avg = m.data();
        t.exp_avg_sq = v.data();
        t.size = n;
        AdamHyper h;
        h.lr = 0.0;
        t.scalars = make_scalars(h, 1);
        adam_step(&t, 1);
        int bad = 0;
        for (int i = 0; i < n; ++i) bad += p[i].bits != want[i];
        if (bad) std::printf("  %d of %d patterns wrong\n", bad, n);
        expect(bad == 0, "rounding of float32 patterns", isa_name(isa), n);
        std::printf("%s %s: rounding checked\n", type_name, isa_name(isa));
    }
}

void check_known_values() {
    struct Case {
        float x;
        std::uint16_t half, bf16;
    };
    const Case cases[] = {
        {1.0f, 0x3C00, 0x3F80},
        {-2.0f, 0xC000, 0xC000},
        {65504.0f, 0x7BFF, 0x4780},
        {65520.0f, 0x7C00, 0x4780},          // half: the tie above the largest rounds to inf
        {65519.99f, 0x7BFF, 0x4780},
        {bits_float(0x33000000u), 0x0000, 0x3300},  // 2**-25: tie between 0 and 2**-24 -> 0
        {bits_float(0x33000001u), 0x0001, 0x3300},
        {bits_float(0x33C00000u), 0x0002, 0x33C0},  // 1.5 * 2**-24: tie -> even (2)
        {bits_float(0x3F808000u), 0x3C04, 0x3F80},  // bf16 tie, lsb 0 -> down
        {bits_float(0x3F818000u), 0x3C0C, 0x3F82},  // bf16 tie, lsb 1 -> up
        {bits_float(0x7F7FFFFFu), 0x7C00, 0x7F80},  // float max -> inf in both
        {bits_float(0x7FA00001u), 0x7F00, 0x7FE0},  // signaling NaN -> quiet, payload kept
        {bits_float(0xFF800001u), 0xFE00, 0xFFC0},
    };
    for (const Case& c : cases) {
        const bool ok = to_half(c.x).bits == c.half && to_bfloat16(c.x).bits == c.bf16;
        if (!ok)
            std::printf("  %08x -> half %04x bf16 %04x\n", float_bits(c.x), to_half(c.x).bits,
                        to_bfloat16(c.x).bits);
        expect(ok, "known conversion", "scalar", 0);
    }
    expect(float_bits(to_float(from_bits<Half>(0x0001))) == 0x33800000u, "half subnormal", "-", 0);
    expect(float_bits(to_float(from_bits<Half>(0x7C01))) == 0x7FC02000u, "half sNaN", "-", 0);
}

template <class P>
struct MixedData {
    std::vector<P> p, g;
    std::vector<float> master, m, v, vmax;
    MixedData(int n, unsigned seed)
        : p(n + 1), g(n + 1), master(n + 1), m(n + 1), v(n + 1), vmax(n + 1) {
        std::mt19937 rng(seed);
        std::normal_distribution<float> normal(0, 1);
        std::uniform_real_distribution<float> uniform(0, 1);
        for (int i = 0; i <= n; ++i) {
            master[i] = normal(rng);
            p[i] = from_bits<P>(round_bits(master[i], P{}));
            g[i] = from_bits<P>(round_bits(normal(rng) * 8.0f, P{}));
            m[i] = 0.1f * normal(rng);
            v[i] = 0.1f * uniform(rng);
            vmax[i] = 1.5f * v[i];
        }
    }
    bool operator==(const MixedData& o) const {
        auto same = [](const auto& a, const auto& b) {
            return std::memcmp(a.data(), b.data(), a.size() * sizeof(a[0])) == 0;
        };
        return same(p, o.p) && same(master, o.master) && same(m, o.m) && same(v, o.v) &&
               same(vmax, o.vmax);
    }
};

enum class Mode { direct, master, stochastic };

template <class P>
void run_mixed(MixedData<P>& d, int n, int rule, Mode mode, double multiplier) {
    auto common = [&](auto& t) {
        t.param = d.p.data() + 1;
        t.grad = d.g.data() + 1;
        t.master = mode == Mode::master ? d.master.data() + 1 : nullptr;
        t.size = n;
        t.grad_multiplier = multiplier;
        t.rounding = mode == Mode::stochastic ? Rounding::stochastic : Rounding::nearest;
        t.rounding_key = rounding_key(5, 3);
    };
    if (rule <= 1) {
        AdamTensor<P> t;
        common(t);
        t.exp_avg = d.m.data() + 1;
        t.exp_avg_sq = d.v.data() + 1;
        t.max_exp_avg_sq = rule == 1 ? d.vmax.data() + 1 : nullptr;
        AdamHyper h;
        h.lr = 1e-2;
        h.weight_decay = 0.1;
        h.decoupled = true;
        h.amsgrad = rule == 1;
        t.scalars = make_scalars(h, 3);
        adam_step(&t, 1);
    } else if (rule == 2) {
        SgdTensor<P> t;
        common(t);
        t.momentum_buffer = d.m.data() + 1;
        SgdHyper h;
        h.lr = 0.05;
        h.momentum = 0.9;
        t.scalars = make_scalars(h, false);
        sgd_step(&t, 1);
    } else {
        AdagradTensor<P> t;
        common(t);
        t.state_sum = d.v.data() + 1;
        t.scalars = make_scalars(AdagradHyper{}, 2);
        adagrad_step(&t, 1);
    }
}

template <class P>
void check_mixed(const char* type_name) {
    const std::vector<int> sizes = {0, 1, 7, 15, 16, 17, 33, 65, 1000, 100003};
    std::vector<Mode> modes = {Mode::direct, Mode::master};
    if (std::is_same_v<P, BFloat16>) modes.push_back(Mode::stochastic);
    for (Isa isa : available_isas()) {
        for (int n : sizes)
            for (int rule = 0; rule < 4; ++rule)
                for (Mode mode : modes)
                    for (double multiplier : {1.0, 0.37}) {
                        MixedData<P> base(n, 4321 + n), scalar_run = base, isa_run = base;
                        set_isa(Isa::scalar);
                        run_mixed(scalar_run, n, rule, mode, multiplier);
                        set_isa(isa);
                        run_mixed(isa_run, n, rule, mode, multiplier);
                        expect(scalar_run == isa_run, "16-bit step bitwise vs scalar",
                               isa_name(isa), n);
                        expect(isa_run.p[0].bits == base.p[0].bits, "16-bit sentinel",
                               isa_name(isa), n);
                        bool changed = n == 0;
                        for (int i = 1; i <= n && !changed; ++i)
                            changed = isa_run.p[i].bits != base.p[i].bits;
                        expect(changed, "16-bit step changes the parameter", isa_name(isa), n);
                    }
        std::printf("%s %s: steps checked\n", type_name, isa_name(isa));
    }
}

// The pre-pass over spans of every type: identical bits on every ISA and thread count, close to
// a long-double sum, and non-finite values found in every type.
void check_grad_stats() {
    std::mt19937 rng(7);
    std::normal_distribution<float> normal(0, 1);
    const int n = 300007;
    std::vector<float> f32(n);
    std::vector<double> f64(n / 3);
    std::vector<Half> f16(n / 2);
    std::vector<BFloat16> bf16(70001);
    long double want = 0;
    for (auto& x : f32) x = normal(rng), want += (long double)x * x;
    for (auto& x : f64) x = normal(rng), want += (long double)x * x;
    for (auto& x : f16) x = to_half(normal(rng)), want += (long double)to_float(x) * to_float(x);
    for (auto& x : bf16) x = to_bfloat16(normal(rng)), want += (long double)to_float(x) * to_float(x);
    std::vector<GradSpan> spans = {{f32.data(), ElementType::float32, n},
                                   {f16.data(), ElementType::float16, (std::int64_t)f16.size()},
                                   {f64.data(), ElementType::float64, (std::int64_t)f64.size()},
                                   {bf16.data(), ElementType::bfloat16, 5},
                                   {bf16.data() + 5, ElementType::bfloat16, 69996}};
    set_isa(Isa::scalar);
    set_num_threads(1);
    const GradStats base = grad_stats(spans.data(), spans.size());
    expect(base.finite, "grad_stats finite", "scalar", n);
    expect(std::fabs(base.sum_of_squares - want) < 1e-12L * want, "grad_stats vs long double",
           "scalar", n);
    for (Isa isa : available_isas())
        for (int threads : {1, 2, 3, 5}) {
            set_isa(isa);
            set_num_threads(threads);
            const GradStats s = grad_stats(spans.data(), spans.size());
            expect(std::memcmp(&s.sum_of_squares, &base.sum_of_squares, 8) == 0 && s.finite,
                   "grad_stats bitwise vs scalar, 1 thread", isa_name(isa), threads);
            // A non-finite value in each type is found, on every path.
            for (std::size_t k = 0; k < spans.size(); ++k) {
                std::vector<GradSpan> bad = spans;
                std::vector<unsigned char> copy;
                const std::size_t elem = k == 0 ? 4 : k == 2 ? 8 : 2;
                const auto* src = static_cast<const unsigned char*>(spans[k].data);
                copy.assign(src, src + elem * spans[k].size);
                const std::size_t at = (spans[k].size - 1) * elem;  // the last element (a tail)
                if (k == 0) {
                    const float inf = INFINITY;
                    std::memcpy(&copy[at], &inf, 4);
                } else if (k == 2) {
                    const double big = 1e300;  // finite, but its square is not
                    std::memcpy(&copy[at], &big, 8);
                } else {
                    const std::uint16_t nan = k == 1 ? 0x7E00 : 0x7FC0;
                    std::memcpy(&copy[at], &nan, 2);
                }
                bad[k].data = copy.data();
                const GradStats b = grad_stats(bad.data(), bad.size());
                expect(!b.finite, "grad_stats finds inf/NaN", isa_name(isa), (int)k);
            }
        }
    set_num_threads(1);
    std::vector<GradSpan> f64_span = {{f64.data(), ElementType::float64, (std::int64_t)f64.size()}};
    f64[17] = INFINITY;
    expect(!grad_stats(f64_span.data(), 1).finite, "grad_stats float64 inf", "-", 0);
    std::printf("grad_stats: checked\n");
}

}  // namespace

// 8-bit state (lowbit_math.hpp): several steps of adam8bit_step on every ISA against the scalar
// path, bitwise (parameters, codes, scales), plain and amsgrad, sizes around the block.
struct Coded8 {
    std::vector<float> p;
    std::vector<std::uint8_t> codes[3];
    std::vector<float> scales[3];
};

Coded8 run_8bit(int n, bool amsgrad) {
    Coded8 d;
    std::mt19937 rng(static_cast<unsigned>(n) * 7 + amsgrad);
    std::normal_distribution<float> normal(0, 1);
    std::uniform_int_distribution<int> decade(-6, 1);
    d.p.resize(n);
    for (float& x : d.p) x = normal(rng);
    const int blocks = (n + lowbit::kBlock - 1) / lowbit::kBlock;
    for (int k = 0; k < 3; ++k) {
        d.codes[k].assign(n, 0);
        d.scales[k].assign(blocks, 0.0f);
    }
    std::vector<float> g(n);
    AdamHyper h;
    h.amsgrad = amsgrad;
    h.weight_decay = 0.01;
    for (int step = 1; step <= 4; ++step) {
        for (float& x : g) x = normal(rng) * std::pow(10.0f, static_cast<float>(decade(rng)));
        Adam8bitTensor<float> t;
        t.param = d.p.data();
        t.grad = g.data();
        t.size = n;
        t.exp_avg_codes = d.codes[0].data();
        t.exp_avg_scales = d.scales[0].data();
        t.exp_avg_sq_codes = d.codes[1].data();
        t.exp_avg_sq_scales = d.scales[1].data();
        if (amsgrad) {
            t.max_exp_avg_sq_codes = d.codes[2].data();
            t.max_exp_avg_sq_scales = d.scales[2].data();
        }
        t.scalars = make_scalars(h, step);
        t.state_key = lowbit::state_key(5, step);
        adam8bit_step(&t, 1);
    }
    return d;
}

void check_8bit() {
    for (int n : {1, 5, 255, 256, 257, 1000, 70001}) {
        for (bool amsgrad : {false, true}) {
            set_isa(Isa::scalar);
            const Coded8 want = run_8bit(n, amsgrad);
            for (Isa isa : available_isas()) {
                set_isa(isa);
                const Coded8 got = run_8bit(n, amsgrad);
                bool same = std::memcmp(got.p.data(), want.p.data(), sizeof(float) * n) == 0;
                for (int k = 0; k < 3; ++k)
                    same = same && got.codes[k] == want.codes[k] &&
                           std::memcmp(got.scales[k].data(), want.scales[k].data(),
                                       sizeof(float) * want.scales[k].size()) == 0;
                expect(same, "adam 8-bit state", isa_name(isa), n);
            }
        }
    }
}

int main() {
    check_known_values();
    check_roundtrip<Half>("float16");
    check_roundtrip<BFloat16>("bfloat16");
    check_rounding<Half>("float16");
    check_rounding<BFloat16>("bfloat16");
    for (int threads : {1, 3}) {
        set_num_threads(threads);
        check_mixed<Half>("float16");
        check_mixed<BFloat16>("bfloat16");
    }
    check_grad_stats();
    for (int threads : {1, 3}) {
        set_num_threads(threads);
        check_8bit();
        check_type<float>("float32");
        check_type<double>("float64");
    }
    std::printf("%s\n", failures == 0 ? "all ISA paths agree" : "FAILURES");
    return failures == 0 ? 0 : 1;
}
