// Bindings of the SGD kernels (torch.optim.SGD semantics): sgd_step and sgd_step_multi.
#include "fastadam/kernels.hpp"
#include "param_sets.hpp"
#include "register.hpp"

namespace fastadam::python {

namespace {

const std::vector<Role> kSgdRoles = {{"param", "params", true},
                                     {"grad", "grads", false},
                                     {"momentum_buffer", "momentum_buffers", true}};

template <class T>
void run_kernel(const CheckedSets& sets, const SgdHyper& hyper,
                const std::vector<bool>& first_steps) {
    std::vector<SgdTensor<T>> tensors(sets.count());
    for (std::size_t i = 0; i < tensors.size(); ++i) {
        auto& t = tensors[i];
        t.param = sets.data<T>(i, 0);
        t.grad = sets.data<T>(i, 1);
        t.momentum_buffer = hyper.momentum != 0.0 ? sets.data<T>(i, 2) : nullptr;
        t.size = sets.size(i);
        t.scalars = make_scalars(hyper, first_steps[i]);
    }
    py::gil_scoped_release release;  // safe: `sets` keeps every array alive; raw buffers only
    sgd_step(tensors.data(), tensors.size());
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
    const CheckedSets checked = check_sets(sets, roles, multi);
    if (checked.count() == 0) return;
    if (checked.dtype == Dtype::float32)
        run_kernel<float>(checked, hyper, first);
    else
        run_kernel<double>(checked, hyper, first);
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
}

}  // namespace fastadam::python
