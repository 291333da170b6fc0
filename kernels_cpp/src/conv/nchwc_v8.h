// An 8-float vector for the NCHWc kernels (channels blocked by 8, so the block is 8 on every
// ISA): one __m256 where the file is compiled with AVX2 (the AVX-512 files too: -mavx512f
// implies it, and a zmm would hold two pixels, not one block), else eight floats the compiler
// may vectorize with the baseline SSE. Internal linkage: each ISA file gets its own copy
// (see simd.h).
#pragma once
#include <cstdint>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

namespace ferry {
namespace nchwc {
namespace {

#if defined(__AVX2__)
struct V8 { __m256 v; };
inline V8 ld8(const float* p) { return {_mm256_loadu_ps(p)}; }
inline void st8(float* p, V8 a) { _mm256_storeu_ps(p, a.v); }
inline V8 set8(float s) { return {_mm256_set1_ps(s)}; }
inline V8 fma8(V8 a, V8 b, V8 c) { return {_mm256_fmadd_ps(a.v, b.v, c.v)}; }
inline V8 add8(V8 a, V8 b) { return {_mm256_add_ps(a.v, b.v)}; }
inline V8 mul8(V8 a, V8 b) { return {_mm256_mul_ps(a.v, b.v)}; }
inline V8 div8(V8 a, V8 b) { return {_mm256_div_ps(a.v, b.v)}; }
// MAXPS returns its second operand when either is NaN: the new value last keeps NaN as the
// NCHW pools' vmax(acc, v) does.
inline V8 max8(V8 acc, V8 v) { return {_mm256_max_ps(acc.v, v.v)}; }
// ReLU / Clip that keeps NaN (x second, as the conv kernels' clamps).
inline V8 clamp8(V8 x, V8 lo, V8 hi) { return {_mm256_min_ps(hi.v, _mm256_max_ps(lo.v, x.v))}; }
#else
struct V8 { float v[8]; };
inline V8 ld8(const float* p) {
  V8 r;
  for (int l = 0; l < 8; ++l) r.v[l] = p[l];
  return r;
}
inline void st8(float* p, V8 a) {
  for (int l = 0; l < 8; ++l) p[l] = a.v[l];
}
inline V8 set8(float s) {
  V8 r;
  for (int l = 0; l < 8; ++l) r.v[l] = s;
  return r;
}
inline V8 fma8(V8 a, V8 b, V8 c) {
  V8 r;
  for (int l = 0; l < 8; ++l) r.v[l] = a.v[l] * b.v[l] + c.v[l];
  return r;
}
inline V8 add8(V8 a, V8 b) {
  V8 r;
  for (int l = 0; l < 8; ++l) r.v[l] = a.v[l] + b.v[l];
  return r;
}
inline V8 mul8(V8 a, V8 b) {
  V8 r;
  for (int l = 0; l < 8; ++l) r.v[l] = a.v[l] * b.v[l];
  return r;
}
inline V8 div8(V8 a, V8 b) {
  V8 r;
  for (int l = 0; l < 8; ++l) r.v[l] = a.v[l] / b.v[l];
  return r;
}
inline V8 max8(V8 acc, V8 v) {
  V8 r;
  for (int l = 0; l < 8; ++l) r.v[l] = acc.v[l] > v.v[l] ? acc.v[l] : v.v[l];
  return r;
}
inline V8 clamp8(V8 x, V8 lo, V8 hi) {
  V8 r;
  for (int l = 0; l < 8; ++l) {
    const float t = lo.v[l] > x.v[l] ? lo.v[l] : x.v[l];
    r.v[l] = hi.v[l] < t ? hi.v[l] : t;
  }
  return r;
}
#endif

// The in-bounds taps [t0, t1) of one kernel axis (k taps, dilation d) for an output whose
// first tap reads position `base` (o * stride - pad) of an input axis of n: the conv,
// depthwise and pool kernels skip the padding this way instead of materializing it.
inline void tap_range(int64_t base, int64_t d, int64_t k, int64_t n, int64_t& t0,
                      int64_t& t1) {
  t0 = base >= 0 ? 0 : (-base + d - 1) / d;
  t1 = base >= n ? 0 : (n - 1 - base) / d + 1;
  if (t1 > k) t1 = k;
  if (t0 > t1) t0 = t1;
}

}  // namespace
}  // namespace nchwc
}  // namespace ferry
