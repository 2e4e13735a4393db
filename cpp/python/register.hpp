// One register_* function per area of the Python module (module.cpp calls them all).
#pragma once

#include <pybind11/pybind11.h>

namespace fastadam::python {
void register_adam(pybind11::module_& m);
void register_adam8bit(pybind11::module_& m);
void register_sgd(pybind11::module_& m);
void register_adagrad(pybind11::module_& m);
void register_family(pybind11::module_& m);
void register_runtime(pybind11::module_& m);
void register_unchanged(pybind11::module_& m);
}  // namespace fastadam::python
