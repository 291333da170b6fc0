// The NCHW <-> NCHWc reorders (see nchwc_reorder.h), written once and compiled by each ISA
// file (nchwc_reorder__scalar/__avx2/__avx512.cpp) with its own flags. Internal linkage only.
// Pure memory passes: eight pixels of the eight planes at a time through one 8x8 register
// transpose (simd::transpose8x8), so every load and store is a whole 32-byte vector; the
// pixels left over (plane sizes not a multiple of 8) one by one.
#pragma once
#include <cstdint>

#include "nchwc_reorder.h"
#include "ferry/simd.h"

namespace ferry {
namespace conv {
namespace {

void nchwc_to_blocked_impl(const float* x, float* y, int64_t plane, int64_t p0, int64_t p1) {
  int64_t p = p0;
  for (; p + 8 <= p1; p += 8) simd::transpose8x8(x + p, plane, y + p * 8, 8);
  for (; p < p1; ++p)
    for (int64_t l = 0; l < 8; ++l) y[p * 8 + l] = x[l * plane + p];
}

void nchwc_from_blocked_impl(const float* x, float* y, int64_t plane, int64_t p0, int64_t p1) {
  int64_t p = p0;
  for (; p + 8 <= p1; p += 8) simd::transpose8x8(x + p * 8, 8, y + p, plane);
  for (; p < p1; ++p)
    for (int64_t l = 0; l < 8; ++l) y[l * plane + p] = x[p * 8 + l];
}

}  // namespace
}  // namespace conv
}  // namespace ferry
