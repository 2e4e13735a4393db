#include "entry.hpp"

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <new>
#include <stdexcept>
#include <system_error>

#if defined(__GLIBCXX__)
#include <cxxabi.h>
#endif

namespace fastadam::python {

// --- signatures -------------------------------------------------------------------------------

namespace {

std::string trim(const std::string& s) {
    const auto begin = s.find_first_not_of(" \n");
    if (begin == std::string::npos) return "";
    return s.substr(begin, s.find_last_not_of(" \n") - begin + 1);
}

}  // namespace

Signature::Signature(const char* function, const char* parameters)
    : function_(function), text_(std::string("(") + parameters + ")") {
    // Split at the commas outside parentheses (a default may be a tuple).
    std::string token;
    int depth = 0;
    bool keyword_only = false;
    auto finish = [&] {
        const std::string t = trim(token);
        token.clear();
        if (t.empty()) return;
        if (t == "/") {
            keyword_from_ = count_;
            return;
        }
        if (t == "*") {
            keyword_only = true;
            positional_ = count_;
            return;
        }
        if (count_ == Args::kMax) throw std::logic_error("too many parameters");
        const auto eq = t.find('=');
        Parameter& p = parameters_[count_++];
        p.name = trim(t.substr(0, eq));
        p.required = eq == std::string::npos;
        p.interned = PyUnicode_InternFromString(p.name.c_str());  // kept for good
        if (p.interned == nullptr) throw py::error_already_set();
    };
    for (const char* c = parameters; *c != '\0'; ++c) {
        if (*c == '(') ++depth;
        if (*c == ')') --depth;
        if (*c == ',' && depth == 0)
            finish();
        else
            token += *c;
    }
    finish();
    if (!keyword_only) positional_ = count_;
}

void Signature::fail(const std::string& what) const {
    throw py::type_error(function_ + "() " + what);
}

int Signature::keyword_index(PyObject* key) const {
    // Keyword names in Python source are interned, so the pointer comparison finds them; a name
    // built at run time (**kwargs from a dict made by hand) takes the string comparison.
    for (int i = 0; i < count_; ++i)
        if (parameters_[i].interned == key) return i;
    for (int i = 0; i < count_; ++i)
        if (PyUnicode_CompareWithASCIIString(key, parameters_[i].name.c_str()) == 0) return i;
    return -1;
}

void Signature::bind(PyObject* const* args, std::size_t nargsf, PyObject* kwnames,
                     Args& out) const {
    const Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs > positional_)
        fail("takes at most " + std::to_string(positional_) + " positional arguments (" +
             std::to_string(nargs) + " given)");
    for (Py_ssize_t i = 0; i < nargs; ++i) out.value[i] = args[i];
    if (kwnames != nullptr) {
        const Py_ssize_t n = PyTuple_GET_SIZE(kwnames);
        for (Py_ssize_t k = 0; k < n; ++k) {
            PyObject* key = PyTuple_GET_ITEM(kwnames, k);
            const int i = keyword_index(key);
            if (i < keyword_from_) {
                const char* text = PyUnicode_AsUTF8(key);
                if (text == nullptr) throw py::error_already_set();
                fail(std::string(i < 0 ? "got an unexpected keyword argument '"
                                       : "got a positional-only argument passed as keyword '") +
                     text + "'");
            }
            if (out.value[i] != nullptr)
                fail("got multiple values for argument '" + parameters_[i].name + "'");
            out.value[i] = args[nargs + k];
        }
    }
    for (int i = 0; i < count_; ++i)
        if (parameters_[i].required && out.value[i] == nullptr)
            fail("missing required argument '" + parameters_[i].name + "'");
}

void add_entry(py::module_& m, const char* name, const char* parameters, const char* doc,
               PyObject* (*call)(PyObject*, PyObject* const*, Py_ssize_t, PyObject*),
               const Signature*& slot) {
    // The signature, the text and the method table live as long as the function: for good.
    const auto* signature = new Signature(name, parameters);
    slot = signature;
    // "name(parameters)\n--\n\n" at the head of a builtin's doc becomes its __text_signature__,
    // which inspect.signature and help() read.
    const auto* text = new std::string(name + signature->text() + "\n--\n\n" + doc);
    auto* def =
        new PyMethodDef{name, reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(call)),
                        METH_FASTCALL | METH_KEYWORDS, text->c_str()};
    PyObject* function = PyCFunction_NewEx(def, m.ptr(), m.attr("__name__").ptr());
    if (function == nullptr) throw py::error_already_set();
    m.add_object(name, py::reinterpret_steal<py::object>(function));
}

namespace {
// Runs an entry's body and turns its C++ exceptions into Python ones; run() returns the result.
template <class Run>
PyObject* guarded(const Signature& signature, PyObject* const* args, Py_ssize_t nargsf,
                  PyObject* kwnames, const Run& run) {
    try {
        Args bound;
        signature.bind(args, static_cast<std::size_t>(nargsf), kwnames, bound);
        return run(bound);
    } catch (py::error_already_set& e) {
        e.restore();
#if defined(__GLIBCXX__)
    } catch (abi::__forced_unwind&) {
        throw;  // a thread ended by pthread_exit (see retake_gil) must unwind to its start
#endif
    } catch (const py::builtin_exception& e) {
        e.set_error();
    } catch (const std::bad_alloc&) {
        PyErr_NoMemory();
    } catch (const std::invalid_argument& e) {
        PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const std::exception& e) {
        PyErr_SetString(PyExc_RuntimeError, e.what());
    } catch (...) {
        PyErr_SetString(PyExc_RuntimeError, "unknown C++ exception");
    }
    return nullptr;
}

}  // namespace

PyObject* call_entry(const Signature& signature, Body body, PyObject* const* args,
                     Py_ssize_t nargsf, PyObject* kwnames) {
    return guarded(signature, args, nargsf, kwnames, [&](const Args& a) -> PyObject* {
        body(a);
        Py_RETURN_NONE;
    });
}

PyObject* call_entry(const Signature& signature, ResultBody body, PyObject* const* args,
                     Py_ssize_t nargsf, PyObject* kwnames) {
    return guarded(signature, args, nargsf, kwnames,
                   [&](const Args& a) { return body(a).release().ptr(); });
}

// --- scalar arguments -------------------------------------------------------------------------

namespace {

PyTypeObject* numpy_bool = nullptr;
PyTypeObject* numpy_floating = nullptr;
PyTypeObject* numpy_integer = nullptr;

bool is_numpy(PyObject* obj, PyTypeObject* type) {
    return type != nullptr && PyObject_TypeCheck(obj, type);
}

// The message of the Python error being raised, which is cleared.
std::string take_error_message() {
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    std::string text;
    if (value != nullptr) {
        PyObject* s = PyObject_Str(value);
        const char* utf8 = s != nullptr ? PyUnicode_AsUTF8(s) : nullptr;
        if (utf8 != nullptr) text = utf8;
        Py_XDECREF(s);
    }
    PyErr_Clear();
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(traceback);
    return text;
}

std::int64_t exact_int(PyObject* integer, const std::string& name) {
    int overflow = 0;
    const long long value = PyLong_AsLongLongAndOverflow(integer, &overflow);
    if (overflow != 0) throw py::value_error(name + " does not fit in a 64-bit integer");
    if (value == -1 && PyErr_Occurred()) throw py::error_already_set();
    return value;
}

}  // namespace

void load_numpy_scalar_types() {
    const py::module_ numpy = py::module_::import("numpy");
    // Kept for good, like the module's functions that use them.
    auto type = [&](const char* name) {
        return reinterpret_cast<PyTypeObject*>(py::object(numpy.attr(name)).release().ptr());
    };
    numpy_bool = type("bool_");
    numpy_floating = type("floating");
    numpy_integer = type("integer");
}

std::string type_name(PyObject* obj) { return Py_TYPE(obj)->tp_name; }

double real_arg(PyObject* obj, const char* name, double fallback) {
    if (obj == nullptr) return fallback;
    if (PyFloat_Check(obj)) return PyFloat_AS_DOUBLE(obj);  // numpy.float64 too
    if ((PyLong_Check(obj) && !PyBool_Check(obj)) || is_numpy(obj, numpy_floating) ||
        is_numpy(obj, numpy_integer)) {
        const double x = PyLong_Check(obj) ? PyLong_AsDouble(obj) : PyFloat_AsDouble(obj);
        if (x == -1.0 && PyErr_Occurred()) {
            if (!PyErr_ExceptionMatches(PyExc_OverflowError)) throw py::error_already_set();
            PyErr_Clear();
            throw py::value_error(std::string(name) + " is too large for a double");
        }
        return x;
    }
    throw py::type_error(std::string(name) + " must be a real number, got " + type_name(obj));
}

bool bool_arg(PyObject* obj, const char* name, bool fallback) {
    if (obj == nullptr) return fallback;
    if (obj == Py_True) return true;
    if (obj == Py_False) return false;
    if (is_numpy(obj, numpy_bool)) {
        const int b = PyObject_IsTrue(obj);
        if (b < 0) throw py::error_already_set();
        return b == 1;
    }
    throw py::type_error(std::string(name) + " must be a bool, got " + type_name(obj));
}

namespace {

// An int argument as a Python int: an int itself, or what a NumPy integer or another type
// with __index__ gives (which may fail: numpy.array([3]) and numpy.array(3.0) have one that
// raises TypeError). Never a bool or a float.
py::object as_python_int(PyObject* obj, const std::string& name) {
    if (PyBool_Check(obj) || PyFloat_Check(obj) || !PyIndex_Check(obj))
        throw py::type_error(name + " must be an int, got " + type_name(obj));
    PyObject* index = PyNumber_Index(obj);
    if (index == nullptr) {
        if (!PyErr_ExceptionMatches(PyExc_TypeError)) throw py::error_already_set();
        throw py::type_error(name + " must be an int, got " + type_name(obj) + " (" +
                             take_error_message() + ")");
    }
    return py::reinterpret_steal<py::object>(index);
}

}  // namespace

std::int64_t int_arg(PyObject* obj, const std::string& name) {
    if (PyLong_Check(obj) && !PyBool_Check(obj)) return exact_int(obj, name);
    return exact_int(as_python_int(obj, name).ptr(), name);
}

std::uint64_t low_bits_arg(PyObject* obj, const std::string& name) {
    const py::object index = as_python_int(obj, name);
    const unsigned long long bits = PyLong_AsUnsignedLongLongMask(index.ptr());  // any size
    if (bits == static_cast<unsigned long long>(-1) && PyErr_Occurred())
        throw py::error_already_set();
    return bits;
}

std::pair<double, double> pair_arg(PyObject* obj, const char* name,
                                   std::pair<double, double> fallback) {
    if (obj == nullptr) return fallback;
    if (!PyTuple_Check(obj) && !PyList_Check(obj))
        throw py::type_error(std::string(name) + " must be a tuple of two real numbers, got " +
                             type_name(obj));
    const Py_ssize_t n = PySequence_Fast_GET_SIZE(obj);
    if (n != 2)
        throw py::value_error(std::string(name) + " must have two entries, got " +
                              std::to_string(n));
    // Both items are read before any Python code could run (real_arg calls __float__ only
    // for NumPy scalars, which cannot change the list).
    PyObject* first = PySequence_Fast_ITEMS(obj)[0];
    PyObject* second = PySequence_Fast_ITEMS(obj)[1];
    const std::string n0 = std::string(name) + "[0]", n1 = std::string(name) + "[1]";
    return {real_arg(first, n0.c_str(), 0.0), real_arg(second, n1.c_str(), 0.0)};
}

std::string str_arg(PyObject* obj, const char* name) {
    if (!PyUnicode_Check(obj))
        throw py::type_error(std::string(name) + " must be a str, got " + type_name(obj));
    Py_ssize_t size = 0;
    const char* text = PyUnicode_AsUTF8AndSize(obj, &size);
    if (text == nullptr) throw py::error_already_set();
    return std::string(text, static_cast<std::size_t>(size));
}

// --- leaving and retaking the GIL ---------------------------------------------------------------

namespace {
// Set while this thread waits in PyEval_RestoreThread. Volatile: the store before the call must
// not be dropped as dead (the compiler cannot see that pthread_exit may end the call).
thread_local volatile bool retaking = false;
}  // namespace

void retake_gil(PyThreadState* state) {
    retaking = true;
    PyEval_RestoreThread(state);
    retaking = false;
}

bool gil_retaken() { return !retaking; }

void Held::add(PyObject* obj) {
    if (size_ == capacity_) {
        const std::size_t bigger = 2 * capacity_;
        auto** items = static_cast<PyObject**>(std::malloc(bigger * sizeof(PyObject*)));
        if (items == nullptr) throw std::bad_alloc();
        std::copy(items_, items_ + size_, items);
        if (items_ != inline_) std::free(items_);
        items_ = items;
        capacity_ = bigger;
    }
    Py_INCREF(obj);
    items_[size_++] = obj;
}

Held::~Held() {
    if (gil_retaken())
        for (std::size_t i = 0; i < size_; ++i) Py_DECREF(items_[i]);
    if (items_ != inline_) std::free(items_);
}

}  // namespace fastadam::python
