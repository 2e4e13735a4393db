#include "param_sets.hpp"

#include <pybind11/numpy.h>

#include <cmath>
#include <sstream>

namespace fastadam::python {

CheckedSets check_sets(const SetObjects& objects, const Role* roles, std::size_t role_count,
                       bool multi, bool mixed_dtypes) {
    CheckedSets out;
    out.roles = role_count;
    const std::size_t count = objects.size() / role_count;
    out.arrays.reserve(objects.size());
    for (std::size_t i = 0; i < count; ++i) {
        PyObject* const* set = objects.data() + i * role_count;
        const ArgName param_name{roles[0].single, roles[0].plural, i, multi};
        const Dtype d = param_dtype(set[0], param_name);
        if (i > 0 && d != out.dtypes[0] && !mixed_dtypes)
            throw py::type_error(param_name.str() + " has another dtype than " +
                                 ArgName{roles[0].single, roles[0].plural, 0, multi}.str() +
                                 ": one call updates one dtype");
        out.dtypes.push_back(d);
        out.sizes.push_back(element_count(set[0]));
        for (std::size_t r = 0; r < role_count; ++r) {
            if (roles[r].optional && set[r] == nullptr) {
                out.arrays.push_back(CheckedArray{});
                continue;
            }
            const ArgName name{roles[r].single, roles[r].plural, i, multi};
            if (roles[r].master && !is_16bit(d))
                throw py::value_error(name.str() + " must be None: master copies are for float16 "
                                      "and bfloat16 parameters, " + param_name.str() + " is " +
                                      dtype_name(d));
            out.arrays.push_back(check_array(set[r], name, roles[r].written,
                                             roles[r].state ? state_dtype(d) : d, set[0], d));
        }
    }
    check_no_overlap(out.arrays.data(), out.arrays.size(), [&](std::size_t k) {
        const Role& role = roles[k % role_count];
        return ArgName{role.single, role.plural, k / role_count, multi}.str();
    });
    return out;
}

namespace {
double finite_positive(double x, const char* what) {
    if (!(std::isfinite(x) && x > 0.0)) {
        std::ostringstream s;
        s << what << " must be a finite number > 0, got " << x;
        throw py::value_error(s.str());
    }
    return x;
}
}  // namespace

StepOptions step_options(PyObject* grad_scale, PyObject* max_grad_norm, PyObject* skip_nonfinite,
                         PyObject* stochastic_rounding, PyObject* seed) {
    StepOptions o;
    o.policy.grad_scale = finite_positive(real_arg(grad_scale, "grad_scale", 1.0), "grad_scale");
    // Below 2**-126 the gradients' multiplier 1 / grad_scale would overflow the float32 it is
    // rounded to, and turn every zero gradient into NaN.
    if (o.policy.grad_scale < 0x1p-126) {
        std::ostringstream s;
        s << "grad_scale must be at least 2**-126 (its inverse is a float32 multiplier), got "
          << o.policy.grad_scale;
        throw py::value_error(s.str());
    }
    if (max_grad_norm != nullptr && max_grad_norm != Py_None)
        o.policy.max_grad_norm =
            finite_positive(real_arg(max_grad_norm, "max_grad_norm", 0.0), "max_grad_norm");
    o.policy.skip_nonfinite = bool_arg(skip_nonfinite, "skip_nonfinite", false);
    o.stochastic_rounding = bool_arg(stochastic_rounding, "stochastic_rounding", false);
    // Any int: its low 64 bits (two's complement) key the stream.
    o.seed = seed == nullptr ? 0 : low_bits_arg(seed, "seed");
    return o;
}

StepOptions step_options(PyObject* options) {
    if (options == nullptr || options == Py_None) return {};
    if (!PyTuple_Check(options) || PyTuple_GET_SIZE(options) != 5)
        throw py::type_error("options must be None or a tuple (grad_scale, max_grad_norm, "
                             "skip_nonfinite, stochastic_rounding, seed)");
    return step_options(PyTuple_GET_ITEM(options, 0), PyTuple_GET_ITEM(options, 1),
                        PyTuple_GET_ITEM(options, 2), PyTuple_GET_ITEM(options, 3),
                        PyTuple_GET_ITEM(options, 4));
}

void check_stochastic_rounding(const CheckedSets& sets, std::size_t master_role,
                               const Role* roles, bool multi) {
    for (std::size_t i = 0; i < sets.count(); ++i) {
        if (sets.dtypes[i] == Dtype::float16)
            throw py::value_error("stochastic_rounding is for bfloat16 parameters; " +
                                  ArgName{roles[0].single, roles[0].plural, i, multi}.str() +
                                  " is float16");
        if (master_role < sets.roles && sets.data<void>(i, master_role) != nullptr)
            throw py::value_error(
                "stochastic_rounding and a master copy (" +
                ArgName{roles[master_role].single, roles[master_role].plural, i, multi}.str() +
                ") exclude each other: the master copy keeps the precision");
    }
}

std::int64_t total_size(const CheckedSets& sets) {
    std::int64_t total = 0;
    for (std::size_t i = 0; i < sets.count(); ++i) total += sets.size(i);
    return total;
}

GradLook look_at_grads(const CheckedSets& sets, const StepOptions& options) {
    GradLook out;
    out.multiplier = 1.0 / options.policy.grad_scale;
    if (!needs_grad_stats(options.policy)) return out;
    out.looked = true;
    if (total_size(sets) >= kParallelThreshold) start_threads();
    SmallVector<GradSpan, 8> spans;
    for (std::size_t i = 0; i < sets.count(); ++i) {
        static constexpr ElementType types[] = {ElementType::float32, ElementType::float64,
                                                ElementType::float16, ElementType::bfloat16};
        spans.push_back({sets.data<const void>(i, 1), types[static_cast<int>(sets.dtypes[i])],
                         sets.size(i)});
    }
    GradStats stats;
    without_gil([&] { stats = grad_stats(spans.data(), spans.size()); });
    out.decision = decide(options.policy, stats, spans.data(), spans.size());
    out.multiplier = out.decision.grad_multiplier;
    return out;
}

py::object step_report(bool skipped, const GradDecision* decision) {
    // The class and the plain report are looked up once and kept for the life of the process.
    static PyObject* cls =
        py::object(py::module_::import("fastadam.scaling").attr("StepReport")).release().ptr();
    static PyObject* plain = PyObject_CallFunction(cls, "OO", Py_False, Py_None);
    if (decision == nullptr && !skipped) return py::reinterpret_borrow<py::object>(plain);
    return py::reinterpret_borrow<py::object>(cls)(
        py::bool_(skipped), decision ? py::object(py::float_(decision->grad_norm)) : py::none());
}

namespace {

bool is_scalar_like(PyObject* obj) {
    // Sequences that are one value, not a list of values.
    return PyUnicode_Check(obj) || PyBytes_Check(obj) || PyByteArray_Check(obj) ||
           py::detail::npy_api::get().PyArray_Check_(obj);
}

}  // namespace

Items list_arg(PyObject* obj, const char* name, Held& held) {
    Items out;
    if (PyList_Check(obj) || PyTuple_Check(obj)) {
        // Each item is held: validating a later item may run Python code (__index__, a dtype's
        // comparison) that could change the list.
        held.add(obj);
        const Py_ssize_t n = PySequence_Fast_GET_SIZE(obj);
        PyObject** items = PySequence_Fast_ITEMS(obj);
        out.reserve(static_cast<std::size_t>(n));
        for (Py_ssize_t i = 0; i < n; ++i) {
            held.add(items[i]);
            out.push_back(items[i]);
        }
        return out;
    }
    if (!PySequence_Check(obj) || is_scalar_like(obj))
        throw py::type_error(std::string(name) + " must be a list or tuple, got " + type_name(obj));
    PyObject* list = PySequence_Fast(obj, "");
    if (list == nullptr) throw py::error_already_set();
    out = list_arg(list, name, held);
    Py_DECREF(list);  // `held` has it now
    return out;
}

Items list_arg(PyObject* obj, const char* name, std::size_t size, Held& held) {
    Items out = list_arg(obj, name, held);
    if (out.size() != size)
        throw py::value_error(std::string(name) + " has " + std::to_string(out.size()) +
                              " entries but params has " + std::to_string(size));
    return out;
}

namespace {
// A per-set argument given as a list or tuple (anything else is one value for every set).
bool is_per_set_list(PyObject* obj) { return PyList_Check(obj) || PyTuple_Check(obj); }
}  // namespace

SmallVector<std::int64_t, 8> int_per_set(PyObject* obj, const char* name, std::size_t size,
                                         Held& held) {
    if (!is_per_set_list(obj)) return {size, int_arg(obj, name)};
    SmallVector<std::int64_t, 8> out;
    const Items items = list_arg(obj, name, size, held);
    for (std::size_t i = 0; i < items.size(); ++i)
        out.push_back(int_arg(items[i], ArgName{name, name, i, true}.str()));
    return out;
}

SmallVector<bool, 8> bool_per_set(PyObject* obj, const char* name, std::size_t size, Held& held) {
    if (!is_per_set_list(obj)) return {size, bool_arg(obj, name, false)};
    SmallVector<bool, 8> out;
    const Items items = list_arg(obj, name, size, held);
    for (std::size_t i = 0; i < items.size(); ++i)
        out.push_back(bool_arg(items[i], ArgName{name, name, i, true}.str().c_str(), false));
    return out;
}

void check_hyper_tuple(PyObject* obj, std::size_t size, std::size_t index, const char* layout) {
    if (!PyTuple_Check(obj) || static_cast<std::size_t>(PyTuple_GET_SIZE(obj)) != size)
        throw py::type_error("hypers[" + std::to_string(index) + "] must be a tuple " + layout);
}

double tuple_double(PyObject* t, std::size_t k, std::size_t index) {
    const double x = PyFloat_AsDouble(PyTuple_GET_ITEM(t, static_cast<Py_ssize_t>(k)));
    if (x == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        throw py::type_error("hypers[" + std::to_string(index) + "][" + std::to_string(k) +
                             "] must be a number");
    }
    return x;
}

bool tuple_bool(PyObject* t, std::size_t k, std::size_t index) {
    const int b = PyObject_IsTrue(PyTuple_GET_ITEM(t, static_cast<Py_ssize_t>(k)));
    if (b < 0) {
        PyErr_Clear();
        throw py::type_error("hypers[" + std::to_string(index) + "][" + std::to_string(k) +
                             "] must be a bool");
    }
    return b == 1;
}

}  // namespace fastadam::python
