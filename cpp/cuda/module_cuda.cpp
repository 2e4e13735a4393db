// The compiled module fastadam._cuda, built only with -DFASTADAM_CUDA=ON. fastadam/cuda.py reads
// each array's __cuda_array_interface__ and checks dtype, shape, contiguity, alignment and
// writability; this module checks what needs C++ or the driver (hyper-parameters with the CPU
// binding's own check_hyper, overlap, device residency), then enqueues the kernels.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "array_checks.hpp"
#include "adam_cuda.hpp"
#include "fastadam/cuda_plan.hpp"

namespace fastadam::python {

namespace {

namespace py = pybind11;

// The five arrays of a set, in the order fastadam/cuda.py passes their pointers.
constexpr const char* kSingle[5] = {"param", "grad", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"};
constexpr const char* kPlural[5] = {"params", "grads", "exp_avgs", "exp_avg_sqs",
                                    "max_exp_avg_sqs"};

struct Names {
    bool multi;
    std::string operator()(int array, std::size_t set) const {
        return multi ? std::string(kPlural[array]) + "[" + std::to_string(set) + "]"
                     : std::string(kSingle[array]);
    }
};

struct Span {
    std::uintptr_t begin, end;
    int array;  // 0..4 as in kSingle; 1 (grad) is the only one never written
    std::size_t set;
};

// Device memory version of check_no_overlap (array_checks.cpp works on NumPy arrays): written
// arrays may share memory with nothing; gradients may share memory with each other.
void check_no_overlap(std::vector<Span> spans, Names name) {
    std::sort(spans.begin(), spans.end(),
              [](const Span& a, const Span& b) { return a.begin < b.begin; });
    const Span* reach_any = nullptr;
    const Span* reach_written = nullptr;
    for (const auto& s : spans) {
        const bool written = s.array != 1;
        const Span* clash = written ? reach_any : reach_written;
        if (clash != nullptr && s.begin < clash->end)
            throw py::value_error(name(s.array, s.set) + " and " + name(clash->array, clash->set) +
                                  " share memory; every array of an update must be distinct");
        if (reach_any == nullptr || s.end > reach_any->end) reach_any = &s;
        if (written && (reach_written == nullptr || s.end > reach_written->end)) reach_written = &s;
    }
}

void require_device() {
    if (cuda::device_count() == 0)
        throw std::runtime_error("fastadam.cuda: CUDA is not available: " +
                                 cuda::unavailable_reason());
}

template <class T>
void launch(const std::vector<std::array<std::uintptr_t, 5>>& pointers,
            const std::vector<std::int64_t>& sizes, const std::vector<std::int64_t>& steps,
            const AdamHyper& hyper, int device, std::uintptr_t stream,
            const std::vector<std::uintptr_t>& wait_for) {
    std::vector<AdamTensor<T>> tensors(pointers.size());
    for (std::size_t i = 0; i < pointers.size(); ++i) {
        const auto& p = pointers[i];
        auto& t = tensors[i];
        t.param = reinterpret_cast<T*>(p[0]);
        t.grad = reinterpret_cast<const T*>(p[1]);
        t.exp_avg = reinterpret_cast<T*>(p[2]);
        t.exp_avg_sq = reinterpret_cast<T*>(p[3]);
        t.max_exp_avg_sq = hyper.amsgrad ? reinterpret_cast<T*>(p[4]) : nullptr;
        t.size = sizes[i];
        t.scalars = make_scalars(hyper, steps[i]);
    }
    // Safe without the GIL: only raw pointers are used, and the caller (fastadam/cuda.py) holds
    // a reference to every array until this returns. A launch may block on a full queue.
    py::gil_scoped_release release;
    cuda::adam_step(tensors.data(), tensors.size(), device, stream, wait_for.data(),
                    wait_for.size());
}

// pointers[i]: param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq (0 without amsgrad) of set i.
void adam_step(int itemsize, const std::vector<std::array<std::uintptr_t, 5>>& pointers,
               const std::vector<std::int64_t>& sizes, const std::vector<std::int64_t>& steps,
               bool multi, double lr, std::pair<double, double> betas, double eps,
               double weight_decay, bool amsgrad, bool maximize, bool decoupled,
               bool bias_correction, std::uintptr_t stream,
               const std::vector<std::uintptr_t>& wait_for) {
    const AdamHyper h = make_adam_hyper(lr, betas, eps, weight_decay, amsgrad, maximize, decoupled,
                                        bias_correction);
    check_hyper(h);
    if (itemsize != 4 && itemsize != 8) throw py::value_error("itemsize must be 4 or 8");
    if (sizes.size() != pointers.size() || steps.size() != pointers.size())
        throw py::value_error("pointers, sizes and steps must have one entry per set");
    const Names name{multi};
    const int arrays = amsgrad ? 5 : 4;
    std::vector<Span> spans;
    for (std::size_t i = 0; i < pointers.size(); ++i) {
        check_step(steps[i], multi ? "steps[" + std::to_string(i) + "]" : std::string("step"));
        if (sizes[i] < 0) throw py::value_error("sizes must not be negative");
        const auto nbytes = static_cast<std::uintptr_t>(sizes[i]) * itemsize;
        if (nbytes == 0) continue;
        if (sizes[i] > cuda::kMaxTensorElems)
            throw py::value_error(name(0, i) + " has more than 2**47 elements");
        for (int a = 0; a < arrays; ++a)
            spans.push_back({pointers[i][a], pointers[i][a] + nbytes, a, i});
    }
    check_no_overlap(spans, name);
    require_device();
    int device = -1;
    const Span* first = nullptr;
    for (const auto& s : spans) {
        const int d = cuda::device_of_pointer(reinterpret_cast<const void*>(s.begin));
        if (d < 0)
            throw py::value_error(name(s.array, s.set) +
                                  " is not in memory a CUDA device can address");
        if (first != nullptr && d != device)
            throw py::value_error(name(s.array, s.set) + " is on CUDA device " +
                                  std::to_string(d) + " but " + name(first->array, first->set) +
                                  " is on device " + std::to_string(device));
        if (first == nullptr) first = &s, device = d;
    }
    if (first == nullptr) return;  // nothing to update
    if (itemsize == 4)
        launch<float>(pointers, sizes, steps, h, device, stream, wait_for);
    else
        launch<double>(pointers, sizes, steps, h, device, stream, wait_for);
}

}  // namespace

}  // namespace fastadam::python

PYBIND11_MODULE(_cuda, m) {
    namespace py = pybind11;
    using namespace pybind11::literals;
    namespace fc = fastadam::cuda;
    m.doc() = "fastadam's CUDA kernels (use fastadam.cuda, not this module)";
    m.def("device_count", &fc::device_count, "CUDA devices visible; 0 without a driver.");
    m.def("unavailable_reason", &fc::unavailable_reason,
          "Why CUDA cannot be used, or '' when it can.");
    m.def("runtime_version", &fc::runtime_version, "The CUDA runtime's version (12040 = 12.4).");
    m.def("driver_version", &fc::driver_version, "The driver's CUDA version; 0 without a driver.");
    m.def("device_name", &fc::device_name, "device"_a);
    m.def("adam_step", &fastadam::python::adam_step, "itemsize"_a, "pointers"_a, "sizes"_a,
          "steps"_a, "multi"_a, "lr"_a, "betas"_a, "eps"_a, "weight_decay"_a, "amsgrad"_a,
          "maximize"_a, "decoupled"_a, "bias_correction"_a, "stream"_a, "wait_for"_a,
          "Enqueue an update of raw device arrays (fastadam.cuda validates the arrays first).");
    m.attr("chunk_elements") = fc::kChunkElems;
    m.attr("threads_per_block") = fc::kThreadsPerBlock;
    m.attr("max_tensors_per_launch") = fc::kMaxTensorsPerLaunch;
    m.attr("max_chunks_per_launch") = fc::kMaxChunksPerLaunch;
#ifdef FASTADAM_CUDA_ARCHITECTURES
    m.attr("architectures") = FASTADAM_CUDA_ARCHITECTURES;
#endif
}
