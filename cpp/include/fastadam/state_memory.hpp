// Memory for optimizer state (exp_avg, exp_avg_sq): zero-filled and 64-byte aligned; buffers of
// 2 MiB and more lie in a 2 MiB-aligned block advised for transparent huge pages, which cuts TLB
// misses in a bandwidth-bound sweep (smaller ones in a 4 KiB-aligned block). Successive buffers
// start at different offsets modulo 4 KiB (64, 1088, 2112, 3136 bytes into their block, in
// turn), so that separately allocated arrays streamed together do not collide in cache sets.
#pragma once

#include <cstddef>

namespace fastadam {

constexpr std::size_t kHugePageBytes = std::size_t{2} << 20;

// Returns zeroed memory of at least `bytes` bytes (never null; throws std::bad_alloc), to be
// released with free_state (not std::free).
void* allocate_state(std::size_t bytes);
void free_state(void* memory) noexcept;

}  // namespace fastadam
