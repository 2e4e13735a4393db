// Bindings of Adam's family (torch.optim.RMSprop, Adamax, NAdam, RAdam semantics): the
// optimizer classes' *_step_sets entries, one native call per step for every set, group and
// dtype. Validate everything, release the GIL, run.
#include <string>
#include <type_traits>

#include "fastadam/kernels.hpp"
#include "param_sets.hpp"
#include "register.hpp"

namespace fastadam::python {

namespace {

PyObject* none_to_null(PyObject* obj) { return obj == Py_None ? nullptr : obj; }

void require(bool ok, const std::string& what, double value) {
    if (!ok) throw py::value_error(what + ", got " + std::to_string(value));
}

void check_common(double lr, double eps, double weight_decay) {
    require(lr >= 0.0, "lr must be >= 0", lr);
    require(eps >= 0.0, "eps must be >= 0", eps);
    require(weight_decay >= 0.0, "weight_decay must be >= 0", weight_decay);
}

void check_betas(double beta1, double beta2) {
    require(beta1 >= 0.0 && beta1 < 1.0, "betas[0] must be in [0, 1)", beta1);
    require(beta2 >= 0.0 && beta2 < 1.0, "betas[1] must be in [0, 1)", beta2);
}

// A *_step_sets call, read and checked: the sets' arrays (param, grad, the optimizer's state
// arrays, master), their hyper-parameters, step counts and the step's options.
template <class Hyper>
struct Sets {
    SetObjects objects;
    SmallVector<Hyper, 8> hypers;
    SmallVector<std::int64_t, 8> steps;
    StepOptions options;
};

// Reads the positional arguments params, grads, `states` state lists (roles[2 ...]), steps,
// hypers, masters=None, options=None. An optional state array must be present exactly when
// needs(hyper, k) says set i uses state k.
template <class Hyper, class Parse, class Needs>
Sets<Hyper> read_sets(const Args& a, const Role* roles, std::size_t states, Held& held,
                      const Parse& parse, const Needs& needs) {
    Sets<Hyper> out;
    const Items params = list_arg(a[0], "params", held);
    const std::size_t n = params.size();
    const Items grads = list_arg(a[1], "grads", n, held);
    Items lists[3];
    for (std::size_t k = 0; k < states; ++k)
        lists[k] = list_arg(a[2 + k], roles[2 + k].plural, n, held);
    out.steps = int_per_set(a[2 + states], "steps", n, held);
    out.hypers = hypers_per_set<Hyper>(a[3 + states], n, held, parse);
    PyObject* masters = a.given(4 + states) ? none_to_null(a[4 + states]) : nullptr;
    const Items master_list = masters ? list_arg(masters, "masters", n, held) : Items();
    out.options = step_options(a.given(5 + states) ? a[5 + states] : nullptr);
    for (std::size_t i = 0; i < n; ++i) {
        check_step(out.steps[i], ArgName{"step", "steps", i, true});
        out.objects.push_back(params[i]);
        out.objects.push_back(grads[i]);
        for (std::size_t k = 0; k < states; ++k) {
            PyObject* obj = none_to_null(lists[k][i]);
            const Role& role = roles[2 + k];
            if (role.optional && needs(out.hypers[i], k) != (obj != nullptr))
                throw py::value_error(std::string(role.plural) + "[" + std::to_string(i) +
                                      "] must be " +
                                      (obj == nullptr ? "an array" : "None") +
                                      " with this set's hyper-parameters");
            out.objects.push_back(obj);
        }
        out.objects.push_back(masters ? none_to_null(master_list[i]) : nullptr);
    }
    return out;
}

// Checks the arrays of `sets` (roles: param, grad, states, master last) and runs them: fill(t,
// checked, i) sets tensor t's state pointers and scalars, run(tensors, count) is the kernel.
template <template <class, class> class Tensor, class Hyper, class Fill, class Run>
py::object launch(const Sets<Hyper>& s, const Role* roles, std::size_t role_count,
                  const Fill& fill, const Run& run) {
    const CheckedSets sets = check_sets(s.objects, roles, role_count, true, true);
    const std::size_t master_role = role_count - 1;
    if (s.options.stochastic_rounding)
        check_stochastic_rounding(sets, master_role, roles, true);
    const auto make = [&](auto zero, std::size_t i) {
        using P = decltype(zero);
        Tensor<P, state_of_t<P>> t;
        t.param = sets.data<P>(i, 0);
        t.grad = sets.data<P>(i, 1);
        t.size = sets.size(i);
        fill(t, sets, i);
        set_param_options(t, sets, i, master_role, s.options, s.steps[i]);
        return t;
    };
    return launch_step(sets, s.options, make, run);
}

// --- RMSprop ------------------------------------------------------------------------------

constexpr Role kRmspropRoles[] = {{"param", "params", true},
                                  {"grad", "grads", false},
                                  {"square_avg", "square_avgs", true, false, true},
                                  {"grad_avg", "grad_avgs", true, true, true},
                                  {"momentum_buffer", "momentum_buffers", true, true, true},
                                  {"master", "masters", true, true, true, true}};

RmspropHyper rmsprop_hyper(PyObject* t, std::size_t i) {
    check_hyper_tuple(t, 7, i, "(lr, alpha, eps, weight_decay, momentum, centered, maximize)");
    RmspropHyper h;
    h.lr = tuple_double(t, 0, i);
    h.alpha = tuple_double(t, 1, i);
    h.eps = tuple_double(t, 2, i);
    h.weight_decay = tuple_double(t, 3, i);
    h.momentum = tuple_double(t, 4, i);
    h.centered = tuple_bool(t, 5, i);
    h.maximize = tuple_bool(t, 6, i);
    check_common(h.lr, h.eps, h.weight_decay);
    require(h.alpha >= 0.0, "alpha must be >= 0", h.alpha);
    require(h.momentum >= 0.0, "momentum must be >= 0", h.momentum);
    return h;
}

py::object rmsprop_step_sets(const Args& a) {
    Held held;
    const auto s = read_sets<RmspropHyper>(
        a, kRmspropRoles, 3, held, rmsprop_hyper, [](const RmspropHyper& h, std::size_t k) {
            return k == 1 ? h.centered : k == 2 ? h.momentum != 0.0 : true;
        });
    const auto fill = [&](auto& t, const CheckedSets& sets, std::size_t i) {
        using S = typename std::remove_reference_t<decltype(t)>::state_type;
        t.square_avg = sets.data<S>(i, 2);
        t.grad_avg = sets.data<S>(i, 3);
        t.momentum_buffer = sets.data<S>(i, 4);
        t.scalars = make_scalars(s.hypers[i], s.steps[i]);
    };
    return launch<RmspropTensor>(s, kRmspropRoles, 6, fill,
                                 [](const auto* t, std::size_t n) { rmsprop_step(t, n); });
}

// --- Adamax -------------------------------------------------------------------------------

constexpr Role kAdamaxRoles[] = {{"param", "params", true},
                                 {"grad", "grads", false},
                                 {"exp_avg", "exp_avgs", true, false, true},
                                 {"exp_inf", "exp_infs", true, false, true},
                                 {"master", "masters", true, true, true, true}};

AdamaxHyper adamax_hyper(PyObject* t, std::size_t i) {
    check_hyper_tuple(t, 6, i, "(lr, beta1, beta2, eps, weight_decay, maximize)");
    AdamaxHyper h;
    h.lr = tuple_double(t, 0, i);
    h.beta1 = tuple_double(t, 1, i);
    h.beta2 = tuple_double(t, 2, i);
    h.eps = tuple_double(t, 3, i);
    h.weight_decay = tuple_double(t, 4, i);
    h.maximize = tuple_bool(t, 5, i);
    check_common(h.lr, h.eps, h.weight_decay);
    check_betas(h.beta1, h.beta2);
    return h;
}

py::object adamax_step_sets(const Args& a) {
    Held held;
    const auto s = read_sets<AdamaxHyper>(a, kAdamaxRoles, 2, held, adamax_hyper,
                                          [](const AdamaxHyper&, std::size_t) { return true; });
    const auto fill = [&](auto& t, const CheckedSets& sets, std::size_t i) {
        using S = typename std::remove_reference_t<decltype(t)>::state_type;
        t.exp_avg = sets.data<S>(i, 2);
        t.exp_inf = sets.data<S>(i, 3);
        t.scalars = make_scalars(s.hypers[i], s.steps[i]);
    };
    return launch<AdamaxTensor>(s, kAdamaxRoles, 5, fill,
                                [](const auto* t, std::size_t n) { adamax_step(t, n); });
}

// --- NAdam and RAdam: Adam's two moments ----------------------------------------------------

constexpr Role kTwoMomentRoles[] = {{"param", "params", true},
                                    {"grad", "grads", false},
                                    {"exp_avg", "exp_avgs", true, false, true},
                                    {"exp_avg_sq", "exp_avg_sqs", true, false, true},
                                    {"master", "masters", true, true, true, true}};

NadamHyper nadam_hyper(PyObject* t, std::size_t i) {
    check_hyper_tuple(t, 8, i,
                      "(lr, beta1, beta2, eps, weight_decay, momentum_decay, decoupled, "
                      "maximize)");
    NadamHyper h;
    h.lr = tuple_double(t, 0, i);
    h.beta1 = tuple_double(t, 1, i);
    h.beta2 = tuple_double(t, 2, i);
    h.eps = tuple_double(t, 3, i);
    h.weight_decay = tuple_double(t, 4, i);
    h.momentum_decay = tuple_double(t, 5, i);
    h.decoupled = tuple_bool(t, 6, i);
    h.maximize = tuple_bool(t, 7, i);
    check_common(h.lr, h.eps, h.weight_decay);
    check_betas(h.beta1, h.beta2);
    require(h.momentum_decay >= 0.0, "momentum_decay must be >= 0", h.momentum_decay);
    return h;
}

// nadam_mu_product(h, step), continued from the nearest earlier product this thread computed
// for the same beta1 and momentum_decay: a training loop pays one multiplication per step, not
// one per step so far.
float cached_mu_product(const NadamHyper& h, std::int64_t step) {
    struct Entry {
        double beta1, momentum_decay;
        std::int64_t step;  // 0: empty
        float product;
    };
    constexpr int kEntries = 8;
    thread_local Entry cache[kEntries] = {};
    thread_local int next = 0;
    Entry* best = nullptr;
    for (Entry& e : cache)
        if (e.step > 0 && e.step <= step && e.beta1 == h.beta1 &&
            e.momentum_decay == h.momentum_decay && (best == nullptr || e.step > best->step))
            best = &e;
    if (best != nullptr && best->step == step) return best->product;
    Entry& e = cache[next];
    next = (next + 1) % kEntries;
    const float product = best != nullptr ? nadam_mu_product(h, step, best->step, best->product)
                                          : nadam_mu_product(h, step);
    e = Entry{h.beta1, h.momentum_decay, step, product};
    return product;
}

py::object nadam_step_sets(const Args& a) {
    Held held;
    const auto s = read_sets<NadamHyper>(a, kTwoMomentRoles, 2, held, nadam_hyper,
                                         [](const NadamHyper&, std::size_t) { return true; });
    const auto fill = [&](auto& t, const CheckedSets& sets, std::size_t i) {
        using S = typename std::remove_reference_t<decltype(t)>::state_type;
        t.exp_avg = sets.data<S>(i, 2);
        t.exp_avg_sq = sets.data<S>(i, 3);
        t.scalars =
            make_scalars(s.hypers[i], s.steps[i], cached_mu_product(s.hypers[i], s.steps[i]));
    };
    return launch<NadamTensor>(s, kTwoMomentRoles, 5, fill,
                               [](const auto* t, std::size_t n) { nadam_step(t, n); });
}

py::object nadam_mu_product_entry(const Args& a) {
    NadamHyper h;
    h.beta1 = real_arg(a[0], "beta1", h.beta1);
    h.momentum_decay = real_arg(a[1], "momentum_decay", h.momentum_decay);
    const std::int64_t step = int_arg(a[2], "step");
    if (step < 0) throw py::value_error("step must be >= 0, got " + std::to_string(step));
    return py::float_(step == 0 ? 1.0f : cached_mu_product(h, step));
}

RadamHyper radam_hyper(PyObject* t, std::size_t i) {
    check_hyper_tuple(t, 7, i, "(lr, beta1, beta2, eps, weight_decay, decoupled, maximize)");
    RadamHyper h;
    h.lr = tuple_double(t, 0, i);
    h.beta1 = tuple_double(t, 1, i);
    h.beta2 = tuple_double(t, 2, i);
    h.eps = tuple_double(t, 3, i);
    h.weight_decay = tuple_double(t, 4, i);
    h.decoupled = tuple_bool(t, 5, i);
    h.maximize = tuple_bool(t, 6, i);
    check_common(h.lr, h.eps, h.weight_decay);
    check_betas(h.beta1, h.beta2);
    return h;
}

py::object radam_step_sets(const Args& a) {
    Held held;
    const auto s = read_sets<RadamHyper>(a, kTwoMomentRoles, 2, held, radam_hyper,
                                         [](const RadamHyper&, std::size_t) { return true; });
    const auto fill = [&](auto& t, const CheckedSets& sets, std::size_t i) {
        using S = typename std::remove_reference_t<decltype(t)>::state_type;
        t.exp_avg = sets.data<S>(i, 2);
        t.exp_avg_sq = sets.data<S>(i, 3);
        t.scalars = make_scalars(s.hypers[i], s.steps[i]);
    };
    return launch<RadamTensor>(s, kTwoMomentRoles, 5, fill,
                               [](const auto* t, std::size_t n) { radam_step(t, n); });
}

// --- SWATS -------------------------------------------------------------------------------

constexpr Role kSwatsRoles[] = {{"param", "params", true},
                                {"grad", "grads", false},
                                {"exp_avg", "exp_avgs", true, false, true},
                                {"exp_avg_sq", "exp_avg_sqs", true, false, true},
                                {"momentum_buffer", "momentum_buffers", true, true, true},
                                {"master", "masters", true, true, true, true}};

SwatsHyper swats_hyper(PyObject* t, std::size_t i) {
    check_hyper_tuple(t, 8, i,
                      "(lr, beta1, beta2, eps, weight_decay, maximize, sgd_phase, sgd_lr)");
    SwatsHyper h;
    h.lr = tuple_double(t, 0, i);
    h.beta1 = tuple_double(t, 1, i);
    h.beta2 = tuple_double(t, 2, i);
    h.eps = tuple_double(t, 3, i);
    h.weight_decay = tuple_double(t, 4, i);
    h.maximize = tuple_bool(t, 5, i);
    h.sgd_phase = tuple_bool(t, 6, i);
    h.sgd_lr = tuple_double(t, 7, i);
    check_common(h.lr, h.eps, h.weight_decay);
    check_betas(h.beta1, h.beta2);
    require(h.sgd_lr >= 0.0, "sgd_lr must be >= 0", h.sgd_lr);
    return h;
}

// The writable, C-contiguous float64 buffer of `count` doubles the dot products go to.
class DotsBuffer {
public:
    DotsBuffer(PyObject* obj, std::size_t count) {
        if (PyObject_GetBuffer(obj, &view_, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) !=
            0) {
            PyErr_Clear();
            throw py::type_error("dots must be a writable, C-contiguous float64 array");
        }
        held_ = true;
        if (std::string(view_.format) != "d" ||
            view_.len != static_cast<Py_ssize_t>(count * sizeof(double)))
            throw py::value_error("dots must be a float64 array of 2 * len(params) elements");
    }
    DotsBuffer(const DotsBuffer&) = delete;
    DotsBuffer& operator=(const DotsBuffer&) = delete;
    ~DotsBuffer() {
        if (held_ && !gil_retaken()) PyBuffer_Release(&view_);
    }
    double* data() const { return static_cast<double*>(view_.buf); }

private:
    Py_buffer view_{};
    bool held_ = false;
};

py::object swats_step_sets(const Args& a) {
    Held held;
    const auto s = read_sets<SwatsHyper>(
        a, kSwatsRoles, 3, held, swats_hyper,
        [](const SwatsHyper& h, std::size_t k) { return k == 2 ? h.sgd_phase : true; });
    const DotsBuffer dots(a[9], 2 * (s.objects.size() / 6));
    const auto fill = [&](auto& t, const CheckedSets& sets, std::size_t i) {
        using S = typename std::remove_reference_t<decltype(t)>::state_type;
        t.exp_avg = sets.data<S>(i, 2);
        t.exp_avg_sq = sets.data<S>(i, 3);
        t.momentum_buffer = sets.data<S>(i, 4);
        t.scalars = make_scalars(s.hypers[i], s.steps[i]);
        t.dots = dots.data() + 2 * i;
    };
    return launch<SwatsTensor>(s, kSwatsRoles, 6, fill,
                               [](const auto* t, std::size_t n) { swats_step(t, n); });
}

constexpr const char* kSetsDoc =
    " Every set's arrays, hyper-parameter tuple (one for all sets, or one per set) and step "
    "(after incrementing; an int or one per set) are validated before anything is written; "
    "masters and options as for adam_step_sets. Returns a StepReport.";

}  // namespace

void register_family(py::module_& m) {
    def_entry<rmsprop_step_sets>(
        m, "rmsprop_step_sets",
        "params, grads, square_avgs, grad_avgs, momentum_buffers, steps, hypers, masters=None, "
        "options=None, /",
        (std::string("RMSprop (torch.optim.RMSprop) over many parameter sets in one call. hypers: "
                     "(lr, alpha, eps, weight_decay, momentum, centered, maximize); grad_avgs[i] "
                     "is an array exactly when centered, momentum_buffers[i] when momentum > 0.") +
         kSetsDoc)
            .c_str());
    def_entry<adamax_step_sets>(
        m, "adamax_step_sets",
        "params, grads, exp_avgs, exp_infs, steps, hypers, masters=None, options=None, /",
        (std::string("Adamax (torch.optim.Adamax) over many parameter sets in one call. hypers: "
                     "(lr, beta1, beta2, eps, weight_decay, maximize).") +
         kSetsDoc)
            .c_str());
    def_entry<nadam_step_sets>(
        m, "nadam_step_sets",
        "params, grads, exp_avgs, exp_avg_sqs, steps, hypers, masters=None, options=None, /",
        (std::string("NAdam (torch.optim.NAdam) over many parameter sets in one call. hypers: "
                     "(lr, beta1, beta2, eps, weight_decay, momentum_decay, decoupled, "
                     "maximize). The product of the momentum coefficients up to a set's step "
                     "is nadam_mu_product's.") +
         kSetsDoc)
            .c_str());
    def_entry<nadam_mu_product_entry>(
        m, "nadam_mu_product", "beta1, momentum_decay, step",
        "NAdam's mu_1 * ... * mu_step as torch.optim.NAdam keeps it (state 'mu_product'): in "
        "float32, each mu_i = beta1 * (1 - 0.5 * 0.96 ** (i * momentum_decay)) rounded to "
        "float32 before multiplying. 1.0 at step 0.");
    def_entry<swats_step_sets>(
        m, "swats_step_sets",
        "params, grads, exp_avgs, exp_avg_sqs, momentum_buffers, steps, hypers, masters, "
        "options, dots, /",
        (std::string("SWATS (fastadam.SWATS) over many parameter sets in one call. hypers: (lr, "
                     "beta1, beta2, eps, weight_decay, maximize, sgd_phase, sgd_lr); "
                     "momentum_buffers[i] "
                     "is an array exactly in the SGD phase. In the Adam phase set i's dot "
                     "products, sum(step * step) and sum(step * grad) (step: what was "
                     "subtracted from the parameter), are written to dots[2i] and dots[2i + 1] "
                     "(a float64 array of 2 * len(params)), zeros in the SGD phase; summed in "
                     "double in a fixed order, the same on every ISA and thread count.") +
         kSetsDoc)
            .c_str());
    def_entry<radam_step_sets>(
        m, "radam_step_sets",
        "params, grads, exp_avgs, exp_avg_sqs, steps, hypers, masters=None, options=None, /",
        (std::string("RAdam (torch.optim.RAdam) over many parameter sets in one call. hypers: "
                     "(lr, beta1, beta2, eps, weight_decay, decoupled, maximize).") +
         kSetsDoc)
            .c_str());
}

}  // namespace fastadam::python
