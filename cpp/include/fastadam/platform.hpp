// Portability macros shared by the host (C++) and device (CUDA) builds.
#pragma once

// FASTADAM_HD marks a function usable from both host and CUDA device code. The element-wise
// math is written once under this macro, so the CPU and GPU paths cannot drift apart.
#if defined(__CUDACC__)
#define FASTADAM_HD __host__ __device__ __forceinline__
#else
#define FASTADAM_HD inline __attribute__((always_inline))
#endif
