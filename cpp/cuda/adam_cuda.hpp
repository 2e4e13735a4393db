// Host entry points of the CUDA kernels (defined in adam_cuda.cu). Plain C++: the Python module
// includes this without CUDA headers. Nothing here crashes without a driver: device_count()
// reports 0 and unavailable_reason() says why.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "fastadam/kernels.hpp"

namespace fastadam::cuda {

// CUDA devices visible to this process; 0 without a device or a driver. Never throws.
int device_count() noexcept;

// Why no device can be used, or "" when one can.
std::string unavailable_reason();

// Versions as CUDA encodes them (1000 * major + 10 * minor); the driver's is 0 without a driver.
int runtime_version() noexcept;
int driver_version() noexcept;
std::string device_name(int device);

// The device whose memory `p` points to, or -1 when the kernel cannot address it (host memory
// that is not mapped into the device's address space).
int device_of_pointer(const void* p);

// Enqueue the update of every tensor of the list on `stream` (a cudaStream_t as an integer,
// 0 for the default stream) of `device`, after the work already enqueued on each of the
// `wait_count` streams in `wait_for`. Returns without waiting for the kernels. The arrays must be
// valid device memory of `device`; the caller validates (the module does). Throws
// std::runtime_error on CUDA errors.
void adam_step(const AdamTensor<float>* tensors, std::size_t count, int device,
               std::uintptr_t stream, const std::uintptr_t* wait_for, std::size_t wait_count);
void adam_step(const AdamTensor<double>* tensors, std::size_t count, int device,
               std::uintptr_t stream, const std::uintptr_t* wait_for, std::size_t wait_count);

}  // namespace fastadam::cuda
