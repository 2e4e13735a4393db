// Bindings of the Adagrad kernels (torch.optim.Adagrad semantics): adagrad_step and
// adagrad_step_multi.
#include "fastadam/kernels.hpp"
#include "param_sets.hpp"
#include "register.hpp"

namespace fastadam::python {

namespace {

const std::vector<Role> kAdagradRoles = {{"param", "params", true},
                                         {"grad", "grads", false},
                                         {"state_sum", "state_sums", true}};

// Runs validated sets (either dtype), each with its own hyper-parameters and step.
void launch(const CheckedSets& sets, const std::vector<AdagradHyper>& hypers,
            const std::vector<std::int64_t>& steps) {
    const auto make = [&](auto zero, std::size_t i) {
        using T = decltype(zero);
        AdagradTensor<T> t;
        t.param = sets.data<T>(i, 0);
        t.grad = sets.data<T>(i, 1);
        t.state_sum = sets.data<T>(i, 2);
        t.size = sets.size(i);
        t.scalars = make_scalars(hypers[i], steps[i]);
        return t;
    };
    launch_by_dtype(sets, make, [](const auto* t, std::size_t n) { adagrad_step(t, n); });
}

// Validates the hyper-parameters (one per set), steps and every array, then runs.
void run(const std::vector<std::vector<py::handle>>& sets, const std::vector<AdagradHyper>& hypers,
         const std::vector<std::int64_t>& steps, bool multi, bool mixed_dtypes = false) {
    for (std::size_t i = 0; i < steps.size(); ++i)
        check_step(steps[i], ArgName{"step", "steps", i, multi});
    launch(check_sets(sets, kAdagradRoles, multi, mixed_dtypes), hypers, steps);
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
void adagrad_step_sets(py::object params, py::object grads, py::object state_sums,
                       py::object steps, py::object hypers) {
    const auto p = as_list(params, "params");
    const std::size_t n = p.size();
    const auto g = as_list(grads, "grads", n);
    const auto s = as_list(state_sums, "state_sums", n);
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
    for (std::size_t i = 0; i < n; ++i) sets[i] = {p[i], g[i], s[i]};
    run(sets, hyper_list, int_per_set(steps, "steps", n), true, /*mixed_dtypes=*/true);
}

}  // namespace

void register_adagrad(py::module_& m) {
    using namespace pybind11::literals;
    m.def(
        "adagrad_step",
        [](py::object param, py::object grad, py::object state_sum, py::object step, double lr,
           double lr_decay, double weight_decay, double eps, bool maximize) {
            const AdagradHyper h = make_hyper(lr, lr_decay, weight_decay, eps, maximize);
            check_hyper(h);
            run({{param, grad, state_sum}}, {h}, int_per_set(step, "step", 1), false);
        },
        "param"_a, "grad"_a, "state_sum"_a, py::kw_only(), "step"_a, "lr"_a = 1e-2,
        "lr_decay"_a = 0.0, "weight_decay"_a = 0.0, "eps"_a = 1e-10, "maximize"_a = false,
        R"doc(One Adagrad update of one parameter set, in place (torch.optim.Adagrad semantics).

state_sum is the running sum of squared gradients (start it at initial_accumulator_value).
step is the 1-based step count after incrementing. Validation as for adam_step.
)doc");
    m.def(
        "adagrad_step_multi",
        [](py::object params, py::object grads, py::object state_sums, py::object steps,
           double lr, double lr_decay, double weight_decay, double eps, bool maximize) {
            const auto p = as_list(params, "params");
            const auto g = as_list(grads, "grads", p.size());
            const auto s = as_list(state_sums, "state_sums", p.size());
            std::vector<std::vector<py::handle>> sets(p.size());
            for (std::size_t i = 0; i < p.size(); ++i) sets[i] = {p[i], g[i], s[i]};
            const AdagradHyper h = make_hyper(lr, lr_decay, weight_decay, eps, maximize);
            check_hyper(h);
            run(sets, std::vector<AdagradHyper>(p.size(), h), int_per_set(steps, "steps", p.size()),
                true);
        },
        "params"_a, "grads"_a, "state_sums"_a, py::kw_only(), "steps"_a, "lr"_a = 1e-2,
        "lr_decay"_a = 0.0, "weight_decay"_a = 0.0, "eps"_a = 1e-10, "maximize"_a = false,
        "Adagrad update of many parameter sets in one native call. As adagrad_step otherwise.");
    m.def("adagrad_step_sets", &adagrad_step_sets, "params"_a, "grads"_a, "state_sums"_a,
          "steps"_a, "hypers"_a, py::pos_only(),
          "The optimizer classes' entry: all sets of all groups and dtypes in one call; hypers "
          "is one tuple (lr, lr_decay, weight_decay, eps, maximize) or one per set.");
}

}  // namespace fastadam::python
