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

}  // namespace fastadam::python
