// Host tests of the CUDA kernel's plan (cpp/include/fastadam/cuda_plan.hpp), no CUDA needed:
//   g++ -std=c++17 -O2 -I cpp/include tests/cpp/test_cuda_plan.cpp && ./a.out
// Builds the chunk tables of awkward tensor lists, checks batches and launch geometry, then
// emulates every (block, thread) through run_thread, the very control flow and index mapping
// the kernel runs, applying fastadam::adam_update: every element must be updated exactly once,
// 16-byte accesses only where aligned, and the result must equal a plain loop bit for bit.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "fastadam/cuda_plan.hpp"

using namespace fastadam;
using namespace fastadam::cuda;

namespace {

int failures = 0;
int checks = 0;

#define CHECK(cond, ...)                                                  \
    do {                                                                  \
        ++checks;                                                         \
        if (!(cond)) {                                                    \
            if (++failures <= 20) {                                       \
                std::fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, \
                             __LINE__, #cond);                            \
                std::fprintf(stderr, __VA_ARGS__);                        \
                std::fprintf(stderr, "\n");                               \
            }                                                             \
        }                                                                 \
    } while (0)

// Real memory for one tensor's arrays; `misalign` shifts the chosen arrays by one element off
// a 64-byte boundary so the plan must take the scalar path.
template <class T>
struct Buffers {
    static constexpr int kArrays = 5;
    std::vector<T> storage[kArrays];
    T* ptr[kArrays];
    std::int64_t size;

    Buffers(std::int64_t n, unsigned misalign_mask, std::uint32_t seed) : size(n) {
        for (int a = 0; a < kArrays; ++a) {
            storage[a].assign(static_cast<std::size_t>(n) + 32, T(0));
            auto addr = reinterpret_cast<std::uintptr_t>(storage[a].data());
            addr = (addr + 63) / 64 * 64;
            ptr[a] = reinterpret_cast<T*>(addr) + ((misalign_mask >> a) & 1u);
        }
        std::uint32_t x = seed * 2654435761u + 1u;
        auto rnd = [&] {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            return static_cast<T>(static_cast<double>(x) / 4294967296.0 - 0.5);
        };
        for (std::int64_t i = 0; i < n; ++i) {
            ptr[0][i] = rnd();
            ptr[1][i] = rnd();
            ptr[2][i] = rnd() * T(0.1);
            const T v = rnd() * T(0.01);
            ptr[3][i] = v * v;
            ptr[4][i] = ptr[3][i] * T(1.5);
        }
    }

    AdamTensor<T> tensor(bool amsgrad, const AdamHyper& h, std::int64_t step) const {
        AdamTensor<T> t;
        t.param = ptr[0];
        t.grad = ptr[1];
        t.exp_avg = ptr[2];
        t.exp_avg_sq = ptr[3];
        t.max_exp_avg_sq = amsgrad ? ptr[4] : nullptr;
        t.size = size;
        t.scalars = make_scalars(h, step);
        return t;
    }
};

template <class T>
std::vector<LaunchBatch<T>> collect(const std::vector<AdamTensor<T>>& tensors) {
    std::vector<LaunchBatch<T>> batches;
    for_each_launch(tensors.data(), tensors.size(),
                    [&](const LaunchBatch<T>& b) { batches.push_back(b); });
    return batches;
}

bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

// Checks the chunk table of `tensors`: limits, geometry, every chunk of every non-empty tensor
// exactly once and in order, lengths summing to the size. Returns the batches.
template <class T>
std::vector<LaunchBatch<T>> check_table(const std::vector<AdamTensor<T>>& tensors,
                                        const char* label) {
    const auto batches = collect(tensors);
    std::map<const T*, std::size_t> index;  // param pointer -> tensor (distinct by construction)
    for (std::size_t i = 0; i < tensors.size(); ++i) index[tensors[i].param] = i;
    std::vector<std::int64_t> next_chunk(tensors.size(), 0), covered(tensors.size(), 0);
    std::size_t last_tensor = 0;
    for (const auto& b : batches) {
        const LaunchGeometry g = launch_geometry(b);
        CHECK(b.num_chunks >= 1 && b.num_chunks <= kMaxChunksPerLaunch, "%s", label);
        CHECK(b.num_tensors >= 1 && b.num_tensors <= kMaxTensorsPerLaunch, "%s", label);
        CHECK(g.blocks == b.num_chunks && g.threads_per_block == kThreadsPerBlock, "%s", label);
        std::vector<int> used(b.num_tensors, 0);
        for (int k = 0; k < b.num_chunks; ++k) {
            const ChunkEntry e = b.chunks[k];
            CHECK(e.tensor >= 0 && e.tensor < b.num_tensors, "%s: slot %d", label, e.tensor);
            if (e.tensor < 0 || e.tensor >= b.num_tensors) continue;
            used[e.tensor] = 1;
            const DeviceTensor<T>& d = b.tensors[e.tensor];
            const std::size_t i = index.at(d.param);
            CHECK(i >= last_tensor, "%s: tensors out of order", label);
            last_tensor = i;
            CHECK(d.size == tensors[i].size && d.size > 0, "%s", label);
            CHECK(d.vector_path == use_vector_path(tensors[i]), "%s", label);
            CHECK(e.chunk == next_chunk[i], "%s: tensor %zu chunk %d, expected %lld", label, i,
                  e.chunk, static_cast<long long>(next_chunk[i]));
            ++next_chunk[i];
            const std::int64_t len = chunk_length(e, d.size);
            CHECK(len >= 1 && len <= kChunkElems, "%s", label);
            CHECK(chunk_start(e) == covered[i], "%s", label);
            covered[i] += len;
        }
        for (int s = 0; s < b.num_tensors; ++s) CHECK(used[s], "%s: unused slot %d", label, s);
    }
    for (std::size_t i = 0; i < tensors.size(); ++i) {
        CHECK(covered[i] == tensors[i].size, "%s: tensor %zu covered %lld of %lld", label, i,
              static_cast<long long>(covered[i]), static_cast<long long>(tensors[i].size));
        CHECK(next_chunk[i] == num_chunks(tensors[i].size), "%s", label);
    }
    return batches;
}

// Emulates one block (one chunk) over every thread. `counts` (chunk-relative) counts the
// visits of each element; with `update`, the elements are updated as the kernel does.
template <class T, bool Amsgrad>
void emulate_block(const DeviceTensor<T>& d, ChunkEntry e, std::vector<std::uint8_t>& counts,
                   bool update, const char* label) {
    const std::int64_t start = chunk_start(e);
    const std::int64_t length = chunk_length(e, d.size);
    constexpr int width = work_width<T>();
    counts.assign(static_cast<std::size_t>(length), 0);
    T unused = T(0);
    auto one = [&](std::int64_t i) {
        CHECK(i >= start && i < start + length, "%s: index %lld outside chunk", label,
              static_cast<long long>(i));
        if (i < start || i >= start + length) return;
        ++counts[static_cast<std::size_t>(i - start)];
        if (update)
            adam_update<Amsgrad>(d.param[i], d.grad[i], d.exp_avg[i], d.exp_avg_sq[i],
                                 Amsgrad ? d.max_exp_avg_sq[i] : unused, d.coeffs);
    };
    for (int thread = 0; thread < kThreadsPerBlock; ++thread) {
        run_thread<T>(
            start, length, d.vector_path, thread,
            [&](std::int64_t first) {
                CHECK(d.vector_path, "%s: vector access on the scalar path", label);
                CHECK(aligned16(d.param + first) && aligned16(d.grad + first) &&
                          aligned16(d.exp_avg + first) && aligned16(d.exp_avg_sq + first) &&
                          (!Amsgrad || aligned16(d.max_exp_avg_sq + first)),
                      "%s: unaligned 16-byte access at %lld", label,
                      static_cast<long long>(first));
                for (int k = 0; k < width; ++k) one(first + k);
            },
            [&](const ThreadWork& w) {
                CHECK(w.count >= 0 && w.count <= width, "%s", label);
                if (d.vector_path)  // only the tensor's last, short group
                    CHECK(w.count < width && w.stride == 1 && w.first + w.count == d.size,
                          "%s: scalar group inside a vector-path tensor", label);
                for (int k = 0; k < w.count; ++k) one(w.first + k * w.stride);
            });
        // One iteration past the last does nothing: no element is left for later.
        const std::int64_t iters = iterations_per_thread(length, width, kThreadsPerBlock);
        const ThreadWork past =
            thread_work(start, length, d.vector_path, width, thread, kThreadsPerBlock, iters);
        CHECK(past.count == 0, "%s: work beyond the last iteration", label);
    }
    for (std::int64_t k = 0; k < length; ++k)
        CHECK(counts[static_cast<std::size_t>(k)] == 1, "%s: element %lld updated %d times",
              label, static_cast<long long>(start + k), counts[static_cast<std::size_t>(k)]);
}

// Full emulation over real memory, compared bit for bit with a plain loop.
template <class T>
void run_case(const std::vector<std::int64_t>& sizes, const std::vector<unsigned>& misalign,
              bool amsgrad, const AdamHyper& hyper, const std::string& name) {
    const std::string label = name + (sizeof(T) == 4 ? " f32" : " f64") +
                              (amsgrad ? " amsgrad" : "");
    std::vector<Buffers<T>> emulated, expected;
    emulated.reserve(sizes.size());
    expected.reserve(sizes.size());
    std::vector<AdamTensor<T>> tensors;
    for (std::size_t i = 0; i < sizes.size(); ++i) {
        const unsigned mis = misalign.empty() ? 0u : misalign[i % misalign.size()];
        emulated.emplace_back(sizes[i], mis, static_cast<std::uint32_t>(i + 1));
        expected.emplace_back(sizes[i], 0u, static_cast<std::uint32_t>(i + 1));
        const std::int64_t step = 1 + static_cast<std::int64_t>(i % 5);  // steps differ
        tensors.push_back(emulated.back().tensor(amsgrad, hyper, step));
        CHECK(use_vector_path(tensors.back()) == (mis == 0u) || (!amsgrad && mis == 16u),
              "%s: vector path choice for tensor %zu", label.c_str(), i);
    }
    const auto batches = check_table(tensors, label.c_str());
    std::vector<std::uint8_t> counts;
    for (const auto& b : batches)
        for (int k = 0; k < b.num_chunks; ++k) {
            const auto& d = b.tensors[b.chunks[k].tensor];
            if (amsgrad)
                emulate_block<T, true>(d, b.chunks[k], counts, true, label.c_str());
            else
                emulate_block<T, false>(d, b.chunks[k], counts, true, label.c_str());
        }
    for (std::size_t i = 0; i < sizes.size(); ++i) {
        auto& x = expected[i];
        const auto c = broadcast<T, T>(make_scalars(hyper, 1 + static_cast<std::int64_t>(i % 5)));
        T unused = T(0);
        for (std::int64_t j = 0; j < x.size; ++j) {
            if (amsgrad)
                adam_update<true>(x.ptr[0][j], x.ptr[1][j], x.ptr[2][j], x.ptr[3][j], x.ptr[4][j],
                                  c);
            else
                adam_update<false>(x.ptr[0][j], x.ptr[1][j], x.ptr[2][j], x.ptr[3][j], unused, c);
        }
        const int arrays = amsgrad ? 5 : 4;
        for (int a = 0; a < arrays; ++a) {
            const bool same =
                x.size == 0 || std::memcmp(x.ptr[a], emulated[i].ptr[a],
                                           static_cast<std::size_t>(x.size) * sizeof(T)) == 0;
            CHECK(same, "%s: tensor %zu (size %lld) array %d differs from the plain loop",
                  label.c_str(), i, static_cast<long long>(x.size), a);
        }
        // Sentinels: nothing written past the end of a misaligned view.
        for (int a = 0; a < 5; ++a)
            CHECK(emulated[i].ptr[a][x.size] == T(0), "%s: write past the end", label.c_str());
    }
}

// Table and mapping checks without memory: fake, never dereferenced pointers. Emulates the
// first, last and a middle chunk of each tensor.
template <class T>
void table_only(const std::vector<std::int64_t>& sizes, const char* label) {
    std::vector<AdamTensor<T>> tensors;
    std::uintptr_t next = std::uintptr_t{1} << 44;
    for (auto n : sizes) {
        AdamTensor<T> t;
        auto take = [&] {
            T* p = reinterpret_cast<T*>(next);
            next += (static_cast<std::uintptr_t>(n) * sizeof(T) + 4096) / 4096 * 4096;
            return p;
        };
        t.param = take();
        t.grad = take();
        t.exp_avg = take();
        t.exp_avg_sq = take();
        t.size = n;
        t.scalars = make_scalars(AdamHyper{}, 1);
        tensors.push_back(t);
    }
    const auto batches = check_table(tensors, label);
    std::vector<std::uint8_t> counts;
    for (const auto& b : batches)
        for (int k = 0; k < b.num_chunks; ++k) {
            const ChunkEntry e = b.chunks[k];
            const auto& d = b.tensors[e.tensor];
            const std::int64_t n = num_chunks(d.size);
            if (e.chunk == 0 || e.chunk == n - 1 || e.chunk == n / 2)
                emulate_block<T, false>(d, e, counts, false, label);
        }
}

void test_mapping_64bit() {
    // A chunk far beyond 2**31 elements: indices must not wrap.
    const ChunkEntry e{0, (1 << 30) + 7};
    const std::int64_t size = chunk_start(e) + 5;
    CHECK(chunk_start(e) == (std::int64_t{1} << 30) * kChunkElems + 7 * kChunkElems, "start");
    CHECK(chunk_length(e, size) == 5, "length");
    const ThreadWork w = thread_work(chunk_start(e), 5, true, 4, 1, kThreadsPerBlock, 0);
    CHECK(w.first == chunk_start(e) + 4 && w.count == 1, "vector tail at 2**46");
    const ThreadWork s = thread_work(chunk_start(e), kChunkElems, false, 2, 3, kThreadsPerBlock,
                                     iterations_per_thread(kChunkElems, 2, kThreadsPerBlock) - 1);
    CHECK(s.first + (s.count - 1) * s.stride == chunk_start(e) + kChunkElems - kThreadsPerBlock + 3,
          "scalar path last element");
}

void test_errors() {
    std::vector<float> mem(64);
    AdamTensor<float> a;
    a.param = mem.data();
    a.grad = mem.data() + 8;
    a.exp_avg = mem.data() + 16;
    a.exp_avg_sq = mem.data() + 24;
    a.size = 4;
    AdamTensor<float> b = a;
    b.max_exp_avg_sq = mem.data() + 32;
    std::vector<AdamTensor<float>> mixed{a, b};
    int launches = 0;
    bool threw = false;
    try {
        for_each_launch(mixed.data(), mixed.size(), [&](const LaunchBatch<float>&) { ++launches; });
    } catch (const std::invalid_argument&) {
        threw = true;
    }
    CHECK(threw && launches == 0, "amsgrad for some tensors only must throw before launching");

    AdamTensor<float> huge = a;
    huge.size = kMaxTensorElems + 1;
    std::vector<AdamTensor<float>> list{a, huge};
    threw = false;
    try {
        for_each_launch(list.data(), list.size(), [&](const LaunchBatch<float>&) { ++launches; });
    } catch (const std::length_error&) {
        threw = true;
    }
    CHECK(threw && launches == 0, "a tensor over 2**47 elements must throw before launching");

    std::vector<AdamTensor<float>> empty{AdamTensor<float>{}, AdamTensor<float>{}};
    for_each_launch(empty.data(), empty.size(), [&](const LaunchBatch<float>&) { ++launches; });
    CHECK(launches == 0, "empty tensors launch nothing");
}

template <class T>
void run_all() {
    const std::vector<std::int64_t> awkward{0,     1,     3,     4,     5,    1023,
                                            65535, 65536, 65537, (1 << 20) + 7};
    AdamHyper plain;
    AdamHyper wild;
    wild.lr = 3e-3;
    wild.weight_decay = 0.1;
    wild.maximize = true;
    AdamHyper adamw = wild;
    adamw.decoupled = true;
    adamw.bias_correction = false;

    for (auto n : awkward) {
        const std::string s = "size " + std::to_string(n);
        run_case<T>({n}, {0u}, false, plain, s + " aligned");
        run_case<T>({n}, {0u}, true, wild, s + " aligned");
        run_case<T>({n}, {1u}, false, adamw, s + " param misaligned");
        run_case<T>({n}, {2u}, true, plain, s + " grad misaligned");
        run_case<T>({n}, {16u}, true, adamw, s + " max_exp_avg_sq misaligned");
        run_case<T>({n}, {31u}, false, wild, s + " all misaligned");
    }
    // All sizes in one call, alternating paths.
    run_case<T>(awkward, {0u, 1u, 0u, 4u, 8u}, false, wild, "awkward list");
    run_case<T>(awkward, {0u, 2u}, true, adamw, "awkward list");
    // Many tiny tensors: several launches on the tensor limit, empty ones in between.
    std::vector<std::int64_t> tiny;
    for (int i = 0; i < 1000; ++i) tiny.push_back(i % 7);
    run_case<T>(tiny, {0u, 0u, 1u}, false, plain, "1000 tiny tensors");
    run_case<T>(tiny, {0u}, true, wild, "1000 tiny tensors");
    // Chunk limit inside one tensor, and a tensor of exactly one full batch.
    const std::int64_t batch_elems = kMaxChunksPerLaunch * kChunkElems;
    table_only<T>({batch_elems * 2 + 3, 7, batch_elems, 1}, "chunk limit");
    // 64-bit sizes.
    table_only<T>({(std::int64_t{1} << 31) + 5, 3, (std::int64_t{1} << 33) + 1}, "over 2**31");
}

}  // namespace

int main() {
    test_mapping_64bit();
    test_errors();
    run_all<float>();
    run_all<double>();
    if (failures) {
        std::fprintf(stderr, "%d of %d checks failed\n", failures, checks);
        return 1;
    }
    std::printf("test_cuda_plan: all %d checks passed\n", checks);
    return 0;
}
