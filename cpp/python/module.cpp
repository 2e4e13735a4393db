// The compiled module fastadam._core: it only creates the module and registers each area.
#include "register.hpp"

PYBIND11_MODULE(_core, m) {
    m.doc() = "fastadam's compiled kernels (use the fastadam package, not this module)";
    fastadam::python::register_adam(m);
    fastadam::python::register_sgd(m);
    fastadam::python::register_adagrad(m);
    fastadam::python::register_runtime(m);
}
