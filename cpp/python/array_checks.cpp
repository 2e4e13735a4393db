#include "array_checks.hpp"

#include <algorithm>
#include <cmath>
#include <optional>
#include <sstream>

namespace fastadam::python {

namespace {

std::string shape_text(const std::vector<py::ssize_t>& shape) {
    std::ostringstream s;
    s << "(";
    for (std::size_t i = 0; i < shape.size(); ++i) s << (i ? ", " : "") << shape[i];
    s << (shape.size() == 1 ? ",)" : ")");
    return s.str();
}

std::string type_text(const py::handle& obj) {
    return py::str(py::type::handle_of(obj).attr("__name__")).cast<std::string>();
}

std::string number_text(double x) {
    std::ostringstream s;
    s << x;
    return s.str();
}

}  // namespace

std::vector<py::ssize_t> shape_of(const py::array& a) {
    return std::vector<py::ssize_t>(a.shape(), a.shape() + a.ndim());
}

std::string ArgName::str() const {
    return multi ? std::string(plural) + "[" + std::to_string(index) + "]" : std::string(single);
}

namespace {

// The accepted dtypes, looked up once and kept for the life of the process (a static
// py::object would be released after the interpreter is gone).
const py::dtype& dtype_of(Dtype d) {
    static const auto* f32 = new py::dtype(py::dtype::of<float>());
    static const auto* f64 = new py::dtype(py::dtype::of<double>());
    static const auto* f16 = new py::dtype("float16");
    switch (d) {
        case Dtype::float32: return *f32;
        case Dtype::float64: return *f64;
        default: return *f16;
    }
}

// ml_dtypes' bfloat16 is a NumPy user dtype (kind 'V', 2 bytes, named "bfloat16") with a type
// number assigned when ml_dtypes is imported. It is recognised without importing ml_dtypes: the
// first 2-byte 'V' dtype named so gives its number, compared from then on.
bool is_bfloat16(const py::dtype& dtype) {
    static int number = -1;
    if (number >= 0) return dtype.num() == number;
    if (dtype.kind() != 'V' || dtype.itemsize() != 2) return false;
    if (py::str(dtype.attr("name")).cast<std::string>() != "bfloat16") return false;
    number = dtype.num();
    return true;
}

bool same_shape(const py::array& a, const py::array& b) {
    return a.ndim() == b.ndim() && std::equal(a.shape(), a.shape() + a.ndim(), b.shape());
}

}  // namespace

const char* dtype_name(Dtype d) {
    switch (d) {
        case Dtype::float32: return "float32";
        case Dtype::float64: return "float64";
        case Dtype::float16: return "float16";
        case Dtype::bfloat16: return "bfloat16";
    }
    return "?";
}

namespace {
std::optional<Dtype> dtype_enum(const py::dtype& dtype) {
    for (Dtype d : {Dtype::float32, Dtype::float64, Dtype::float16})
        if (dtype.equal(dtype_of(d))) return d;
    if (is_bfloat16(dtype)) return Dtype::bfloat16;
    return std::nullopt;
}
}  // namespace

Dtype param_dtype(const py::handle& obj, const ArgName& name) {
    if (!py::isinstance<py::array>(obj))
        throw py::type_error(name.str() + " must be a numpy.ndarray, got " + type_text(obj));
    const auto dtype = py::reinterpret_borrow<py::array>(obj).dtype();
    if (const auto d = dtype_enum(dtype)) return *d;
    throw py::type_error(name.str() +
                         " must be float32, float64, float16 or bfloat16 (native byte order), "
                         "got " + py::str(dtype).cast<std::string>());
}

py::array check_array(const py::handle& obj, const ArgName& name, bool written, Dtype dtype,
                      const py::array& param, Dtype param_dtype) {
    if (!py::isinstance<py::array>(obj))
        throw py::type_error(name.str() + " must be a numpy.ndarray, got " + type_text(obj));
    auto a = py::reinterpret_borrow<py::array>(obj);
    const auto got = dtype_enum(a.dtype());
    if (got != dtype)
        throw py::type_error(
            name.str() + " must have dtype " + dtype_name(dtype) +
            (dtype == param_dtype ? std::string(" like the parameter")
                                  : std::string(" (the state of a ") + dtype_name(param_dtype) +
                                        " parameter)") +
            ", got " + py::str(a.dtype()).cast<std::string>() +
            " (arrays are never converted: an update applied to a copy is lost)");
    if (!same_shape(a, param))
        throw py::value_error(name.str() + " must have the parameter's shape " +
                              shape_text(shape_of(param)) + ", got " + shape_text(shape_of(a)));
    const int flags = a.flags();
    if (!(flags & py::array::c_style))
        throw py::value_error(name.str() +
                              " must be C-contiguous (an update applied to a copy is lost)");
    if (!(flags & py::detail::npy_api::NPY_ARRAY_ALIGNED_))
        throw py::value_error(name.str() + " must be aligned to its element size");
    if (written && !a.writeable()) throw py::value_error(name.str() + " must be writable");
    return a;
}

void check_no_overlap(const std::vector<ArrayView>& arrays) {
    struct Span {
        std::uintptr_t begin, end;
        const ArrayView* view;
    };
    std::vector<Span> spans;
    spans.reserve(arrays.size());
    for (const auto& v : arrays) {
        if (!v.present) continue;
        const auto nbytes = static_cast<std::uintptr_t>(v.array.nbytes());
        if (nbytes == 0) continue;
        const auto begin = reinterpret_cast<std::uintptr_t>(v.array.data());
        spans.push_back({begin, begin + nbytes, &v});
    }
    std::sort(spans.begin(), spans.end(),
              [](const Span& a, const Span& b) { return a.begin < b.begin; });
    // Sweep in address order, remembering the furthest-reaching span seen so far, and the
    // furthest-reaching written one: gradients may share memory with each other, nothing else may.
    const Span* reach_any = nullptr;
    const Span* reach_written = nullptr;
    for (const auto& s : spans) {
        const Span* clash = s.view->written ? reach_any : reach_written;
        if (clash != nullptr && s.begin < clash->end)
            throw py::value_error(s.view->name.str() + " and " + clash->view->name.str() +
                                  " share memory; every array of an update must be distinct");
        if (reach_any == nullptr || s.end > reach_any->end) reach_any = &s;
        if (s.view->written && (reach_written == nullptr || s.end > reach_written->end))
            reach_written = &s;
    }
}

namespace {
void require(bool ok, const char* what, double value) {
    if (!ok) throw py::value_error(std::string(what) + ", got " + number_text(value));
}
}  // namespace

AdamHyper make_adam_hyper(double lr, std::pair<double, double> betas, double eps,
                          double weight_decay, bool amsgrad, bool maximize, bool decoupled,
                          bool bias_correction) {
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

}  // namespace fastadam::python

namespace fastadam::python {
void check_step(std::int64_t step, const ArgName& name) {
    if (step < 1) check_step(step, name.str());
}
}  // namespace fastadam::python
