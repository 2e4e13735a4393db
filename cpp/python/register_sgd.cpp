// Bindings of the SGD kernels (torch.optim.SGD semantics): sgd_step and sgd_step_multi.
#include "fastadam/kernels.hpp"
#include "param_sets.hpp"
#include "register.hpp"

namespace fastadam::python {

namespace {

const std::vector<Role> kSgdRoles = {{"param", "params", true},
                                     {"grad", "grads", false},
                                     {"momentum_buffer", "momentum_buffers", true}};

// Runs validated sets (either dtype), each with its own hyper-parameters and first-step flag.
void launch(const CheckedSets& sets, const std::vector<SgdHyper>& hypers,
            const std::vector<bool>& first_steps) {
    const auto make = [&](auto zero, std::size_t i) {
        using T = decltype(zero);
        SgdTensor<T> t;
        t.param = sets.data<T>(i, 0);
        t.grad = sets.data<T>(i, 1);
        t.momentum_buffer = sets.roles > 2 ? sets.data<T>(i, 2) : nullptr;
        t.size = sets.size(i);
        t.scalars = make_scalars(hypers[i], first_steps[i]);
        return t;
    };
    launch_by_dtype(sets, make, [](const auto* t, std::size_t n) { sgd_step(t, n); });
}

// `buffers` is None or a list aligned with `params`; it is needed exactly when momentum != 0.
void run(const std::vector<py::object>& params, const std::vector<py::object>& grads,
         const py::object& buffers, const SgdHyper& hyper, py::handle first_steps, bool multi) {
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
    std::vector<std::vector<py::handle>> sets(params.size());
    for (std::size_t i = 0; i < params.size(); ++i) sets[i] = {params[i], grads[i], buffer_list[i]};
    const std::vector<Role> roles(kSgdRoles.begin(), kSgdRoles.begin() + (momentum ? 3 : 2));
    launch(check_sets(sets, roles, multi), std::vector<SgdHyper>(params.size(), hyper), first);
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
void sgd_step_sets(py::object params, py::object grads, py::object momentum_buffers,
                   py::object first_steps, py::object hypers) {
    const auto p = as_list(params, "params");
    const std::size_t n = p.size();
    const auto g = as_list(grads, "grads", n);
    const auto buffers = as_list(momentum_buffers, "momentum_buffers", n);
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
        sets[i] = {p[i], g[i], buffers[i]};
    }
    std::vector<Role> roles = kSgdRoles;
    roles[2].optional = true;
    launch(check_sets(sets, roles, true, /*mixed_dtypes=*/true), hyper_list, first);
}

}  // namespace

void register_sgd(py::module_& m) {
    using namespace pybind11::literals;
    m.def(
        "sgd_step",
        [](py::object param, py::object grad, py::object momentum_buffer, double lr,
           double momentum, double dampening, double weight_decay, bool nesterov, bool maximize,
           py::object first_step) {
            run({param}, {grad}, momentum_buffer,
                make_hyper(lr, momentum, dampening, weight_decay, nesterov, maximize), first_step,
                false);
        },
        "param"_a, "grad"_a, "momentum_buffer"_a = py::none(), py::kw_only(), "lr"_a = 1e-3,
        "momentum"_a = 0.0, "dampening"_a = 0.0, "weight_decay"_a = 0.0, "nesterov"_a = false,
        "maximize"_a = false, "first_step"_a = false,
        R"doc(One SGD update of one parameter set, in place (torch.optim.SGD semantics).

momentum_buffer is required when momentum != 0 and forbidden otherwise. With first_step=True
the buffer is set to the gradient (torch's first step for a parameter), else it is updated as
momentum * buf + (1 - dampening) * grad. Validation as for adam_step.
)doc");
    m.def(
        "sgd_step_multi",
        [](py::object params, py::object grads, py::object momentum_buffers, double lr,
           double momentum, double dampening, double weight_decay, bool nesterov, bool maximize,
           py::object first_steps) {
            const auto p = as_list(params, "params");
            run(p, as_list(grads, "grads", p.size()), momentum_buffers,
                make_hyper(lr, momentum, dampening, weight_decay, nesterov, maximize), first_steps,
                true);
        },
        "params"_a, "grads"_a, "momentum_buffers"_a = py::none(), py::kw_only(), "lr"_a = 1e-3,
        "momentum"_a = 0.0, "dampening"_a = 0.0, "weight_decay"_a = 0.0, "nesterov"_a = false,
        "maximize"_a = false, "first_steps"_a = false,
        "SGD update of many parameter sets in one native call; first_steps is a bool or one bool "
        "per set. As sgd_step otherwise.");
    m.def("sgd_step_sets", &sgd_step_sets, "params"_a, "grads"_a, "momentum_buffers"_a,
          "first_steps"_a, "hypers"_a, py::pos_only(),
          "The optimizer classes' entry: all sets of all groups and dtypes in one call. "
          "momentum_buffers holds None for sets without momentum; hypers is one tuple (lr, "
          "momentum, dampening, weight_decay, nesterov, maximize) or one per set.");
}

}  // namespace fastadam::python
