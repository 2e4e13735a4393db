// `unchanged`: the test behind fastadam.torch's steady-state step, in one native call. A torch
// optimizer's step may reuse the last step's native-call lists only while its parameter groups,
// their options and parameters, the parameters' storage and the state mapping are as they were;
// checked in Python, those comparisons cost about 2 us, as much as the update of a small tensor.
// Here they are pointer comparisons (and == for option values that are not the same object).
#include <pybind11/pybind11.h>

#include "register.hpp"

namespace fastadam::python {

namespace py = pybind11;

namespace {

// Whether `items` (a list or tuple) holds exactly the objects of `expected` (a tuple).
bool same_items(PyObject* items, PyObject* expected) {
    if (!(PyList_Check(items) || PyTuple_Check(items))) return false;
    const Py_ssize_t n = PySequence_Fast_GET_SIZE(items);
    if (n != PyTuple_GET_SIZE(expected)) return false;
    PyObject** have = PySequence_Fast_ITEMS(items);
    for (Py_ssize_t i = 0; i < n; ++i)
        if (have[i] != PyTuple_GET_ITEM(expected, i)) return false;
    return true;
}

// Whether dict `d` holds exactly the keys and values of `flat` (k0, v0, k1, v1, ...), in order,
// compared by identity.
bool same_dict(PyObject* d, PyObject* flat) {
    if (!PyDict_Check(d) || 2 * PyDict_GET_SIZE(d) != PyTuple_GET_SIZE(flat)) return false;
    Py_ssize_t pos = 0, i = 0;
    PyObject *key, *value;
    while (PyDict_Next(d, &pos, &key, &value)) {
        if (key != PyTuple_GET_ITEM(flat, i) || value != PyTuple_GET_ITEM(flat, i + 1)) return false;
        i += 2;
    }
    return true;
}

// Whether group[key] == value for each key and value (missing keys count as changed).
bool same_options(PyObject* group, PyObject* keys, PyObject* values) {
    const Py_ssize_t n = PyTuple_GET_SIZE(keys);
    for (Py_ssize_t i = 0; i < n; ++i) {
        PyObject* now = PyDict_GetItemWithError(group, PyTuple_GET_ITEM(keys, i));
        if (now == nullptr) {
            PyErr_Clear();
            return false;
        }
        PyObject* was = PyTuple_GET_ITEM(values, i);
        if (now == was) continue;
        const int eq = PyObject_RichCompareBool(now, was, Py_EQ);
        if (eq != 1) {
            PyErr_Clear();
            return false;
        }
    }
    return true;
}

// Whether t.name() equals `expected` (an int, a tuple of ints).
bool same_call(PyObject* t, PyObject* name, PyObject* expected) {
    PyObject* now = PyObject_CallMethodNoArgs(t, name);
    if (now == nullptr) {
        PyErr_Clear();
        return false;
    }
    const int eq = PyObject_RichCompareBool(now, expected, Py_EQ);
    Py_DECREF(now);
    if (eq < 0) PyErr_Clear();
    return eq == 1;
}

bool no_grad(PyObject* t, PyObject* name) {
    PyObject* g = PyObject_GetAttr(t, name);
    if (g == nullptr) {
        PyErr_Clear();
        return false;
    }
    Py_DECREF(g);
    return g == Py_None;
}

// groups_now: the optimizer's param_groups; groups: a tuple of (group, keys, values, params) per
// group, params a tuple of the group's parameters; watched: a tuple of (tensor, method name,
// value) triples, each method's result (data_ptr(), stride()) still that value, so that the
// plan's NumPy views still see the tensors' memory; dicts: a tuple of (dict, flat items) pairs;
// others: a tuple of parameters that must have no gradient.
bool same_as_recorded(py::handle groups_now, py::tuple groups, py::tuple watched,
                      py::tuple dicts, py::tuple others) {
    static PyObject* const params_key = PyUnicode_InternFromString("params");
    static PyObject* const grad = PyUnicode_InternFromString("grad");
    PyObject* now = groups_now.ptr();
    if (!PyList_Check(now) || PyList_GET_SIZE(now) != static_cast<Py_ssize_t>(groups.size()))
        return false;
    for (std::size_t i = 0; i < groups.size(); ++i) {
        PyObject* entry = groups[i].ptr();
        if (!PyTuple_Check(entry) || PyTuple_GET_SIZE(entry) != 4)
            throw py::type_error("groups[i] must be (group, keys, values, params)");
        PyObject* group = PyTuple_GET_ITEM(entry, 0);
        if (PyList_GET_ITEM(now, static_cast<Py_ssize_t>(i)) != group) return false;
        if (!same_options(group, PyTuple_GET_ITEM(entry, 1), PyTuple_GET_ITEM(entry, 2)))
            return false;
        PyObject* params = PyDict_GetItemWithError(group, params_key);
        if (params == nullptr) {
            PyErr_Clear();
            return false;
        }
        if (!same_items(params, PyTuple_GET_ITEM(entry, 3))) return false;
    }
    for (auto triple : watched) {
        PyObject* t = triple.ptr();
        if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) != 3)
            throw py::type_error("watched[i] must be (tensor, method name, value)");
        if (!same_call(PyTuple_GET_ITEM(t, 0), PyTuple_GET_ITEM(t, 1), PyTuple_GET_ITEM(t, 2)))
            return false;
    }
    for (auto pair : dicts) {
        if (!PyTuple_Check(pair.ptr()) || PyTuple_GET_SIZE(pair.ptr()) != 2)
            throw py::type_error("dicts[i] must be (dict, flat items)");
        if (!same_dict(PyTuple_GET_ITEM(pair.ptr(), 0), PyTuple_GET_ITEM(pair.ptr(), 1)))
            return false;
    }
    for (auto p : others)
        if (!no_grad(p.ptr(), grad)) return false;
    return true;
}

// The stepped parameters' gradients (a list, None entries included) when everything is as
// recorded, else None.
py::object unchanged(py::handle groups_now, py::tuple groups, py::tuple tensors,
                     py::tuple watched, py::tuple dicts, py::tuple others) {
    static PyObject* const grad = PyUnicode_InternFromString("grad");
    if (!same_as_recorded(groups_now, groups, watched, dicts, others)) return py::none();
    py::list grads(tensors.size());
    for (std::size_t i = 0; i < tensors.size(); ++i) {
        PyObject* g = PyObject_GetAttr(tensors[i].ptr(), grad);
        if (g == nullptr) throw py::error_already_set();
        PyList_SET_ITEM(grads.ptr(), static_cast<Py_ssize_t>(i), g);  // steals the reference
    }
    return grads;
}

}  // namespace

void register_unchanged(py::module_& m) {
    using namespace pybind11::literals;
    m.def("unchanged", &unchanged, "groups_now"_a, "groups"_a, "tensors"_a, "watched"_a,
          "dicts"_a, "others"_a,
          "fastadam.torch's steady-state test: when the parameter groups (identity, option "
          "values, parameters), the watched tensors' data_ptr() and stride(), the state dicts' "
          "items and the gradients of the parameters without state are as recorded, the "
          "stepped parameters' (tensors') .grad values (a list); else None.");
}

}  // namespace fastadam::python
