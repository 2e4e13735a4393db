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

// A set has float state (exp_avg, exp_avg_sq, max_exp_avg_sq: float32, or the parameter's
// dtype for float64) or coded 8-bit state, never both. The float arrays go through check_sets;
// the codes and scales are checked here.
constexpr Role kFloatRoles[] = {{"param", "params", true},
                                {"grad", "grads", false},
                                {"master", "masters", true, true, true, true},
                                {"exp_avg", "exp_avgs", true, true, true},
                                {"exp_avg_sq", "exp_avg_sqs", true, true, true},
                                {"max_exp_avg_sq", "max_exp_avg_sqs", true, true, true}};
constexpr std::size_t kFloatRoleCount = 6, kMasterRole = 2, kExpAvgRole = 3;

// The coded state arrays of a set, in this order; the max_exp_avg_sq pair only with amsgrad.
constexpr const char* kCodedNames[6] = {"exp_avg_codes",        "exp_avg_scales",
                                        "exp_avg_sq_codes",     "exp_avg_sq_scales",
                                        "max_exp_avg_sq_codes", "max_exp_avg_sq_scales"};
constexpr std::size_t kCoded = 6;

enum class Kernel { adam, bandwidth_probe };

struct Launch {
    const SetObjects& floats;  // kFloatRoleCount per set
    const SetObjects& coded;   // kCoded per set (null where left out)
    bool multi;
    const AdamHyper* hypers;
    bool per_set_hyper;
    const std::int64_t* steps;
    const StepOptions& options;
    Kernel kernel = Kernel::adam;
};

std::string name_of(const char* single, const char* plural, std::size_t i, bool multi) {
    return ArgName{single, plural, i, multi}.str();
}

// Checks set i's coded arrays (appending them to `all`); returns whether it has coded state.
bool check_coded(const Launch& c, const CheckedSets& sets, std::size_t i,
                 SmallVector<CheckedArray, 40>& all) {
    PyObject* const* objs = c.coded.data() + i * kCoded;
    const bool coded = objs[0] != nullptr;
    const bool has_float = sets.data<void>(i, kExpAvgRole) != nullptr;
    const bool amsgrad = c.hypers[c.per_set_hyper ? i : 0].amsgrad;
    if (coded == has_float)
        throw py::type_error(name_of("exp_avg_codes", "exp_avg_codes", i, c.multi) + " and " +
                             name_of("exp_avg", "exp_avgs", i, c.multi) +
                             (coded ? " are both given" : " are both None") +
                             ": a set has either 8-bit or float state");
    for (std::size_t k = 0; k < kCoded; ++k) {
        const bool wanted = coded && (k < 4 || amsgrad);
        const std::string name = name_of(kCodedNames[k], kCodedNames[k], i, c.multi);
        if (wanted && objs[k] == nullptr)
            throw py::value_error(name + " is required" + (k < 4 ? "" : " when amsgrad=True"));
        if (!wanted && objs[k] != nullptr)
            throw py::value_error(name + (coded ? " is only used with amsgrad=True"
                                                : " must be None for a set with float state"));
        if (objs[k] == nullptr) {
            all.push_back(CheckedArray{});
            continue;
        }
        const bool codes = k % 2 == 0;
        const std::int64_t size = sets.size(i);
        all.push_back(check_flat_array(
            objs[k], ArgName{kCodedNames[k], kCodedNames[k], i, c.multi}, true,
            codes ? FlatKind::codes : FlatKind::scales,
            codes ? size : (size + lowbit::kBlock - 1) / lowbit::kBlock,
            codes ? "the parameter's size" : "one per block of 256 elements"));
    }
    if (coded && sets.dtypes[i] == Dtype::float64)
        throw py::type_error(name_of("param", "params", i, c.multi) +
                             " is float64: 8-bit state is for float32, float16 and bfloat16 "
                             "parameters");
    if (!coded) {
        if (sets.data<void>(i, kExpAvgRole + 1) == nullptr)
            throw py::type_error(name_of("exp_avg_sq", "exp_avg_sqs", i, c.multi) +
                                 " must be an array (the set has a float exp_avg)");
        if (amsgrad != (sets.data<void>(i, kExpAvgRole + 2) != nullptr))
            throw py::value_error(name_of("max_exp_avg_sq", "max_exp_avg_sqs", i, c.multi) +
                                  (amsgrad ? " is required when amsgrad=True"
                                           : " is only used with amsgrad=True"));
    }
    return coded;
}

// Validates every set, looks at the gradients when asked, then runs the float-state sets and
// the 8-bit ones together: one pre-pass, one release of the GIL, nothing written unless all run.
py::object launch(const Launch& c) {
    const CheckedSets sets =
        check_sets(c.floats, kFloatRoles, kFloatRoleCount, c.multi, /*mixed_dtypes=*/true);
    if (c.options.stochastic_rounding)
        check_stochastic_rounding(sets, kMasterRole, kFloatRoles, c.multi);
    const std::size_t n = sets.count();
    SmallVector<CheckedArray, 40> all;
    for (const CheckedArray& a : sets.arrays) all.push_back(a);
    SmallVector<bool, 8> coded;
    for (std::size_t i = 0; i < n; ++i) coded.push_back(check_coded(c, sets, i, all));
    const std::size_t floats = sets.arrays.size();
    check_no_overlap(all.data(), all.size(), [&](std::size_t k) {
        if (k < floats) {
            const Role& role = kFloatRoles[k % kFloatRoleCount];
            return name_of(role.single, role.plural, k / kFloatRoleCount, c.multi);
        }
        const std::size_t j = k - floats;
        return name_of(kCodedNames[j % kCoded], kCodedNames[j % kCoded], j / kCoded, c.multi);
    });
    const GradLook grads = look_at_grads(sets, c.options);
    if (grads.decision.skip) return step_report(true, &grads.decision);

    auto base = [&](auto& t, std::size_t i) {
        using P = typename std::remove_reference_t<decltype(t)>::value_type;
        t.param = sets.data<P>(i, 0);
        t.grad = sets.data<P>(i, 1);
        t.size = sets.size(i);
        t.scalars = make_scalars(c.hypers[c.per_set_hyper ? i : 0], c.steps[i]);
        t.grad_multiplier = grads.multiplier;
        set_param_options(t, sets, i, kMasterRole, c.options, c.steps[i]);
    };
    auto coded_tensor = [&](auto zero, std::size_t i) {
        Adam8bitTensor<decltype(zero)> t;
        base(t, i);
        auto at = [&](std::size_t k) { return all[floats + i * kCoded + k].data; };
        t.exp_avg_codes = static_cast<std::uint8_t*>(at(0));
        t.exp_avg_scales = static_cast<float*>(at(1));
        t.exp_avg_sq_codes = static_cast<std::uint8_t*>(at(2));
        t.exp_avg_sq_scales = static_cast<float*>(at(3));
        t.max_exp_avg_sq_codes = static_cast<std::uint8_t*>(at(4));
        t.max_exp_avg_sq_scales = static_cast<float*>(at(5));
        t.state_key = lowbit::state_key(c.options.seed, c.steps[i]);
        return t;
    };
    auto float_tensor = [&](auto zero, std::size_t i) {
        using P = decltype(zero);
        using S = state_of_t<P>;
        AdamTensor<P> t;
        base(t, i);
        t.exp_avg = sets.data<S>(i, kExpAvgRole);
        t.exp_avg_sq = sets.data<S>(i, kExpAvgRole + 1);
        t.max_exp_avg_sq = sets.data<S>(i, kExpAvgRole + 2);
        return t;
    };
    SmallVector<Adam8bitTensor<float>, 4> c32;
    SmallVector<Adam8bitTensor<Half>, 4> c16;
    SmallVector<Adam8bitTensor<BFloat16>, 4> cb16;
    SmallVector<AdamTensor<float>, 4> f32;
    SmallVector<AdamTensor<double>, 4> f64;
    SmallVector<AdamTensor<Half>, 4> f16;
    SmallVector<AdamTensor<BFloat16>, 4> fb16;
    for (std::size_t i = 0; i < n; ++i) {
        const Dtype d = sets.dtypes[i];
        if (coded[i]) {
            if (d == Dtype::float32) c32.push_back(coded_tensor(0.0f, i));
            if (d == Dtype::float16) c16.push_back(coded_tensor(Half{}, i));
            if (d == Dtype::bfloat16) cb16.push_back(coded_tensor(BFloat16{}, i));
        } else {
            if (d == Dtype::float32) f32.push_back(float_tensor(0.0f, i));
            if (d == Dtype::float64) f64.push_back(float_tensor(0.0, i));
            if (d == Dtype::float16) f16.push_back(float_tensor(Half{}, i));
            if (d == Dtype::bfloat16) fb16.push_back(float_tensor(BFloat16{}, i));
        }
    }
    // The pool is the one thing a kernel can fail to get: start it before the first write.
    const int kinds = !c32.empty() + !c16.empty() + !cb16.empty() + !f32.empty() + !f64.empty() +
                      !f16.empty() + !fb16.empty();
    if (kinds > 1 && total_size(sets) >= kParallelThreshold) start_threads();
    const bool probe = c.kernel == Kernel::bandwidth_probe;
    auto run = [&](const auto& list, auto update) {
        if (list.empty()) return;
        if (probe) bandwidth_probe(list.data(), list.size());
        else update(list.data(), list.size());
    };
    auto step8 = [](const auto* t, std::size_t k) { adam8bit_step(t, k); };
    auto step32 = [](const auto* t, std::size_t k) { adam_step(t, k); };
    // The kernels touch only raw buffers, which the caller keeps alive until they return.
    without_gil([&] {
        run(c32, step8);
        run(c16, step8);
        run(cb16, step8);
        run(f32, step32);
        run(f64, step32);
        run(f16, step32);
        run(fb16, step32);
    });
    return step_report(false, grads.looked ? &grads.decision : nullptr);
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
    for (int k = 0; k < 3; ++k) floats.push_back(nullptr);
    for (int k : {kExpAvgCodes, kExpAvgScales, kExpAvgSqCodes, kExpAvgSqScales}) coded.push_back(a[k]);
    coded.push_back(max_codes);
    coded.push_back(max_scales);
    return launch({floats, coded, false, &h, false, &step, options});
}


// adam8bit_step_sets: params, grads, the float state lists (exp_avgs, exp_avg_sqs,
// max_exp_avg_sqs), the coded lists (kCodedNames order), steps, hypers, masters, options.
py::object adam8bit_step_sets(const Args& a) {
    Held held;
    const Items params = list_arg(a[0], "params", held);
    const std::size_t n = params.size();
    const Items grads = list_arg(a[1], "grads", n, held);
    static constexpr const char* float_names[3] = {"exp_avgs", "exp_avg_sqs", "max_exp_avg_sqs"};
    Items float_lists[3], coded_lists[kCoded];
    for (int k = 0; k < 3; ++k) float_lists[k] = list_arg(a[2 + k], float_names[k], n, held);
    for (std::size_t k = 0; k < kCoded; ++k)
        coded_lists[k] = list_arg(a[5 + static_cast<int>(k)], kCodedNames[k], n, held);
    const auto steps = int_per_set(a[11], "steps", n, held);
    const auto hypers = hypers_per_set<AdamHyper>(a[12], n, held, adam_hyper_from_tuple);
    PyObject* masters = a.given(13) ? none_to_null(a[13]) : nullptr;
    const Items master_list = masters ? list_arg(masters, "masters", n, held) : Items();
    const StepOptions options = step_options(a[14]);
    SetObjects floats, coded;
    for (std::size_t i = 0; i < n; ++i) {
        check_step(steps[i], ArgName{"step", "steps", i, true});
        floats.push_back(params[i]);
        floats.push_back(grads[i]);
        floats.push_back(masters ? none_to_null(master_list[i]) : nullptr);
        for (const Items& list : float_lists) floats.push_back(none_to_null(list[i]));
        for (const Items& list : coded_lists) coded.push_back(none_to_null(list[i]));
    }
    return launch({floats, coded, true, hypers.data(), true, steps.data(), options});
}

py::object adam8bit_bandwidth_probe(const Args& a) {
    Held held;
    const Items params = list_arg(a[0], "params", held);
    const std::size_t n = params.size();
    const Items grads = list_arg(a[1], "grads", n, held);
    Items coded_lists[4];
    for (int k = 0; k < 4; ++k) coded_lists[k] = list_arg(a[2 + k], kCodedNames[k], n, held);
    SetObjects floats, coded;
    for (std::size_t i = 0; i < n; ++i) {
        floats.push_back(params[i]);
        floats.push_back(grads[i]);
        for (int k = 0; k < 4; ++k) floats.push_back(nullptr);
        for (const Items& list : coded_lists) coded.push_back(list[i]);
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
        "params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, exp_avg_codes, exp_avg_scales, "
        "exp_avg_sq_codes, exp_avg_sq_scales, max_exp_avg_sq_codes, max_exp_avg_sq_scales, "
        "steps, hypers, masters=None, options=None, /",
        "The optimizer classes' entry when some state is 8-bit: every set in one call, each with "
        "float state (exp_avgs[i], exp_avg_sqs[i], max_exp_avg_sqs[i]; its codes None) or 8-bit "
        "state (the coded arrays; its float state None), the max pair only with amsgrad. "
        "steps, hypers, masters and options as adam_step_sets. One gradient pre-pass over all "
        "sets. Returns a StepReport.");
    def_entry<adam8bit_bandwidth_probe>(
        m, "adam8bit_bandwidth_probe",
        "params, grads, exp_avg_codes, exp_avg_scales, exp_avg_sq_codes, exp_avg_sq_scales",
        "The 8-bit step's memory traffic without its math (p += g, codes += 1, scales += 1), "
        "validated and split across threads like adam8bit_step_sets: the bandwidth reference "
        "for benchmarks.");
}

}  // namespace fastadam::python
