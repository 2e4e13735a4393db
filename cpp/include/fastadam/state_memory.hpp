// Memory for optimizer state (exp_avg, exp_avg_sq): zero-filled, 64-byte aligned, and for large
// buffers 2 MiB aligned and advised for transparent huge pages, which cuts TLB misses in a
// bandwidth-bound sweep.
#pragma once

#include <cstddef>

namespace fastadam {

constexpr std::size_t kHugePageBytes = std::size_t{2} << 20;

// Returns zeroed memory of at least `bytes` bytes (never null; throws std::bad_alloc).
void* allocate_state(std::size_t bytes);
void free_state(void* memory) noexcept;

}  // namespace fastadam
