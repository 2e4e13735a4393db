// Bindings of the Adagrad kernels (torch.optim.Adagrad semantics): adagrad_step,
// adagrad_step_multi and the optimizer classes' adagrad_step_sets.
#include "fastadam/kernels.hpp"
#include "param_sets.hpp"
#include "register.hpp"

namespace fastadam::python {

namespace {

// Every set has four slots; the master may be left out.
constexpr Role kAdagradRoles[] = {{"param", "params", true},
                                  {"grad", "grads", false},
                                  {"state_sum", "state_sums", true, false, true},
                                  {"master", "masters", true, true, true, true}};
constexpr std::size_t kRoles = 4, kMasterRole = 3;

// Validates the sets of `objects` and runs them (any dtypes); set i uses
// hypers[per_set_hyper ? i : 0] and steps[i]. Returns the step's report.
py::object launch(const SetObjects& objects, bool multi, bool mixed_dtypes,
                  const AdagradHyper* hypers, bool per_set_hyper, const std::int64_t* steps,
                  const StepOptions& options) {
    const CheckedSets sets = check_sets(objects, kAdagradRoles, kRoles, multi, mixed_dtypes);
    if (options.stochastic_rounding)
        check_stochastic_rounding(sets, kMasterRole, kAdagradRoles, multi);
    const auto make = [&](auto zero, std::size_t i) {
        using P = decltype(zero);
        AdagradTensor<P> t;
        t.param = sets.data<P>(i, 0);
        t.grad = sets.data<P>(i, 1);
        t.state_sum = sets.data<state_of_t<P>>(i, 2);
        t.size = sets.size(i);
        t.scalars = make_scalars(hypers[per_set_hyper ? i : 0], steps[i]);
        set_param_options(t, sets, i, kMasterRole, options, steps[i]);
        return t;
    };
    return launch_step(sets, options, make,
                       [](const auto* t, std::size_t n) { adagrad_step(t, n); });
}

PyObject* none_to_null(PyObject* obj) { return obj == Py_None ? nullptr : obj; }

// adagrad_step and adagrad_step_multi share one parameter layout.
enum AdagradArg {
    kParam,
    kGrad,
    kStateSum,
    kStep,
    kLr,
    kLrDecay,
    kWeightDecay,
    kEps,
    kMaximize,
    kMaster,
    kGradScale,
    kMaxGradNorm,
    kSkipNonfinite,
    kStochasticRounding,
    kSeed
};
// The defaults written here are AdagradHyper's (adagrad_math.hpp), which adagrad_hyper falls
// back to.
constexpr const char* kAdagradStepParameters =
    "param, grad, state_sum, *, step, lr=0.01, lr_decay=0.0, weight_decay=0.0, eps=1e-10, "
    "maximize=False, master=None, grad_scale=1.0, max_grad_norm=None, skip_nonfinite=False, "
    "stochastic_rounding=False, seed=0";
constexpr const char* kAdagradStepMultiParameters =
    "params, grads, state_sums, *, steps, lr=0.01, lr_decay=0.0, weight_decay=0.0, eps=1e-10, "
    "maximize=False, masters=None, grad_scale=1.0, max_grad_norm=None, skip_nonfinite=False, "
    "stochastic_rounding=False, seed=0";

StepOptions options_of(const Args& a) {
    return step_options(a[kGradScale], a[kMaxGradNorm], a[kSkipNonfinite], a[kStochasticRounding],
                        a[kSeed]);
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

AdagradHyper adagrad_hyper(const Args& a) {
    const AdagradHyper d;
    const AdagradHyper h =
        make_hyper(real_arg(a[kLr], "lr", d.lr), real_arg(a[kLrDecay], "lr_decay", d.lr_decay),
                   real_arg(a[kWeightDecay], "weight_decay", d.weight_decay),
                   real_arg(a[kEps], "eps", d.eps), bool_arg(a[kMaximize], "maximize", d.maximize));
    check_hyper(h);
    return h;
}

py::object adagrad_step_one(const Args& a) {
    const AdagradHyper h = adagrad_hyper(a);
    const std::int64_t step = int_arg(a[kStep], "step");
    check_step(step, "step");
    const StepOptions options = options_of(a);
    SetObjects objects;
    for (int k : {kParam, kGrad, kStateSum}) objects.push_back(a[k]);
    objects.push_back(a.given(kMaster) ? none_to_null(a[kMaster]) : nullptr);
    return launch(objects, false, false, &h, false, &step, options);
}

py::object adagrad_step_multi(const Args& a) {
    const AdagradHyper h = adagrad_hyper(a);
    Held held;
    const Items params = list_arg(a[kParam], "params", held);
    const std::size_t n = params.size();
    const Items grads = list_arg(a[kGrad], "grads", n, held);
    const Items sums = list_arg(a[kStateSum], "state_sums", n, held);
    const auto steps = int_per_set(a[kStep], "steps", n, held);
    PyObject* masters = a.given(kMaster) ? none_to_null(a[kMaster]) : nullptr;
    const Items master_list = masters ? list_arg(masters, "masters", n, held) : Items();
    const StepOptions options = options_of(a);
    SetObjects objects;
    for (std::size_t i = 0; i < n; ++i) {
        check_step(steps[i], ArgName{"step", "steps", i, true});
        for (const Items* list : {&params, &grads, &sums}) objects.push_back((*list)[i]);
        objects.push_back(masters ? none_to_null(master_list[i]) : nullptr);
    }
    return launch(objects, true, false, &h, false, steps.data(), options);
}

// The optimizer classes' entry, as adam_step_sets: every set of every group and dtype in one
// call, all arguments positional.
py::object adagrad_step_sets(const Args& a) {
    Held held;
    const Items params = list_arg(a[0], "params", held);
    const std::size_t n = params.size();
    const Items grads = list_arg(a[1], "grads", n, held);
    const Items sums = list_arg(a[2], "state_sums", n, held);
    const auto hypers = hypers_per_set<AdagradHyper>(a[4], n, held, [](PyObject* t, std::size_t i) {
        check_hyper_tuple(t, 5, i, "(lr, lr_decay, weight_decay, eps, maximize)");
        const AdagradHyper h =
            make_hyper(tuple_double(t, 0, i), tuple_double(t, 1, i), tuple_double(t, 2, i),
                       tuple_double(t, 3, i), tuple_bool(t, 4, i));
        check_hyper(h);
        return h;
    });
    const auto steps = int_per_set(a[3], "steps", n, held);
    PyObject* masters = a.given(5) ? none_to_null(a[5]) : nullptr;
    const Items master_list = masters ? list_arg(masters, "masters", n, held) : Items();
    const StepOptions options = step_options(a[6]);
    SetObjects objects;
    for (std::size_t i = 0; i < n; ++i) {
        check_step(steps[i], ArgName{"step", "steps", i, true});
        for (const Items* list : {&params, &grads, &sums}) objects.push_back((*list)[i]);
        objects.push_back(masters ? none_to_null(master_list[i]) : nullptr);
    }
    return launch(objects, true, /*mixed_dtypes=*/true, hypers.data(), true, steps.data(),
                  options);
}

}  // namespace

void register_adagrad(py::module_& m) {
    def_entry<adagrad_step_one>(
        m, "adagrad_step", kAdagradStepParameters,
        R"doc(One Adagrad update of one parameter set, in place (torch.optim.Adagrad semantics).

state_sum is the running sum of squared gradients (start it at initial_accumulator_value).
step is the 1-based step count after incrementing. Dtypes, master, grad_scale,
max_grad_norm, skip_nonfinite, stochastic_rounding and seed as for adam_step; returns a
StepReport. Validation as for adam_step.
)doc");
    def_entry<adagrad_step_multi>(
        m, "adagrad_step_multi", kAdagradStepMultiParameters,
        "Adagrad update of many parameter sets in one native call. As adagrad_step otherwise.");
    def_entry<adagrad_step_sets>(
        m, "adagrad_step_sets", "params, grads, state_sums, steps, hypers, masters=None, "
        "options=None, /",
        "The optimizer classes' entry: all sets of all groups and dtypes in one call; hypers "
        "is one tuple (lr, lr_decay, weight_decay, eps, maximize) or one per set; masters and "
        "options as for adam_step_sets. Returns a StepReport.");
}

}  // namespace fastadam::python
