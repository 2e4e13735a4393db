// What every optimizer binding shares: reading the Python lists of a multi-tensor call, and
// validating all arrays of all parameter sets (dtype, shape, layout, writability, overlap)
// before any kernel runs.
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <type_traits>

#include "array_checks.hpp"
#include "entry.hpp"
#include "small_vector.hpp"

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

// The objects of a call's sets, set-major: `roles` per set, nullptr for an optional array left
// out (or None). Borrowed: a Held or the caller's arguments keep them alive.
using SetObjects = SmallVector<PyObject*, 40>;

// A list argument's items (borrowed, see list_arg).
using Items = SmallVector<PyObject*, 8>;

// The arrays of all sets, checked; arrays[set * roles + role].
struct CheckedSets {
    std::size_t roles = 0;
    SmallVector<Dtype, 8> dtypes;  // per set
    SmallVector<std::int64_t, 8> sizes;
    SmallVector<CheckedArray, 40> arrays;

    std::size_t count() const { return dtypes.size(); }
    template <class T>
    T* data(std::size_t set, std::size_t role) const {
        return static_cast<T*>(arrays[set * roles + role].data);
    }
    std::int64_t size(std::size_t set) const { return sizes[set]; }
};

// Role 0 must be the parameter: its dtype and shape are what the other roles must match. All
// sets share one dtype unless mixed_dtypes is set.
CheckedSets check_sets(const SetObjects& objects, const Role* roles, std::size_t role_count,
                       bool multi, bool mixed_dtypes = false);

// The items of a list or tuple (or another sequence; never a str, bytes or array), each held
// in `held` so that the caller may use them as borrowed references until it returns;
// TypeError/ValueError naming `name`, optionally for a wrong length.
Items list_arg(PyObject* obj, const char* name, Held& held);
Items list_arg(PyObject* obj, const char* name, std::size_t size, Held& held);

// An int for every set, or a list of `size` ints (one per set); TypeError/ValueError naming
// `name` (or `name[i]`).
SmallVector<std::int64_t, 8> int_per_set(PyObject* obj, const char* name, std::size_t size,
                                         Held& held);

// The same for bools.
SmallVector<bool, 8> bool_per_set(PyObject* obj, const char* name, std::size_t size, Held& held);

// Hyper-parameters per set from `obj`: one tuple for every set, or a list of `size` tuples.
// Sets of one optimizer group share one tuple object, which `parse(tuple, index)` reads once.
template <class Hyper, class Parse>
SmallVector<Hyper, 8> hypers_per_set(PyObject* obj, std::size_t size, Held& held,
                                     const Parse& parse) {
    const bool one = PyTuple_Check(obj);
    const Items objects = one ? Items() : list_arg(obj, "hypers", size, held);
    SmallVector<Hyper, 8> out(size, Hyper{});
    PyObject* previous = nullptr;
    for (std::size_t i = 0; i < size; ++i) {
        PyObject* h = one ? obj : objects[i];
        out[i] = h == previous ? out[i - 1] : parse(h, i);
        previous = h;
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

// Validated: grad_scale finite and > 0, max_grad_norm None or finite and > 0; null arguments
// (left out) take the defaults.
StepOptions step_options(PyObject* grad_scale, PyObject* max_grad_norm, PyObject* skip_nonfinite,
                         PyObject* stochastic_rounding, PyObject* seed);
// From (grad_scale, max_grad_norm, skip_nonfinite, stochastic_rounding, seed), or None/null.
StepOptions step_options(PyObject* options);

// ValueError unless stochastic rounding can apply: no float16 parameter, no master copy.
void check_stochastic_rounding(const CheckedSets& sets, std::size_t master_role,
                               const Role* roles, bool multi);

// The report a step returns (fastadam.scaling.StepReport); `decision` null when the step did not
// look at its gradients.
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

// The look at every gradient (role 1) of every set that the options may ask for, before
// anything is written: whether it was taken, its decision (skip, norm) and the gradient
// multiplier for the kernel tensors.
struct GradLook {
    bool looked = false;
    GradDecision decision;
    double multiplier = 1.0;
};
GradLook look_at_grads(const CheckedSets& sets, const StepOptions& options);

// Elements of all sets.
std::int64_t total_size(const CheckedSets& sets);

// Runs checked sets of any dtypes as one step: first, when the options ask for it, one pass over
// every gradient (role 1) of every set (nothing is written if the step is skipped); then
// make(P{}, i) builds set i's kernel tensor of parameter type P, its gradient multiplier is
// set, and run(tensors, count) is called once per dtype present, without the GIL. A call that
// needs several kernels starts the thread pool first, so that nothing is written unless all
// run. Returns the step's report.
template <class Make, class Run>
py::object launch_step(const CheckedSets& sets, const StepOptions& options, const Make& make,
                       const Run& run) {
    const std::size_t n = sets.count();
    const GradLook grads = look_at_grads(sets, options);
    if (grads.decision.skip) return step_report(true, &grads.decision);
    const double multiplier = grads.multiplier;
    const std::int64_t total = total_size(sets);
    SmallVector<decltype(make(0.0f, std::size_t{0})), 4> f32;
    SmallVector<decltype(make(0.0, std::size_t{0})), 4> f64;
    SmallVector<decltype(make(Half{}, std::size_t{0})), 4> f16;
    SmallVector<decltype(make(BFloat16{}, std::size_t{0})), 4> bf16;
    auto add = [&](auto& list, auto zero, std::size_t i) {
        list.push_back(make(zero, i));
        list[list.size() - 1].grad_multiplier = multiplier;
    };
    for (std::size_t i = 0; i < n; ++i) {
        switch (sets.dtypes[i]) {
            case Dtype::float32: add(f32, 0.0f, i); break;
            case Dtype::float64: add(f64, 0.0, i); break;
            case Dtype::float16: add(f16, Half{}, i); break;
            case Dtype::bfloat16: add(bf16, BFloat16{}, i); break;
        }
    }
    // The pool is the one thing a kernel can fail to get (threads refused): the first dtype's
    // update must not be written when another cannot run.
    const int kinds = !f32.empty() + !f64.empty() + !f16.empty() + !bf16.empty();
    if (kinds > 1 && total >= kParallelThreshold) start_threads();
    // The kernels touch only raw buffers, which the caller keeps alive until they return.
    without_gil([&] {
        if (!f32.empty()) run(f32.data(), f32.size());
        if (!f64.empty()) run(f64.data(), f64.size());
        if (!f16.empty()) run(f16.data(), f16.size());
        if (!bf16.empty()) run(bf16.data(), bf16.size());
    });
    return step_report(false, grads.looked ? &grads.decision : nullptr);
}

// A tuple entry as a double or a bool, TypeError naming hypers[index][k] otherwise.
double tuple_double(PyObject* t, std::size_t k, std::size_t index);
bool tuple_bool(PyObject* t, std::size_t k, std::size_t index);

// Adam's hyper-parameters from the classes' tuple (register_adam.cpp: nine entries, or ten with
// keras_eps), and the eps_mode argument ("torch" or "keras", true for keras; null: torch).
AdamHyper adam_hyper_from_tuple(PyObject* t, std::size_t index);
bool keras_eps_arg(PyObject* obj);

// `obj` as a tuple of `size` entries (the optimizer classes' hyper-parameter tuples).
void check_hyper_tuple(PyObject* obj, std::size_t size, std::size_t index, const char* layout);

}  // namespace fastadam::python
