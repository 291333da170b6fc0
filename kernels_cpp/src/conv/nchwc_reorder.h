// NCHW <-> NCHWc reorders (channels blocked by 8), one implementation per ISA (chosen at make
// time in nchwc_reorder.cpp; see nchwc_reorder_impl.h).
#pragma once
#include <cstdint>

namespace ferry {
namespace conv {

// Pixels [p0, p1) of one block of 8 channel planes. To NCHWc: plane l (at x + l * plane)
// pixel p -> y[p * 8 + l]. From NCHWc: x[p * 8 + l] -> plane l (at y + l * plane) pixel p.
using NchwcReorderFn = void (*)(const float* x, float* y, int64_t plane, int64_t p0, int64_t p1);

void nchwc_to_blocked_scalar(const float*, float*, int64_t, int64_t, int64_t);
void nchwc_to_blocked_avx2(const float*, float*, int64_t, int64_t, int64_t);
void nchwc_to_blocked_avx512(const float*, float*, int64_t, int64_t, int64_t);
void nchwc_from_blocked_scalar(const float*, float*, int64_t, int64_t, int64_t);
void nchwc_from_blocked_avx2(const float*, float*, int64_t, int64_t, int64_t);
void nchwc_from_blocked_avx512(const float*, float*, int64_t, int64_t, int64_t);

}  // namespace conv
}  // namespace ferry
