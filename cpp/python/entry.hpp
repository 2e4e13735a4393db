// How the kernel entries meet Python.
//
// Each kernel entry is a METH_FASTCALL | METH_KEYWORDS function registered by hand rather than
// through pybind11's dispatcher, which makes a fresh string for every keyword argument of every
// call and looks it up in a dict (perf: 38 % of a 2**10-element adam_step went to building,
// interning and hashing those strings). Here a Signature interns its names once and binds a
// call's keywords by pointer. The converters below name the argument in every error; the
// helpers at the end run a kernel without the GIL in a way that survives interpreter shutdown.
#pragma once

#include <pybind11/pybind11.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

namespace fastadam::python {

namespace py = pybind11;

// The arguments of one call in signature order; nullptr where the caller left one out (the
// entry then uses its default). Borrowed: the caller keeps them alive for the call.
struct Args {
    static constexpr int kMax = 24;
    PyObject* value[kMax] = {};
    PyObject* operator[](int i) const { return value[i]; }
    bool given(int i) const { return value[i] != nullptr; }
};

// A parameter list written as Python writes it, e.g.
//   "param, grad, *, step, lr=0.001, betas=(0.9, 0.999)"
// with "/" after positional-only and "*" before keyword-only parameters. The text is also the
// signature that help() and inspect.signature show, so the defaults written here must be the
// ones the entry uses (tests/test_entry_signatures.py checks both).
class Signature {
public:
    Signature(const char* function, const char* parameters);

    // Binds a vectorcall's arguments to `out`, or raises TypeError as Python would for a
    // function written in Python (unknown keyword, missing or repeated argument).
    void bind(PyObject* const* args, std::size_t nargsf, PyObject* kwnames, Args& out) const;

    const std::string& text() const { return text_; }

private:
    struct Parameter {
        std::string name;
        PyObject* interned;
        bool required;
    };
    [[noreturn]] void fail(const std::string& what) const;
    int keyword_index(PyObject* key) const;

    std::string function_;
    std::string text_;
    Parameter parameters_[Args::kMax];
    int count_ = 0;
    int positional_ = 0;    // the first `positional_` may be given by position
    int keyword_from_ = 0;  // those from here on may be given by keyword
};

// An entry's body: validates and runs. It raises by throwing (py::error_already_set, pybind11's
// builtin exceptions, std::invalid_argument as ValueError, other std::exception as
// RuntimeError).
using Body = void (*)(const Args&);
// An entry that returns a value (a step's report).
using ResultBody = py::object (*)(const Args&);

// Adds `name` to module `m` as a function with `parameters` (Signature syntax) and `doc`.
void add_entry(py::module_& m, const char* name, const char* parameters, const char* doc,
               PyObject* (*call)(PyObject*, PyObject* const*, Py_ssize_t, PyObject*),
               const Signature*& slot);
PyObject* call_entry(const Signature& signature, Body body, PyObject* const* args,
                     Py_ssize_t nargsf, PyObject* kwnames);
PyObject* call_entry(const Signature& signature, ResultBody body, PyObject* const* args,
                     Py_ssize_t nargsf, PyObject* kwnames);

template <auto body>
struct Entry {
    static inline const Signature* signature = nullptr;
    static PyObject* call(PyObject*, PyObject* const* args, Py_ssize_t nargsf, PyObject* kwnames) {
        return call_entry(*signature, body, args, nargsf, kwnames);
    }
};

template <auto body>
void def_entry(py::module_& m, const char* name, const char* parameters, const char* doc) {
    add_entry(m, name, parameters, doc, &Entry<body>::call, Entry<body>::signature);
}

// --- scalar arguments -------------------------------------------------------------------------
// Python's and NumPy's scalar types are accepted; a string, an array, a bool where a number is
// expected (or a number where a bool is) is a TypeError naming the argument, as is a value out
// of range for the C type.

// A real number: float, int (not bool), NumPy floating or integer scalar. `fallback` when
// `obj` is null (the argument was left out).
double real_arg(PyObject* obj, const char* name, double fallback);

// True/False or numpy.bool_.
bool bool_arg(PyObject* obj, const char* name, bool fallback);

// An int (not a bool or a float) or a NumPy integer, or anything with a working __index__. A
// failing __index__ is reported: as a TypeError naming the argument when it raised TypeError,
// otherwise its own exception propagates.
std::int64_t int_arg(PyObject* obj, const std::string& name);
// Any int (a NumPy integer too): its low 64 bits, two's complement (a seed).
std::uint64_t low_bits_arg(PyObject* obj, const std::string& name);

// A pair of real numbers given as a tuple or list of two.
std::pair<double, double> pair_arg(PyObject* obj, const char* name,
                                   std::pair<double, double> fallback);

// A str.
std::string str_arg(PyObject* obj, const char* name);

// "<type name>" for an error message.
std::string type_name(PyObject* obj);

// NumPy's bool_, floating and integer types, looked up once (at module import).
void load_numpy_scalar_types();

// --- leaving and retaking the GIL --------------------------------------------------------------

// Takes the GIL back after `without_gil`. If the interpreter is finalizing, CPython (3.8 to
// 3.13) ends a daemon thread right here with pthread_exit, whose forced unwind runs the
// cleanups of every C++ frame above and calls std::terminate at the first frame that may not
// throw (pybind11's gil_scoped_release does this from its destructor: rc 134). Every frame
// between this call and the interpreter is therefore an ordinary function, and `gil_retaken()`
// tells the cleanups that run during such an unwind that they do not hold the GIL.
void retake_gil(PyThreadState* state);
bool gil_retaken();

// Runs f() without the GIL. Safe only when f touches no Python object: the kernels read and
// write raw buffers that the caller keeps alive.
template <class F>
void without_gil(F&& f) {
    PyThreadState* state = PyEval_SaveThread();
    try {
        f();
    } catch (...) {
        retake_gil(state);
        throw;
    }
    retake_gil(state);
}

// Strong references held for one call (arrays taken out of lists that another thread could
// empty while the kernel runs without the GIL). Released on return, unless the thread is being
// ended without the GIL (see retake_gil): then they are left to the exiting process.
class Held {
public:
    Held() = default;
    Held(const Held&) = delete;
    Held& operator=(const Held&) = delete;
    ~Held();
    void add(PyObject* obj);

private:
    static constexpr std::size_t kInline = 16;
    PyObject* inline_[kInline];
    PyObject** items_ = inline_;
    std::size_t size_ = 0, capacity_ = kInline;
};

}  // namespace fastadam::python
