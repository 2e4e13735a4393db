#include "array_checks.hpp"

#include <pybind11/numpy.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <sstream>

#include "small_vector.hpp"

namespace fastadam::python {

namespace {

using py::detail::array_proxy;
using py::detail::npy_api;

std::string shape_text(PyObject* array) {
    const auto* a = array_proxy(array);
    std::ostringstream s;
    s << "(";
    for (int i = 0; i < a->nd; ++i) s << (i ? ", " : "") << a->dimensions[i];
    s << (a->nd == 1 ? ",)" : ")");
    return s.str();
}

std::string type_text(PyObject* obj) { return Py_TYPE(obj)->tp_name; }

std::string dtype_text(PyObject* array) {
    return py::str(reinterpret_cast<PyObject*>(array_proxy(array)->descr)).cast<std::string>();
}

std::string number_text(double x) {
    std::ostringstream s;
    s << x;
    return s.str();
}

// The built-in accepted dtypes' descriptors, looked up once and kept for the life of the
// process (a static py::object would be released after the interpreter is gone). NumPy hands
// out one descriptor object per built-in type, so a pointer comparison settles the usual case.
PyObject* descr_of(Dtype d) {
    static PyObject* const f32 = py::dtype::of<float>().release().ptr();
    static PyObject* const f64 = py::dtype::of<double>().release().ptr();
    static PyObject* const f16 = py::dtype("float16").release().ptr();
    return d == Dtype::float32 ? f32 : d == Dtype::float64 ? f64 : f16;
}

// ml_dtypes' bfloat16 is a NumPy user dtype (kind 'V', 2 bytes, named "bfloat16") whose type
// number is assigned when ml_dtypes is imported. It is recognised without importing ml_dtypes:
// the first 2-byte 'V' descriptor named so gives the number, compared from then on.
// bfloat16 in this machine's byte order ('>' on a little-endian machine is swapped: its bytes
// would be read as other numbers).
bool is_bfloat16(PyObject* descr_obj) {
    static int number = -1;
    constexpr char swapped = std::endian::native == std::endian::little ? '>' : '<';
    const auto* descr = reinterpret_cast<const py::detail::PyArrayDescr_Proxy*>(descr_obj);
    if (descr->byteorder == swapped) return false;
    if (number >= 0) return descr->type_num == number;
    if (descr->kind != 'V' || py::reinterpret_borrow<py::dtype>(descr_obj).itemsize() != 2)
        return false;
    const py::object name = py::reinterpret_borrow<py::object>(descr_obj).attr("name");
    if (name.cast<std::string>() != "bfloat16") return false;
    number = descr->type_num;
    return true;
}

bool has_dtype(PyObject* array, Dtype d) {
    PyObject* descr = array_proxy(array)->descr;
    if (d == Dtype::bfloat16) return is_bfloat16(descr);
    return descr == descr_of(d) || npy_api::get().PyArray_EquivTypes_(descr, descr_of(d));
}

bool is_array(PyObject* obj) { return npy_api::get().PyArray_Check_(obj); }

bool same_shape(PyObject* a, PyObject* b) {
    const auto* x = array_proxy(a);
    const auto* y = array_proxy(b);
    return x->nd == y->nd && std::equal(x->dimensions, x->dimensions + x->nd, y->dimensions);
}

}  // namespace

std::string ArgName::str() const {
    return multi ? std::string(plural) + "[" + std::to_string(index) + "]" : std::string(single);
}

const char* dtype_name(Dtype d) {
    switch (d) {
        case Dtype::float32: return "float32";
        case Dtype::float64: return "float64";
        case Dtype::float16: return "float16";
        case Dtype::bfloat16: return "bfloat16";
    }
    return "?";
}

Dtype param_dtype(PyObject* obj, const ArgName& name) {
    if (!is_array(obj))
        throw py::type_error(name.str() + " must be a numpy.ndarray, got " + type_text(obj));
    for (Dtype d : {Dtype::float32, Dtype::float64, Dtype::float16, Dtype::bfloat16})
        if (has_dtype(obj, d)) return d;
    throw py::type_error(name.str() +
                         " must be float32, float64, float16 or bfloat16 (native byte order), "
                         "got " + dtype_text(obj));
}

std::int64_t element_count(PyObject* array) {
    const auto* a = array_proxy(array);
    std::int64_t n = 1;
    for (int i = 0; i < a->nd; ++i) n *= a->dimensions[i];
    return n;
}

CheckedArray check_array(PyObject* obj, const ArgName& name, bool written, Dtype dtype,
                         PyObject* param, Dtype param_dtype) {
    if (!is_array(obj))
        throw py::type_error(name.str() + " must be a numpy.ndarray, got " + type_text(obj));
    if (!has_dtype(obj, dtype))
        throw py::type_error(
            name.str() + " must have dtype " + dtype_name(dtype) +
            (dtype == param_dtype ? std::string(" like the parameter")
                                  : std::string(" (the state of a ") + dtype_text(param) +
                                        " parameter)") +
            ", got " + dtype_text(obj) +
            " (arrays are never converted: an update applied to a copy is lost)");
    if (!same_shape(obj, param))
        throw py::value_error(name.str() + " must have the parameter's shape " + shape_text(param) +
                              ", got " + shape_text(obj));
    const auto* a = array_proxy(obj);
    if (!(a->flags & npy_api::NPY_ARRAY_C_CONTIGUOUS_))
        throw py::value_error(name.str() +
                              " must be C-contiguous (an update applied to a copy is lost)");
    if (!(a->flags & npy_api::NPY_ARRAY_ALIGNED_))
        throw py::value_error(name.str() + " must be aligned to its element size");
    if (written && !(a->flags & npy_api::NPY_ARRAY_WRITEABLE_))
        throw py::value_error(name.str() + " must be writable");
    const std::uintptr_t itemsize = dtype == Dtype::float64 ? 8 : dtype == Dtype::float32 ? 4 : 2;
    return {a->data, static_cast<std::uintptr_t>(element_count(obj)) * itemsize, written};
}

CheckedArray check_flat_array(PyObject* obj, const ArgName& name, bool written, FlatKind kind,
                              std::int64_t length, const char* length_text) {
    if (!is_array(obj))
        throw py::type_error(name.str() + " must be a numpy.ndarray, got " + type_text(obj));
    static PyObject* const u8 = py::dtype::of<std::uint8_t>().release().ptr();
    PyObject* want = kind == FlatKind::codes ? u8 : descr_of(Dtype::float32);
    PyObject* descr = array_proxy(obj)->descr;
    if (descr != want && !npy_api::get().PyArray_EquivTypes_(descr, want))
        throw py::type_error(name.str() + " must have dtype " +
                             (kind == FlatKind::codes ? "uint8" : "float32") + ", got " +
                             dtype_text(obj) + " (arrays are never converted)");
    const auto* a = array_proxy(obj);
    if (a->nd != 1 || a->dimensions[0] != length)
        throw py::value_error(name.str() + " must be 1-D with " + std::to_string(length) +
                              " elements (" + length_text + "), got shape " + shape_text(obj));
    if (!(a->flags & npy_api::NPY_ARRAY_C_CONTIGUOUS_))
        throw py::value_error(name.str() + " must be C-contiguous");
    if (!(a->flags & npy_api::NPY_ARRAY_ALIGNED_))
        throw py::value_error(name.str() + " must be aligned to its element size");
    if (written && !(a->flags & npy_api::NPY_ARRAY_WRITEABLE_))
        throw py::value_error(name.str() + " must be writable");
    const std::uintptr_t itemsize = kind == FlatKind::codes ? 1 : 4;
    return {a->data, static_cast<std::uintptr_t>(length) * itemsize, written};
}

std::pair<long, long> find_overlap(const CheckedArray* arrays, std::size_t count) {
    struct Span {
        std::uintptr_t begin, end;
        long index;
        bool written;
    };
    SmallVector<Span, 32> spans;
    spans.reserve(count);
    for (std::size_t k = 0; k < count; ++k) {
        const CheckedArray& a = arrays[k];
        if (a.data == nullptr || a.nbytes == 0) continue;
        const auto begin = reinterpret_cast<std::uintptr_t>(a.data);
        spans.push_back({begin, begin + a.nbytes, static_cast<long>(k), a.written});
    }
    if (spans.size() < 2) return {-1, -1};
    std::sort(spans.begin(), spans.end(),
              [](const Span& a, const Span& b) { return a.begin < b.begin; });
    // Sweep in address order, remembering the furthest-reaching span seen so far, and the
    // furthest-reaching written one: gradients may share memory with each other, nothing else may.
    const Span* reach_any = nullptr;
    const Span* reach_written = nullptr;
    for (const auto& s : spans) {
        const Span* clash = s.written ? reach_any : reach_written;
        if (clash != nullptr && s.begin < clash->end) return {s.index, clash->index};
        if (reach_any == nullptr || s.end > reach_any->end) reach_any = &s;
        if (s.written && (reach_written == nullptr || s.end > reach_written->end))
            reach_written = &s;
    }
    return {-1, -1};
}

namespace {
void require(bool ok, const char* what, double value) {
    if (!ok) throw py::value_error(std::string(what) + ", got " + number_text(value));
}
}  // namespace

AdamHyper make_adam_hyper(double lr, std::pair<double, double> betas, double eps,
                          double weight_decay, bool amsgrad, bool maximize, bool decoupled,
                          bool bias_correction, bool keras_eps) {
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
    h.keras_eps = keras_eps;
    return h;
}

void check_hyper(const AdamHyper& h) {
    require(h.lr >= 0.0, "lr must be >= 0", h.lr);
    require(h.eps >= 0.0, "eps must be >= 0", h.eps);
    require(h.beta1 >= 0.0 && h.beta1 < 1.0, "betas[0] must be in [0, 1)", h.beta1);
    require(h.beta2 >= 0.0 && h.beta2 < 1.0, "betas[1] must be in [0, 1)", h.beta2);
    require(h.weight_decay >= 0.0, "weight_decay must be >= 0", h.weight_decay);
}

void check_hyper(const SgdHyper& h) {
    require(h.lr >= 0.0, "lr must be >= 0", h.lr);
    require(h.momentum >= 0.0, "momentum must be >= 0", h.momentum);
    require(h.weight_decay >= 0.0, "weight_decay must be >= 0", h.weight_decay);
    require(!std::isnan(h.dampening), "dampening must not be NaN", h.dampening);
    if (h.nesterov && (h.momentum <= 0.0 || h.dampening != 0.0))
        throw py::value_error("nesterov=True requires momentum > 0 and dampening == 0");
}

void check_hyper(const AdagradHyper& h) {
    require(h.lr >= 0.0, "lr must be >= 0", h.lr);
    require(h.lr_decay >= 0.0, "lr_decay must be >= 0", h.lr_decay);
    require(h.weight_decay >= 0.0, "weight_decay must be >= 0", h.weight_decay);
    require(h.eps >= 0.0, "eps must be >= 0", h.eps);
}

void check_step(std::int64_t step, const std::string& name) {
    if (step < 1) throw py::value_error(name + " must be >= 1, got " + std::to_string(step));
}

void check_step(std::int64_t step, const ArgName& name) {
    if (step < 1) check_step(step, name.str());
}

}  // namespace fastadam::python
