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
constexpr int kReductionLanes = 16;

template <class Vec, class Lane, class T>
SegmentSum sum_squares(const T* data, std::int64_t begin, std::int64_t end) {
    static_assert(kReductionLanes % Vec::width == 0);
    constexpr int regs = kReductionLanes / Vec::width;
    constexpr bool wide = std::is_same_v<T, double>;
    using D = decltype(to_doubles(Vec{}));
    std::array<D, regs> acc{}, nonfinite{};
    std::int64_t i = begin;
    for (; i + kReductionLanes <= end; i += kReductionLanes) {
        for (int r = 0; r < regs; ++r) {
            const D x = to_doubles(load_as<Vec>(data + i + r * Vec::width));
            acc[r] += x * x;
            if constexpr (wide) nonfinite[r] += x - x;  // NaN once any x is inf or NaN
        }
    }
    double lanes[kReductionLanes], flags[kReductionLanes];
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
    FASTADAM_RANGE_KERNEL(probe_range, probe_range, AdamTensor<P>, V, L)
#define FASTADAM_DEFINE_RANGE_KERNELS(ns, F32, F64, L32, L64)                           \
    namespace fastadam::ns {                                                            \
    FASTADAM_RANGE_KERNELS_OF(float, F32, L32)                                          \
    FASTADAM_RANGE_KERNELS_OF(double, F64, L64)                                         \
    FASTADAM_RANGE_KERNELS_OF(Half, F32, L32)                                           \
    FASTADAM_RANGE_KERNELS_OF(BFloat16, F32, L32)                                       \
    SegmentSum grad_segment(const GradSpan& s, std::int64_t b, std::int64_t e) {  \
        return loop::grad_segment<F32, F64, L32, L64>(s, b, e);                         \
    }                                                                                   \
    }
