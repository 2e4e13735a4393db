// Bindings of the Adagrad kernels (torch.optim.Adagrad semantics): adagrad_step and
// adagrad_step_multi.
#include "fastadam/kernels.hpp"
#include "param_sets.hpp"
#include "register.hpp"

namespace fastadam::python {

namespace {

const std::vector<Role> kAdagradRoles = {{"param", "params", true},
                                         {"grad", "grads", false},
                                         {"state_sum", "state_sums", true, false, true},
                                         {"master", "masters", true, true, true, true}};
constexpr std::size_t kMasterRole = 3;

// Runs validated sets (any dtypes), each with its own hyper-parameters and step.
py::object launch(const CheckedSets& sets, const std::vector<AdagradHyper>& hypers,
                  const std::vector<std::int64_t>& steps, const StepOptions& options) {
    const auto make = [&](auto zero, std::size_t i) {
        using P = decltype(zero);
        AdagradTensor<P> t;
        t.param = sets.data<P>(i, 0);
        t.grad = sets.data<P>(i, 1);
        t.state_sum = sets.data<state_of_t<P>>(i, 2);
        t.size = sets.size(i);
        t.scalars = make_scalars(hypers[i], steps[i]);
        set_param_options(t, sets, i, kMasterRole, options, steps[i]);
        return t;
    };
    return launch_step(sets, options, kMasterRole, make,
                       [](const auto* t, std::size_t n) { adagrad_step(t, n); });
}

// Validates the hyper-parameters (one per set), steps and every array, then runs. Each set is
// (param, grad, state_sum, master or None).
py::object run(const std::vector<std::vector<py::handle>>& sets,
               const std::vector<AdagradHyper>& hypers, const std::vector<std::int64_t>& steps,
               bool multi, const StepOptions& options, bool mixed_dtypes = false) {
    for (std::size_t i = 0; i < steps.size(); ++i)
        check_step(steps[i], ArgName{"step", "steps", i, multi});
    return launch(check_sets(sets, kAdagradRoles, multi, mixed_dtypes), hypers, steps, options);
}

AdagradHyper make_hyper(double lr, double lr_decay, double weight_decay, double eps,
                        bool maximize) {
    AdagradHyper h;
    h.lr = lr;
    h.lr_decay = lr_decay;
    h.weight_decay = weight_decay;
    h.eps = eps;
    h.maximize = maximize;
    return h;
}

// The optimizer classes' entry, as adam_step_sets: every set of every group and dtype in one
// call, all arguments positional.
py::object adagrad_step_sets(py::object params, py::object grads, py::object state_sums,
                             py::object steps, py::object hypers, py::object masters,
                             py::object options) {
    const auto p = as_list(params, "params");
    const std::size_t n = p.size();
    const auto g = as_list(grads, "grads", n);
    const auto s = as_list(state_sums, "state_sums", n);
    const auto ms = masters.is_none() ? std::vector<py::object>(n) : as_list(masters, "masters", n);
    const StepOptions opts = step_options(options);
    const auto hyper_list =
        hypers_per_set<AdagradHyper>(hypers, n, [](py::handle obj, std::size_t i) {
            const py::tuple t =
                hyper_tuple(obj, 5, i, "(lr, lr_decay, weight_decay, eps, maximize)");
            const AdagradHyper h = make_hyper(tuple_double(t, 0, i), tuple_double(t, 1, i),
                                              tuple_double(t, 2, i), tuple_double(t, 3, i),
                                              tuple_bool(t, 4, i));
            check_hyper(h);
            return h;
        });
    std::vector<std::vector<py::handle>> sets(n);
    for (std::size_t i = 0; i < n; ++i) sets[i] = {p[i], g[i], s[i], ms[i]};
    return run(sets, hyper_list, int_per_set(steps, "steps", n), true, opts,
               /*mixed_dtypes=*/true);
}

}  // namespace

void register_adagrad(py::module_& m) {
    using namespace pybind11::literals;
    m.def(
        "adagrad_step",
        [](py::object param, py::object grad, py::object state_sum, py::object step, double lr,
           double lr_decay, double weight_decay, double eps, bool maximize, py::object master,
           double grad_scale, py::object max_grad_norm, bool skip_nonfinite,
           bool stochastic_rounding, py::object seed) {
            const AdagradHyper h = make_hyper(lr, lr_decay, weight_decay, eps, maximize);
            check_hyper(h);
            const StepOptions o = step_options(grad_scale, max_grad_norm, skip_nonfinite,
                                               stochastic_rounding, seed);
            return run({{param, grad, state_sum, master}}, {h}, int_per_set(step, "step", 1),
                       false, o);
        },
        "param"_a, "grad"_a, "state_sum"_a, py::kw_only(), "step"_a, "lr"_a = 1e-2,
        "lr_decay"_a = 0.0, "weight_decay"_a = 0.0, "eps"_a = 1e-10, "maximize"_a = false,
        "master"_a = py::none(), "grad_scale"_a = 1.0, "max_grad_norm"_a = py::none(),
        "skip_nonfinite"_a = false, "stochastic_rounding"_a = false, "seed"_a = 0,
        R"doc(One Adagrad update of one parameter set, in place (torch.optim.Adagrad semantics).

state_sum is the running sum of squared gradients (start it at initial_accumulator_value).
step is the 1-based step count after incrementing. Dtypes, master, grad_scale,
max_grad_norm, skip_nonfinite, stochastic_rounding and seed as for adam_step; returns a
StepReport. Validation as for adam_step.
)doc");
    m.def(
        "adagrad_step_multi",
        [](py::object params, py::object grads, py::object state_sums, py::object steps,
           double lr, double lr_decay, double weight_decay, double eps, bool maximize,
           py::object masters, double grad_scale, py::object max_grad_norm, bool skip_nonfinite,
           bool stochastic_rounding, py::object seed) {
            const auto p = as_list(params, "params");
            const auto g = as_list(grads, "grads", p.size());
            const auto s = as_list(state_sums, "state_sums", p.size());
            const auto ms = masters.is_none() ? std::vector<py::object>(p.size())
                                              : as_list(masters, "masters", p.size());
            std::vector<std::vector<py::handle>> sets(p.size());
            for (std::size_t i = 0; i < p.size(); ++i) sets[i] = {p[i], g[i], s[i], ms[i]};
            const AdagradHyper h = make_hyper(lr, lr_decay, weight_decay, eps, maximize);
            check_hyper(h);
            const StepOptions o = step_options(grad_scale, max_grad_norm, skip_nonfinite,
                                               stochastic_rounding, seed);
            return run(sets, std::vector<AdagradHyper>(p.size(), h),
                       int_per_set(steps, "steps", p.size()), true, o);
        },
        "params"_a, "grads"_a, "state_sums"_a, py::kw_only(), "steps"_a, "lr"_a = 1e-2,
        "lr_decay"_a = 0.0, "weight_decay"_a = 0.0, "eps"_a = 1e-10, "maximize"_a = false,
        "masters"_a = py::none(), "grad_scale"_a = 1.0, "max_grad_norm"_a = py::none(),
        "skip_nonfinite"_a = false, "stochastic_rounding"_a = false, "seed"_a = 0,
        "Adagrad update of many parameter sets in one native call. As adagrad_step otherwise.");
    m.def("adagrad_step_sets", &adagrad_step_sets, "params"_a, "grads"_a, "state_sums"_a,
          "steps"_a, "hypers"_a, "masters"_a = py::none(), "options"_a = py::none(),
          py::pos_only(),
          "The optimizer classes' entry: all sets of all groups and dtypes in one call; hypers "
          "is one tuple (lr, lr_decay, weight_decay, eps, maximize) or one per set; masters and "
          "options as for adam_step_sets. Returns a StepReport.");
}

}  // namespace fastadam::python
