// Bindings of the 8-bit state Adam kernel (lowbit_math.hpp): adam8bit_step (one parameter set),
// adam8bit_step_sets (the optimizer classes' entry) and the 8-bit bandwidth probe. Validate
// everything, release the GIL, run.
#include <string>
#include <type_traits>

#include "fastadam/kernels.hpp"
#include "param_sets.hpp"
#include "register.hpp"

namespace fastadam::python {

namespace {

// The float arrays of a set go through check_sets; the codes and scales are checked here.
constexpr Role kFloatRoles[] = {{"param", "params", true},
                                {"grad", "grads", false},
                                {"master", "masters", true, true, true, true}};
constexpr std::size_t kFloatRoleCount = 3, kMasterRole = 2;

// The coded state arrays of a set, in this order; the max_exp_avg_sq pair only with amsgrad.
constexpr const char* kCodedNames[6][2] = {
    {"exp_avg_codes", "exp_avg_codes"},         {"exp_avg_scales", "exp_avg_scales"},
    {"exp_avg_sq_codes", "exp_avg_sq_codes"},   {"exp_avg_sq_scales", "exp_avg_sq_scales"},
    {"max_exp_avg_sq_codes", "max_exp_avg_sq_codes"},
    {"max_exp_avg_sq_scales", "max_exp_avg_sq_scales"}};
constexpr std::size_t kCoded = 6;

enum class Kernel { adam, bandwidth_probe };

struct Launch {
    const SetObjects& floats;  // kFloatRoleCount per set
    const SetObjects& coded;   // kCoded per set (null for a left-out max pair)
    bool multi;
    const AdamHyper* hypers;
    bool per_set_hyper;
    const std::int64_t* steps;
    const StepOptions& options;
    Kernel kernel = Kernel::adam;
};

py::object launch(const Launch& c) {
    const CheckedSets sets =
        check_sets(c.floats, kFloatRoles, kFloatRoleCount, c.multi, /*mixed_dtypes=*/true);
    if (c.options.stochastic_rounding)
        check_stochastic_rounding(sets, kMasterRole, kFloatRoles, c.multi);
    const std::size_t n = sets.count();
    SmallVector<CheckedArray, 40> all;
    for (const CheckedArray& a : sets.arrays) all.push_back(a);
    for (std::size_t i = 0; i < n; ++i) {
        if (sets.dtypes[i] == Dtype::float64)
            throw py::type_error(ArgName{"param", "params", i, c.multi}.str() +
                                 " is float64: 8-bit state is for float32, float16 and bfloat16 "
                                 "parameters");
        const std::int64_t size = sets.size(i);
        const std::int64_t blocks = (size + lowbit::kBlock - 1) / lowbit::kBlock;
        for (std::size_t k = 0; k < kCoded; ++k) {
            PyObject* obj = c.coded[i * kCoded + k];
            if (obj == nullptr) {
                all.push_back(CheckedArray{});
                continue;
            }
            const bool codes = k % 2 == 0;
            all.push_back(check_flat_array(
                obj, ArgName{kCodedNames[k][0], kCodedNames[k][1], i, c.multi}, true,
                codes ? FlatKind::codes : FlatKind::scales, codes ? size : blocks,
                codes ? "the parameter's size" : "one per block of 256 elements"));
        }
    }
    const std::size_t floats = sets.arrays.size();
    check_no_overlap(all.data(), all.size(), [&](std::size_t k) {
        if (k < floats) {
            const Role& role = kFloatRoles[k % kFloatRoleCount];
            return ArgName{role.single, role.plural, k / kFloatRoleCount, c.multi}.str();
        }
        const std::size_t j = k - floats;
        return ArgName{kCodedNames[j % kCoded][0], kCodedNames[j % kCoded][1], j / kCoded, c.multi}
            .str();
    });
    const auto make = [&](auto zero, std::size_t i) {
        // float64 sets were refused above; their list type only has to compile.
        using P = std::conditional_t<std::is_same_v<decltype(zero), double>, float, decltype(zero)>;
        Adam8bitTensor<P> t;
        t.param = sets.data<P>(i, 0);
        t.grad = sets.data<P>(i, 1);
        auto codes = [&](std::size_t k) { return static_cast<std::uint8_t*>(all[floats + i * kCoded + k].data); };
        auto scales = [&](std::size_t k) { return static_cast<float*>(all[floats + i * kCoded + k].data); };
        t.exp_avg_codes = codes(0);
        t.exp_avg_scales = scales(1);
        t.exp_avg_sq_codes = codes(2);
        t.exp_avg_sq_scales = scales(3);
        t.max_exp_avg_sq_codes = codes(4);
        t.max_exp_avg_sq_scales = scales(5);
        t.size = sets.size(i);
        const std::int64_t step = c.steps[i];
        t.scalars = make_scalars(c.hypers[c.per_set_hyper ? i : 0], step);
        t.state_key = lowbit::state_key(c.options.seed, step);
        set_param_options(t, sets, i, kMasterRole, c.options, step);
        return t;
    };
    if (c.kernel == Kernel::adam)
        return launch_step(sets, c.options, make,
                           [](const auto* t, std::size_t k) { adam8bit_step(t, k); });
    return launch_step(sets, c.options, make,
                       [](const auto* t, std::size_t k) { bandwidth_probe(t, k); });
}

PyObject* none_to_null(PyObject* obj) { return obj == Py_None ? nullptr : obj; }

enum Arg {
    kParam,
    kGrad,
    kExpAvgCodes,
    kExpAvgScales,
    kExpAvgSqCodes,
    kExpAvgSqScales,
    kStep,
    kLr,
    kBetas,
    kEps,
    kWeightDecay,
    kAmsgrad,
    kMaxCodes,
    kMaxScales,
    kMaximize,
    kDecoupled,
    kBiasCorrection,
    kMaster,
    kGradScale,
    kMaxGradNorm,
    kSkipNonfinite,
    kStochasticRounding,
    kSeed,
    kEpsMode
};
constexpr const char* kStepParameters =
    "param, grad, exp_avg_codes, exp_avg_scales, exp_avg_sq_codes, exp_avg_sq_scales, *, step, "
    "lr=0.001, betas=(0.9, 0.999), eps=1e-08, weight_decay=0.0, amsgrad=False, "
    "max_exp_avg_sq_codes=None, max_exp_avg_sq_scales=None, maximize=False, decoupled=False, "
    "bias_correction=True, master=None, grad_scale=1.0, max_grad_norm=None, "
    "skip_nonfinite=False, stochastic_rounding=False, seed=0, eps_mode='torch'";

py::object adam8bit_step_one(const Args& a) {
    const AdamHyper d;
    const AdamHyper h = make_adam_hyper(
        real_arg(a[kLr], "lr", d.lr), pair_arg(a[kBetas], "betas", {d.beta1, d.beta2}),
        real_arg(a[kEps], "eps", d.eps), real_arg(a[kWeightDecay], "weight_decay", d.weight_decay),
        bool_arg(a[kAmsgrad], "amsgrad", d.amsgrad), bool_arg(a[kMaximize], "maximize", d.maximize),
        bool_arg(a[kDecoupled], "decoupled", d.decoupled),
        bool_arg(a[kBiasCorrection], "bias_correction", d.bias_correction),
        keras_eps_arg(a[kEpsMode]));
    check_hyper(h);
    PyObject* max_codes = a.given(kMaxCodes) ? none_to_null(a[kMaxCodes]) : nullptr;
    PyObject* max_scales = a.given(kMaxScales) ? none_to_null(a[kMaxScales]) : nullptr;
    for (PyObject* obj : {max_codes, max_scales}) {
        const char* name = obj == max_codes ? "max_exp_avg_sq_codes" : "max_exp_avg_sq_scales";
        if (h.amsgrad && obj == nullptr)
            throw py::value_error(std::string(name) + " is required when amsgrad=True");
        if (!h.amsgrad && obj != nullptr)
            throw py::value_error(std::string(name) + " is only used with amsgrad=True");
    }
    const std::int64_t step = int_arg(a[kStep], "step");
    check_step(step, "step");
    const StepOptions options = step_options(a[kGradScale], a[kMaxGradNorm], a[kSkipNonfinite],
                                             a[kStochasticRounding], a[kSeed]);
    SetObjects floats, coded;
    floats.push_back(a[kParam]);
    floats.push_back(a[kGrad]);
    floats.push_back(a.given(kMaster) ? none_to_null(a[kMaster]) : nullptr);
    for (int k : {kExpAvgCodes, kExpAvgScales, kExpAvgSqCodes, kExpAvgSqScales}) coded.push_back(a[k]);
    coded.push_back(max_codes);
    coded.push_back(max_scales);
    return launch({floats, coded, false, &h, false, &step, options});
}


// The lists of a multi-set call: params, grads, then the coded arrays in kCodedNames order
// (the max pair optional per set, None without amsgrad).
struct SetLists {
    Items params, grads, coded[kCoded];
};

SetLists read_lists(const Args& a, std::size_t coded_count, Held& held) {
    SetLists l;
    l.params = list_arg(a[0], "params", held);
    const std::size_t n = l.params.size();
    l.grads = list_arg(a[1], "grads", n, held);
    for (std::size_t k = 0; k < coded_count; ++k)
        l.coded[k] = list_arg(a[2 + static_cast<int>(k)], kCodedNames[k][1], n, held);
    return l;
}

py::object adam8bit_step_sets(const Args& a) {
    Held held;
    const SetLists l = read_lists(a, kCoded, held);
    const std::size_t n = l.params.size();
    const auto steps = int_per_set(a[8], "steps", n, held);
    const auto hypers = hypers_per_set<AdamHyper>(a[9], n, held, adam_hyper_from_tuple);
    PyObject* masters = a.given(10) ? none_to_null(a[10]) : nullptr;
    const Items master_list = masters ? list_arg(masters, "masters", n, held) : Items();
    const StepOptions options = step_options(a[11]);
    SetObjects floats, coded;
    for (std::size_t i = 0; i < n; ++i) {
        check_step(steps[i], ArgName{"step", "steps", i, true});
        floats.push_back(l.params[i]);
        floats.push_back(l.grads[i]);
        floats.push_back(masters ? none_to_null(master_list[i]) : nullptr);
        for (std::size_t k = 0; k < kCoded; ++k) {
            PyObject* obj = none_to_null(l.coded[k][i]);
            if (k >= 4 && hypers[i].amsgrad != (obj != nullptr))
                throw py::value_error(std::string(kCodedNames[k][1]) + "[" + std::to_string(i) +
                                      "] must be " +
                                      (hypers[i].amsgrad ? "an array (amsgrad=True)"
                                                         : "None (amsgrad=False)"));
            if (k < 4 && obj == nullptr)
                throw py::type_error(std::string(kCodedNames[k][1]) + "[" + std::to_string(i) +
                                     "] must be a numpy.ndarray, got None");
            coded.push_back(obj);
        }
    }
    return launch({floats, coded, true, hypers.data(), true, steps.data(), options});
}

py::object adam8bit_bandwidth_probe(const Args& a) {
    Held held;
    const SetLists l = read_lists(a, 4, held);
    const std::size_t n = l.params.size();
    SetObjects floats, coded;
    for (std::size_t i = 0; i < n; ++i) {
        floats.push_back(l.params[i]);
        floats.push_back(l.grads[i]);
        floats.push_back(nullptr);
        for (std::size_t k = 0; k < 4; ++k) coded.push_back(l.coded[k][i]);
        coded.push_back(nullptr);
        coded.push_back(nullptr);
    }
    const AdamHyper h;
    const SmallVector<std::int64_t, 8> steps(n, 1);
    const StepOptions options;
    Launch c{floats, coded, true, &h, false, steps.data(), options};
    c.kernel = Kernel::bandwidth_probe;
    return launch(c);
}

}  // namespace

void register_adam8bit(py::module_& m) {
    def_entry<adam8bit_step_one>(m, "adam8bit_step", kStepParameters,
                                 R"doc(One fused Adam/AdamW update with 8-bit state, in place.

The state is block-wise 8-bit (blocks of 256 elements; ``fastadam.lowbit`` describes the codes):
per state, ``*_codes`` (uint8, 1-D, one per element) and ``*_scales`` (float32, 1-D, one per
block). Each block is decoded, updated with the same element function as ``adam_step`` and
encoded back in one pass, with stochastic rounding keyed by (seed, step, element index).

Parameters
----------
param, grad : numpy.ndarray
    float32, float16 or bfloat16, C-contiguous, one shape; param is updated in place.
exp_avg_codes, exp_avg_scales, exp_avg_sq_codes, exp_avg_sq_scales : numpy.ndarray
    The coded state, updated in place (``fastadam.lowbit.zeros_state`` makes a fresh one).
max_exp_avg_sq_codes, max_exp_avg_sq_scales : numpy.ndarray, optional
    Required with amsgrad=True, forbidden otherwise.
step, lr, betas, eps, weight_decay, amsgrad, maximize, decoupled, bias_correction, master,
grad_scale, max_grad_norm, skip_nonfinite, stochastic_rounding, seed, eps_mode
    As for ``adam_step``; ``seed`` also keys the state's stochastic rounding.

Raises
------
TypeError, ValueError
    Before any array is written, naming the offending argument.
)doc");
    def_entry<adam8bit_step_sets>(
        m, "adam8bit_step_sets",
        "params, grads, exp_avg_codes, exp_avg_scales, exp_avg_sq_codes, exp_avg_sq_scales, "
        "max_exp_avg_sq_codes, max_exp_avg_sq_scales, steps, hypers, masters=None, "
        "options=None, /",
        "The optimizer classes' entry for 8-bit state: all sets in one call, laid out as "
        "adam_step_sets (hypers, steps, masters, options) with the coded arrays in place of "
        "the float state (the max pair None for sets without amsgrad). Returns a StepReport.");
    def_entry<adam8bit_bandwidth_probe>(
        m, "adam8bit_bandwidth_probe",
        "params, grads, exp_avg_codes, exp_avg_scales, exp_avg_sq_codes, exp_avg_sq_scales",
        "The 8-bit step's memory traffic without its math (p += g, codes += 1, scales += 1), "
        "validated and split across threads like adam8bit_step_sets: the bandwidth reference "
        "for benchmarks.");
}

}  // namespace fastadam::python
