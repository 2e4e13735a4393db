// Portability macros shared by the host (C++) and device (CUDA) builds.
#pragma once

#include <cmath>

// FASTADAM_HD marks a function usable from both host and CUDA device code. The element-wise
// math is written once under this macro, so the CPU and GPU paths cannot drift apart.
#if defined(__CUDACC__)
#define FASTADAM_HD __host__ __device__ __forceinline__
#else
#define FASTADAM_HD inline __attribute__((always_inline))
#endif

// Primitive operations on plain float and double: the CUDA kernel's value types, also used by
// the host emulation tests (the CPU paths use wrapper types that bring their own). Argument-
// dependent lookup finds nothing for fundamental types, so these must be declared before the
// update functions that call them. max_of is (a > b ? a : b), the semantics of x86 maxps.
namespace fastadam {
FASTADAM_HD float sqrt_of(float x) { return std::sqrt(x); }
FASTADAM_HD double sqrt_of(double x) { return std::sqrt(x); }
FASTADAM_HD float max_of(float a, float b) { return a > b ? a : b; }
FASTADAM_HD double max_of(double a, double b) { return a > b ? a : b; }
}  // namespace fastadam
