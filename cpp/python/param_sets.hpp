// What every optimizer binding shares: reading the Python lists of a multi-tensor call, and
// validating all arrays of all parameter sets (dtype, shape, layout, writability, overlap)
// before any kernel runs.
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "array_checks.hpp"
#include "entry.hpp"
#include "small_vector.hpp"

namespace fastadam::python {

// One array slot of a parameter set, e.g. {"exp_avg", "exp_avgs", true}.
struct Role {
    const char* single;  // its argument name in the one-set function
    const char* plural;  // its argument name in the multi function
    bool written;
    bool optional = false;  // None means "this set has no such array"
};

// The objects of a call's sets, set-major: `roles` per set, nullptr for an optional array left
// out (or None). Borrowed: a Held or the caller's arguments keep them alive.
using SetObjects = SmallVector<PyObject*, 40>;

// A list argument's items (borrowed, see list_arg).
using Items = SmallVector<PyObject*, 8>;

// The arrays of all sets, checked; arrays[set * roles + role].
struct CheckedSets {
    std::size_t roles = 0;
    SmallVector<Dtype, 8> dtypes;  // per set
    SmallVector<std::int64_t, 8> sizes;
    SmallVector<CheckedArray, 40> arrays;

    std::size_t count() const { return dtypes.size(); }
    template <class T>
    T* data(std::size_t set, std::size_t role) const {
        return static_cast<T*>(arrays[set * roles + role].data);
    }
    std::int64_t size(std::size_t set) const { return sizes[set]; }
};

// Role 0 must be the parameter: its dtype and shape are what the other roles must match. All
// sets share one dtype unless mixed_dtypes is set.
CheckedSets check_sets(const SetObjects& objects, const Role* roles, std::size_t role_count,
                       bool multi, bool mixed_dtypes = false);

// The items of a list or tuple (or another sequence; never a str, bytes or array), each held
// in `held` so that the caller may use them as borrowed references until it returns;
// TypeError/ValueError naming `name`, optionally for a wrong length.
Items list_arg(PyObject* obj, const char* name, Held& held);
Items list_arg(PyObject* obj, const char* name, std::size_t size, Held& held);

// An int for every set, or a list of `size` ints (one per set); TypeError/ValueError naming
// `name` (or `name[i]`).
SmallVector<std::int64_t, 8> int_per_set(PyObject* obj, const char* name, std::size_t size,
                                         Held& held);

// The same for bools.
SmallVector<bool, 8> bool_per_set(PyObject* obj, const char* name, std::size_t size, Held& held);

// Hyper-parameters per set from `obj`: one tuple for every set, or a list of `size` tuples.
// Sets of one optimizer group share one tuple object, which `parse(tuple, index)` reads once.
template <class Hyper, class Parse>
SmallVector<Hyper, 8> hypers_per_set(PyObject* obj, std::size_t size, Held& held,
                                     const Parse& parse) {
    const bool one = PyTuple_Check(obj);
    const Items objects = one ? Items() : list_arg(obj, "hypers", size, held);
    SmallVector<Hyper, 8> out(size, Hyper{});
    PyObject* previous = nullptr;
    for (std::size_t i = 0; i < size; ++i) {
        PyObject* h = one ? obj : objects[i];
        out[i] = h == previous ? out[i - 1] : parse(h, i);
        previous = h;
    }
    return out;
}

// Runs checked sets of either dtype: make(T{}, i) builds set i's kernel tensor of element type
// T, and run(tensors, count) is called once per dtype present, without the GIL. A call that
// needs two kernels starts the thread pool first, so that nothing is written unless both run.
template <class Make, class Run>
void launch_by_dtype(const CheckedSets& sets, const Make& make, const Run& run) {
    SmallVector<decltype(make(0.0f, std::size_t{0})), 4> f32;
    SmallVector<decltype(make(0.0, std::size_t{0})), 4> f64;
    std::int64_t total = 0;
    for (std::size_t i = 0; i < sets.count(); ++i) {
        if (sets.dtypes[i] == Dtype::float32)
            f32.push_back(make(0.0f, i));
        else
            f64.push_back(make(0.0, i));
        total += sets.size(i);
    }
    // The pool is the one thing a kernel can fail to get (threads refused): the first dtype's
    // update must not be written when the second cannot run.
    if (!f32.empty() && !f64.empty() && total >= kParallelThreshold) start_threads();
    // The kernels touch only raw buffers, which the caller keeps alive until they return.
    without_gil([&] {
        if (!f32.empty()) run(f32.data(), f32.size());
        if (!f64.empty()) run(f64.data(), f64.size());
    });
}

// A tuple entry as a double or a bool, TypeError naming hypers[index][k] otherwise.
double tuple_double(PyObject* t, std::size_t k, std::size_t index);
bool tuple_bool(PyObject* t, std::size_t k, std::size_t index);

// `obj` as a tuple of `size` entries (the optimizer classes' hyper-parameter tuples).
void check_hyper_tuple(PyObject* obj, std::size_t size, std::size_t index, const char* layout);

}  // namespace fastadam::python
