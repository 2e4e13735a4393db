// Bindings of the Adam kernels: adam_step (one parameter set), adam_step_multi (a list of sets
// in one native call) and the bandwidth probe. Validate everything, release the GIL, run.
#include <utility>

#include "fastadam/kernels.hpp"
#include "param_sets.hpp"
#include "register.hpp"

namespace fastadam::python {

namespace {

const std::vector<Role> kAdamRoles = {{"param", "params", true},
                                      {"grad", "grads", false},
                                      {"exp_avg", "exp_avgs", true},
                                      {"exp_avg_sq", "exp_avg_sqs", true},
                                      {"max_exp_avg_sq", "max_exp_avg_sqs", true}};

// What a validated call runs: the Adam update, or its memory traffic alone (benchmarks).
enum class Kernel { adam, bandwidth_probe };

// Runs validated sets (either dtype), each with its own coefficients.
void launch(const CheckedSets& sets, const std::vector<AdamHyper>& hypers,
            const std::vector<std::int64_t>& steps, Kernel kernel) {
    const auto make = [&](auto zero, std::size_t i) {
        using T = decltype(zero);
        AdamTensor<T> t;
        t.param = sets.data<T>(i, 0);
        t.grad = sets.data<T>(i, 1);
        t.exp_avg = sets.data<T>(i, 2);
        t.exp_avg_sq = sets.data<T>(i, 3);
        t.max_exp_avg_sq = sets.roles > 4 ? sets.data<T>(i, 4) : nullptr;
        t.size = sets.size(i);
        t.scalars = make_scalars(hypers[i], steps[i]);
        return t;
    };
    if (kernel == Kernel::adam)
        launch_by_dtype(sets, make, [](const auto* t, std::size_t n) { adam_step(t, n); });
    else
        launch_by_dtype(sets, make, [](const auto* t, std::size_t n) { bandwidth_probe(t, n); });
}

// Validates the hyper-parameters, steps and every array, then runs. `sets[i]` holds param,
// grad, exp_avg, exp_avg_sq and, with amsgrad, max_exp_avg_sq.
void run(const std::vector<std::vector<py::handle>>& sets, const AdamHyper& hyper,
         const std::vector<std::int64_t>& steps, bool multi, Kernel kernel = Kernel::adam) {
    check_hyper(hyper);
    for (std::size_t i = 0; i < steps.size(); ++i)
        check_step(steps[i], ArgName{"step", "steps", i, multi});
    const std::vector<Role> roles(kAdamRoles.begin(), kAdamRoles.begin() + (hyper.amsgrad ? 5 : 4));
    const CheckedSets checked = check_sets(sets, roles, multi);
    launch(checked, std::vector<AdamHyper>(sets.size(), hyper), steps, kernel);
}

void adam_step_one(py::object param, py::object grad, py::object exp_avg, py::object exp_avg_sq,
                   py::object step, double lr, std::pair<double, double> betas, double eps,
                   double weight_decay, bool amsgrad, py::object max_exp_avg_sq, bool maximize,
                   bool decoupled, bool bias_correction) {
    const AdamHyper h =
        make_adam_hyper(lr, betas, eps, weight_decay, amsgrad, maximize, decoupled, bias_correction);
    if (amsgrad && max_exp_avg_sq.is_none())
        throw py::value_error("max_exp_avg_sq is required when amsgrad=True");
    if (!amsgrad && !max_exp_avg_sq.is_none())
        throw py::value_error("max_exp_avg_sq is only used with amsgrad=True");
    run({{param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq}}, h, int_per_set(step, "step", 1),
        false);
}

// The sets of a multi call from its aligned lists (max_exp_avg_sqs only with amsgrad).
std::vector<std::vector<py::handle>> adam_sets(const std::vector<py::object>& params,
                                               py::handle grads, py::handle exp_avgs,
                                               py::handle exp_avg_sqs, bool amsgrad,
                                               py::handle max_exp_avg_sqs,
                                               std::vector<py::object>& keep_alive) {
    const std::size_t n = params.size();
    if (amsgrad && max_exp_avg_sqs.is_none())
        throw py::value_error("max_exp_avg_sqs is required when amsgrad=True");
    if (!amsgrad && !max_exp_avg_sqs.is_none())
        throw py::value_error("max_exp_avg_sqs is only used with amsgrad=True");
    const std::vector<std::vector<py::object>> lists = {
        as_list(grads, "grads", n), as_list(exp_avgs, "exp_avgs", n),
        as_list(exp_avg_sqs, "exp_avg_sqs", n),
        amsgrad ? as_list(max_exp_avg_sqs, "max_exp_avg_sqs", n) : std::vector<py::object>(n)};
    std::vector<std::vector<py::handle>> sets(n);
    for (std::size_t i = 0; i < n; ++i) {
        sets[i] = {params[i], lists[0][i], lists[1][i], lists[2][i], lists[3][i]};
        for (const auto& list : lists) keep_alive.push_back(list[i]);
    }
    return sets;
}

void adam_step_multi(py::object params, py::object grads, py::object exp_avgs,
                     py::object exp_avg_sqs, py::object steps, double lr,
                     std::pair<double, double> betas, double eps, double weight_decay,
                     bool amsgrad, py::object max_exp_avg_sqs, bool maximize, bool decoupled,
                     bool bias_correction) {
    const AdamHyper h =
        make_adam_hyper(lr, betas, eps, weight_decay, amsgrad, maximize, decoupled, bias_correction);
    const auto p = as_list(params, "params");
    std::vector<py::object> keep_alive;
    const auto sets = adam_sets(p, grads, exp_avgs, exp_avg_sqs, amsgrad, max_exp_avg_sqs, keep_alive);
    run(sets, h, int_per_set(steps, "steps", p.size()), true);
}

void bandwidth_probe_multi(py::object params, py::object grads, py::object exp_avgs,
                           py::object exp_avg_sqs) {
    const auto p = as_list(params, "params");
    std::vector<py::object> keep_alive;
    const auto sets = adam_sets(p, grads, exp_avgs, exp_avg_sqs, false, py::none(), keep_alive);
    run(sets, AdamHyper{}, std::vector<std::int64_t>(p.size(), 1), true, Kernel::bandwidth_probe);
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
void adam_step_sets(py::object params, py::object grads, py::object exp_avgs,
                    py::object exp_avg_sqs, py::object max_exp_avg_sqs, py::object steps,
                    py::object hypers) {
    const auto p = as_list(params, "params");
    const std::size_t n = p.size();
    const std::vector<std::vector<py::object>> lists = {
        as_list(grads, "grads", n), as_list(exp_avgs, "exp_avgs", n),
        as_list(exp_avg_sqs, "exp_avg_sqs", n), as_list(max_exp_avg_sqs, "max_exp_avg_sqs", n)};
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
        sets[i] = {p[i], lists[0][i], lists[1][i], lists[2][i], lists[3][i]};
    std::vector<Role> roles = kAdamRoles;
    roles[4].optional = true;
    launch(check_sets(sets, roles, true, /*mixed_dtypes=*/true), hyper_list, step_list,
           Kernel::adam);
}

}  // namespace

void register_adam(py::module_& m) {
    using namespace pybind11::literals;
    m.def("adam_step", &adam_step_one, "param"_a, "grad"_a, "exp_avg"_a, "exp_avg_sq"_a,
          py::kw_only(), "step"_a, "lr"_a = 1e-3, "betas"_a = std::make_pair(0.9, 0.999),
          "eps"_a = 1e-8, "weight_decay"_a = 0.0, "amsgrad"_a = false,
          "max_exp_avg_sq"_a = py::none(), "maximize"_a = false, "decoupled"_a = false,
          "bias_correction"_a = true,
          R"doc(One fused Adam/AdamW update of one parameter set, in place.

Parameters
----------
param, grad, exp_avg, exp_avg_sq : numpy.ndarray
    C-contiguous arrays of one shape and one dtype (float32 or float64). param, exp_avg and
    exp_avg_sq are updated in place; grad is only read. Nothing is ever converted.
step : int
    The 1-based step count of this update (increment it before calling).
lr, betas, eps, weight_decay, amsgrad, maximize : as torch.optim.Adam.
max_exp_avg_sq : numpy.ndarray, optional
    Required with amsgrad=True, forbidden otherwise.
decoupled : bool
    Decoupled weight decay (AdamW) instead of L2 added to the gradient.
bias_correction : bool
    Divide by 1 - beta**step as Adam does (default) or not.

Raises
------
TypeError, ValueError
    Before any array is written, naming the offending argument.
)doc");
    m.def("adam_step_multi", &adam_step_multi, "params"_a, "grads"_a, "exp_avgs"_a,
          "exp_avg_sqs"_a, py::kw_only(), "steps"_a, "lr"_a = 1e-3,
          "betas"_a = std::make_pair(0.9, 0.999), "eps"_a = 1e-8, "weight_decay"_a = 0.0,
          "amsgrad"_a = false, "max_exp_avg_sqs"_a = py::none(), "maximize"_a = false,
          "decoupled"_a = false, "bias_correction"_a = true,
          R"doc(Adam/AdamW update of many parameter sets in one native call, in place.

The lists are aligned element by element; every array of every set is validated before any is
written. All params share one dtype. ``steps`` is one int for all sets or one int per set.
The work of the whole call is split across the thread pool in contiguous chunks.
Hyper-parameters are as for adam_step.
)doc");
    m.def("adam_step_sets", &adam_step_sets, "params"_a, "grads"_a, "exp_avgs"_a,
          "exp_avg_sqs"_a, "max_exp_avg_sqs"_a, "steps"_a, "hypers"_a, py::pos_only(),
          "The optimizer classes' entry: all parameter sets of all groups and dtypes in one "
          "call. max_exp_avg_sqs holds None for sets without amsgrad; steps is an int or one "
          "per set; hypers is one tuple (lr, beta1, beta2, eps, weight_decay, amsgrad, maximize, "
          "decoupled, bias_correction) or one per set. Everything is validated before anything "
          "is written.");
    m.def("bandwidth_probe", &bandwidth_probe_multi, "params"_a, "grads"_a, "exp_avgs"_a,
          "exp_avg_sqs"_a,
          "Adam's memory traffic without its math (p += g, m += g, v += g), validated and split "
          "across threads exactly like adam_step_multi: the bandwidth reference for benchmarks.");
}

}  // namespace fastadam::python
