// Bindings of the runtime configuration (ISA, threads) and of the state allocator.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <stdexcept>

#include "entry.hpp"
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

void set_isa_entry(const Args& a) { set_isa(isa_from_name(str_arg(a[0], "name"))); }

void set_num_threads_entry(const Args& a) {
    const std::int64_t n = int_arg(a[0], "n");
    if (n < 1 || n > kMaxThreads)
        throw py::value_error("num_threads must be from 1 to " + std::to_string(kMaxThreads) +
                              ", got " + std::to_string(n));
    set_num_threads(static_cast<int>(n));
}

}  // namespace

void register_runtime(py::module_& m) {
    using namespace pybind11::literals;
    // C++ std::invalid_argument from the core becomes ValueError (pybind11's default mapping).
    m.def("available_isas", &isa_names,
          "Instruction-set paths this build has and this CPU runs, best first.");
    m.def(
        "get_isa", [] { return std::string(isa_name(active_isa())); },
        "The instruction-set path in use.");
    def_entry<set_isa_entry>(
        m, "set_isa", "name",
        "Force an instruction-set path (one of available_isas()); ValueError otherwise.");
    m.def("get_num_threads", &num_threads, "Threads a large step uses, the caller included.");
    def_entry<set_num_threads_entry>(
        m, "set_num_threads", "n",
        "Set the threads a large step uses (an int from 1 to 1024), the caller included.");
    m.def("default_num_threads", &default_num_threads,
          "FASTADAM_NUM_THREADS if set, else the CPUs this process may run on.");
    m.attr("parallel_threshold") = kParallelThreshold;
    m.def("zeros_state", &zeros_state, "shape"_a, "dtype"_a,
          "Zeroed array for optimizer state: 64-byte aligned, from 2 MiB up in a 2 MiB-aligned "
          "block advised for transparent huge pages; successive arrays start at different "
          "offsets modulo 4 KiB.");
}

}  // namespace fastadam::python
