// The compiled module fastadam._core: it only creates the module and registers each area.
#include "entry.hpp"
#include "register.hpp"

PYBIND11_MODULE(_core, m) {
    m.doc() = "fastadam's compiled kernels (use the fastadam package, not this module)";
    fastadam::python::load_numpy_scalar_types();  // for the scalar arguments
    fastadam::python::register_adam(m);
    fastadam::python::register_adam8bit(m);
    fastadam::python::register_sgd(m);
    fastadam::python::register_adagrad(m);
    fastadam::python::register_family(m);
    fastadam::python::register_runtime(m);
    fastadam::python::register_unchanged(m);
}
