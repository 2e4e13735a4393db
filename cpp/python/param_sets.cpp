#include "param_sets.hpp"

#include <cmath>

namespace fastadam::python {

std::string argument_name(const char* single, const char* plural, std::size_t i, bool multi) {
    return ArgName{single, plural, i, multi}.str();
}

CheckedSets check_sets(const std::vector<std::vector<py::handle>>& sets,
                       const std::vector<Role>& roles, bool multi, bool mixed_dtypes) {
    CheckedSets out;
    out.roles = roles.size();
    out.views.reserve(sets.size() * roles.size());
    out.dtypes.reserve(sets.size());
    for (std::size_t i = 0; i < sets.size(); ++i) {
        const ArgName param_name{roles[0].single, roles[0].plural, i, multi};
        const Dtype d = param_dtype(sets[i][0], param_name);
        if (i > 0 && d != out.dtype && !mixed_dtypes)
            throw py::type_error(param_name.str() + " has another dtype than " +
                                 argument_name(roles[0].single, roles[0].plural, 0, multi) +
                                 ": one call updates one dtype");
        if (i == 0) out.dtype = d;
        out.dtypes.push_back(d);
        const auto param = py::reinterpret_borrow<py::array>(sets[i][0]);
        for (std::size_t r = 0; r < roles.size(); ++r) {
            const ArgName name{roles[r].single, roles[r].plural, i, multi};
            if (roles[r].optional && (!sets[i][r] || sets[i][r].is_none())) {  // null: not given
                out.views.push_back({py::reinterpret_steal<py::array>(py::handle()), name,
                                     roles[r].written, false});
                continue;
            }
            if (roles[r].master && !is_16bit(d))
                throw py::value_error(name.str() + " must be None: master copies are for float16 "
                                      "and bfloat16 parameters, " + param_name.str() + " is " +
                                      dtype_name(d));
            py::array a = check_array(sets[i][r], name, roles[r].written,
                                      roles[r].state ? state_dtype(d) : d, param, d);
            out.views.push_back({std::move(a), name, roles[r].written});
        }
    }
    check_no_overlap(out.views);
    return out;
}

namespace {
double finite_positive(double x, const char* what) {
    if (!(std::isfinite(x) && x > 0.0))
        throw py::value_error(std::string(what) + " must be a finite number > 0, got " +
                              py::str(py::float_(x)).cast<std::string>());
    return x;
}
}  // namespace

StepOptions step_options(double grad_scale, const py::handle& max_grad_norm, bool skip_nonfinite,
                         bool stochastic_rounding, const py::handle& seed) {
    StepOptions o;
    o.policy.grad_scale = finite_positive(grad_scale, "grad_scale");
    if (!max_grad_norm.is_none()) {
        const double c = PyFloat_AsDouble(max_grad_norm.ptr());
        if (c == -1.0 && PyErr_Occurred()) {
            PyErr_Clear();
            throw py::type_error("max_grad_norm must be a number or None");
        }
        o.policy.max_grad_norm = finite_positive(c, "max_grad_norm");
    }
    o.policy.skip_nonfinite = skip_nonfinite;
    o.stochastic_rounding = stochastic_rounding;
    if (!PyIndex_Check(seed.ptr()) || py::isinstance<py::bool_>(seed))
        throw py::type_error("seed must be an int");
    // Any int: its low 64 bits (two's complement) key the stream.
    o.seed = PyLong_AsUnsignedLongLongMask(py::reinterpret_steal<py::object>(
                                               PyNumber_Index(seed.ptr())).ptr());
    return o;
}

StepOptions step_options(const py::handle& options) {
    if (options.is_none()) return {};
    if (!py::isinstance<py::tuple>(options) || py::len(options) != 5)
        throw py::type_error("options must be None or a tuple (grad_scale, max_grad_norm, "
                             "skip_nonfinite, stochastic_rounding, seed)");
    const auto t = py::reinterpret_borrow<py::tuple>(options);
    const double scale = PyFloat_AsDouble(t[0].ptr());
    if (scale == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        throw py::type_error("grad_scale must be a number");
    }
    return step_options(scale, t[1], PyObject_IsTrue(t[2].ptr()) == 1,
                        PyObject_IsTrue(t[3].ptr()) == 1, t[4]);
}

void check_stochastic_rounding(const CheckedSets& sets, std::size_t master_role) {
    for (std::size_t i = 0; i < sets.count(); ++i) {
        const ArrayView& param = sets.views[i * sets.roles];
        if (sets.dtypes[i] == Dtype::float16)
            throw py::value_error("stochastic_rounding is for bfloat16 parameters; " +
                                  param.name.str() + " is float16");
        if (master_role < sets.roles && sets.views[i * sets.roles + master_role].present)
            throw py::value_error("stochastic_rounding and a master copy (" +
                                  sets.views[i * sets.roles + master_role].name.str() +
                                  ") exclude each other: the master copy keeps the precision");
    }
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

std::vector<py::object> as_list(const py::handle& obj, const char* name) {
    if (!py::isinstance<py::sequence>(obj) || py::isinstance<py::str>(obj) ||
        py::isinstance<py::array>(obj))
        throw py::type_error(std::string(name) + " must be a list or tuple");
    std::vector<py::object> out;
    for (auto item : py::reinterpret_borrow<py::sequence>(obj))
        out.push_back(py::reinterpret_borrow<py::object>(item));
    return out;
}

std::vector<py::object> as_list(const py::handle& obj, const char* name, std::size_t size) {
    auto out = as_list(obj, name);
    if (out.size() != size)
        throw py::value_error(std::string(name) + " has " + std::to_string(out.size()) +
                              " entries but params has " + std::to_string(size));
    return out;
}

namespace {

// True for Python ints and NumPy integers (anything with __index__), never for bools or floats.
bool is_integer(const py::handle& obj) {
    return !py::isinstance<py::bool_>(obj) && !py::isinstance<py::float_>(obj) &&
           PyIndex_Check(obj.ptr());
}

std::int64_t to_int64(const py::handle& obj, const ArgName& name) {
    if (!is_integer(obj))
        throw py::type_error(name.str() + " must be an int, got " +
                             py::str(py::type::handle_of(obj).attr("__name__")).cast<std::string>());
    int overflow = 0;
    const py::object index = py::reinterpret_steal<py::object>(PyNumber_Index(obj.ptr()));
    const long long value = PyLong_AsLongLongAndOverflow(index.ptr(), &overflow);
    if (overflow != 0) throw py::value_error(name.str() + " does not fit in a 64-bit integer");
    return value;
}

}  // namespace

std::vector<std::int64_t> int_per_set(const py::handle& obj, const char* name, std::size_t size) {
    // Anything but a list or tuple is meant as one step for every set: to_int64 names it.
    if (is_integer(obj) || !py::isinstance<py::sequence>(obj) || py::isinstance<py::str>(obj))
        return std::vector<std::int64_t>(size, to_int64(obj, {name, name, 0, false}));
    std::vector<std::int64_t> out;
    const auto items = as_list(obj, name, size);
    for (std::size_t i = 0; i < items.size(); ++i)
        out.push_back(to_int64(items[i], {name, name, i, true}));
    return out;
}

std::vector<bool> bool_per_set(const py::handle& obj, const char* name, std::size_t size) {
    // numpy.bool_ is accepted too; the type object is looked up once and kept for good.
    static PyObject* numpy_bool =
        py::object(py::module_::import("numpy").attr("bool_")).release().ptr();
    auto to_bool = [](const py::handle& item, const std::string& n) {
        if (!py::isinstance<py::bool_>(item) && PyObject_IsInstance(item.ptr(), numpy_bool) != 1)
            throw py::type_error(n + " must be a bool");
        return PyObject_IsTrue(item.ptr()) == 1;
    };
    if (!py::isinstance<py::sequence>(obj)) return std::vector<bool>(size, to_bool(obj, name));
    std::vector<bool> out;
    const auto items = as_list(obj, name, size);
    for (std::size_t i = 0; i < items.size(); ++i)
        out.push_back(to_bool(items[i], argument_name(name, name, i, true)));
    return out;
}

py::tuple hyper_tuple(const py::handle& obj, std::size_t size, std::size_t index,
                      const char* layout) {
    if (!py::isinstance<py::tuple>(obj) || py::len(obj) != size)
        throw py::type_error("hypers[" + std::to_string(index) + "] must be a tuple " + layout);
    return py::reinterpret_borrow<py::tuple>(obj);
}

double tuple_double(const py::tuple& t, std::size_t k, std::size_t index) {
    const double x = PyFloat_AsDouble(t[k].ptr());
    if (x == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        throw py::type_error("hypers[" + std::to_string(index) + "][" + std::to_string(k) +
                             "] must be a number");
    }
    return x;
}

bool tuple_bool(const py::tuple& t, std::size_t k, std::size_t index) {
    const int b = PyObject_IsTrue(t[k].ptr());
    if (b < 0) {
        PyErr_Clear();
        throw py::type_error("hypers[" + std::to_string(index) + "][" + std::to_string(k) +
                             "] must be a bool");
    }
    return b == 1;
}

}  // namespace fastadam::python
