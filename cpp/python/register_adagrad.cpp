// Bindings of the Adagrad kernels (torch.optim.Adagrad semantics): adagrad_step,
// adagrad_step_multi and the optimizer classes' adagrad_step_sets.
#include "fastadam/kernels.hpp"
#include "param_sets.hpp"
#include "register.hpp"

namespace fastadam::python {

namespace {

constexpr Role kAdagradRoles[] = {
    {"param", "params", true}, {"grad", "grads", false}, {"state_sum", "state_sums", true}};

// Runs validated sets (either dtype); set i uses hypers[per_set_hyper ? i : 0] and steps[i].
void launch(const CheckedSets& sets, const AdagradHyper* hypers, bool per_set_hyper,
            const std::int64_t* steps) {
    const auto make = [&](auto zero, std::size_t i) {
        using T = decltype(zero);
        AdagradTensor<T> t;
        t.param = sets.data<T>(i, 0);
        t.grad = sets.data<T>(i, 1);
        t.state_sum = sets.data<T>(i, 2);
        t.size = sets.size(i);
        t.scalars = make_scalars(hypers[per_set_hyper ? i : 0], steps[i]);
        return t;
    };
    launch_by_dtype(sets, make, [](const auto* t, std::size_t n) { adagrad_step(t, n); });
}

// adagrad_step and adagrad_step_multi share one parameter layout.
enum AdagradArg { kParam, kGrad, kStateSum, kStep, kLr, kLrDecay, kWeightDecay, kEps, kMaximize };
// The defaults written here are AdagradHyper's (adagrad_math.hpp), which adagrad_hyper falls
// back to.
constexpr const char* kAdagradStepParameters =
    "param, grad, state_sum, *, step, lr=0.01, lr_decay=0.0, weight_decay=0.0, eps=1e-10, "
    "maximize=False";
constexpr const char* kAdagradStepMultiParameters =
    "params, grads, state_sums, *, steps, lr=0.01, lr_decay=0.0, weight_decay=0.0, eps=1e-10, "
    "maximize=False";

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

void adagrad_step_one(const Args& a) {
    const AdagradHyper h = adagrad_hyper(a);
    const std::int64_t step = int_arg(a[kStep], "step");
    check_step(step, "step");
    SetObjects objects;
    for (int k : {kParam, kGrad, kStateSum}) objects.push_back(a[k]);
    launch(check_sets(objects, kAdagradRoles, 3, false), &h, false, &step);
}

void adagrad_step_multi(const Args& a) {
    const AdagradHyper h = adagrad_hyper(a);
    Held held;
    const Items params = list_arg(a[kParam], "params", held);
    const std::size_t n = params.size();
    const Items grads = list_arg(a[kGrad], "grads", n, held);
    const Items sums = list_arg(a[kStateSum], "state_sums", n, held);
    const auto steps = int_per_set(a[kStep], "steps", n, held);
    SetObjects objects;
    for (std::size_t i = 0; i < n; ++i) {
        check_step(steps[i], ArgName{"step", "steps", i, true});
        for (const Items* list : {&params, &grads, &sums}) objects.push_back((*list)[i]);
    }
    launch(check_sets(objects, kAdagradRoles, 3, true), &h, false, steps.data());
}

// The optimizer classes' entry, as adam_step_sets: every set of every group and dtype in one
// call, all arguments positional.
void adagrad_step_sets(const Args& a) {
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
    SetObjects objects;
    for (std::size_t i = 0; i < n; ++i) {
        check_step(steps[i], ArgName{"step", "steps", i, true});
        for (const Items* list : {&params, &grads, &sums}) objects.push_back((*list)[i]);
    }
    launch(check_sets(objects, kAdagradRoles, 3, true, /*mixed_dtypes=*/true), hypers.data(), true,
           steps.data());
}

}  // namespace

void register_adagrad(py::module_& m) {
    def_entry<adagrad_step_one>(
        m, "adagrad_step", kAdagradStepParameters,
        R"doc(One Adagrad update of one parameter set, in place (torch.optim.Adagrad semantics).

state_sum is the running sum of squared gradients (start it at initial_accumulator_value).
step is the 1-based step count after incrementing. Validation as for adam_step.
)doc");
    def_entry<adagrad_step_multi>(
        m, "adagrad_step_multi", kAdagradStepMultiParameters,
        "Adagrad update of many parameter sets in one native call. As adagrad_step otherwise.");
    def_entry<adagrad_step_sets>(
        m, "adagrad_step_sets", "params, grads, state_sums, steps, hypers, /",
        "The optimizer classes' entry: all sets of all groups and dtypes in one call; hypers "
        "is one tuple (lr, lr_decay, weight_decay, eps, maximize) or one per set.");
}

}  // namespace fastadam::python
