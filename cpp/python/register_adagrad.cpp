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

template <class T>
void run_kernel(const CheckedSets& sets, const AdagradHyper& hyper,
                const std::vector<std::int64_t>& steps) {
    std::vector<AdagradTensor<T>> tensors(sets.count());
    for (std::size_t i = 0; i < tensors.size(); ++i) {
        auto& t = tensors[i];
        t.param = sets.data<T>(i, 0);
        t.grad = sets.data<T>(i, 1);
        t.state_sum = sets.data<T>(i, 2);
        t.size = sets.size(i);
        t.scalars = make_scalars(hyper, steps[i]);
    }
    py::gil_scoped_release release;  // safe: `sets` keeps every array alive; raw buffers only
    adagrad_step(tensors.data(), tensors.size());
}

void run(const std::vector<std::vector<py::handle>>& sets, const AdagradHyper& hyper,
         const std::vector<std::int64_t>& steps, bool multi) {
    check_hyper(hyper);
    for (std::size_t i = 0; i < steps.size(); ++i)
        check_step(steps[i], ArgName{"step", "steps", i, multi});
    const CheckedSets checked = check_sets(sets, kAdagradRoles, multi);
    if (checked.count() == 0) return;
    if (checked.dtype == Dtype::float32)
        run_kernel<float>(checked, hyper, steps);
    else
        run_kernel<double>(checked, hyper, steps);
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

}  // namespace

void register_adagrad(py::module_& m) {
    using namespace pybind11::literals;
    m.def(
        "adagrad_step",
        [](py::object param, py::object grad, py::object state_sum, py::object step, double lr,
           double lr_decay, double weight_decay, double eps, bool maximize) {
            run({{param, grad, state_sum}}, make_hyper(lr, lr_decay, weight_decay, eps, maximize),
                int_per_set(step, "step", 1), false);
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
            run(sets, make_hyper(lr, lr_decay, weight_decay, eps, maximize),
                int_per_set(steps, "steps", p.size()), true);
        },
        "params"_a, "grads"_a, "state_sums"_a, py::kw_only(), "steps"_a, "lr"_a = 1e-2,
        "lr_decay"_a = 0.0, "weight_decay"_a = 0.0, "eps"_a = 1e-10, "maximize"_a = false,
        "Adagrad update of many parameter sets in one native call. As adagrad_step otherwise.");
}

}  // namespace fastadam::python
