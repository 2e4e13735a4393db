// Validation of the arrays and hyper-parameters handed to the kernels. Everything is checked
// before any kernel runs, so a bad call leaves every array byte-identical.
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <utility>

#include "fastadam/kernels.hpp"

namespace fastadam::python {

namespace py = pybind11;

// Parameter dtypes; float16 and bfloat16 parameters keep float32 state.
enum class Dtype { float32, float64, float16, bfloat16 };

inline Dtype state_dtype(Dtype d) {
    return d == Dtype::float16 || d == Dtype::bfloat16 ? Dtype::float32 : d;
}
inline bool is_16bit(Dtype d) { return d == Dtype::float16 || d == Dtype::bfloat16; }
const char* dtype_name(Dtype d);

// An argument's name as the user wrote it ("exp_avg", "grads[3]"), spelled out only for an
// error message: a step that passes validation builds no strings.
struct ArgName {
    const char* single;  // the name in a one-set function
    const char* plural;  // the list's name in a multi function
    std::size_t index;
    bool multi;
    std::string str() const;
};

// What a kernel needs of one checked array. The caller keeps the array alive.
struct CheckedArray {
    void* data = nullptr;  // null for an optional array that was left out
    std::uintptr_t nbytes = 0;
    bool written = false;  // grads are only read
};

// The dtype of a parameter array (float32, float64, float16, or ml_dtypes' bfloat16); TypeError
// otherwise.
Dtype param_dtype(PyObject* obj, const ArgName& name);

// Checks that `obj` is a C-contiguous, aligned NumPy array of `dtype` shaped like `param` (an
// array already checked, of `param_dtype`), writable when `written`; raises TypeError/ValueError
// naming it.
CheckedArray check_array(PyObject* obj, const ArgName& name, bool written, Dtype dtype,
                         PyObject* param, Dtype param_dtype);

// The 8-bit state's arrays: codes (uint8) and block scales (float32), 1-D, C-contiguous, of
// `length` elements; `length_text` says where the length comes from ("the parameter's size").
enum class FlatKind { codes, scales };
CheckedArray check_flat_array(PyObject* obj, const ArgName& name, bool written, FlatKind kind,
                              std::int64_t length, const char* length_text);

// Elements of a checked array.
std::int64_t element_count(PyObject* array);

// Raises ValueError if any written array shares memory with any other array; name(k) names
// arrays[k].
template <class Name>
void check_no_overlap(const CheckedArray* arrays, std::size_t count, const Name& name);

// AdamHyper from the binding's arguments (shared by the CPU and CUDA modules).
AdamHyper make_adam_hyper(double lr, std::pair<double, double> betas, double eps,
                          double weight_decay, bool amsgrad, bool maximize, bool decoupled,
                          bool bias_correction, bool keras_eps = false);

// Raises ValueError naming the offending hyper-parameter (rules of torch.optim.Adam).
void check_hyper(const AdamHyper& h);
void check_hyper(const SgdHyper& h);
void check_hyper(const AdagradHyper& h);
void check_step(std::int64_t step, const std::string& name);
void check_step(std::int64_t step, const ArgName& name);

// Sorted-sweep overlap test behind check_no_overlap: returns the indices of a clashing pair, or
// {-1, -1}.
std::pair<long, long> find_overlap(const CheckedArray* arrays, std::size_t count);

template <class Name>
void check_no_overlap(const CheckedArray* arrays, std::size_t count, const Name& name) {
    const auto [later, earlier] = find_overlap(arrays, count);
    if (later >= 0)
        throw py::value_error(name(static_cast<std::size_t>(later)) + " and " +
                              name(static_cast<std::size_t>(earlier)) +
                              " share memory; every array of an update must be distinct");
}

}  // namespace fastadam::python
