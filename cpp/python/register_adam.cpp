// Bindings of the Adam kernels: adam_step (one parameter set), adam_step_multi (a list of sets
// in one native call) and the bandwidth probe. Validate everything, release the GIL, run.
#include <utility>

#include "fastadam/kernels.hpp"
#include "param_sets.hpp"
#include "register.hpp"

namespace fastadam::python {

namespace {

// The master copy is the last role, optional; max_exp_avg_sq is optional in the sets entry.
const std::vector<Role> kAdamRoles = {{"param", "params", true},
                                      {"grad", "grads", false},
                                      {"exp_avg", "exp_avgs", true, false, true},
                                      {"exp_avg_sq", "exp_avg_sqs", true, false, true},
                                      {"max_exp_avg_sq", "max_exp_avg_sqs", true, true, true},
                                      {"master", "masters", true, true, true, true}};
constexpr std::size_t kMasterRole = 5;

// What a validated call runs: the Adam update, or its memory traffic alone (benchmarks).
enum class Kernel { adam, bandwidth_probe };

// Runs validated sets (any dtypes), each with its own coefficients; returns the report.
py::object launch(const CheckedSets& sets, const std::vector<AdamHyper>& hypers,
                  const std::vector<std::int64_t>& steps, const StepOptions& options,
                  Kernel kernel) {
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
        t.scalars = make_scalars(hypers[i], steps[i]);
        set_param_options(t, sets, i, kMasterRole, options, steps[i]);
        return t;
    };
    if (kernel == Kernel::adam)
        return launch_step(sets, options, kMasterRole, make,
                           [](const auto* t, std::size_t n) { adam_step(t, n); });
    return launch_step(sets, options, kMasterRole, make,
                       [](const auto* t, std::size_t n) { bandwidth_probe(t, n); });
}

// Validates the hyper-parameters, steps and every array, then runs. `sets[i]` holds param,
// grad, exp_avg, exp_avg_sq, max_exp_avg_sq (None without amsgrad) and master (or None).
py::object run(const std::vector<std::vector<py::handle>>& sets, const AdamHyper& hyper,
               const std::vector<std::int64_t>& steps, bool multi, const StepOptions& options,
               Kernel kernel = Kernel::adam) {
    check_hyper(hyper);
    for (std::size_t i = 0; i < steps.size(); ++i)
        check_step(steps[i], ArgName{"step", "steps", i, multi});
    std::vector<Role> roles = kAdamRoles;
    roles[4].optional = !hyper.amsgrad;  // with amsgrad every set needs its array
    const CheckedSets checked = check_sets(sets, roles, multi);
    return launch(checked, std::vector<AdamHyper>(sets.size(), hyper), steps, options, kernel);
}

py::object adam_step_one(py::object param, py::object grad, py::object exp_avg,
                         py::object exp_avg_sq, py::object step, double lr,
                         std::pair<double, double> betas, double eps, double weight_decay,
                         bool amsgrad, py::object max_exp_avg_sq, bool maximize, bool decoupled,
                         bool bias_correction, py::object master, double grad_scale,
                         py::object max_grad_norm, bool skip_nonfinite, bool stochastic_rounding,
                         py::object seed) {
    const AdamHyper h =
        make_adam_hyper(lr, betas, eps, weight_decay, amsgrad, maximize, decoupled, bias_correction);
    if (amsgrad && max_exp_avg_sq.is_none())
        throw py::value_error("max_exp_avg_sq is required when amsgrad=True");
    if (!amsgrad && !max_exp_avg_sq.is_none())
        throw py::value_error("max_exp_avg_sq is only used with amsgrad=True");
    const StepOptions options =
        step_options(grad_scale, max_grad_norm, skip_nonfinite, stochastic_rounding, seed);
    return run({{param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, master}}, h,
               int_per_set(step, "step", 1), false, options);
}

// The sets of a multi call from its aligned lists (max_exp_avg_sqs only with amsgrad).
std::vector<std::vector<py::handle>> adam_sets(const std::vector<py::object>& params,
                                               py::handle grads, py::handle exp_avgs,
                                               py::handle exp_avg_sqs, bool amsgrad,
                                               py::handle max_exp_avg_sqs, py::handle masters,
                                               std::vector<py::object>& keep_alive) {
    const std::size_t n = params.size();
    if (amsgrad && max_exp_avg_sqs.is_none())
        throw py::value_error("max_exp_avg_sqs is required when amsgrad=True");
    if (!amsgrad && !max_exp_avg_sqs.is_none())
        throw py::value_error("max_exp_avg_sqs is only used with amsgrad=True");
    const std::vector<std::vector<py::object>> lists = {
        as_list(grads, "grads", n), as_list(exp_avgs, "exp_avgs", n),
        as_list(exp_avg_sqs, "exp_avg_sqs", n),
        amsgrad ? as_list(max_exp_avg_sqs, "max_exp_avg_sqs", n) : std::vector<py::object>(n),
        masters.is_none() ? std::vector<py::object>(n) : as_list(masters, "masters", n)};
    std::vector<std::vector<py::handle>> sets(n);
    for (std::size_t i = 0; i < n; ++i) {
        sets[i] = {params[i], lists[0][i], lists[1][i], lists[2][i], lists[3][i], lists[4][i]};
        for (const auto& list : lists) keep_alive.push_back(list[i]);
    }
    return sets;
}

py::object adam_step_multi(py::object params, py::object grads, py::object exp_avgs,
                           py::object exp_avg_sqs, py::object steps, double lr,
                           std::pair<double, double> betas, double eps, double weight_decay,
                           bool amsgrad, py::object max_exp_avg_sqs, bool maximize,
                           bool decoupled, bool bias_correction, py::object masters,
                           double grad_scale, py::object max_grad_norm, bool skip_nonfinite,
                           bool stochastic_rounding, py::object seed) {
    const AdamHyper h =
        make_adam_hyper(lr, betas, eps, weight_decay, amsgrad, maximize, decoupled, bias_correction);
    const StepOptions options =
        step_options(grad_scale, max_grad_norm, skip_nonfinite, stochastic_rounding, seed);
    const auto p = as_list(params, "params");
    std::vector<py::object> keep_alive;
    const auto sets = adam_sets(p, grads, exp_avgs, exp_avg_sqs, amsgrad, max_exp_avg_sqs, masters,
                                keep_alive);
    return run(sets, h, int_per_set(steps, "steps", p.size()), true, options);
}

void bandwidth_probe_multi(py::object params, py::object grads, py::object exp_avgs,
                           py::object exp_avg_sqs, py::object masters) {
    const auto p = as_list(params, "params");
    std::vector<py::object> keep_alive;
    const auto sets =
        adam_sets(p, grads, exp_avgs, exp_avg_sqs, false, py::none(), masters, keep_alive);
    run(sets, AdamHyper{}, std::vector<std::int64_t>(p.size(), 1), true, StepOptions{},
        Kernel::bandwidth_probe);
}

// One hyper-parameter tuple of adam_step_sets, checked.
AdamHyper hyper_from_tuple(const py::handle& obj, std::size_t i) {
    const py::tuple t = hyper_tuple(obj, 9, i,
                                    "(lr, beta1, beta2, eps, weight_decay, amsgrad, maximize, "
                                    "decoupled, bias_correction)");
    const AdamHyper h = make_adam_hyper(
        tuple_double(t, 0, i), {tuple_double(t, 1, i), tuple_double(t, 2, i)},
        tuple_double(t, 3, i), tuple_double(t, 4, i), tuple_bool(t, 5, i), tuple_bool(t, 6, i),
        tuple_bool(t, 7, i), tuple_bool(t, 8, i));
    check_hyper(h);
    return h;
}

// The optimizer classes' entry: every parameter set of every group and dtype in one call, each
// set with its own step and hyper-parameter tuple (sets of one group share one tuple object,
// which is read once). All arguments positional: pybind11 looks each keyword argument up by a
// freshly made string, which costs more than the whole update of a small tensor. Everything is
// validated before anything is written, then one kernel call runs per dtype.
py::object adam_step_sets(py::object params, py::object grads, py::object exp_avgs,
                          py::object exp_avg_sqs, py::object max_exp_avg_sqs, py::object steps,
                          py::object hypers, py::object masters, py::object options) {
    const auto p = as_list(params, "params");
    const std::size_t n = p.size();
    const std::vector<std::vector<py::object>> lists = {
        as_list(grads, "grads", n), as_list(exp_avgs, "exp_avgs", n),
        as_list(exp_avg_sqs, "exp_avg_sqs", n), as_list(max_exp_avg_sqs, "max_exp_avg_sqs", n),
        masters.is_none() ? std::vector<py::object>(n) : as_list(masters, "masters", n)};
    const StepOptions step_opts = step_options(options);
    const auto step_list = int_per_set(steps, "steps", n);
    const auto hyper_list = hypers_per_set<AdamHyper>(hypers, n, hyper_from_tuple);
    for (std::size_t i = 0; i < n; ++i) {
        check_step(step_list[i], ArgName{"step", "steps", i, true});
        if (hyper_list[i].amsgrad == lists[3][i].is_none())
            throw py::value_error("max_exp_avg_sqs[" + std::to_string(i) + "] must be " +
                                  (hyper_list[i].amsgrad ? "an array (amsgrad=True)"
                                                         : "None (amsgrad=False)"));
    }
    std::vector<std::vector<py::handle>> sets(n);
    for (std::size_t i = 0; i < n; ++i)
        sets[i] = {p[i], lists[0][i], lists[1][i], lists[2][i], lists[3][i], lists[4][i]};
    return launch(check_sets(sets, kAdamRoles, true, /*mixed_dtypes=*/true), hyper_list,
                  step_list, step_opts, Kernel::adam);
}

}  // namespace

void register_adam(py::module_& m) {
    using namespace pybind11::literals;
    m.def("adam_step", &adam_step_one, "param"_a, "grad"_a, "exp_avg"_a, "exp_avg_sq"_a,
          py::kw_only(), "step"_a, "lr"_a = 1e-3, "betas"_a = std::make_pair(0.9, 0.999),
          "eps"_a = 1e-8, "weight_decay"_a = 0.0, "amsgrad"_a = false,
          "max_exp_avg_sq"_a = py::none(), "maximize"_a = false, "decoupled"_a = false,
          "bias_correction"_a = true, "master"_a = py::none(), "grad_scale"_a = 1.0,
          "max_grad_norm"_a = py::none(), "skip_nonfinite"_a = false,
          "stochastic_rounding"_a = false, "seed"_a = 0,
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
max_exp_avg_sq : numpy.ndarray, optional
    Required with amsgrad=True, forbidden otherwise.
decoupled : bool
    Decoupled weight decay (AdamW) instead of L2 added to the gradient.
bias_correction : bool
    Divide by 1 - beta**step as Adam does (default) or not.
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
    bfloat16 parameters only: round the parameter stochastically (unbiased) with random bits
    keyed by (seed, step, element index), so the bits are reproducible on every path.

Returns
-------
StepReport
    skipped, and grad_norm (None unless max_grad_norm or skip_nonfinite asked for the norm).

Raises
------
TypeError, ValueError
    Before any array is written, naming the offending argument.
)doc");
    m.def("adam_step_multi", &adam_step_multi, "params"_a, "grads"_a, "exp_avgs"_a,
          "exp_avg_sqs"_a, py::kw_only(), "steps"_a, "lr"_a = 1e-3,
          "betas"_a = std::make_pair(0.9, 0.999), "eps"_a = 1e-8, "weight_decay"_a = 0.0,
          "amsgrad"_a = false, "max_exp_avg_sqs"_a = py::none(), "maximize"_a = false,
          "decoupled"_a = false, "bias_correction"_a = true, "masters"_a = py::none(),
          "grad_scale"_a = 1.0, "max_grad_norm"_a = py::none(), "skip_nonfinite"_a = false,
          "stochastic_rounding"_a = false, "seed"_a = 0,
          R"doc(Adam/AdamW update of many parameter sets in one native call, in place.

The lists are aligned element by element; every array of every set is validated before any is
written. All params share one dtype. ``steps`` is one int for all sets or one int per set.
``masters`` is None or one float32 array (or None) per set. max_grad_norm and skip_nonfinite
look at all the sets' gradients together (one global norm). The work of the whole call is split
across the thread pool in contiguous chunks. Hyper-parameters are as for adam_step.
)doc");
    m.def("adam_step_sets", &adam_step_sets, "params"_a, "grads"_a, "exp_avgs"_a,
          "exp_avg_sqs"_a, "max_exp_avg_sqs"_a, "steps"_a, "hypers"_a, "masters"_a = py::none(),
          "options"_a = py::none(), py::pos_only(),
          "The optimizer classes' entry: all parameter sets of all groups and dtypes in one "
          "call. max_exp_avg_sqs holds None for sets without amsgrad; steps is an int or one "
          "per set; hypers is one tuple (lr, beta1, beta2, eps, weight_decay, amsgrad, maximize, "
          "decoupled, bias_correction) or one per set; masters is None or one float32 array (or "
          "None) per set; options is None or (grad_scale, max_grad_norm or None, skip_nonfinite, "
          "stochastic_rounding, seed). Everything is validated before anything is written. "
          "Returns a StepReport.");
    m.def("bandwidth_probe", &bandwidth_probe_multi, "params"_a, "grads"_a, "exp_avgs"_a,
          "exp_avg_sqs"_a, "masters"_a = py::none(),
          "Adam's memory traffic without its math (p += g, m += g, v += g), validated and split "
          "across threads exactly like adam_step_multi: the bandwidth reference for benchmarks.");
}

}  // namespace fastadam::python
