// Bindings of the SGD kernels (torch.optim.SGD semantics): sgd_step, sgd_step_multi and the
// optimizer classes' sgd_step_sets.
#include "fastadam/kernels.hpp"
#include "param_sets.hpp"
#include "register.hpp"

namespace fastadam::python {

namespace {

constexpr Role kSgdRoles[] = {{"param", "params", true},
                              {"grad", "grads", false},
                              {"momentum_buffer", "momentum_buffers", true}};

// Runs validated sets (either dtype); set i uses hypers[per_set_hyper ? i : 0] and
// first_steps[i].
void launch(const CheckedSets& sets, const SgdHyper* hypers, bool per_set_hyper,
            const bool* first_steps) {
    const auto make = [&](auto zero, std::size_t i) {
        using T = decltype(zero);
        SgdTensor<T> t;
        t.param = sets.data<T>(i, 0);
        t.grad = sets.data<T>(i, 1);
        t.momentum_buffer = sets.roles > 2 ? sets.data<T>(i, 2) : nullptr;
        t.size = sets.size(i);
        t.scalars = make_scalars(hypers[per_set_hyper ? i : 0], first_steps[i]);
        return t;
    };
    launch_by_dtype(sets, make, [](const auto* t, std::size_t n) { sgd_step(t, n); });
}

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
    kFirstStep
};
// The defaults written here are SgdHyper's (sgd_math.hpp), which sgd_hyper falls back to.
constexpr const char* kSgdStepParameters =
    "param, grad, momentum_buffer=None, *, lr=0.001, momentum=0.0, dampening=0.0, "
    "weight_decay=0.0, nesterov=False, maximize=False, first_step=False";
constexpr const char* kSgdStepMultiParameters =
    "params, grads, momentum_buffers=None, *, lr=0.001, momentum=0.0, dampening=0.0, "
    "weight_decay=0.0, nesterov=False, maximize=False, first_steps=False";

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

void sgd_step_one(const Args& a) {
    const SgdHyper h = sgd_hyper(a);
    PyObject* buffer = momentum_buffers(a, h, "momentum_buffer");
    const bool first = bool_arg(a[kFirstStep], "first_step", false);
    SetObjects objects;
    objects.push_back(a[kParam]);
    objects.push_back(a[kGrad]);
    if (buffer != nullptr) objects.push_back(buffer);
    launch(check_sets(objects, kSgdRoles, objects.size(), false), &h, false, &first);
}

void sgd_step_multi(const Args& a) {
    const SgdHyper h = sgd_hyper(a);
    Held held;
    const Items params = list_arg(a[kParam], "params", held);
    const std::size_t n = params.size();
    const Items grads = list_arg(a[kGrad], "grads", n, held);
    PyObject* buffers = momentum_buffers(a, h, "momentum_buffers");
    const Items buffer_list = buffers ? list_arg(buffers, "momentum_buffers", n, held) : Items();
    const auto first = a.given(kFirstStep) ? bool_per_set(a[kFirstStep], "first_steps", n, held)
                                           : SmallVector<bool, 8>(n, false);
    SetObjects objects;
    for (std::size_t i = 0; i < n; ++i) {
        objects.push_back(params[i]);
        objects.push_back(grads[i]);
        if (buffers) objects.push_back(buffer_list[i]);
    }
    launch(check_sets(objects, kSgdRoles, buffers ? 3 : 2, true), &h, false, first.data());
}

// The optimizer classes' entry, as adam_step_sets: every set of every group and dtype in one
// call, all arguments positional; momentum_buffers holds None for sets without momentum.
void sgd_step_sets(const Args& a) {
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
    }
    Role roles[3] = {kSgdRoles[0], kSgdRoles[1], kSgdRoles[2]};
    roles[2].optional = true;
    launch(check_sets(objects, roles, 3, true, /*mixed_dtypes=*/true), hypers.data(), true,
           first.data());
}

}  // namespace

void register_sgd(py::module_& m) {
    def_entry<sgd_step_one>(
        m, "sgd_step", kSgdStepParameters,
        R"doc(One SGD update of one parameter set, in place (torch.optim.SGD semantics).

momentum_buffer is required when momentum != 0 and forbidden otherwise. With first_step=True
the buffer is set to the gradient (torch's first step for a parameter), else it is updated as
momentum * buf + (1 - dampening) * grad. Validation as for adam_step.
)doc");
    def_entry<sgd_step_multi>(
        m, "sgd_step_multi", kSgdStepMultiParameters,
        "SGD update of many parameter sets in one native call; first_steps is a bool or one bool "
        "per set. As sgd_step otherwise.");
    def_entry<sgd_step_sets>(
        m, "sgd_step_sets", "params, grads, momentum_buffers, first_steps, hypers, /",
        "The optimizer classes' entry: all sets of all groups and dtypes in one call. "
        "momentum_buffers holds None for sets without momentum; hypers is one tuple (lr, "
        "momentum, dampening, weight_decay, nesterov, maximize) or one per set.");
}

}  // namespace fastadam::python
