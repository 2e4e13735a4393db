// Portable path: one element at a time (built with -fno-tree-vectorize so it stays scalar and
// serves as the baseline the SIMD paths are checked against).
#include "adam_loop.hpp"
#include "isa_kernels.hpp"
#include "simd.hpp"

namespace {
struct ScalarTag {};
template <class T>
using L = fastadam::simd::Lane<T, ScalarTag>;
}  // namespace

namespace fastadam::isa_scalar {
void adam_range(const AdamTensor<float>& t, std::int64_t begin, std::int64_t end) {
    loop::adam_range<L<float>, L<float>>(t, begin, end);
}
void adam_range(const AdamTensor<double>& t, std::int64_t begin, std::int64_t end) {
    loop::adam_range<L<double>, L<double>>(t, begin, end);
}
}  // namespace fastadam::isa_scalar
