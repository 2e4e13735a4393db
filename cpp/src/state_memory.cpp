#include "fastadam/state_memory.hpp"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace fastadam {

namespace {

// Successive buffers start at 64 + k * 1024 bytes into their block (k = 0, 1, 2, 3 in turn), so
// that arrays allocated one after the other (p, g, m, v of a benchmark, the buffers of several
// optimizers) do not share their address modulo 4 KiB, as blocks aligned to 2 MiB all would:
// streams that do collide in the L1 sets and the 4 KiB alias checks of every load.
constexpr std::size_t kStagger = 1024;
constexpr std::size_t kSlots = 4;
std::atomic<std::size_t> next_slot{0};

}  // namespace

void* allocate_state(std::size_t bytes) {
    const std::size_t slot = next_slot.fetch_add(1, std::memory_order_relaxed) % kSlots;
    // The first 64 bytes hold the block's address for free_state.
    const std::size_t offset = 64 + slot * kStagger;
    const bool huge = bytes >= kHugePageBytes;
    const std::size_t alignment = huge ? kHugePageBytes : 4096;  // where the offsets count from
    if (bytes > std::numeric_limits<std::size_t>::max() - offset - alignment)
        throw std::bad_alloc();  // the rounding below would wrap around
    const std::size_t rounded = (offset + bytes + alignment - 1) / alignment * alignment;
    void* block = std::aligned_alloc(alignment, rounded);
    if (block == nullptr) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    // Advice only: where THP is off the kernel ignores it, and the memory works the same.
    if (huge) madvise(block, rounded, MADV_HUGEPAGE);
#endif
    std::memset(block, 0, rounded);
    char* memory = static_cast<char*>(block) + offset;
    std::memcpy(memory - sizeof(void*), &block, sizeof(void*));
    return memory;
}

void free_state(void* memory) noexcept {
    if (memory == nullptr) return;
    void* block;
    std::memcpy(&block, static_cast<char*>(memory) - sizeof(void*), sizeof(void*));
    std::free(block);
}

}  // namespace fastadam
