// Bindings of the Adam kernels: adam_step (one parameter set), adam_step_multi (a list of sets
// in one native call), adam_step_sets (the optimizer classes' entry) and the bandwidth probe.
// Validate everything, release the GIL, run.
#include <algorithm>
#include <iterator>

#include "fastadam/kernels.hpp"
#include "param_sets.hpp"
#include "register.hpp"

namespace fastadam::python {

// eps_mode: "torch" or "keras" (AdamHyper::keras_eps).
bool keras_eps_arg(PyObject* obj) {
    if (obj == nullptr) return false;
    const std::string mode = str_arg(obj, "eps_mode");
    if (mode != "torch" && mode != "keras")
        throw py::value_error("eps_mode must be 'torch' or 'keras', got '" + mode + "'");
    return mode == "keras";
}

// One hyper-parameter tuple of adam_step_sets, checked: nine entries, or ten with keras_eps.
AdamHyper adam_hyper_from_tuple(PyObject* t, std::size_t i) {
    const bool ten = PyTuple_Check(t) && PyTuple_GET_SIZE(t) == 10;
    check_hyper_tuple(t, ten ? 10 : 9, i,
                      "(lr, beta1, beta2, eps, weight_decay, amsgrad, maximize, decoupled, "
                      "bias_correction[, keras_eps])");
    const AdamHyper h =
        make_adam_hyper(tuple_double(t, 0, i), {tuple_double(t, 1, i), tuple_double(t, 2, i)},
                        tuple_double(t, 3, i), tuple_double(t, 4, i), tuple_bool(t, 5, i),
                        tuple_bool(t, 6, i), tuple_bool(t, 7, i), tuple_bool(t, 8, i),
                        ten && tuple_bool(t, 9, i));
    check_hyper(h);
    return h;
}

namespace {

// Every set has six slots; max_exp_avg_sq (without amsgrad) and master may be left out.
constexpr Role kAdamRoles[] = {{"param", "params", true},
                               {"grad", "grads", false},
                               {"exp_avg", "exp_avgs", true, false, true},
                               {"exp_avg_sq", "exp_avg_sqs", true, false, true},
                               {"max_exp_avg_sq", "max_exp_avg_sqs", true, false, true},
                               {"master", "masters", true, true, true, true}};
constexpr std::size_t kRoles = 6, kMasterRole = 5;

// What a validated call runs: the Adam update, or its memory traffic alone (benchmarks).
enum class Kernel { adam, bandwidth_probe };

// Validates the sets of `objects` (kRoles slots each) and runs them (any dtypes); set i uses
// hypers[per_set_hyper ? i : 0] and steps[i]. Returns the step's report.
py::object launch(const SetObjects& objects, bool amsgrad_all, bool multi, bool mixed_dtypes,
                  const AdamHyper* hypers, bool per_set_hyper, const std::int64_t* steps,
                  const StepOptions& options, Kernel kernel = Kernel::adam) {
    Role roles[kRoles];
    std::copy(std::begin(kAdamRoles), std::end(kAdamRoles), roles);
    roles[4].optional = !amsgrad_all;  // with amsgrad for every set, each needs its array
    const CheckedSets sets = check_sets(objects, roles, kRoles, multi, mixed_dtypes);
    if (options.stochastic_rounding) check_stochastic_rounding(sets, kMasterRole, roles, multi);
    const auto make = [&](auto zero, std::size_t i) {
        using P = decltype(zero);
        using S = state_of_t<P>;
        AdamTensor<P> t;
        t.param = sets.data<P>(i, 0);
        t.grad = sets.data<P>(i, 1);
        t.exp_avg = sets.data<S>(i, 2);
        t.exp_avg_sq = sets.data<S>(i, 3);
        t.max_exp_avg_sq = sets.data<S>(i, 4);
        t.size = sets.size(i);
        t.scalars = make_scalars(hypers[per_set_hyper ? i : 0], steps[i]);
        set_param_options(t, sets, i, kMasterRole, options, steps[i]);
        return t;
    };
    if (kernel == Kernel::adam)
        return launch_step(sets, options, make,
                           [](const auto* t, std::size_t n) { adam_step(t, n); });
    return launch_step(sets, options, make,
                       [](const auto* t, std::size_t n) { bandwidth_probe(t, n); });
}

PyObject* none_to_null(PyObject* obj) { return obj == Py_None ? nullptr : obj; }

// adam_step and adam_step_multi share one parameter layout: four arrays (or lists), then the
// keyword-only step(s) and hyper-parameters.
enum AdamArg {
    kParam,
    kGrad,
    kExpAvg,
    kExpAvgSq,
    kStep,
    kLr,
    kBetas,
    kEps,
    kWeightDecay,
    kAmsgrad,
    kMaxExpAvgSq,
    kMaximize,
    kDecoupled,
    kBiasCorrection,
    kMaster,
    kGradScale,
    kMaxGradNorm,
    kSkipNonfinite,
    kStochasticRounding,
    kSeed,
    kEpsMode
};
// The defaults written here are AdamHyper's (adam_math.hpp), which adam_hyper falls back to.
constexpr const char* kAdamStepParameters =
    "param, grad, exp_avg, exp_avg_sq, *, step, lr=0.001, betas=(0.9, 0.999), eps=1e-08, "
    "weight_decay=0.0, amsgrad=False, max_exp_avg_sq=None, maximize=False, decoupled=False, "
    "bias_correction=True, master=None, grad_scale=1.0, max_grad_norm=None, "
    "skip_nonfinite=False, stochastic_rounding=False, seed=0, eps_mode='torch'";
constexpr const char* kAdamStepMultiParameters =
    "params, grads, exp_avgs, exp_avg_sqs, *, steps, lr=0.001, betas=(0.9, 0.999), eps=1e-08, "
    "weight_decay=0.0, amsgrad=False, max_exp_avg_sqs=None, maximize=False, decoupled=False, "
    "bias_correction=True, masters=None, grad_scale=1.0, max_grad_norm=None, "
    "skip_nonfinite=False, stochastic_rounding=False, seed=0, eps_mode='torch'";

StepOptions options_of(const Args& a) {
    return step_options(a[kGradScale], a[kMaxGradNorm], a[kSkipNonfinite], a[kStochasticRounding],
                        a[kSeed]);
}


// The hyper-parameters of an adam_step or adam_step_multi call, converted and checked.
AdamHyper adam_hyper(const Args& a) {
    const AdamHyper d;
    const AdamHyper h = make_adam_hyper(
        real_arg(a[kLr], "lr", d.lr), pair_arg(a[kBetas], "betas", {d.beta1, d.beta2}),
        real_arg(a[kEps], "eps", d.eps), real_arg(a[kWeightDecay], "weight_decay", d.weight_decay),
        bool_arg(a[kAmsgrad], "amsgrad", d.amsgrad), bool_arg(a[kMaximize], "maximize", d.maximize),
        bool_arg(a[kDecoupled], "decoupled", d.decoupled),
        bool_arg(a[kBiasCorrection], "bias_correction", d.bias_correction),
        keras_eps_arg(a[kEpsMode]));
    check_hyper(h);
    return h;
}

void check_amsgrad_array(bool amsgrad, PyObject* array, const char* name) {
    if (amsgrad && array == nullptr)
        throw py::value_error(std::string(name) + " is required when amsgrad=True");
    if (!amsgrad && array != nullptr)
        throw py::value_error(std::string(name) + " is only used with amsgrad=True");
}

py::object adam_step_one(const Args& a) {
    const AdamHyper h = adam_hyper(a);
    PyObject* max_exp_avg_sq = none_to_null(a[kMaxExpAvgSq]);
    check_amsgrad_array(h.amsgrad, max_exp_avg_sq, "max_exp_avg_sq");
    const std::int64_t step = int_arg(a[kStep], "step");
    check_step(step, "step");
    const StepOptions options = options_of(a);
    // The arrays are the caller's arguments, alive until this returns: no Held needed.
    SetObjects objects;
    for (int k : {kParam, kGrad, kExpAvg, kExpAvgSq}) objects.push_back(a[k]);
    objects.push_back(max_exp_avg_sq);
    objects.push_back(a.given(kMaster) ? none_to_null(a[kMaster]) : nullptr);
    return launch(objects, h.amsgrad, false, false, &h, false, &step, options);
}

py::object adam_step_multi(const Args& a) {
    const AdamHyper h = adam_hyper(a);
    Held held;
    const Items params = list_arg(a[kParam], "params", held);
    const std::size_t n = params.size();
    PyObject* maxes = none_to_null(a[kMaxExpAvgSq]);
    check_amsgrad_array(h.amsgrad, maxes, "max_exp_avg_sqs");
    const Items grads = list_arg(a[kGrad], "grads", n, held);
    const Items exp_avgs = list_arg(a[kExpAvg], "exp_avgs", n, held);
    const Items exp_avg_sqs = list_arg(a[kExpAvgSq], "exp_avg_sqs", n, held);
    const Items max_list = h.amsgrad ? list_arg(maxes, "max_exp_avg_sqs", n, held) : Items();
    PyObject* masters = a.given(kMaster) ? none_to_null(a[kMaster]) : nullptr;
    const Items master_list = masters ? list_arg(masters, "masters", n, held) : Items();
    const auto steps = int_per_set(a[kStep], "steps", n, held);
    for (std::size_t i = 0; i < n; ++i) check_step(steps[i], ArgName{"step", "steps", i, true});
    const StepOptions options = options_of(a);
    SetObjects objects;
    for (std::size_t i = 0; i < n; ++i) {
        for (const Items* list : {&params, &grads, &exp_avgs, &exp_avg_sqs})
            objects.push_back((*list)[i]);
        objects.push_back(h.amsgrad ? max_list[i] : nullptr);
        objects.push_back(masters ? none_to_null(master_list[i]) : nullptr);
    }
    return launch(objects, h.amsgrad, true, false, &h, false, steps.data(), options);
}

py::object bandwidth_probe_multi(const Args& a) {
    Held held;
    const Items params = list_arg(a[0], "params", held);
    const std::size_t n = params.size();
    const Items grads = list_arg(a[1], "grads", n, held);
    const Items exp_avgs = list_arg(a[2], "exp_avgs", n, held);
    const Items exp_avg_sqs = list_arg(a[3], "exp_avg_sqs", n, held);
    PyObject* masters = a.given(4) ? none_to_null(a[4]) : nullptr;
    const Items master_list = masters ? list_arg(masters, "masters", n, held) : Items();
    SetObjects objects;
    for (std::size_t i = 0; i < n; ++i) {
        for (const Items* list : {&params, &grads, &exp_avgs, &exp_avg_sqs})
            objects.push_back((*list)[i]);
        objects.push_back(nullptr);
        objects.push_back(masters ? none_to_null(master_list[i]) : nullptr);
    }
    const AdamHyper h;
    const SmallVector<std::int64_t, 8> steps(n, 1);
    return launch(objects, false, true, true, &h, false, steps.data(), StepOptions{},
                  Kernel::bandwidth_probe);
}


// The optimizer classes' entry: every parameter set of every group and dtype in one call, each
// set with its own step and hyper-parameter tuple (sets of one group share one tuple object,
// which is read once). Everything is validated before anything is written, then one kernel call
// runs per dtype.
py::object adam_step_sets(const Args& a) {
    Held held;
    const Items params = list_arg(a[0], "params", held);
    const std::size_t n = params.size();
    const Items grads = list_arg(a[1], "grads", n, held);
    const Items exp_avgs = list_arg(a[2], "exp_avgs", n, held);
    const Items exp_avg_sqs = list_arg(a[3], "exp_avg_sqs", n, held);
    const Items maxes = list_arg(a[4], "max_exp_avg_sqs", n, held);
    const auto steps = int_per_set(a[5], "steps", n, held);
    const auto hypers = hypers_per_set<AdamHyper>(a[6], n, held, adam_hyper_from_tuple);
    PyObject* masters = a.given(7) ? none_to_null(a[7]) : nullptr;
    const Items master_list = masters ? list_arg(masters, "masters", n, held) : Items();
    const StepOptions options = step_options(a[8]);
    SetObjects objects;
    for (std::size_t i = 0; i < n; ++i) {
        check_step(steps[i], ArgName{"step", "steps", i, true});
        PyObject* max = none_to_null(maxes[i]);
        if (hypers[i].amsgrad != (max != nullptr))
            throw py::value_error(
                "max_exp_avg_sqs[" + std::to_string(i) + "] must be " +
                (hypers[i].amsgrad ? "an array (amsgrad=True)" : "None (amsgrad=False)"));
        for (const Items* list : {&params, &grads, &exp_avgs, &exp_avg_sqs})
            objects.push_back((*list)[i]);
        objects.push_back(max);
        objects.push_back(masters ? none_to_null(master_list[i]) : nullptr);
    }
    return launch(objects, false, true, /*mixed_dtypes=*/true, hypers.data(), true, steps.data(),
                  options);
}

}  // namespace

void register_adam(py::module_& m) {
    def_entry<adam_step_one>(m, "adam_step", kAdamStepParameters,
                             R"doc(One fused Adam/AdamW update of one parameter set, in place.

Parameters
----------
param, grad, exp_avg, exp_avg_sq : numpy.ndarray
    C-contiguous arrays of one shape. param and grad share one dtype: float32, float64, float16
    or bfloat16 (ml_dtypes); the state is of the parameter's dtype, float32 for the 16-bit ones
    (the update runs in float32 and the parameter is rounded once, to nearest even). param,
    exp_avg and exp_avg_sq are updated in place; grad is only read. Nothing is ever converted.
step : int
    The 1-based step count of this update (increment it before calling).
lr, betas, eps, weight_decay, amsgrad, maximize : as torch.optim.Adam.
    Real numbers (Python or NumPy scalars) and bools; a string, an array or a bool in place
    of a number is a TypeError.
max_exp_avg_sq : numpy.ndarray, optional
    Required with amsgrad=True, forbidden otherwise.
decoupled : bool
    Decoupled weight decay (AdamW) instead of L2 added to the gradient.
bias_correction : bool
    Divide by 1 - beta**step as Adam does (default) or not.
eps_mode : str
    "torch" (default): p -= lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps). "keras", as
    tf.keras.optimizers.Adam: p -= lr * sqrt(bc2) / bc1 * m / (sqrt(v) + eps).
master : numpy.ndarray, optional
    float16/bfloat16 parameters only: a float32 master copy that the update reads and writes;
    param is written as its rounding in the same pass.
grad_scale : float
    The factor the loss was multiplied by: the gradient is divided by it (default 1).
max_grad_norm : float, optional
    Clip the gradient's L2 norm (of the unscaled gradient) to this, as torch's clip_grad_norm_.
skip_nonfinite : bool
    When a gradient element is inf or NaN, write nothing and report the step as skipped.
stochastic_rounding, seed : bool, int
    Round a bfloat16 parameter stochastically (unbiased) with random bits keyed by (seed,
    step, element index), so the bits are reproducible on every path. float32 and float64
    parameters are not rounded: their update is the same with or without it. A float16
    parameter is a ValueError, and so is stochastic_rounding together with master.

Returns
-------
StepReport
    skipped, and grad_norm (None unless max_grad_norm or skip_nonfinite asked for the norm).

Raises
------
TypeError, ValueError
    Before any array is written, naming the offending argument.
)doc");
    def_entry<adam_step_multi>(
        m, "adam_step_multi", kAdamStepMultiParameters,
        R"doc(Adam/AdamW update of many parameter sets in one native call, in place.

The lists are aligned element by element; every array of every set is validated before any is
written. All params share one dtype. ``steps`` is one int for all sets or one int per set.
``masters`` is None or one float32 array (or None) per set. max_grad_norm and skip_nonfinite
look at all the sets' gradients together (one global norm). The work of the whole call is split
across the thread pool in contiguous chunks. Hyper-parameters are as for adam_step.
)doc");
    def_entry<adam_step_sets>(
        m, "adam_step_sets",
        "params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps, hypers, masters=None, "
        "options=None, /",
        "The optimizer classes' entry: all parameter sets of all groups and dtypes in one "
        "call. max_exp_avg_sqs holds None for sets without amsgrad; steps is an int or one "
        "per set; hypers is one tuple (lr, beta1, beta2, eps, weight_decay, amsgrad, maximize, "
        "decoupled, bias_correction[, keras_eps]) or one per set; masters is None or one float32 array (or "
        "None) per set; options is None or (grad_scale, max_grad_norm or None, skip_nonfinite, "
        "stochastic_rounding, seed). Everything is validated before anything is written. "
        "Returns a StepReport.");
    def_entry<bandwidth_probe_multi>(
        m, "bandwidth_probe", "params, grads, exp_avgs, exp_avg_sqs, masters=None",
        "Adam's memory traffic without its math (p += g, m += g, v += g), validated and split "
        "across threads exactly like adam_step_multi: the bandwidth reference for benchmarks.");
}

}  // namespace fastadam::python
