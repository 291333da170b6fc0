// Test-only: a portable emulation of the AVX-512F intrinsics that kernels_cpp/include/ferry/
// simd.h uses, so that the AVX-512 instantiations of the elementwise, pool, softmax and
// normalization loops run (and are compared with the scalar ones) on CPUs without AVX-512.
// Used by tests/kernels/test_simd_avx512_emulated.py; never part of the module. x86 semantics
// are kept where the kernels rely on them: MAXPS/MINPS return the second operand when one is
// NaN, CVTTPS2DQ gives INT_MIN for NaN and out-of-range values, compares are ordered/quiet.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

struct __m512 { float v[16]; };
struct __m512i { int32_t v[16]; };
typedef uint16_t __mmask16;

#define _CMP_EQ_OQ 0x00
#define _CMP_LT_OQ 0x11
#define _CMP_LE_OQ 0x12
#define _CMP_UNORD_Q 0x03
#define _CMP_GE_OQ 0x1d
#define _CMP_GT_OQ 0x1e
#define _MM_FROUND_TO_NEAREST_INT 0x00
#define _MM_FROUND_TO_NEG_INF 0x01
#define _MM_FROUND_TO_POS_INF 0x02
#define _MM_FROUND_NO_EXC 0x08

#define EMU_F(expr) __m512 r; for (int i = 0; i < 16; ++i) r.v[i] = (expr); return r
#define EMU_I(expr) __m512i r; for (int i = 0; i < 16; ++i) r.v[i] = (expr); return r

static inline __m512 _mm512_set1_ps(float x) { EMU_F(x); }
static inline __m512i _mm512_set1_epi32(int x) { EMU_I(x); }
static inline __m512 _mm512_loadu_ps(const void* p) { EMU_F(static_cast<const float*>(p)[i]); }
static inline void _mm512_storeu_ps(void* p, __m512 a) { std::memcpy(p, a.v, 64); }
static inline __m512i _mm512_setr_epi32(int a0, int a1, int a2, int a3, int a4, int a5, int a6,
                                        int a7, int a8, int a9, int a10, int a11, int a12,
                                        int a13, int a14, int a15) {
  const int v[16] = {a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15};
  EMU_I(v[i]);
}
static inline __m512 _mm512_permutex2var_ps(__m512 a, __m512i idx, __m512 b) {
  EMU_F((idx.v[i] & 16) ? b.v[idx.v[i] & 15] : a.v[idx.v[i] & 15]);
}
static inline __m512 _mm512_add_ps(__m512 a, __m512 b) { EMU_F(a.v[i] + b.v[i]); }
static inline __m512 _mm512_sub_ps(__m512 a, __m512 b) { EMU_F(a.v[i] - b.v[i]); }
static inline __m512 _mm512_mul_ps(__m512 a, __m512 b) { EMU_F(a.v[i] * b.v[i]); }
static inline __m512 _mm512_div_ps(__m512 a, __m512 b) { EMU_F(a.v[i] / b.v[i]); }
static inline __m512 _mm512_fmadd_ps(__m512 a, __m512 b, __m512 c) {
  EMU_F(std::fma(a.v[i], b.v[i], c.v[i]));
}
static inline __m512 _mm512_max_ps(__m512 a, __m512 b) {
  EMU_F(a.v[i] > b.v[i] ? a.v[i] : b.v[i]);
}
static inline __m512 _mm512_min_ps(__m512 a, __m512 b) {
  EMU_F(a.v[i] < b.v[i] ? a.v[i] : b.v[i]);
}
static inline __m512 _mm512_abs_ps(__m512 a) { EMU_F(std::fabs(a.v[i])); }
static inline __m512 _mm512_sqrt_ps(__m512 a) { EMU_F(std::sqrt(a.v[i])); }
static inline __m512 _mm512_roundscale_ps(__m512 a, int mode) {
  EMU_F((mode & 3) == 1 ? std::floor(a.v[i]) : (mode & 3) == 2 ? std::ceil(a.v[i])
                                                                : std::nearbyint(a.v[i]));
}
static inline __mmask16 _mm512_cmp_ps_mask(__m512 a, __m512 b, int pred) {
  __mmask16 m = 0;
  for (int i = 0; i < 16; ++i) {
    const float x = a.v[i], y = b.v[i];
    bool r = false;
    switch (pred) {
      case _CMP_EQ_OQ: r = x == y; break;
      case _CMP_LT_OQ: r = x < y; break;
      case _CMP_LE_OQ: r = x <= y; break;
      case _CMP_GE_OQ: r = x >= y; break;
      case _CMP_GT_OQ: r = x > y; break;
      case _CMP_UNORD_Q: r = std::isnan(x) || std::isnan(y); break;
    }
    m = static_cast<__mmask16>(m | (r << i));
  }
  return m;
}
static inline __m512 _mm512_mask_blend_ps(__mmask16 k, __m512 a, __m512 b) {
  EMU_F((k >> i) & 1 ? b.v[i] : a.v[i]);
}
static inline int32_t emu_cvtt(float x) {
  return (x >= -2147483648.0f && x < 2147483648.0f) ? static_cast<int32_t>(x) : INT32_MIN;
}
static inline __m512i _mm512_cvttps_epi32(__m512 a) { EMU_I(emu_cvtt(a.v[i])); }
static inline __m512 _mm512_cvtepi32_ps(__m512i a) { EMU_F(static_cast<float>(a.v[i])); }
static inline __m512i _mm512_castps_si512(__m512 a) {
  __m512i r;
  std::memcpy(r.v, a.v, 64);
  return r;
}
static inline __m512 _mm512_castsi512_ps(__m512i a) {
  __m512 r;
  std::memcpy(r.v, a.v, 64);
  return r;
}
static inline __m512i _mm512_slli_epi32(__m512i a, unsigned n) {
  EMU_I(n > 31 ? 0 : static_cast<int32_t>(static_cast<uint32_t>(a.v[i]) << n));
}
static inline __m512i _mm512_srli_epi32(__m512i a, unsigned n) {
  EMU_I(n > 31 ? 0 : static_cast<int32_t>(static_cast<uint32_t>(a.v[i]) >> n));
}
static inline __m512i _mm512_srai_epi32(__m512i a, unsigned n) {
  EMU_I(a.v[i] >> (n > 31 ? 31 : n));
}
static inline __m512i _mm512_and_si512(__m512i a, __m512i b) { EMU_I(a.v[i] & b.v[i]); }
static inline __m512i _mm512_or_si512(__m512i a, __m512i b) { EMU_I(a.v[i] | b.v[i]); }
static inline __m512i _mm512_xor_si512(__m512i a, __m512i b) { EMU_I(a.v[i] ^ b.v[i]); }
static inline __m512i _mm512_andnot_si512(__m512i a, __m512i b) { EMU_I(~a.v[i] & b.v[i]); }
static inline __m512i _mm512_add_epi32(__m512i a, __m512i b) {
  EMU_I(static_cast<int32_t>(static_cast<uint32_t>(a.v[i]) + static_cast<uint32_t>(b.v[i])));
}
static inline __m512i _mm512_sub_epi32(__m512i a, __m512i b) {
  EMU_I(static_cast<int32_t>(static_cast<uint32_t>(a.v[i]) - static_cast<uint32_t>(b.v[i])));
}
// The hardware reduces in a tree: so does this.
static inline float _mm512_reduce_add_ps(__m512 a) {
  float t[16];
  std::memcpy(t, a.v, 64);
  for (int w = 8; w >= 1; w /= 2)
    for (int i = 0; i < w; ++i) t[i] = t[i] + t[i + w];
  return t[0];
}
static inline float _mm512_reduce_max_ps(__m512 a) {
  float t[16];
  std::memcpy(t, a.v, 64);
  for (int w = 8; w >= 1; w /= 2)
    for (int i = 0; i < w; ++i) t[i] = t[i] > t[i + w] ? t[i] : t[i + w];
  return t[0];
}
#undef EMU_F
#undef EMU_I
