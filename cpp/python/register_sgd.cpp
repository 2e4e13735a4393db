// Bindings of the SGD kernels (torch.optim.SGD semantics): sgd_step, sgd_step_multi and the
// optimizer classes' sgd_step_sets.
#include "fastadam/kernels.hpp"
#include "param_sets.hpp"
#include "register.hpp"

namespace fastadam::python {

namespace {

// Every set has four slots; the buffer (without momentum) and the master may be left out.
constexpr Role kSgdRoles[] = {{"param", "params", true},
                              {"grad", "grads", false},
                              {"momentum_buffer", "momentum_buffers", true, true, true},
                              {"master", "masters", true, true, true, true}};
constexpr std::size_t kRoles = 4, kMasterRole = 3;

// Validates the sets of `objects` and runs them (any dtypes); set i uses
// hypers[per_set_hyper ? i : 0] and first_steps[i]. SGD keeps no step count, which stochastic
// rounding's stream needs: it rounds to nearest.
py::object launch(const SetObjects& objects, bool multi, bool mixed_dtypes, const SgdHyper* hypers,
                  bool per_set_hyper, const bool* first_steps, const StepOptions& options) {
    if (options.stochastic_rounding)
        throw py::value_error("stochastic_rounding needs a step count: SGD rounds to nearest");
    const CheckedSets sets = check_sets(objects, kSgdRoles, kRoles, multi, mixed_dtypes);
    const auto make = [&](auto zero, std::size_t i) {
        using P = decltype(zero);
        SgdTensor<P> t;
        t.param = sets.data<P>(i, 0);
        t.grad = sets.data<P>(i, 1);
        t.momentum_buffer = sets.data<state_of_t<P>>(i, 2);
        t.size = sets.size(i);
        t.scalars = make_scalars(hypers[per_set_hyper ? i : 0], first_steps[i]);
        set_param_options(t, sets, i, kMasterRole, options, 0);
        return t;
    };
    return launch_step(sets, options, make, [](const auto* t, std::size_t n) { sgd_step(t, n); });
}

PyObject* none_to_null(PyObject* obj) { return obj == Py_None ? nullptr : obj; }

// sgd_step and sgd_step_multi share one parameter layout.
enum SgdArg {
    kParam,
    kGrad,
    kBuffer,
    kLr,
    kMomentum,
    kDampening,
    kWeightDecay,
    kNesterov,
    kMaximize,
    kFirstStep,
    kMaster,
    kGradScale,
    kMaxGradNorm,
    kSkipNonfinite
};
// The defaults written here are SgdHyper's (sgd_math.hpp), which sgd_hyper falls back to.
constexpr const char* kSgdStepParameters =
    "param, grad, momentum_buffer=None, *, lr=0.001, momentum=0.0, dampening=0.0, "
    "weight_decay=0.0, nesterov=False, maximize=False, first_step=False, master=None, "
    "grad_scale=1.0, max_grad_norm=None, skip_nonfinite=False";
constexpr const char* kSgdStepMultiParameters =
    "params, grads, momentum_buffers=None, *, lr=0.001, momentum=0.0, dampening=0.0, "
    "weight_decay=0.0, nesterov=False, maximize=False, first_steps=False, masters=None, "
    "grad_scale=1.0, max_grad_norm=None, skip_nonfinite=False";

StepOptions options_of(const Args& a) {
    return step_options(a[kGradScale], a[kMaxGradNorm], a[kSkipNonfinite], nullptr, nullptr);
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

SgdHyper sgd_hyper(const Args& a) {
    const SgdHyper d;
    const SgdHyper h =
        make_hyper(real_arg(a[kLr], "lr", d.lr), real_arg(a[kMomentum], "momentum", d.momentum),
                   real_arg(a[kDampening], "dampening", d.dampening),
                   real_arg(a[kWeightDecay], "weight_decay", d.weight_decay),
                   bool_arg(a[kNesterov], "nesterov", d.nesterov),
                   bool_arg(a[kMaximize], "maximize", d.maximize));
    check_hyper(h);
    return h;
}

// The buffer argument (None or left out when momentum is 0) must match the momentum.
PyObject* momentum_buffers(const Args& a, const SgdHyper& h, const char* name) {
    PyObject* buffers = a[kBuffer] == Py_None ? nullptr : a[kBuffer];
    if (h.momentum != 0.0 && buffers == nullptr)
        throw py::value_error(std::string(name) + " is required when momentum != 0");
    if (h.momentum == 0.0 && buffers != nullptr)
        throw py::value_error(std::string(name) + " is only used when momentum != 0");
    return buffers;
}

py::object sgd_step_one(const Args& a) {
    const SgdHyper h = sgd_hyper(a);
    PyObject* buffer = momentum_buffers(a, h, "momentum_buffer");
    const bool first = bool_arg(a[kFirstStep], "first_step", false);
    const StepOptions options = options_of(a);
    SetObjects objects;
    objects.push_back(a[kParam]);
    objects.push_back(a[kGrad]);
    objects.push_back(buffer);
    objects.push_back(a.given(kMaster) ? none_to_null(a[kMaster]) : nullptr);
    return launch(objects, false, false, &h, false, &first, options);
}

py::object sgd_step_multi(const Args& a) {
    const SgdHyper h = sgd_hyper(a);
    Held held;
    const Items params = list_arg(a[kParam], "params", held);
    const std::size_t n = params.size();
    const Items grads = list_arg(a[kGrad], "grads", n, held);
    PyObject* buffers = momentum_buffers(a, h, "momentum_buffers");
    const Items buffer_list = buffers ? list_arg(buffers, "momentum_buffers", n, held) : Items();
    const auto first = a.given(kFirstStep) ? bool_per_set(a[kFirstStep], "first_steps", n, held)
                                           : SmallVector<bool, 8>(n, false);
    PyObject* masters = a.given(kMaster) ? none_to_null(a[kMaster]) : nullptr;
    const Items master_list = masters ? list_arg(masters, "masters", n, held) : Items();
    const StepOptions options = options_of(a);
    SetObjects objects;
    for (std::size_t i = 0; i < n; ++i) {
        objects.push_back(params[i]);
        objects.push_back(grads[i]);
        // With momentum every set needs its buffer: None there is refused by its check.
        objects.push_back(buffers ? buffer_list[i] : nullptr);
        objects.push_back(masters ? none_to_null(master_list[i]) : nullptr);
    }
    return launch(objects, true, false, &h, false, first.data(), options);
}

// The optimizer classes' entry, as adam_step_sets: every set of every group and dtype in one
// call, all arguments positional; momentum_buffers holds None for sets without momentum.
py::object sgd_step_sets(const Args& a) {
    Held held;
    const Items params = list_arg(a[0], "params", held);
    const std::size_t n = params.size();
    const Items grads = list_arg(a[1], "grads", n, held);
    const Items buffers = list_arg(a[2], "momentum_buffers", n, held);
    const auto first = bool_per_set(a[3], "first_steps", n, held);
    const auto hypers = hypers_per_set<SgdHyper>(a[4], n, held, [](PyObject* t, std::size_t i) {
        check_hyper_tuple(t, 6, i, "(lr, momentum, dampening, weight_decay, nesterov, maximize)");
        const SgdHyper h =
            make_hyper(tuple_double(t, 0, i), tuple_double(t, 1, i), tuple_double(t, 2, i),
                       tuple_double(t, 3, i), tuple_bool(t, 4, i), tuple_bool(t, 5, i));
        check_hyper(h);
        return h;
    });
    PyObject* masters = a.given(5) ? none_to_null(a[5]) : nullptr;
    const Items master_list = masters ? list_arg(masters, "masters", n, held) : Items();
    const StepOptions options = step_options(a[6]);
    SetObjects objects;
    for (std::size_t i = 0; i < n; ++i) {
        PyObject* buffer = buffers[i] == Py_None ? nullptr : buffers[i];
        if ((hypers[i].momentum != 0.0) != (buffer != nullptr))
            throw py::value_error(
                "momentum_buffers[" + std::to_string(i) + "] must be " +
                (buffer == nullptr ? "an array (momentum != 0)" : "None (momentum == 0)"));
        objects.push_back(params[i]);
        objects.push_back(grads[i]);
        objects.push_back(buffer);
        objects.push_back(masters ? none_to_null(master_list[i]) : nullptr);
    }
    return launch(objects, true, /*mixed_dtypes=*/true, hypers.data(), true, first.data(),
                  options);
}

}  // namespace

void register_sgd(py::module_& m) {
    def_entry<sgd_step_one>(
        m, "sgd_step", kSgdStepParameters,
        R"doc(One SGD update of one parameter set, in place (torch.optim.SGD semantics).

momentum_buffer is required when momentum != 0 and forbidden otherwise. With first_step=True
the buffer is set to the gradient (torch's first step for a parameter), else it is updated as
momentum * buf + (1 - dampening) * grad. Dtypes, master, grad_scale, max_grad_norm and
skip_nonfinite as for adam_step (no stochastic rounding: SGD keeps no step count); returns a
StepReport. Validation as for adam_step.
)doc");
    def_entry<sgd_step_multi>(
        m, "sgd_step_multi", kSgdStepMultiParameters,
        "SGD update of many parameter sets in one native call; first_steps is a bool or one bool "
        "per set. As sgd_step otherwise.");
    def_entry<sgd_step_sets>(
        m, "sgd_step_sets",
        "params, grads, momentum_buffers, first_steps, hypers, masters=None, options=None, /",
        "The optimizer classes' entry: all sets of all groups and dtypes in one call. "
        "momentum_buffers holds None for sets without momentum; hypers is one tuple (lr, "
        "momentum, dampening, weight_decay, nesterov, maximize) or one per set; masters and "
        "options as for adam_step_sets (stochastic_rounding must be False). Returns a "
        "StepReport.");
}

}  // namespace fastadam::python
