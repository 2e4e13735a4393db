// What every optimizer binding shares: reading the Python lists of a multi-tensor call, and
// validating all arrays of all parameter sets (dtype, shape, layout, writability, overlap)
// before any kernel runs.
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "array_checks.hpp"

namespace fastadam::python {

// One array slot of a parameter set, e.g. {"exp_avg", "exp_avgs", true}.
struct Role {
    const char* single;  // its argument name in the one-set function
    const char* plural;  // its argument name in the multi function
    bool written;
    bool optional = false;  // None means "this set has no such array"
    bool state = false;     // of the state dtype (float32 for a 16-bit parameter)
    bool master = false;    // a master copy: only for 16-bit parameters
};

// The arrays of all sets, checked; views[set * roles + role] (absent optional arrays included,
// with present = false).
struct CheckedSets {
    Dtype dtype = Dtype::float32;  // of every set, unless mixed dtypes were allowed
    std::vector<Dtype> dtypes;     // per set
    std::size_t roles = 0;
    std::vector<ArrayView> views;

    std::size_t count() const { return roles ? views.size() / roles : 0; }
    template <class T>
    T* data(std::size_t set, std::size_t role) const {
        const ArrayView& v = views[set * roles + role];
        return v.present ? static_cast<T*>(const_cast<void*>(v.array.data())) : nullptr;
    }
    std::int64_t size(std::size_t set) const { return views[set * roles].array.size(); }
};

// Role 0 must be the parameter: its dtype and shape are what the other roles must match. All
// sets share one dtype unless mixed_dtypes is set.
CheckedSets check_sets(const std::vector<std::vector<py::handle>>& sets,
                       const std::vector<Role>& roles, bool multi, bool mixed_dtypes = false);

// `obj` as a list (a list or tuple; not a string or an array), optionally of a given length.
std::vector<py::object> as_list(const py::handle& obj, const char* name);
std::vector<py::object> as_list(const py::handle& obj, const char* name, std::size_t size);

// An int, or a list of `size` ints (one per set); TypeError/ValueError naming `name`.
std::vector<std::int64_t> int_per_set(const py::handle& obj, const char* name, std::size_t size);

// The same for bools.
std::vector<bool> bool_per_set(const py::handle& obj, const char* name, std::size_t size);

// The name of argument `single`/`plural` for set i, as the user wrote it.
std::string argument_name(const char* single, const char* plural, std::size_t i, bool multi);

// Hyper-parameters per set from `obj`: one tuple for every set, or a list of `size` tuples.
// Sets of one optimizer group share one tuple object, which `parse(tuple, index)` reads once.
template <class Hyper, class Parse>
std::vector<Hyper> hypers_per_set(const py::handle& obj, std::size_t size, const Parse& parse) {
    const bool one = py::isinstance<py::tuple>(obj);
    const auto objects = one ? std::vector<py::object>() : as_list(obj, "hypers", size);
    std::vector<Hyper> out(size);
    PyObject* previous = nullptr;
    for (std::size_t i = 0; i < size; ++i) {
        const py::handle h = one ? obj : objects[i];
        out[i] = h.ptr() == previous ? out[i - 1] : parse(h, i);
        previous = h.ptr();
    }
    return out;
}

// What a step does besides its update rule: loss-scale removal, the gradient pre-pass and its
// uses, stochastic rounding of bfloat16 parameters (from the functional keywords, or the
// `options` tuple of the *_step_sets entries).
struct StepOptions {
    GradPolicy policy;
    bool stochastic_rounding = false;
    std::uint64_t seed = 0;
};

// Validated: grad_scale finite and > 0, max_grad_norm None or finite and > 0.
StepOptions step_options(double grad_scale, const py::handle& max_grad_norm, bool skip_nonfinite,
                         bool stochastic_rounding, const py::handle& seed);
// From (grad_scale, max_grad_norm, skip_nonfinite, stochastic_rounding, seed), or None.
StepOptions step_options(const py::handle& options);

// ValueError unless stochastic rounding can apply: no float16 parameter, no master copy.
void check_stochastic_rounding(const CheckedSets& sets, std::size_t master_role);

// The report a step returns (fastadam.scaling.StepReport).
py::object step_report(bool skipped, const GradDecision* decision);

// Sets a kernel tensor's master pointer (role `master_role`, when present) and stochastic
// rounding (bfloat16 parameters, when asked) for set i at `step`.
template <class Tensor>
void set_param_options(Tensor& t, const CheckedSets& sets, std::size_t i, std::size_t master_role,
                       const StepOptions& options, std::int64_t step) {
    using P = typename Tensor::value_type;
    if constexpr (fastadam::is_16bit<P>) {
        if (master_role < sets.roles) t.master = sets.data<float>(i, master_role);
        if (std::is_same_v<P, BFloat16> && options.stochastic_rounding) {
            t.rounding = Rounding::stochastic;
            t.rounding_key = rounding_key(options.seed, step);
        }
    }
}

// Runs checked sets of any dtypes as one step: first, when the options ask for it, one pass over
// every gradient (role 1) of every set (nothing is written if the step is skipped); then
// make(P{}, i) builds set i's kernel tensor of parameter type P, its gradient multiplier is
// set, and run(tensors, count) is called once per dtype present, without the GIL. Returns the
// step's report.
template <class Make, class Run>
py::object launch_step(const CheckedSets& sets, const StepOptions& options,
                       std::size_t master_role, const Make& make, const Run& run) {
    const std::size_t n = sets.count();
    if (options.stochastic_rounding) check_stochastic_rounding(sets, master_role);
    double multiplier = 1.0 / options.policy.grad_scale;
    GradDecision decision;
    const bool look = needs_grad_stats(options.policy);
    if (look) {
        std::vector<GradSpan> spans(n);
        for (std::size_t i = 0; i < n; ++i) {
            static constexpr ElementType types[] = {ElementType::float32, ElementType::float64,
                                                    ElementType::float16, ElementType::bfloat16};
            spans[i] = {sets.data<const void>(i, 1), types[static_cast<int>(sets.dtypes[i])],
                        sets.size(i)};
        }
        GradStats stats;
        {
            py::gil_scoped_release release;  // reads raw buffers that `sets` keeps alive
            stats = grad_stats(spans.data(), spans.size());
        }
        decision = decide(options.policy, stats);
        if (decision.skip) return step_report(true, &decision);
        multiplier = decision.grad_multiplier;
    }
    auto tensors_of = [&](auto zero, Dtype wanted) {
        std::vector<decltype(make(zero, std::size_t{0}))> out;
        for (std::size_t i = 0; i < n; ++i)
            if (sets.dtypes[i] == wanted) {
                out.push_back(make(zero, i));
                out.back().grad_multiplier = multiplier;
            }
        return out;
    };
    const auto f32 = tensors_of(0.0f, Dtype::float32);
    const auto f64 = tensors_of(0.0, Dtype::float64);
    const auto f16 = tensors_of(Half{}, Dtype::float16);
    const auto bf16 = tensors_of(BFloat16{}, Dtype::bfloat16);
    {
        // Safe without the GIL: the kernels touch only raw buffers, and `sets` holds a
        // reference to every array until they return.
        py::gil_scoped_release release;
        if (!f32.empty()) run(f32.data(), f32.size());
        if (!f64.empty()) run(f64.data(), f64.size());
        if (!f16.empty()) run(f16.data(), f16.size());
        if (!bf16.empty()) run(bf16.data(), bf16.size());
    }
    return step_report(false, look ? &decision : nullptr);
}

// A tuple entry as a double or a bool, TypeError naming hypers[index] otherwise.
double tuple_double(const py::tuple& t, std::size_t k, std::size_t index);
bool tuple_bool(const py::tuple& t, std::size_t k, std::size_t index);

// `obj` as a tuple of `size` entries (the optimizer classes' hyper-parameter tuples).
py::tuple hyper_tuple(const py::handle& obj, std::size_t size, std::size_t index,
                      const char* layout);

}  // namespace fastadam::python
