// AVX-512 path for CPUs with AVX512_BF16 (Cooper Lake, Sapphire Rapids, Zen 4 and later): the
// code of kernel_avx512.cpp, built with -mavx512bf16 under its own namespace, so that bfloat16
// parameters are stored with one conversion instruction. Same bits as every other path.
#define FASTADAM_AVX512_NAMESPACE isa_avx512_bf16
#include "kernel_avx512.cpp"
