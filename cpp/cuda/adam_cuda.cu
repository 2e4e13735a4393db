// The CUDA kernel: fastadam::adam_update (adam_math.hpp), the function every CPU path runs, on
// plain float/double, over the chunk table and thread mapping of cuda_plan.hpp.
//
// Built with --fmad=false and IEEE division and square root (nvcc's defaults without
// --use_fast_math), so every element gets the same roundings as on the CPU: results are
// bitwise identical to fastadam.adam_step.
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "adam_cuda.hpp"
#include "fastadam/adam_math.hpp"
#include "fastadam/cuda_plan.hpp"

namespace fastadam::cuda {

namespace {

template <class T>
struct Vector16;
template <>
struct Vector16<float> {
    using type = float4;
};
template <>
struct Vector16<double> {
    using type = double2;
};

// One 16-byte group of consecutive elements, starting at element i (16-byte aligned).
template <class T, bool Amsgrad>
__device__ __forceinline__ void update_vector(const DeviceTensor<T>& t, std::int64_t i,
                                              const AdamCoefficients<T>& c) {
    constexpr int W = work_width<T>();
    using V = typename Vector16<T>::type;
    union Lanes {
        V v;
        T x[W];
    };
    Lanes p, g, m, v, vmax;
    // All loads first, then the math, then the stores: the stores cannot alias the loads the
    // compiler would otherwise have to order them after.
    p.v = *reinterpret_cast<const V*>(t.param + i);
    g.v = __ldg(reinterpret_cast<const V*>(t.grad + i));  // read-only for the whole kernel
    m.v = *reinterpret_cast<const V*>(t.exp_avg + i);
    v.v = *reinterpret_cast<const V*>(t.exp_avg_sq + i);
    if constexpr (Amsgrad) vmax.v = *reinterpret_cast<const V*>(t.max_exp_avg_sq + i);
#pragma unroll
    for (int k = 0; k < W; ++k) adam_update<Amsgrad>(p.x[k], g.x[k], m.x[k], v.x[k], vmax.x[k], c);
    *reinterpret_cast<V*>(t.param + i) = p.v;
    *reinterpret_cast<V*>(t.exp_avg + i) = m.v;
    *reinterpret_cast<V*>(t.exp_avg_sq + i) = v.v;
    if constexpr (Amsgrad) *reinterpret_cast<V*>(t.max_exp_avg_sq + i) = vmax.v;
}

// Up to W elements w.first + j * w.stride: the unaligned path and the tails of the vector path.
template <class T, bool Amsgrad>
__device__ __forceinline__ void update_scalars(const DeviceTensor<T>& t, const ThreadWork& w,
                                               const AdamCoefficients<T>& c) {
    constexpr int W = work_width<T>();
    T p[W], g[W], m[W], v[W], vmax[W];
#pragma unroll
    for (int k = 0; k < W; ++k) {
        if (k < w.count) {
            const std::int64_t i = w.first + k * w.stride;
            p[k] = t.param[i];
            g[k] = __ldg(t.grad + i);
            m[k] = t.exp_avg[i];
            v[k] = t.exp_avg_sq[i];
            if constexpr (Amsgrad) vmax[k] = t.max_exp_avg_sq[i];
        }
    }
#pragma unroll
    for (int k = 0; k < W; ++k)
        if (k < w.count) adam_update<Amsgrad>(p[k], g[k], m[k], v[k], vmax[k], c);
#pragma unroll
    for (int k = 0; k < W; ++k) {
        if (k < w.count) {
            const std::int64_t i = w.first + k * w.stride;
            t.param[i] = p[k];
            t.exp_avg[i] = m[k];
            t.exp_avg_sq[i] = v[k];
            if constexpr (Amsgrad) t.max_exp_avg_sq[i] = vmax[k];
        }
    }
}

// One block per chunk-table entry. __grid_constant__: the batch is read in place from the
// parameter space, never copied to local memory.
template <class T, bool Amsgrad>
__global__ void __launch_bounds__(kThreadsPerBlock)
    adam_kernel(const __grid_constant__ LaunchBatch<T> batch) {
    const ChunkEntry e = batch.chunks[blockIdx.x];
    const DeviceTensor<T>& t = batch.tensors[e.tensor];
    const AdamCoefficients<T> c = t.coeffs;
    run_thread<T>(
        chunk_start(e), chunk_length(e, t.size), t.vector_path, static_cast<int>(threadIdx.x),
        [&](std::int64_t first) { update_vector<T, Amsgrad>(t, first, c); },
        [&](const ThreadWork& w) { update_scalars<T, Amsgrad>(t, w, c); });
}

void check(cudaError_t status, const char* what) {
    if (status != cudaSuccess) {
        cudaGetLastError();  // clear a non-sticky error so later calls start clean
        throw std::runtime_error(std::string("CUDA error in ") + what + ": " +
                                 cudaGetErrorName(status) + " (" + cudaGetErrorString(status) +
                                 ")");
    }
}

// Makes `device` current for the guard's lifetime.
class DeviceGuard {
public:
    explicit DeviceGuard(int device) {
        check(cudaGetDevice(&previous_), "cudaGetDevice");
        if (previous_ != device) check(cudaSetDevice(device), "cudaSetDevice");
    }
    ~DeviceGuard() {
        int now = previous_;
        if (cudaGetDevice(&now) == cudaSuccess && now != previous_) cudaSetDevice(previous_);
    }
    DeviceGuard(const DeviceGuard&) = delete;
    DeviceGuard& operator=(const DeviceGuard&) = delete;

private:
    int previous_ = 0;
};

cudaStream_t as_stream(std::uintptr_t handle) { return reinterpret_cast<cudaStream_t>(handle); }

template <class T>
void step(const AdamTensor<T>* tensors, std::size_t count, int device, std::uintptr_t stream_id,
          const std::uintptr_t* wait_for, std::size_t wait_count) {
    const bool amsgrad = plan_amsgrad(tensors, count);
    DeviceGuard guard(device);
    const cudaStream_t stream = as_stream(stream_id);
    // Order the update after the producers' streams (the __cuda_array_interface__ protocol):
    // an event per stream, so the host never blocks.
    for (std::size_t i = 0; i < wait_count; ++i) {
        if (wait_for[i] == stream_id) continue;
        cudaEvent_t event;
        check(cudaEventCreateWithFlags(&event, cudaEventDisableTiming), "cudaEventCreate");
        cudaError_t status = cudaEventRecord(event, as_stream(wait_for[i]));
        if (status == cudaSuccess) status = cudaStreamWaitEvent(stream, event, 0);
        cudaEventDestroy(event);  // released once the wait is satisfied
        check(status, "waiting on the arrays' stream");
    }
    for_each_launch(tensors, count, [&](const LaunchBatch<T>& batch) {
        const LaunchGeometry g = launch_geometry(batch);
        if (amsgrad)
            adam_kernel<T, true><<<g.blocks, g.threads_per_block, 0, stream>>>(batch);
        else
            adam_kernel<T, false><<<g.blocks, g.threads_per_block, 0, stream>>>(batch);
        check(cudaGetLastError(), "the kernel launch");
    });
}

}  // namespace

int device_count() noexcept {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return n;
}

std::string unavailable_reason() {
    int n = 0;
    const cudaError_t status = cudaGetDeviceCount(&n);
    if (status != cudaSuccess) {
        cudaGetLastError();
        return std::string("no usable CUDA driver or device (") + cudaGetErrorName(status) +
               ": " + cudaGetErrorString(status) + ")";
    }
    return n > 0 ? std::string() : std::string("no CUDA device found");
}

int runtime_version() noexcept {
    int v = 0;
    return cudaRuntimeGetVersion(&v) == cudaSuccess ? v : 0;
}

int driver_version() noexcept {
    int v = 0;
    return cudaDriverGetVersion(&v) == cudaSuccess ? v : 0;
}

std::string device_name(int device) {
    cudaDeviceProp prop{};
    check(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");
    return prop.name;
}

int device_of_pointer(const void* p) {
    cudaPointerAttributes attr{};
    if (cudaPointerGetAttributes(&attr, p) != cudaSuccess) {
        cudaGetLastError();
        return -1;
    }
    switch (attr.type) {
        case cudaMemoryTypeDevice:
        case cudaMemoryTypeManaged:
            return attr.device;
        case cudaMemoryTypeHost:  // pinned host memory, usable when mapped at the same address
            return attr.devicePointer == p ? attr.device : -1;
        default:
            return -1;
    }
}

void adam_step(const AdamTensor<float>* tensors, std::size_t count, int device,
               std::uintptr_t stream, const std::uintptr_t* wait_for, std::size_t wait_count) {
    step(tensors, count, device, stream, wait_for, wait_count);
}

void adam_step(const AdamTensor<double>* tensors, std::size_t count, int device,
               std::uintptr_t stream, const std::uintptr_t* wait_for, std::size_t wait_count) {
    step(tensors, count, device, stream, wait_for, wait_count);
}

}  // namespace fastadam::cuda
