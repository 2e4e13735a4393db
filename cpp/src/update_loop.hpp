// The one streaming loop behind every CPU path and every optimizer: full vectors over a range,
// then the remaining elements one lane at a time through the same update function.
//
// Parameters and gradients of a 16-bit type are widened to float32 on load and the parameter is
// rounded once on store (or a float32 master copy is read and written, and the parameter
// written as its rounding): the conversion lives in the loads and stores below, never in the
// element functions, which run on float32 vectors exactly as for float32 parameters.
//
// Adding an optimizer: its element function in cpp/include/fastadam/<name>_math.hpp, its tensor
// type in kernels.hpp, a range_of overload below, one line in FASTADAM_DEFINE_RANGE_KERNELS and
// in isa_kernels.hpp, and its binding.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "fastadam/kernels.hpp"
#include "isa_kernels.hpp"

namespace fastadam::loop {

// Calls body(V{}, i) on each block of [begin, end): V = Vec while a whole vector fits, then
// V = Lane. The V{} argument only carries the type.
template <class Vec, class Lane, class Body>
inline void sweep(std::int64_t begin, std::int64_t end, const Body& body) {
    std::int64_t i = begin;
    for (; i + Vec::width <= end; i += Vec::width) body(Vec{}, i);
    for (; i < end; ++i) body(Lane{}, i);
}

// A rule's coefficients for both value types of a sweep, each rounded once from the scalars.
template <class Vec, class Lane, class CoeffVec, class CoeffLane>
struct BothCoefficients {
    CoeffVec vec;
    CoeffLane lane;
    template <class V>
    const auto& get() const {
        if constexpr (std::is_same_v<V, Vec>) return vec; else return lane;
    }
};

template <class Vec, class Lane, class T, class Scalars>
auto coefficients(const Scalars& s) {
    using CV = decltype(broadcast<Vec, T>(s));
    using CL = decltype(broadcast<Lane, T>(s));
    return BothCoefficients<Vec, Lane, CV, CL>{broadcast<Vec, T>(s), broadcast<Lane, T>(s)};
}

// Loads V::width values stored as S into V's lanes (widening 16-bit types), and stores back
// (rounding to nearest even).
template <class V, class S>
V load_as(const S* p) {
    if constexpr (std::is_same_v<S, typename V::value_type>) return V::load(p);
    else return widen(V{}, p);
}
template <class V, class S>
void store_as(V x, S* p) {
    if constexpr (std::is_same_v<S, typename V::value_type>) x.store(p);
    else narrow(x, p);
}

// How a sweep reads and writes the parameter.
enum class ParamMode { direct, master, stochastic };

// The variant of a sweep, fixed at compile time: parameter mode and whether the gradient is
// multiplied on load (never, unless a step asks for it: plain steps pay nothing).
template <ParamMode M, bool Scale>
struct Variant {
    static constexpr ParamMode mode = M;
    static constexpr bool scale = Scale;
};

// Calls f(Variant<...>{}) for the variant a tensor asks for. Only the modes its parameter type
// has are instantiated: master copies and stochastic rounding exist for 16-bit types only.
template <class Tensor, class F>
void with_variant(const Tensor& t, const F& f) {
    using P = typename Tensor::value_type;
    auto with_scale = [&](auto mode) {
        if (t.grad_multiplier != 1.0) f(Variant<decltype(mode)::value, true>{});
        else f(Variant<decltype(mode)::value, false>{});
    };
    using Mode = ParamMode;
    if constexpr (std::is_same_v<P, BFloat16>) {
        if (t.rounding == Rounding::stochastic && t.master == nullptr)
            return with_scale(std::integral_constant<Mode, Mode::stochastic>{});
    }
    if constexpr (is_16bit<P>) {
        if (t.master != nullptr) return with_scale(std::integral_constant<Mode, Mode::master>{});
    }
    with_scale(std::integral_constant<Mode, Mode::direct>{});
}

// What every sweep shares: the parameter's load and store, and the gradient's load.
template <class Var, class Vec, class Lane, class Tensor>
struct ParamIo {
    using S = typename Tensor::state_type;
    const Tensor& t;
    Vec mul_vec;
    Lane mul_lane;

    explicit ParamIo(const Tensor& tensor)
        : t(tensor),
          mul_vec(static_cast<S>(tensor.grad_multiplier)),
          mul_lane(static_cast<S>(tensor.grad_multiplier)) {}

    template <class V>
    V param(std::int64_t i) const {
        if constexpr (Var::mode == ParamMode::master) return load_as<V>(t.master + i);
        else return load_as<V>(t.param + i);
    }
    template <class V>
    V grad(std::int64_t i) const {
        const V g = load_as<V>(t.grad + i);
        if constexpr (Var::scale) {
            if constexpr (std::is_same_v<V, Vec>) return g * mul_vec; else return g * mul_lane;
        } else {
            return g;
        }
    }
    template <class V>
    void store_param(V p, std::int64_t i) const {
        if constexpr (Var::mode == ParamMode::master) store_as(p, t.master + i);
        if constexpr (Var::mode == ParamMode::stochastic)
            narrow_stochastic(p, t.param + i, t.rounding_key, i);
        else
            store_as(p, t.param + i);
    }
};

template <class Var, class Vec, class Lane, bool Amsgrad, class Tensor>
void adam_sweep(const Tensor& t, std::int64_t begin, std::int64_t end) {
    using S = typename Tensor::state_type;
    const auto c = coefficients<Vec, Lane, S>(t.scalars);
    const ParamIo<Var, Vec, Lane, Tensor> io(t);
    sweep<Vec, Lane>(begin, end, [&](auto tag, std::int64_t i) {
        using V = decltype(tag);
        V p = io.template param<V>(i), m = V::load(t.exp_avg + i), v = V::load(t.exp_avg_sq + i);
        V vmax = Amsgrad ? V::load(t.max_exp_avg_sq + i) : V(S(0));
        adam_update<Amsgrad>(p, io.template grad<V>(i), m, v, vmax, c.template get<V>());
        io.store_param(p, i);
        m.store(t.exp_avg + i);
        v.store(t.exp_avg_sq + i);
        if constexpr (Amsgrad) vmax.store(t.max_exp_avg_sq + i);
    });
}

template <class Vec, class Lane, class P, class S>
void range_of(const AdamTensor<P, S>& t, std::int64_t begin, std::int64_t end) {
    with_variant(t, [&](auto var) {
        using Var = decltype(var);
        if (t.max_exp_avg_sq != nullptr)
            adam_sweep<Var, Vec, Lane, true>(t, begin, end);
        else
            adam_sweep<Var, Vec, Lane, false>(t, begin, end);
    });
}

// --- 8-bit state (lowbit_math.hpp) ----------------------------------------------------------
// Block by block: decode m and v (and vmax), run adam_update, write p, keep the new m and v in a
// 1 KiB buffer each (L1) while taking the block's largest magnitudes; then encode the buffers
// with the new scales. Memory sees one read and one write of p and the codes, one read of g.
// [begin, end) starts on a block boundary (parallel_step.cpp splits on Adam8bitTensor's
// split_unit).

// A running maximum for both value types of a sweep (exact, so its order does not matter).
template <class Vec, class Lane>
struct RunningMax {
    Vec vec{0.0f};
    Lane lane{0.0f};
    template <class V>
    void add(V x) {
        if constexpr (std::is_same_v<V, Vec>) vec = max_of(vec, x); else lane = max_of(lane, x);
    }
    float value() const {
        const float a = largest_lane(vec), b = largest_lane(lane);
        return a > b ? a : b;
    }
};

// The largest |m| of a sweep, kept as the unsigned maximum of m's bits shifted left by one (the
// sign shifted out; the order of non-negative floats is that of their bits): two integer
// instructions per vector where the float maximum of |m| took three.
template <class Vec, class Lane>
struct MagnitudeMax {
    using VecBits = decltype(low_index(Vec{}, 0));  // uint32 lanes
    VecBits vec{};
    std::uint32_t lane = 0;
    template <class V>
    void add(V x) {
        if constexpr (std::is_same_v<V, Vec>) {
            const VecBits u = (VecBits)int_bits(x) << 1;
            vec = u > vec ? u : vec;
        } else {
            const std::uint32_t u = static_cast<std::uint32_t>(int_bits(x)) << 1;
            lane = u > lane ? u : lane;
        }
    }
    float value() const {
        const std::uint32_t v = largest_unsigned_lane(Vec{}, vec), top = v > lane ? v : lane;
        return bits::to_float(top >> 1);
    }
};

// A float broadcast once per block into both value types (a broadcast inside the sweep's body
// would be rebuilt for every vector).
template <class Vec, class Lane>
struct Splat {
    Vec vec;
    Lane lane;
    explicit Splat(float x) : vec(x), lane(x) {}
    template <class V>
    V get() const {
        if constexpr (std::is_same_v<V, Vec>) return vec; else return lane;
    }
};

template <class V>
V magnitude(V x) {
    return from_bits(V{}, int_bits(x) & 0x7FFFFFFF);
}

// One state's codes and block scales.
struct CodedState {
    std::uint8_t* codes;
    float* scales;
};

template <class V>
V decode_m(const CodedState& s, std::int64_t i, V scale) {
    return from_bits(V{}, lowbit::decode_exp_avg(load_signed_bytes(V{}, s.codes + i))) * scale;
}
template <class V>
V decode_v(const CodedState& s, std::int64_t i, V scale) {
    return from_bits(V{}, lowbit::decode_exp_avg_sq(load_bytes(V{}, s.codes + i))) * scale;
}

// The rounding words r = (index + key) * kWeyl of a block's elements in sweep order. Whole
// vectors come in order, and r(i + n) = r(i) + n * kWeyl (mod 2**32), so each vector adds one
// constant where lowbit::state_random multiplies; tail lanes use state_random itself.
template <class Vec, class Lane>
class WeylStream {
    using U = decltype(lowbit::state_random(low_index(Vec{}, 0), 0u));
    U next_;
    std::uint32_t key_;

public:
    WeylStream(std::int64_t start, std::uint32_t key)
        : next_(lowbit::state_random(low_index(Vec{}, start), key)), key_(key) {}
    template <class V>
    auto next(std::int64_t i) {
        if constexpr (std::is_same_v<V, Vec>) {
            const U r = next_;
            next_ += static_cast<std::uint32_t>(Vec::width) * lowbit::kWeyl;
            return r;
        } else {
            return lowbit::state_random(low_index(Lane{}, i), key_);
        }
    }
};

// A vector type whose kernel file narrows kCodeGroup vectors of codes at once: its
// store_exp_avg_group(V{}, codes, m_bits, p) and store_exp_avg_sq_group(V{}, codes, v_bits, p)
// store the bytes of lowbit::encode_exp_avg and encode_exp_avg_sq from the bits of the values
// and their unclamped codes (AVX-512 and AVX2: saturating packs clamp four vectors in a few
// instructions, where each vector's own clamps and narrowing took up to eleven).
constexpr int kCodeGroup = 4;
template <class V>
concept NarrowsCodeGroups = requires(V v, const decltype(int_bits(V{})) (&x)[kCodeGroup],
                                     std::uint8_t* p) {
    store_exp_avg_group(v, x, x, p);
    store_exp_avg_sq_group(v, x, x, p);
};

template <class Var, class Vec, class Lane, bool Amsgrad, class Tensor>
void adam8bit_sweep(const Tensor& t, std::int64_t begin, std::int64_t end) {
    constexpr std::int64_t block = lowbit::kBlock;
    const auto c = coefficients<Vec, Lane, float>(t.scalars);
    const ParamIo<Var, Vec, Lane, Tensor> io(t);
    const CodedState ms{t.exp_avg_codes, t.exp_avg_scales};
    const CodedState vs{t.exp_avg_sq_codes, t.exp_avg_sq_scales};
    const CodedState xs{t.max_exp_avg_sq_codes, t.max_exp_avg_sq_scales};
    alignas(64) float m_buf[block], v_buf[block], x_buf[Amsgrad ? block : 1];
    for (std::int64_t start = begin; start < end; start += block) {
        const std::int64_t stop = std::min(start + block, end), b = start / block;
        MagnitudeMax<Vec, Lane> m_max;
        RunningMax<Vec, Lane> v_max, x_max;
        using S = Splat<Vec, Lane>;
        const S m_scale(ms.scales[b]), v_scale(vs.scales[b]), x_scale(Amsgrad ? xs.scales[b] : 0.0f);
        sweep<Vec, Lane>(start, stop, [&](auto tag, std::int64_t i) {
            using V = decltype(tag);
            V m = decode_m<V>(ms, i, m_scale.template get<V>()), v = decode_v<V>(vs, i, v_scale.template get<V>());
            V vmax = Amsgrad ? decode_v<V>(xs, i, x_scale.template get<V>()) : V(0.0f);
            V p = io.template param<V>(i);
            adam_update<Amsgrad>(p, io.template grad<V>(i), m, v, vmax, c.template get<V>());
            io.store_param(p, i);
            m.store(m_buf + (i - start));
            v.store(v_buf + (i - start));
            m_max.add(m);
            v_max.add(v);
            if constexpr (Amsgrad) {
                vmax.store(x_buf + (i - start));
                x_max.add(vmax);
            }
        });
        float m_new = m_max.value(), v_new = v_max.value(), x_new = x_max.value();
        const S m_inv(lowbit::inverse_scale(m_new)), v_inv(lowbit::inverse_scale(v_new));
        const S x_inv(Amsgrad ? lowbit::inverse_scale(x_new) : 0.0f);
        WeylStream<Vec, Lane> random(start, lowbit::block_key(t.state_key, start));
        // The bits of m, v (and vmax) at i and their codes before the clamps.
        auto unclamped = [&](auto tag, std::int64_t i) {
            using V = decltype(tag);
            using I = decltype(int_bits(V{}));
            struct {
                I m_bits, m_code, v_bits, v_code, x_bits, x_code;
            } c{};
            const auto r = random.template next<V>(i);
            const auto m_up = as_signed(lowbit::exp_avg_offset(r), V{});
            const auto v_up = as_signed(lowbit::exp_avg_sq_offset(r), V{});
            const V m = V::load(m_buf + (i - start)), v = V::load(v_buf + (i - start));
            c.m_bits = int_bits(m);
            c.m_code = lowbit::exp_avg_unclamped(int_bits(magnitude(m) * m_inv.template get<V>()), m_up);
            c.v_bits = int_bits(v);
            c.v_code = lowbit::exp_avg_sq_unclamped(int_bits(v * v_inv.template get<V>()), v_up);
            if constexpr (Amsgrad) {
                const V x = V::load(x_buf + (i - start));
                c.x_bits = int_bits(x);
                c.x_code = lowbit::exp_avg_sq_unclamped(int_bits(x * x_inv.template get<V>()), v_up);
            }
            return c;
        };
        std::int64_t grouped = start;  // codes written up to here by whole groups
        if constexpr (NarrowsCodeGroups<Vec>) {
            // Whole groups of kCodeGroup vectors: one clamp-and-narrow per group and state.
            using I = decltype(int_bits(Vec{}));
            constexpr std::int64_t span = kCodeGroup * Vec::width;
            for (std::int64_t& i = grouped; i + span <= stop; i += span) {
                I m_code[kCodeGroup], m_bits[kCodeGroup], v_code[kCodeGroup], v_bits[kCodeGroup];
                I x_code[kCodeGroup], x_bits[kCodeGroup];
                for (int k = 0; k < kCodeGroup; ++k) {
                    const auto c = unclamped(Vec{}, i + k * Vec::width);
                    m_bits[k] = c.m_bits, m_code[k] = c.m_code;
                    v_bits[k] = c.v_bits, v_code[k] = c.v_code;
                    x_bits[k] = c.x_bits, x_code[k] = c.x_code;
                }
                store_exp_avg_group(Vec{}, m_code, m_bits, ms.codes + i);
                store_exp_avg_sq_group(Vec{}, v_code, v_bits, vs.codes + i);
                if constexpr (Amsgrad) store_exp_avg_sq_group(Vec{}, x_code, x_bits, xs.codes + i);
            }
        }
        sweep<Vec, Lane>(grouped, stop, [&](auto tag, std::int64_t i) {
            const auto c = unclamped(tag, i);
            store_bytes(tag, lowbit::encode_exp_avg(c.m_bits, c.m_code), ms.codes + i);
            store_bytes(tag, lowbit::encode_exp_avg_sq(c.v_bits, c.v_code), vs.codes + i);
            if constexpr (Amsgrad)
                store_bytes(tag, lowbit::encode_exp_avg_sq(c.x_bits, c.x_code), xs.codes + i);
        });
        ms.scales[b] = m_new;
        vs.scales[b] = v_new;
        if constexpr (Amsgrad) xs.scales[b] = x_new;
    }
}

template <class Vec, class Lane, class P>
void range_of(const Adam8bitTensor<P>& t, std::int64_t begin, std::int64_t end) {
    with_variant(t, [&](auto var) {
        using Var = decltype(var);
        if (t.max_exp_avg_sq_codes != nullptr)
            adam8bit_sweep<Var, Vec, Lane, true>(t, begin, end);
        else
            adam8bit_sweep<Var, Vec, Lane, false>(t, begin, end);
    });
}

// The 8-bit step's memory traffic without its math: p += g, each code += 1, each block scale
// += 1 (with a master copy, master += g and p = its rounding).
template <class Vec, class Lane, class P>
void probe_range(const Adam8bitTensor<P>& t, std::int64_t begin, std::int64_t end) {
    const bool master = is_16bit<P> && t.master != nullptr;
    sweep<Vec, Lane>(begin, end, [&](auto tag, std::int64_t i) {
        using V = decltype(tag);
        const V g = load_as<V>(t.grad + i);
        if (master) {
            const V p = V::load(t.master + i) + g;
            p.store(t.master + i);
            store_as(p, t.param + i);
        } else {
            store_as(load_as<V>(t.param + i) + g, t.param + i);
        }
        store_bytes(V{}, load_bytes(V{}, t.exp_avg_codes + i) + 1, t.exp_avg_codes + i);
        store_bytes(V{}, load_bytes(V{}, t.exp_avg_sq_codes + i) + 1, t.exp_avg_sq_codes + i);
    });
    for (std::int64_t b = begin / lowbit::kBlock; b * lowbit::kBlock < end; ++b) {
        t.exp_avg_scales[b] += 1.0f;
        t.exp_avg_sq_scales[b] += 1.0f;
    }
}

template <class Var, class Vec, class Lane, bool Momentum, class Tensor>
void sgd_sweep(const Tensor& t, std::int64_t begin, std::int64_t end) {
    using S = typename Tensor::state_type;
    const auto c = coefficients<Vec, Lane, S>(t.scalars);
    const ParamIo<Var, Vec, Lane, Tensor> io(t);
    sweep<Vec, Lane>(begin, end, [&](auto tag, std::int64_t i) {
        using V = decltype(tag);
        V p = io.template param<V>(i);
        V buf = Momentum && !t.scalars.first_step ? V::load(t.momentum_buffer + i) : V(S(0));
        sgd_update<Momentum>(p, io.template grad<V>(i), buf, c.template get<V>());
        io.store_param(p, i);
        if constexpr (Momentum) buf.store(t.momentum_buffer + i);
    });
}

template <class Vec, class Lane, class P, class S>
void range_of(const SgdTensor<P, S>& t, std::int64_t begin, std::int64_t end) {
    with_variant(t, [&](auto var) {
        using Var = decltype(var);
        if (t.momentum_buffer != nullptr)
            sgd_sweep<Var, Vec, Lane, true>(t, begin, end);
        else
            sgd_sweep<Var, Vec, Lane, false>(t, begin, end);
    });
}

template <class Vec, class Lane, class P, class S>
void range_of(const AdagradTensor<P, S>& t, std::int64_t begin, std::int64_t end) {
    with_variant(t, [&](auto var) {
        using Var = decltype(var);
        const auto c = coefficients<Vec, Lane, S>(t.scalars);
        const ParamIo<Var, Vec, Lane, AdagradTensor<P, S>> io(t);
        sweep<Vec, Lane>(begin, end, [&](auto tag, std::int64_t i) {
            using V = decltype(tag);
            V p = io.template param<V>(i), sum = V::load(t.state_sum + i);
            adagrad_update(p, io.template grad<V>(i), sum, c.template get<V>());
            io.store_param(p, i);
            sum.store(t.state_sum + i);
        });
    });
}

template <class Var, class Vec, class Lane, bool Centered, bool Momentum, class Tensor>
void rmsprop_sweep(const Tensor& t, std::int64_t begin, std::int64_t end) {
    using S = typename Tensor::state_type;
    const auto c = coefficients<Vec, Lane, S>(t.scalars);
    const ParamIo<Var, Vec, Lane, Tensor> io(t);
    sweep<Vec, Lane>(begin, end, [&](auto tag, std::int64_t i) {
        using V = decltype(tag);
        V p = io.template param<V>(i), sq = V::load(t.square_avg + i);
        V avg = Centered ? V::load(t.grad_avg + i) : V(S(0));
        V buf = Momentum ? V::load(t.momentum_buffer + i) : V(S(0));
        rmsprop_update<Centered, Momentum>(p, io.template grad<V>(i), sq, avg, buf,
                                           c.template get<V>());
        io.store_param(p, i);
        sq.store(t.square_avg + i);
        if constexpr (Centered) avg.store(t.grad_avg + i);
        if constexpr (Momentum) buf.store(t.momentum_buffer + i);
    });
}

template <class Vec, class Lane, class P, class S>
void range_of(const RmspropTensor<P, S>& t, std::int64_t begin, std::int64_t end) {
    with_variant(t, [&](auto var) {
        using Var = decltype(var);
        const bool centered = t.grad_avg != nullptr, momentum = t.momentum_buffer != nullptr;
        if (centered && momentum) rmsprop_sweep<Var, Vec, Lane, true, true>(t, begin, end);
        else if (centered) rmsprop_sweep<Var, Vec, Lane, true, false>(t, begin, end);
        else if (momentum) rmsprop_sweep<Var, Vec, Lane, false, true>(t, begin, end);
        else rmsprop_sweep<Var, Vec, Lane, false, false>(t, begin, end);
    });
}

template <class Vec, class Lane, class P, class S>
void range_of(const AdamaxTensor<P, S>& t, std::int64_t begin, std::int64_t end) {
    with_variant(t, [&](auto var) {
        using Var = decltype(var);
        const auto c = coefficients<Vec, Lane, S>(t.scalars);
        const ParamIo<Var, Vec, Lane, AdamaxTensor<P, S>> io(t);
        sweep<Vec, Lane>(begin, end, [&](auto tag, std::int64_t i) {
            using V = decltype(tag);
            V p = io.template param<V>(i), m = V::load(t.exp_avg + i), u = V::load(t.exp_inf + i);
            adamax_update(p, io.template grad<V>(i), m, u, c.template get<V>());
            io.store_param(p, i);
            m.store(t.exp_avg + i);
            u.store(t.exp_inf + i);
        });
    });
}

// NAdam and RAdam: Adam's two moments, each with its own element function.
template <class Vec, class Lane, class Tensor, class Update>
void two_moment_range(const Tensor& t, std::int64_t begin, std::int64_t end,
                      const Update& update) {
    using S = typename Tensor::state_type;
    with_variant(t, [&](auto var) {
        using Var = decltype(var);
        const auto c = coefficients<Vec, Lane, S>(t.scalars);
        const ParamIo<Var, Vec, Lane, Tensor> io(t);
        sweep<Vec, Lane>(begin, end, [&](auto tag, std::int64_t i) {
            using V = decltype(tag);
            V p = io.template param<V>(i), m = V::load(t.exp_avg + i),
              v = V::load(t.exp_avg_sq + i);
            update(p, io.template grad<V>(i), m, v, c.template get<V>());
            io.store_param(p, i);
            m.store(t.exp_avg + i);
            v.store(t.exp_avg_sq + i);
        });
    });
}

template <class Vec, class Lane, class P, class S>
void range_of(const NadamTensor<P, S>& t, std::int64_t begin, std::int64_t end) {
    two_moment_range<Vec, Lane>(t, begin, end, [](auto& p, auto g, auto& m, auto& v,
                                                  const auto& c) { nadam_update(p, g, m, v, c); });
}

template <class Vec, class Lane, class P, class S>
void range_of(const RadamTensor<P, S>& t, std::int64_t begin, std::int64_t end) {
    two_moment_range<Vec, Lane>(t, begin, end, [](auto& p, auto g, auto& m, auto& v,
                                                  const auto& c) { radam_update(p, g, m, v, c); });
}

// --- SWATS: Adam with its dot products, or SGD (swats_math.hpp) ------------------------------
constexpr int kReductionLanes = 16;  // the dot products and grad_stats sum as described below

// The 16 lanes of `v` (16 / width vectors) as two vectors of 8, taken from the registers where
// the widths allow (a store and narrower reloads would stall store forwarding).
template <class Vec, class Block8>
inline void eight_lanes(const Vec* v, Block8 (&out)[2]) {
    if constexpr (Vec::width == 16) {
        out[0] = __builtin_shufflevector(v[0].r, v[0].r, 0, 1, 2, 3, 4, 5, 6, 7);
        out[1] = __builtin_shufflevector(v[0].r, v[0].r, 8, 9, 10, 11, 12, 13, 14, 15);
    } else if constexpr (Vec::width == 8) {
        out[0] = v[0].r;
        out[1] = v[1].r;
    } else {
        using S = typename Vec::value_type;
        S lanes[kReductionLanes];
        for (int r = 0; r < kReductionLanes / Vec::width; ++r) v[r].store(lanes + r * Vec::width);
        std::memcpy(out, lanes, sizeof lanes);
    }
}

// One segment of a SWATS set. Adam phase: the update, and the sums of step * step and step *
// grad accumulated as sum_squares accumulates (16 interleaved partial sums in double, then a
// fixed tree), so every ISA and thread split gives the same bits. SGD phase: SGD's update.
template <class Var, class Vec, class Lane, class Tensor>
DotSums swats_segment(const Tensor& t, std::int64_t begin, std::int64_t end) {
    using S = typename Tensor::state_type;
    const ParamIo<Var, Vec, Lane, Tensor> io(t);
    if (t.scalars.sgd_phase) {
        const auto c = coefficients<Vec, Lane, S>(t.scalars.sgd);
        sweep<Vec, Lane>(begin, end, [&](auto tag, std::int64_t i) {
            using V = decltype(tag);
            V p = io.template param<V>(i), buf = V::load(t.momentum_buffer + i);
            sgd_update<true>(p, io.template grad<V>(i), buf, c.template get<V>());
            io.store_param(p, i);
            buf.store(t.momentum_buffer + i);
        });
        return {0.0, 0.0};
    }
    static_assert(kReductionLanes % Vec::width == 0);
    constexpr int regs = kReductionLanes / Vec::width;
    const auto c = coefficients<Vec, Lane, S>(t.scalars.adam);
    // Updates element(s) i, giving the step (what was subtracted from p) and the gradient.
    const auto update = [&](auto tag, std::int64_t i, auto& step, auto& g) {
        using V = decltype(tag);
        V p = io.template param<V>(i), m = V::load(t.exp_avg + i), v = V::load(t.exp_avg_sq + i);
        V unused = V(S(0));
        g = io.template grad<V>(i);
        step = adam_step_of<false>(p, g, m, v, unused, c.template get<V>());
        io.store_param(p - step, i);
        m.store(t.exp_avg + i);
        v.store(t.exp_avg_sq + i);
    };
    // The 16 partial sums are two vectors of 8 doubles each (lanes 0-7 and 8-15), fed from the
    // steps and gradients of each block of 16 elements: native registers on AVX-512, two on
    // AVX2 and NEON, SSE2 on the portable path; the same additions in the same order on all.
    typedef S Block8 __attribute__((vector_size(8 * sizeof(S))));
    typedef double Double8 __attribute__((vector_size(8 * sizeof(double))));
    Double8 acc_ss[2] = {}, acc_sg[2] = {};
    std::int64_t i = begin;
    for (; i + kReductionLanes <= end; i += kReductionLanes) {
        Vec step[regs], g[regs];
        for (int r = 0; r < regs; ++r) update(Vec{}, i + r * Vec::width, step[r], g[r]);
        Block8 s8[2], g8[2];
        eight_lanes(step, s8);
        eight_lanes(g, g8);
        for (int h = 0; h < 2; ++h) {
            const Double8 sd = __builtin_convertvector(s8[h], Double8);
            const Double8 gd = __builtin_convertvector(g8[h], Double8);
            acc_ss[h] += sd * sd;
            acc_sg[h] += sd * gd;
        }
    }
    double lanes_ss[kReductionLanes], lanes_sg[kReductionLanes];
    std::memcpy(lanes_ss, acc_ss, sizeof lanes_ss);
    std::memcpy(lanes_sg, acc_sg, sizeof lanes_sg);
    for (int j = 0; i < end; ++i, ++j) {
        Lane step, g;
        update(Lane{}, i, step, g);
        const double s = step.x;
        lanes_ss[j] += s * s;
        lanes_sg[j] += s * static_cast<double>(g.x);
    }
    for (int half = kReductionLanes / 2; half > 0; half /= 2)
        for (int j = 0; j < half; ++j) {
            lanes_ss[j] += lanes_ss[j + half];
            lanes_sg[j] += lanes_sg[j + half];
        }
    return {lanes_ss[0], lanes_sg[0]};
}

template <class Vec, class Lane, class P, class S>
DotSums swats_range(const SwatsTensor<P, S>& t, std::int64_t begin, std::int64_t end) {
    DotSums out{};
    with_variant(t, [&](auto var) {
        out = swats_segment<decltype(var), Vec, Lane>(t, begin, end);
    });
    return out;
}

// Adam's memory traffic without its arithmetic (read p, g, m, v; write p, m, v, one add each;
// with a master copy, the master is read and written and p written as its rounding): the
// bandwidth reference that benchmarks compare the Adam step with.
template <class Vec, class Lane, class P, class S>
void probe_range(const AdamTensor<P, S>& t, std::int64_t begin, std::int64_t end) {
    const bool master = is_16bit<P> && t.master != nullptr;
    sweep<Vec, Lane>(begin, end, [&](auto tag, std::int64_t i) {
        using V = decltype(tag);
        const V g = load_as<V>(t.grad + i);
        if (master) {
            const V p = V::load(t.master + i) + g;
            p.store(t.master + i);
            store_as(p, t.param + i);
        } else {
            store_as(load_as<V>(t.param + i) + g, t.param + i);
        }
        (V::load(t.exp_avg + i) + g).store(t.exp_avg + i);
        (V::load(t.exp_avg_sq + i) + g).store(t.exp_avg_sq + i);
    });
}

// --- The gradient pre-pass (kernels.hpp: grad_stats) -------------------------------------------
// Elements of a segment are summed in 16 interleaved partial sums (element j of the segment into
// sum j % 16, in index order), which are then added in a fixed tree. A vector path of width W
// holds the 16 sums in 16 / W registers of W doubles; the tail goes lane by lane into the same
// sums. Every path therefore performs the same additions in the same order.

// The accumulator type of sum_squares: doubles of the register's width.
template <class Vec, bool split>
struct SumVector {
    using type = decltype(to_doubles(Vec{}));
};
template <class Vec>
struct SumVector<Vec, true> {
    using type = decltype(to_double_halves(Vec{}).lo);
};

constexpr std::uintptr_t kPrefetchBytes = 2048;

template <class Vec, class Lane, class T>
SegmentSum sum_squares(const T* data, std::int64_t begin, std::int64_t end) {
    static_assert(kReductionLanes % Vec::width == 0);
    constexpr int regs = kReductionLanes / Vec::width;
    constexpr bool wide = std::is_same_v<T, double>;
    // Float lanes widen to two register-wide halves of doubles (lanes 0..W/2-1 and W/2..W-1 of
    // each vector); double lanes are already register-wide. Either way each of the 16 sums
    // receives the same elements in the same order.
    constexpr bool split = !wide && Vec::width > 1;
    constexpr int parts = split ? 2 : 1;
    using D = typename SumVector<Vec, split>::type;
    std::array<D, regs * parts> acc{}, nonfinite{};
    std::int64_t i = begin;
    for (; i + kReductionLanes <= end; i += kReductionLanes) {
        // A read-only stream gets less from the hardware prefetcher than the update's mixed
        // streams: asking ~2 KB ahead took the 2**24 float32 pre-pass from 0.50 to 0.35-0.38
        // ns/element on one thread of an Intel VM (the address may lie past the array: a
        // prefetch never faults).
        __builtin_prefetch(reinterpret_cast<const void*>(
            reinterpret_cast<std::uintptr_t>(data + i) + kPrefetchBytes));
        for (int r = 0; r < regs; ++r) {
            const Vec loaded = load_as<Vec>(data + i + r * Vec::width);
            if constexpr (split) {
                const auto x = to_double_halves(loaded);
                acc[2 * r] += x.lo * x.lo;
                acc[2 * r + 1] += x.hi * x.hi;
            } else {
                const D x = to_doubles(loaded);
                acc[r] += x * x;
                if constexpr (wide) nonfinite[r] += x - x;  // NaN once any x is inf or NaN
            }
        }
    }
    double lanes[kReductionLanes], flags[kReductionLanes];
    static_assert(sizeof acc == sizeof lanes);
    std::memcpy(lanes, acc.data(), sizeof lanes);
    std::memcpy(flags, nonfinite.data(), sizeof flags);
    for (int j = 0; i < end; ++i, ++j) {
        const double x = to_doubles(load_as<Lane>(data + i));
        lanes[j] += x * x;
        if constexpr (wide) flags[j] += x - x;
    }
    for (int half = kReductionLanes / 2; half > 0; half /= 2)
        for (int j = 0; j < half; ++j) {
            lanes[j] += lanes[j + half];
            flags[j] += flags[j + half];
        }
    return {lanes[0], flags[0] == 0.0};
}

template <class F32, class F64, class L32, class L64>
SegmentSum grad_segment(const GradSpan& s, std::int64_t begin, std::int64_t end) {
    switch (s.type) {
        case ElementType::float64:
            return sum_squares<F64, L64>(static_cast<const double*>(s.data), begin, end);
        case ElementType::float16:
            return sum_squares<F32, L32>(static_cast<const Half*>(s.data), begin, end);
        case ElementType::bfloat16:
            return sum_squares<F32, L32>(static_cast<const BFloat16*>(s.data), begin, end);
        default:
            return sum_squares<F32, L32>(static_cast<const float*>(s.data), begin, end);
    }
}

}  // namespace fastadam::loop

// Defines the range kernels of one ISA in namespace fastadam::<ns>, from its value types: an
// update_range overload per optimizer tensor type and parameter type, the bandwidth probe and
// the gradient pre-pass.
#define FASTADAM_RANGE_KERNEL(name, impl, Tensor, V, L)                                  \
    void name(const Tensor& t, std::int64_t b, std::int64_t e) { loop::impl<V, L>(t, b, e); }
#define FASTADAM_RANGE_KERNELS_OF(P, V, L)                                 \
    FASTADAM_RANGE_KERNEL(update_range, range_of, AdamTensor<P>, V, L)    \
    FASTADAM_RANGE_KERNEL(update_range, range_of, SgdTensor<P>, V, L)     \
    FASTADAM_RANGE_KERNEL(update_range, range_of, AdagradTensor<P>, V, L) \
    FASTADAM_RANGE_KERNEL(update_range, range_of, RmspropTensor<P>, V, L) \
    FASTADAM_RANGE_KERNEL(update_range, range_of, AdamaxTensor<P>, V, L)  \
    FASTADAM_RANGE_KERNEL(update_range, range_of, NadamTensor<P>, V, L)   \
    FASTADAM_RANGE_KERNEL(update_range, range_of, RadamTensor<P>, V, L)   \
    FASTADAM_RANGE_KERNEL(probe_range, probe_range, AdamTensor<P>, V, L)  \
    DotSums swats_range(const SwatsTensor<P>& t, std::int64_t b, std::int64_t e) { \
        return loop::swats_range<V, L>(t, b, e);                                    \
    }
#define FASTADAM_RANGE_KERNELS8_OF(P, V, L)                                   \
    FASTADAM_RANGE_KERNEL(update_range, range_of, Adam8bitTensor<P>, V, L) \
    FASTADAM_RANGE_KERNEL(probe_range, probe_range, Adam8bitTensor<P>, V, L)
#define FASTADAM_DEFINE_RANGE_KERNELS(ns, F32, F64, L32, L64)                           \
    namespace fastadam::ns {                                                            \
    FASTADAM_RANGE_KERNELS8_OF(float, F32, L32)                                         \
    FASTADAM_RANGE_KERNELS8_OF(Half, F32, L32)                                          \
    FASTADAM_RANGE_KERNELS8_OF(BFloat16, F32, L32)                                      \
    FASTADAM_RANGE_KERNELS_OF(float, F32, L32)                                          \
    FASTADAM_RANGE_KERNELS_OF(double, F64, L64)                                         \
    FASTADAM_RANGE_KERNELS_OF(Half, F32, L32)                                           \
    FASTADAM_RANGE_KERNELS_OF(BFloat16, F32, L32)                                       \
    SegmentSum grad_segment(const GradSpan& s, std::int64_t b, std::int64_t e) {  \
        return loop::grad_segment<F32, F64, L32, L64>(s, b, e);                         \
    }                                                                                   \
    }
