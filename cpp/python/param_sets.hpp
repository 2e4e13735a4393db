// What every optimizer binding shares: reading the Python lists of a multi-tensor call, and
// validating all arrays of all parameter sets (dtype, shape, layout, writability, overlap)
// before any kernel runs.
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <vector>

#include "array_checks.hpp"

namespace fastadam::python {

// One array slot of a parameter set, e.g. {"exp_avg", "exp_avgs", true}.
struct Role {
    const char* single;  // its argument name in the one-set function
    const char* plural;  // its argument name in the multi function
    bool written;
    bool optional = false;  // None means "this set has no such array"
};

// The arrays of all sets, checked; views[set * roles + role] (absent optional arrays included,
// with present = false).
struct CheckedSets {
    Dtype dtype = Dtype::float32;  // of every set, unless mixed dtypes were allowed
    std::vector<Dtype> dtypes;     // per set
    std::size_t roles = 0;
    std::vector<ArrayView> views;

    std::size_t count() const { return roles ? views.size() / roles : 0; }
    template <class T>
    T* data(std::size_t set, std::size_t role) const {
        const ArrayView& v = views[set * roles + role];
        return v.present ? static_cast<T*>(const_cast<void*>(v.array.data())) : nullptr;
    }
    std::int64_t size(std::size_t set) const { return views[set * roles].array.size(); }
};

// Role 0 must be the parameter: its dtype and shape are what the other roles must match. All
// sets share one dtype unless mixed_dtypes is set.
CheckedSets check_sets(const std::vector<std::vector<py::handle>>& sets,
                       const std::vector<Role>& roles, bool multi, bool mixed_dtypes = false);

// `obj` as a list (a list or tuple; not a string or an array), optionally of a given length.
std::vector<py::object> as_list(const py::handle& obj, const char* name);
std::vector<py::object> as_list(const py::handle& obj, const char* name, std::size_t size);

// An int, or a list of `size` ints (one per set); TypeError/ValueError naming `name`.
std::vector<std::int64_t> int_per_set(const py::handle& obj, const char* name, std::size_t size);

// The same for bools.
std::vector<bool> bool_per_set(const py::handle& obj, const char* name, std::size_t size);

// The name of argument `single`/`plural` for set i, as the user wrote it.
std::string argument_name(const char* single, const char* plural, std::size_t i, bool multi);

// Hyper-parameters per set from `obj`: one tuple for every set, or a list of `size` tuples.
// Sets of one optimizer group share one tuple object, which `parse(tuple, index)` reads once.
template <class Hyper, class Parse>
std::vector<Hyper> hypers_per_set(const py::handle& obj, std::size_t size, const Parse& parse) {
    const bool one = py::isinstance<py::tuple>(obj);
    const auto objects = one ? std::vector<py::object>() : as_list(obj, "hypers", size);
    std::vector<Hyper> out(size);
    PyObject* previous = nullptr;
    for (std::size_t i = 0; i < size; ++i) {
        const py::handle h = one ? obj : objects[i];
        out[i] = h.ptr() == previous ? out[i - 1] : parse(h, i);
        previous = h.ptr();
    }
    return out;
}

// Runs checked sets of either dtype: make(T{}, i) builds set i's kernel tensor of element type
// T, and run(tensors, count) is called once per dtype present, without the GIL.
template <class Make, class Run>
void launch_by_dtype(const CheckedSets& sets, const Make& make, const Run& run) {
    auto tensors_of = [&](auto zero) {
        using T = decltype(zero);
        const Dtype wanted = sizeof(T) == 4 ? Dtype::float32 : Dtype::float64;
        std::vector<decltype(make(zero, std::size_t{0}))> out;
        out.reserve(sets.count());
        for (std::size_t i = 0; i < sets.count(); ++i)
            if (sets.dtypes[i] == wanted) out.push_back(make(zero, i));
        return out;
    };
    const auto f32 = tensors_of(0.0f);
    const auto f64 = tensors_of(0.0);
    // Safe without the GIL: the kernels touch only raw buffers, and `sets` holds a reference to
    // every array until they return.
    py::gil_scoped_release release;
    if (!f32.empty()) run(f32.data(), f32.size());
    if (!f64.empty()) run(f64.data(), f64.size());
}

// A tuple entry as a double or a bool, TypeError naming hypers[index] otherwise.
double tuple_double(const py::tuple& t, std::size_t k, std::size_t index);
bool tuple_bool(const py::tuple& t, std::size_t k, std::size_t index);

// `obj` as a tuple of `size` entries (the optimizer classes' hyper-parameter tuples).
py::tuple hyper_tuple(const py::handle& obj, std::size_t size, std::size_t index,
                      const char* layout);

}  // namespace fastadam::python
