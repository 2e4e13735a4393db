// Bindings of the Adam kernels: adam_step (one parameter set) and adam_step_multi (a list of
// sets in one native call). Validate everything, then release the GIL and run the kernel.
#include <optional>
#include <utility>

#include "array_checks.hpp"
#include "fastadam/kernels.hpp"
#include "register.hpp"

namespace fastadam::python {

namespace {

// The arrays of one parameter set, as Python objects, before validation.
struct ParamSet {
    py::handle param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq;  // max_exp_avg_sq may be None
    std::int64_t step;
};

struct Names {
    bool multi;
    std::string operator()(const char* single, const char* plural, std::size_t i) const {
        return multi ? std::string(plural) + "[" + std::to_string(i) + "]" : std::string(single);
    }
};

template <class T>
T* data_of(const py::array& a) {
    return static_cast<T*>(const_cast<void*>(a.data()));
}

// What a validated call runs: the Adam update, or its memory traffic alone (benchmarks).
enum class Kernel { adam, bandwidth_probe };

template <class T>
void run_kernel(const std::vector<ArrayView>& views, const std::vector<ParamSet>& sets,
                const AdamHyper& hyper, Kernel kernel) {
    const std::size_t per_set = hyper.amsgrad ? 5 : 4;
    std::vector<AdamTensor<T>> tensors(sets.size());
    for (std::size_t i = 0; i < sets.size(); ++i) {
        const ArrayView* v = &views[i * per_set];
        auto& t = tensors[i];
        t.param = data_of<T>(v[0].array);
        t.grad = data_of<T>(v[1].array);
        t.exp_avg = data_of<T>(v[2].array);
        t.exp_avg_sq = data_of<T>(v[3].array);
        t.max_exp_avg_sq = hyper.amsgrad ? data_of<T>(v[4].array) : nullptr;
        t.size = static_cast<std::int64_t>(v[0].array.size());
        t.scalars = make_scalars(hyper, sets[i].step);
    }
    // Safe without the GIL: the kernel touches only raw buffers, and `views` holds a reference
    // to every array until it returns.
    py::gil_scoped_release release;
    if (kernel == Kernel::adam)
        adam_step(tensors.data(), tensors.size());
    else
        bandwidth_probe(tensors.data(), tensors.size());
}

void run(const std::vector<ParamSet>& sets, const AdamHyper& hyper, Names name,
         Kernel kernel = Kernel::adam) {
    check_hyper(hyper);
    std::vector<ArrayView> views;
    views.reserve(sets.size() * 5);
    std::optional<Dtype> dtype;
    for (std::size_t i = 0; i < sets.size(); ++i) {
        const ParamSet& s = sets[i];
        check_step(s.step, name("step", "steps", i));
        const Dtype d = param_dtype(s.param, name("param", "params", i));
        if (dtype && d != *dtype)
            throw py::type_error(name("param", "params", i) + " has another dtype than " +
                                 name("param", "params", 0) + ": one call updates one dtype");
        dtype = d;
        auto param = py::reinterpret_borrow<py::array>(s.param);
        const auto shape = shape_of(param);
        auto add = [&](py::handle obj, const char* single, const char* plural, bool written) {
            const std::string n = name(single, plural, i);
            views.push_back({check_array(obj, n, written, d, shape), n, written});
        };
        add(s.param, "param", "params", true);
        add(s.grad, "grad", "grads", false);
        add(s.exp_avg, "exp_avg", "exp_avgs", true);
        add(s.exp_avg_sq, "exp_avg_sq", "exp_avg_sqs", true);
        if (hyper.amsgrad) {
            if (s.max_exp_avg_sq.is_none())
                throw py::value_error(name("max_exp_avg_sq", "max_exp_avg_sqs", i) +
                                      " is required when amsgrad=True");
            add(s.max_exp_avg_sq, "max_exp_avg_sq", "max_exp_avg_sqs", true);
        }
    }
    check_no_overlap(views);
    if (!dtype) return;
    if (*dtype == Dtype::float32)
        run_kernel<float>(views, sets, hyper, kernel);
    else
        run_kernel<double>(views, sets, hyper, kernel);
}

AdamHyper make_hyper(double lr, std::pair<double, double> betas, double eps, double weight_decay,
                     bool amsgrad, bool maximize, bool decoupled, bool bias_correction) {
    AdamHyper h;
    h.lr = lr;
    h.beta1 = betas.first;
    h.beta2 = betas.second;
    h.eps = eps;
    h.weight_decay = weight_decay;
    h.amsgrad = amsgrad;
    h.maximize = maximize;
    h.decoupled = decoupled;
    h.bias_correction = bias_correction;
    return h;
}

void adam_step_one(py::object param, py::object grad, py::object exp_avg, py::object exp_avg_sq,
                   std::int64_t step, double lr, std::pair<double, double> betas, double eps,
                   double weight_decay, bool amsgrad, py::object max_exp_avg_sq, bool maximize,
                   bool decoupled, bool bias_correction) {
    const AdamHyper h =
        make_hyper(lr, betas, eps, weight_decay, amsgrad, maximize, decoupled, bias_correction);
    if (!amsgrad && !max_exp_avg_sq.is_none())
        throw py::value_error("max_exp_avg_sq is only used with amsgrad=True");
    run({{param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, step}}, h, Names{false});
}

std::vector<py::object> as_list(const py::object& obj, const char* name) {
    if (!py::isinstance<py::sequence>(obj) || py::isinstance<py::str>(obj) ||
        py::isinstance<py::array>(obj))
        throw py::type_error(std::string(name) + " must be a list or tuple");
    std::vector<py::object> out;
    for (auto item : py::reinterpret_borrow<py::sequence>(obj))
        out.push_back(py::reinterpret_borrow<py::object>(item));
    return out;
}

// as_list, and the list must be as long as params.
std::vector<py::object> as_list(const py::object& obj, const char* name, std::size_t size) {
    auto out = as_list(obj, name);
    if (out.size() != size)
        throw py::value_error(std::string(name) + " has " + std::to_string(out.size()) +
                              " entries but params has " + std::to_string(size));
    return out;
}

std::vector<ParamSet> param_sets(py::object params, py::object grads, py::object exp_avgs,
                                 py::object exp_avg_sqs, py::object steps, bool amsgrad,
                                 py::object max_exp_avg_sqs) {
    const auto p = as_list(params, "params");
    const auto g = as_list(grads, "grads", p.size());
    const auto m = as_list(exp_avgs, "exp_avgs", p.size());
    const auto v = as_list(exp_avg_sqs, "exp_avg_sqs", p.size());
    std::vector<py::object> vmax(p.size(), py::none());
    if (amsgrad) {
        if (max_exp_avg_sqs.is_none())
            throw py::value_error("max_exp_avg_sqs is required when amsgrad=True");
        vmax = as_list(max_exp_avg_sqs, "max_exp_avg_sqs", p.size());
    } else if (!max_exp_avg_sqs.is_none()) {
        throw py::value_error("max_exp_avg_sqs is only used with amsgrad=True");
    }
    std::vector<std::int64_t> step_list(p.size());
    const bool one_step = py::isinstance<py::int_>(steps);
    const auto step_objects = one_step ? std::vector<py::object>(p.size(), steps)
                                       : as_list(steps, "steps", p.size());
    for (std::size_t i = 0; i < p.size(); ++i) {
        if (!py::isinstance<py::int_>(step_objects[i]))
            throw py::type_error("steps must be an int or a list of ints");
        step_list[i] = step_objects[i].cast<std::int64_t>();
    }
    std::vector<ParamSet> sets(p.size());
    for (std::size_t i = 0; i < p.size(); ++i)
        sets[i] = {p[i], g[i], m[i], v[i], vmax[i], step_list[i]};
    return sets;
}

void adam_step_multi(py::object params, py::object grads, py::object exp_avgs,
                     py::object exp_avg_sqs, py::object steps, double lr,
                     std::pair<double, double> betas, double eps, double weight_decay,
                     bool amsgrad, py::object max_exp_avg_sqs, bool maximize, bool decoupled,
                     bool bias_correction) {
    const AdamHyper h =
        make_hyper(lr, betas, eps, weight_decay, amsgrad, maximize, decoupled, bias_correction);
    run(param_sets(params, grads, exp_avgs, exp_avg_sqs, steps, amsgrad, max_exp_avg_sqs), h,
        Names{true});
}

void bandwidth_probe_multi(py::object params, py::object grads, py::object exp_avgs,
                           py::object exp_avg_sqs) {
    run(param_sets(params, grads, exp_avgs, exp_avg_sqs, py::int_(1), false, py::none()),
        AdamHyper{}, Names{true}, Kernel::bandwidth_probe);
}

}  // namespace

void register_adam(py::module_& m) {
    using namespace pybind11::literals;
    m.def("adam_step", &adam_step_one, "param"_a, "grad"_a, "exp_avg"_a, "exp_avg_sq"_a,
          py::kw_only(), "step"_a, "lr"_a = 1e-3, "betas"_a = std::make_pair(0.9, 0.999),
          "eps"_a = 1e-8, "weight_decay"_a = 0.0, "amsgrad"_a = false,
          "max_exp_avg_sq"_a = py::none(), "maximize"_a = false, "decoupled"_a = false,
          "bias_correction"_a = true,
          R"doc(One fused Adam/AdamW update of one parameter set, in place.

Parameters
----------
param, grad, exp_avg, exp_avg_sq : numpy.ndarray
    C-contiguous arrays of one shape and one dtype (float32 or float64). param, exp_avg and
    exp_avg_sq are updated in place; grad is only read. Nothing is ever converted.
step : int
    The 1-based step count of this update (increment it before calling).
lr, betas, eps, weight_decay, amsgrad, maximize : as torch.optim.Adam.
max_exp_avg_sq : numpy.ndarray, optional
    Required with amsgrad=True, forbidden otherwise.
decoupled : bool
    Decoupled weight decay (AdamW) instead of L2 added to the gradient.
bias_correction : bool
    Divide by 1 - beta**step as Adam does (default) or not.

Raises
------
TypeError, ValueError
    Before any array is written, naming the offending argument.
)doc");
    m.def("adam_step_multi", &adam_step_multi, "params"_a, "grads"_a, "exp_avgs"_a,
          "exp_avg_sqs"_a, py::kw_only(), "steps"_a, "lr"_a = 1e-3,
          "betas"_a = std::make_pair(0.9, 0.999), "eps"_a = 1e-8, "weight_decay"_a = 0.0,
          "amsgrad"_a = false, "max_exp_avg_sqs"_a = py::none(), "maximize"_a = false,
          "decoupled"_a = false, "bias_correction"_a = true,
          R"doc(Adam/AdamW update of many parameter sets in one native call, in place.

The lists are aligned element by element; every array of every set is validated before any is
written. All params share one dtype. ``steps`` is one int for all sets or one int per set.
The work of the whole call is split across the thread pool in contiguous chunks.
Hyper-parameters are as for adam_step.
)doc");
    m.def("bandwidth_probe", &bandwidth_probe_multi, "params"_a, "grads"_a, "exp_avgs"_a,
          "exp_avg_sqs"_a,
          "Adam's memory traffic without its math (p += g, m += g, v += g), validated and split "
          "across threads exactly like adam_step_multi: the bandwidth reference for benchmarks.");
}

}  // namespace fastadam::python
