// Portable path: one element at a time (built with -fno-tree-vectorize so it stays scalar and
// serves as the baseline the SIMD paths are checked against).
#include "update_loop.hpp"
#include "isa_kernels.hpp"
#include "simd.hpp"

namespace {
struct ScalarTag {};
template <class T>
using L = fastadam::simd::Lane<T, ScalarTag>;
}  // namespace

FASTADAM_DEFINE_RANGE_KERNELS(isa_scalar, L<float>, L<double>, L<float>, L<double>)
