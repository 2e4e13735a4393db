// Validation of the arrays and hyper-parameters handed to the kernels. Everything is checked
// before any kernel runs, so a bad call leaves every array byte-identical.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

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

// One checked array, remembered for the overlap test.
struct ArrayView {
    py::array array;  // unset when !present
    ArgName name;
    bool written;  // grads are only read
    bool present = true;
};

// Checks that `obj` is a C-contiguous, aligned NumPy array of `dtype` shaped like `param`,
// writable when `written`; raises TypeError/ValueError naming it otherwise. `param_dtype` is the
// parameter's, named in the message when `dtype` is its state dtype.
py::array check_array(const py::handle& obj, const ArgName& name, bool written, Dtype dtype,
                      const py::array& param, Dtype param_dtype);

// The dtype of a parameter array (float32, float64, float16, or ml_dtypes' bfloat16); TypeError
// otherwise.
Dtype param_dtype(const py::handle& obj, const ArgName& name);

// Raises ValueError if any written array shares memory with any other array.
void check_no_overlap(const std::vector<ArrayView>& arrays);

// AdamHyper from the binding's arguments (shared by the CPU and CUDA modules).
AdamHyper make_adam_hyper(double lr, std::pair<double, double> betas, double eps,
                          double weight_decay, bool amsgrad, bool maximize, bool decoupled,
                          bool bias_correction);

// Raises ValueError naming the offending hyper-parameter (rules of torch.optim.Adam).
void check_hyper(const AdamHyper& h);
void check_hyper(const SgdHyper& h);
void check_hyper(const AdagradHyper& h);
void check_step(std::int64_t step, const std::string& name);
void check_step(std::int64_t step, const ArgName& name);

std::vector<py::ssize_t> shape_of(const py::array& a);

}  // namespace fastadam::python
