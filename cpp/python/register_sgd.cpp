// Bindings of the SGD kernels (torch.optim.SGD semantics): sgd_step and sgd_step_multi.
#include "fastadam/kernels.hpp"
#include "param_sets.hpp"
#include "register.hpp"

namespace fastadam::python {

namespace {

// SGD keeps no step count, which stochastic rounding's stream needs: it rounds to nearest.
const std::vector<Role> kSgdRoles = {{"param", "params", true},
                                     {"grad", "grads", false},
                                     {"momentum_buffer", "momentum_buffers", true, true, true},
                                     {"master", "masters", true, true, true, true}};
constexpr std::size_t kMasterRole = 3;

// Runs validated sets (any dtypes), each with its own hyper-parameters and first-step flag.
py::object launch(const CheckedSets& sets, const std::vector<SgdHyper>& hypers,
                  const std::vector<bool>& first_steps, const StepOptions& options) {
    if (options.stochastic_rounding)
        throw py::value_error("stochastic_rounding needs a step count: SGD rounds to nearest");
    const auto make = [&](auto zero, std::size_t i) {
        using P = decltype(zero);
        SgdTensor<P> t;
        t.param = sets.data<P>(i, 0);
        t.grad = sets.data<P>(i, 1);
        t.momentum_buffer = sets.data<state_of_t<P>>(i, 2);
        t.size = sets.size(i);
        t.scalars = make_scalars(hypers[i], first_steps[i]);
        set_param_options(t, sets, i, kMasterRole, options, 0);
        return t;
    };
    return launch_step(sets, options, kMasterRole, make,
                       [](const auto* t, std::size_t n) { sgd_step(t, n); });
}

// `buffers` is None or a list aligned with `params`; it is needed exactly when momentum != 0.
// `masters` likewise, None or a list.
py::object run(const std::vector<py::object>& params, const std::vector<py::object>& grads,
               const py::object& buffers, const py::object& masters, const SgdHyper& hyper,
               py::handle first_steps, bool multi, const StepOptions& options) {
    check_hyper(hyper);
    const bool momentum = hyper.momentum != 0.0;
    const char* buffer_name = multi ? "momentum_buffers" : "momentum_buffer";
    if (momentum && buffers.is_none())
        throw py::value_error(std::string(buffer_name) + " is required when momentum != 0");
    if (!momentum && !buffers.is_none())
        throw py::value_error(std::string(buffer_name) + " is only used when momentum != 0");
    const auto buffer_list = !momentum ? std::vector<py::object>(params.size())
                             : multi   ? as_list(buffers, buffer_name, params.size())
                                       : std::vector<py::object>{buffers};
    const auto first = bool_per_set(first_steps, multi ? "first_steps" : "first_step",
                                    params.size());
    const auto master_list = masters.is_none() ? std::vector<py::object>(params.size())
                             : multi ? as_list(masters, "masters", params.size())
                                     : std::vector<py::object>{masters};
    std::vector<std::vector<py::handle>> sets(params.size());
    for (std::size_t i = 0; i < params.size(); ++i)
        sets[i] = {params[i], grads[i], buffer_list[i], master_list[i]};
    return launch(check_sets(sets, kSgdRoles, multi), std::vector<SgdHyper>(params.size(), hyper),
                  first, options);
}

SgdHyper make_hyper(double lr, double momentum, double dampening, double weight_decay,
                    bool nesterov, bool maximize) {
    SgdHyper h;
    h.lr = lr;
    h.momentum = momentum;
    h.dampening = dampening;
    h.weight_decay = weight_decay;
    h.nesterov = nesterov;
    h.maximize = maximize;
    return h;
}

// The optimizer classes' entry, as adam_step_sets: every set of every group and dtype in one
// call, all arguments positional; momentum_buffers holds None for sets without momentum.
py::object sgd_step_sets(py::object params, py::object grads, py::object momentum_buffers,
                         py::object first_steps, py::object hypers, py::object masters,
                         py::object options) {
    const auto p = as_list(params, "params");
    const std::size_t n = p.size();
    const auto g = as_list(grads, "grads", n);
    const auto buffers = as_list(momentum_buffers, "momentum_buffers", n);
    const auto ms = masters.is_none() ? std::vector<py::object>(n) : as_list(masters, "masters", n);
    const StepOptions opts = step_options(options);
    const auto first = bool_per_set(first_steps, "first_steps", n);
    const auto hyper_list = hypers_per_set<SgdHyper>(hypers, n, [](py::handle obj, std::size_t i) {
        const py::tuple t = hyper_tuple(
            obj, 6, i, "(lr, momentum, dampening, weight_decay, nesterov, maximize)");
        const SgdHyper h = make_hyper(tuple_double(t, 0, i), tuple_double(t, 1, i),
                                      tuple_double(t, 2, i), tuple_double(t, 3, i),
                                      tuple_bool(t, 4, i), tuple_bool(t, 5, i));
        check_hyper(h);
        return h;
    });
    std::vector<std::vector<py::handle>> sets(n);
    for (std::size_t i = 0; i < n; ++i) {
        if ((hyper_list[i].momentum != 0.0) == buffers[i].is_none())
            throw py::value_error("momentum_buffers[" + std::to_string(i) + "] must be " +
                                  (buffers[i].is_none() ? "an array (momentum != 0)"
                                                        : "None (momentum == 0)"));
        sets[i] = {p[i], g[i], buffers[i], ms[i]};
    }
    return launch(check_sets(sets, kSgdRoles, true, /*mixed_dtypes=*/true), hyper_list, first,
                  opts);
}

}  // namespace

void register_sgd(py::module_& m) {
    using namespace pybind11::literals;
    m.def(
        "sgd_step",
        [](py::object param, py::object grad, py::object momentum_buffer, double lr,
           double momentum, double dampening, double weight_decay, bool nesterov, bool maximize,
           py::object first_step, py::object master, double grad_scale, py::object max_grad_norm,
           bool skip_nonfinite) {
            return run({param}, {grad}, momentum_buffer, master,
                       make_hyper(lr, momentum, dampening, weight_decay, nesterov, maximize),
                       first_step, false,
                       step_options(grad_scale, max_grad_norm, skip_nonfinite, false,
                                    py::int_(0)));
        },
        "param"_a, "grad"_a, "momentum_buffer"_a = py::none(), py::kw_only(), "lr"_a = 1e-3,
        "momentum"_a = 0.0, "dampening"_a = 0.0, "weight_decay"_a = 0.0, "nesterov"_a = false,
        "maximize"_a = false, "first_step"_a = false, "master"_a = py::none(),
        "grad_scale"_a = 1.0, "max_grad_norm"_a = py::none(), "skip_nonfinite"_a = false,
        R"doc(One SGD update of one parameter set, in place (torch.optim.SGD semantics).

momentum_buffer is required when momentum != 0 and forbidden otherwise. With first_step=True
the buffer is set to the gradient (torch's first step for a parameter), else it is updated as
momentum * buf + (1 - dampening) * grad. Dtypes, master, grad_scale, max_grad_norm and
skip_nonfinite as for adam_step (no stochastic rounding: SGD keeps no step count); returns a
StepReport. Validation as for adam_step.
)doc");
    m.def(
        "sgd_step_multi",
        [](py::object params, py::object grads, py::object momentum_buffers, double lr,
           double momentum, double dampening, double weight_decay, bool nesterov, bool maximize,
           py::object first_steps, py::object masters, double grad_scale,
           py::object max_grad_norm, bool skip_nonfinite) {
            const auto p = as_list(params, "params");
            return run(p, as_list(grads, "grads", p.size()), momentum_buffers, masters,
                       make_hyper(lr, momentum, dampening, weight_decay, nesterov, maximize),
                       first_steps, true,
                       step_options(grad_scale, max_grad_norm, skip_nonfinite, false,
                                    py::int_(0)));
        },
        "params"_a, "grads"_a, "momentum_buffers"_a = py::none(), py::kw_only(), "lr"_a = 1e-3,
        "momentum"_a = 0.0, "dampening"_a = 0.0, "weight_decay"_a = 0.0, "nesterov"_a = false,
        "maximize"_a = false, "first_steps"_a = false, "masters"_a = py::none(),
        "grad_scale"_a = 1.0, "max_grad_norm"_a = py::none(), "skip_nonfinite"_a = false,
        "SGD update of many parameter sets in one native call; first_steps is a bool or one bool "
        "per set. As sgd_step otherwise.");
    m.def("sgd_step_sets", &sgd_step_sets, "params"_a, "grads"_a, "momentum_buffers"_a,
          "first_steps"_a, "hypers"_a, "masters"_a = py::none(), "options"_a = py::none(),
          py::pos_only(),
          "The optimizer classes' entry: all sets of all groups and dtypes in one call. "
          "momentum_buffers holds None for sets without momentum; hypers is one tuple (lr, "
          "momentum, dampening, weight_decay, nesterov, maximize) or one per set; masters and "
          "options as for adam_step_sets (stochastic_rounding must be False). Returns a "
          "StepReport.");
}

}  // namespace fastadam::python
