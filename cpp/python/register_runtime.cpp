// Bindings of the runtime configuration (ISA, threads) and of the state allocator.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <stdexcept>

#include "fastadam/kernels.hpp"
#include "fastadam/state_memory.hpp"
#include "register.hpp"

namespace fastadam::python {

namespace py = pybind11;

namespace {

std::vector<std::string> isa_names() {
    std::vector<std::string> out;
    for (Isa isa : available_isas()) out.emplace_back(isa_name(isa));
    return out;
}

// A zero-filled array in memory from allocate_state; a capsule owns the memory and frees it when
// the last array viewing it goes away.
py::array zeros_state(const std::vector<py::ssize_t>& shape, const py::dtype& dtype) {
    if (!dtype.equal(py::dtype::of<float>()) && !dtype.equal(py::dtype::of<double>()))
        throw py::type_error("dtype must be float32 or float64, got " +
                             py::str(dtype).cast<std::string>());
    std::size_t count = 1;
    for (auto n : shape) {
        if (n < 0) throw py::value_error("shape must not be negative");
        count *= static_cast<std::size_t>(n);
    }
    void* memory = allocate_state(count * static_cast<std::size_t>(dtype.itemsize()));
    py::capsule owner(memory, [](void* p) { free_state(p); });
    return py::array(dtype, shape, {}, memory, owner);
}

}  // namespace

void register_runtime(py::module_& m) {
    using namespace pybind11::literals;
    // C++ std::invalid_argument from the core becomes ValueError (pybind11's default mapping).
    m.def("available_isas", &isa_names,
          "Instruction-set paths this build has and this CPU runs, best first.");
    m.def("get_isa", [] { return std::string(isa_name(active_isa())); },
          "The instruction-set path in use.");
    m.def("set_isa", [](const std::string& name) { set_isa(isa_from_name(name)); }, "name"_a,
          "Force an instruction-set path (one of available_isas()); ValueError otherwise.");
    m.def("get_num_threads", &num_threads, "Threads a large step uses, the caller included.");
    m.def("set_num_threads", &set_num_threads, "n"_a,
          "Set the threads a large step uses (1 to 1024), the caller included.");
    m.def("default_num_threads", &default_num_threads,
          "FASTADAM_NUM_THREADS if set, else the CPUs this process may run on.");
    m.attr("parallel_threshold") = kParallelThreshold;
    m.def("zeros_state", &zeros_state, "shape"_a, "dtype"_a,
          "Zeroed array for optimizer state: 64-byte aligned, from 2 MiB up in a 2 MiB-aligned "
          "block advised for transparent huge pages; successive arrays start at different "
          "offsets modulo 4 KiB.");
}

}  // namespace fastadam::python
