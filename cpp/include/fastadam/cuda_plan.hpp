// How the CUDA kernel splits a multi-tensor step into work: the chunk table, the launch batches
// and their geometry, the 16-byte vector path decision, and the per-thread element mapping.
//
// Plain C++ with no CUDA header, so that the CPU test build compiles it and a host emulation
// checks it (tests/cpp/test_cuda_plan.cpp). The kernel (cpp/cuda/adam_cuda.cu) calls the very
// same FASTADAM_HD functions, so the emulation checks the mapping the GPU runs.
//
// Work layout: every tensor is cut into chunks of kChunkElems elements; one thread block
// updates one chunk. The chunk table and the tensor descriptors travel by value in the kernel's
// parameters (a LaunchBatch, under CUDA's 32764-byte parameter limit), so a launch needs no
// device allocation and no host synchronisation; a call with more tensors or chunks than one
// batch holds makes several launches, each one updating many tensors.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "fastadam/adam_math.hpp"
#include "fastadam/kernels.hpp"

namespace fastadam::cuda {

inline constexpr std::int64_t kChunkElems = 65536;  // elements per block
inline constexpr int kThreadsPerBlock = 256;
inline constexpr int kVectorBytes = 16;  // float4 / double2 loads and stores
inline constexpr int kMaxTensorsPerLaunch = 64;
inline constexpr int kMaxChunksPerLaunch = 1024;
// Chunk indices are int32: a tensor may hold up to 2**31 chunks, i.e. 2**47 elements.
inline constexpr std::int64_t kMaxTensorElems = (std::int64_t{1} << 31) * kChunkElems;

static_assert(kChunkElems % (4 * kThreadsPerBlock) == 0, "no partial iteration inside a tensor");

// One row of the chunk table: chunk `chunk` of the tensor in slot `tensor` of the batch.
struct ChunkEntry {
    std::int32_t tensor;
    std::int32_t chunk;
};

// A tensor as the kernel sees it: pointers, size, per-tensor coefficients (steps may differ
// between tensors), and the access path chosen from the pointers' alignment.
template <class T>
struct DeviceTensor {
    T* param;
    const T* grad;
    T* exp_avg;
    T* exp_avg_sq;
    T* max_exp_avg_sq;  // null unless amsgrad
    std::int64_t size;
    AdamCoefficients<T> coeffs;
    bool vector_path;
};

// What one kernel launch receives, by value.
template <class T>
struct LaunchBatch {
    DeviceTensor<T> tensors[kMaxTensorsPerLaunch];
    ChunkEntry chunks[kMaxChunksPerLaunch];
    std::int32_t num_tensors;
    std::int32_t num_chunks;
};
static_assert(sizeof(LaunchBatch<double>) <= 32764, "CUDA kernel parameter limit (CUDA 12.1+)");

struct LaunchGeometry {
    std::int32_t blocks;
    std::int32_t threads_per_block;
};

template <class T>
LaunchGeometry launch_geometry(const LaunchBatch<T>& batch) {
    return {batch.num_chunks, kThreadsPerBlock};
}

FASTADAM_HD std::int64_t chunk_start(ChunkEntry e) {
    return static_cast<std::int64_t>(e.chunk) * kChunkElems;
}

FASTADAM_HD std::int64_t chunk_length(ChunkEntry e, std::int64_t tensor_size) {
    const std::int64_t rest = tensor_size - chunk_start(e);
    return rest < kChunkElems ? rest : kChunkElems;
}

inline std::int64_t num_chunks(std::int64_t size) { return (size + kChunkElems - 1) / kChunkElems; }

// The vector path needs every pointer 16-byte aligned; chunk starts keep that alignment.
template <class T>
bool use_vector_path(const AdamTensor<T>& t) {
    auto aligned = [](const void* p) {
        return reinterpret_cast<std::uintptr_t>(p) % kVectorBytes == 0;
    };
    return aligned(t.param) && aligned(t.grad) && aligned(t.exp_avg) &&
           aligned(t.exp_avg_sq) && (t.max_exp_avg_sq == nullptr || aligned(t.max_exp_avg_sq));
}

template <class T>
DeviceTensor<T> make_device_tensor(const AdamTensor<T>& t) {
    return DeviceTensor<T>{t.param,      t.grad, t.exp_avg, t.exp_avg_sq,
                           t.max_exp_avg_sq, t.size, broadcast<T, T>(t.scalars),
                           use_vector_path(t)};
}

// Elements one thread handles per iteration, on either path: 16 bytes' worth (4 float,
// 2 double). A chunk start is a multiple of it, so it keeps a 16-byte aligned tensor aligned.
template <class T>
FASTADAM_HD constexpr int work_width() {
    return kVectorBytes / static_cast<int>(sizeof(T));
}

// Iterations every thread of a block runs over a chunk of `length` elements.
FASTADAM_HD std::int64_t iterations_per_thread(std::int64_t length, int width, int threads) {
    const std::int64_t per_iteration = static_cast<std::int64_t>(threads) * width;
    return (length + per_iteration - 1) / per_iteration;
}

// The elements of the tensor thread `thread` updates at `iteration`: first + j * stride for
// j in [0, count). Indices are 64-bit and relative to the tensor's start.
// - vector path: `width` consecutive elements (one 16-byte access when count == width;
//   a shorter group only at the tensor's end), consecutive threads on consecutive vectors.
// - scalar path: `width` elements `threads` apart, so that each of the thread's loads is
//   coalesced with its neighbours'.
struct ThreadWork {
    std::int64_t first;
    std::int64_t stride;
    int count;
};

FASTADAM_HD ThreadWork thread_work(std::int64_t start, std::int64_t length, bool vector_path,
                                   int width, int thread, int threads, std::int64_t iteration) {
    const std::int64_t base = iteration * threads * width;
    ThreadWork w{};
    if (vector_path) {
        const std::int64_t offset = base + static_cast<std::int64_t>(thread) * width;
        const std::int64_t rest = length - offset;
        w.first = start + offset;
        w.stride = 1;
        w.count = rest <= 0 ? 0 : (rest < width ? static_cast<int>(rest) : width);
    } else {
        const std::int64_t offset = base + thread;
        const std::int64_t rest = length - offset;
        const std::int64_t n = rest <= 0 ? 0 : (rest + threads - 1) / threads;
        w.first = start + offset;
        w.stride = threads;
        w.count = n < width ? static_cast<int>(n) : width;
    }
    return w;
}

// One thread's share of one chunk, the control flow of the kernel itself: vector(first) for each
// full 16-byte group (vector path), scalars(work) for each ThreadWork of the scalar path and for
// the one short group a 16-byte aligned tensor may end with. That group runs after the loop, so
// that the two paths' registers are never live at once.
template <class T, class Vector, class Scalars>
FASTADAM_HD void run_thread(std::int64_t start, std::int64_t length, bool vector_path, int thread,
                            Vector&& vector, Scalars&& scalars) {
    constexpr int width = work_width<T>();
    const std::int64_t iterations = iterations_per_thread(length, width, kThreadsPerBlock);
    if (vector_path) {
        ThreadWork tail{0, 1, 0};
        for (std::int64_t it = 0; it < iterations; ++it) {
            const ThreadWork w =
                thread_work(start, length, true, width, thread, kThreadsPerBlock, it);
            if (w.count == width)
                vector(w.first);
            else if (w.count > 0)
                tail = w;
        }
        if (tail.count > 0) scalars(tail);
    } else {
        for (std::int64_t it = 0; it < iterations; ++it)
            scalars(thread_work(start, length, false, width, thread, kThreadsPerBlock, it));
    }
}

// Whether the call uses amsgrad: every tensor must agree (one kernel variant per launch).
template <class T>
bool plan_amsgrad(const AdamTensor<T>* tensors, std::size_t count) {
    bool any = false, all = true;
    for (std::size_t i = 0; i < count; ++i) {
        if (tensors[i].size == 0) continue;
        const bool a = tensors[i].max_exp_avg_sq != nullptr;
        any = any || a;
        all = all && a;
    }
    if (any && !all)
        throw std::invalid_argument("max_exp_avg_sq must be given for every tensor or for none");
    return any;
}

// Builds the chunk table of `tensors` and calls launch(const LaunchBatch<T>&) once per batch,
// in tensor order. Empty tensors get no chunk; every check runs before the first launch.
template <class T, class Launch>
void for_each_launch(const AdamTensor<T>* tensors, std::size_t count, Launch&& launch) {
    for (std::size_t i = 0; i < count; ++i) {
        if (tensors[i].size < 0 || tensors[i].size > kMaxTensorElems)
            throw std::length_error("tensor " + std::to_string(i) + " has " +
                                    std::to_string(tensors[i].size) +
                                    " elements; the CUDA kernel takes at most 2**47");
    }
    plan_amsgrad(tensors, count);
    LaunchBatch<T> batch;
    batch.num_tensors = 0;
    batch.num_chunks = 0;
    auto flush = [&] {
        if (batch.num_chunks > 0) launch(static_cast<const LaunchBatch<T>&>(batch));
        batch.num_tensors = 0;
        batch.num_chunks = 0;
    };
    for (std::size_t i = 0; i < count; ++i) {
        if (tensors[i].size == 0) continue;
        const DeviceTensor<T> desc = make_device_tensor(tensors[i]);
        const std::int64_t n = num_chunks(desc.size);
        std::int32_t slot = -1;
        for (std::int64_t c = 0; c < n; ++c) {
            if (batch.num_chunks == kMaxChunksPerLaunch) {
                flush();
                slot = -1;
            }
            if (slot < 0) {
                if (batch.num_tensors == kMaxTensorsPerLaunch) flush();
                slot = batch.num_tensors++;
                batch.tensors[slot] = desc;
            }
            batch.chunks[batch.num_chunks++] = ChunkEntry{slot, static_cast<std::int32_t>(c)};
        }
    }
    flush();
}

}  // namespace fastadam::cuda
