// A small float SIMD layer so that one template serves every ISA: `float` (the portable scalar
// path), `F8` (AVX2 __m256, when the file is compiled with -mavx2 -mfma) and `F16` (AVX-512
// __m512, with -mavx512f...). Each backend has the same free functions; algorithms written
// against them (vecmath.h, the kernels' *_impl.h) are instantiated once per ISA file.
//
// Everything here has internal linkage (an anonymous namespace): each ISA file gets its own
// copy compiled with its own flags, so no AVX code can leak into the baseline build through
// the linker picking one instance of an inline function.
#pragma once
#include <cstdint>
#include <cstring>

#if defined(__AVX2__) || defined(__AVX512F__)
// GCC 12 warns falsely about uninitialized values inside its own AVX-512 intrinsics.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#endif

namespace ferry {
namespace simd {
namespace {

// ---- scalar backend: float / int32_t / bool ------------------------------------------------
template <class V> struct Traits;
template <> struct Traits<float> {
  using I = int32_t;
  using M = bool;
  static constexpr int width = 1;
  static constexpr bool fma = false;  // fmadd() rounds twice
};

inline float set1(float, float v) { return v; }
inline float load(float, const float* p) { return *p; }
inline void store(float* p, float v) { *p = v; }
// The even elements p[0], p[2], ... of 2 * width floats (stride-2 windows). load_even_raw
// may return them in a fixed lane order of the ISA's choosing, which fix_even restores:
// lane-wise arithmetic between raw loads commutes with it, so a sum or max of many raw
// loads needs one fix.
inline float load_even(float, const float* p) { return *p; }
inline float load_even_raw(float, const float* p) { return *p; }
inline float fix_even(float v) { return v; }
inline float fmadd(float a, float b, float c) { return a * b + c; }
inline float vmax(float a, float b) { return a > b ? a : b; }
inline float vmin(float a, float b) { return a < b ? a : b; }
// max(lo, min(hi, x)) that keeps NaN (the comparisons are false for NaN).
inline float clamp(float x, float lo, float hi) { return x < lo ? lo : (x > hi ? hi : x); }
inline float vabs(float a) { return __builtin_fabsf(a); }
inline float vsqrt(float a) { return __builtin_sqrtf(a); }
inline bool lt(float a, float b) { return a < b; }
inline bool le(float a, float b) { return a <= b; }
inline bool gt(float a, float b) { return a > b; }
inline bool ge(float a, float b) { return a >= b; }
inline bool eq(float a, float b) { return a == b; }
inline bool isnan_(float a) { return a != a; }
inline bool mor(bool a, bool b) { return a || b; }
inline float select(bool m, float a, float b) { return m ? a : b; }
// Round to nearest even for |x| < 2^22 (the current rounding mode is the default).
inline float round_nearest(float x) {
  const float magic = 12582912.0f;  // 1.5 * 2^23
  return (x + magic) - magic;  // not folded: it is no identity under IEEE rules
}
// x is already integral; NaN (undefined for the cast) maps to 0.
inline int32_t to_int(float x) { return x == x ? static_cast<int32_t>(x) : 0; }
inline float to_float(int32_t i) { return static_cast<float>(i); }
inline float vfloor(float x) { return __builtin_floorf(x); }
inline float vceil(float x) { return __builtin_ceilf(x); }
inline float vrint(float x) { return __builtin_rintf(x); }  // nearest, ties to even
inline int32_t bits(float x) { int32_t i; std::memcpy(&i, &x, 4); return i; }
inline float from_bits(int32_t i) { float x; std::memcpy(&x, &i, 4); return x; }
inline int32_t shl23(int32_t i) { return static_cast<int32_t>(static_cast<uint32_t>(i) << 23); }
inline int32_t shr23(int32_t i) { return static_cast<int32_t>(static_cast<uint32_t>(i) >> 23); }
inline int32_t sra1(int32_t i) { return i >> 1; }
inline int32_t iand(int32_t a, int32_t b) { return a & b; }
inline int32_t ior(int32_t a, int32_t b) { return a | b; }
inline int32_t iadd(int32_t a, int32_t b) { return a + b; }
inline int32_t isub(int32_t a, int32_t b) { return a - b; }
inline int32_t iset1(float, int32_t v) { return v; }
inline float copysign_(float mag, float sgn) {
  return from_bits((bits(mag) & 0x7fffffff) | (bits(sgn) & static_cast<int32_t>(0x80000000)));
}
inline float hsum(float a) { return a; }
inline float hmax(float a) { return a; }

#if defined(__AVX2__) && !defined(__AVX512F__)
// ---- AVX2 backend ---------------------------------------------------------------------------
struct F8 { __m256 v; };
struct I8 { __m256i v; };
template <> struct Traits<F8> {
  using I = I8;
  using M = F8;  // comparison results as all-ones lanes
  static constexpr int width = 8;
  static constexpr bool fma = true;
};
inline F8 operator+(F8 a, F8 b) { return {_mm256_add_ps(a.v, b.v)}; }
inline F8 operator-(F8 a, F8 b) { return {_mm256_sub_ps(a.v, b.v)}; }
inline F8 operator*(F8 a, F8 b) { return {_mm256_mul_ps(a.v, b.v)}; }
inline F8 operator/(F8 a, F8 b) { return {_mm256_div_ps(a.v, b.v)}; }
inline F8 operator-(F8 a) { return {_mm256_xor_ps(a.v, _mm256_set1_ps(-0.0f))}; }
inline F8 set1(F8, float v) { return {_mm256_set1_ps(v)}; }
inline F8 load(const F8&, const float* p) { return {_mm256_loadu_ps(p)}; }
inline void store(float* p, F8 v) { _mm256_storeu_ps(p, v.v); }
inline F8 load_even(const F8&, const float* p) {
  const __m256 a = _mm256_loadu_ps(p), b = _mm256_loadu_ps(p + 8);
  // [a0 a2 b0 b2 | a4 a6 b4 b6] -> 64-bit lanes (0, 2, 1, 3) -> [a0 a2 a4 a6 b0 b2 b4 b6]
  const __m256 e = _mm256_shuffle_ps(a, b, 0x88);
  return {_mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), 0xd8))};
}
inline F8 load_even_raw(const F8&, const float* p) {  // [a0 a2 b0 b2 | a4 a6 b4 b6]
  return {_mm256_shuffle_ps(_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8), 0x88)};
}
inline F8 fix_even(F8 v) {
  return {_mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(v.v), 0xd8))};
}
inline F8 fmadd(F8 a, F8 b, F8 c) { return {_mm256_fmadd_ps(a.v, b.v, c.v)}; }
inline F8 vmax(F8 a, F8 b) { return {_mm256_max_ps(a.v, b.v)}; }
inline F8 vmin(F8 a, F8 b) { return {_mm256_min_ps(a.v, b.v)}; }
// MAXPS/MINPS return the second operand when one is NaN: x last keeps NaN.
inline F8 clamp(F8 x, F8 lo, F8 hi) { return {_mm256_max_ps(lo.v, _mm256_min_ps(hi.v, x.v))}; }
inline F8 vabs(F8 a) { return {_mm256_andnot_ps(_mm256_set1_ps(-0.0f), a.v)}; }
inline F8 vsqrt(F8 a) { return {_mm256_sqrt_ps(a.v)}; }
inline F8 lt(F8 a, F8 b) { return {_mm256_cmp_ps(a.v, b.v, _CMP_LT_OQ)}; }
inline F8 le(F8 a, F8 b) { return {_mm256_cmp_ps(a.v, b.v, _CMP_LE_OQ)}; }
inline F8 gt(F8 a, F8 b) { return {_mm256_cmp_ps(a.v, b.v, _CMP_GT_OQ)}; }
inline F8 ge(F8 a, F8 b) { return {_mm256_cmp_ps(a.v, b.v, _CMP_GE_OQ)}; }
inline F8 eq(F8 a, F8 b) { return {_mm256_cmp_ps(a.v, b.v, _CMP_EQ_OQ)}; }
inline F8 isnan_(F8 a) { return {_mm256_cmp_ps(a.v, a.v, _CMP_UNORD_Q)}; }
inline F8 mor(F8 a, F8 b) { return {_mm256_or_ps(a.v, b.v)}; }
inline F8 select(F8 m, F8 a, F8 b) { return {_mm256_blendv_ps(b.v, a.v, m.v)}; }
inline F8 round_nearest(F8 x) {
  return {_mm256_round_ps(x.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)};
}
inline F8 vfloor(F8 x) {
  return {_mm256_round_ps(x.v, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC)};
}
inline F8 vceil(F8 x) {
  return {_mm256_round_ps(x.v, _MM_FROUND_TO_POS_INF | _MM_FROUND_NO_EXC)};
}
inline F8 vrint(F8 x) { return round_nearest(x); }
inline I8 to_int(F8 x) { return {_mm256_cvttps_epi32(x.v)}; }
inline F8 to_float(I8 i) { return {_mm256_cvtepi32_ps(i.v)}; }
inline I8 bits(F8 x) { return {_mm256_castps_si256(x.v)}; }
inline F8 from_bits(I8 i) { return {_mm256_castsi256_ps(i.v)}; }
inline I8 shl23(I8 i) { return {_mm256_slli_epi32(i.v, 23)}; }
inline I8 shr23(I8 i) { return {_mm256_srli_epi32(i.v, 23)}; }
inline I8 sra1(I8 i) { return {_mm256_srai_epi32(i.v, 1)}; }
inline I8 iand(I8 a, I8 b) { return {_mm256_and_si256(a.v, b.v)}; }
inline I8 ior(I8 a, I8 b) { return {_mm256_or_si256(a.v, b.v)}; }
inline I8 iadd(I8 a, I8 b) { return {_mm256_add_epi32(a.v, b.v)}; }
inline I8 isub(I8 a, I8 b) { return {_mm256_sub_epi32(a.v, b.v)}; }
inline I8 iset1(F8, int32_t v) { return {_mm256_set1_epi32(v)}; }
inline F8 copysign_(F8 mag, F8 sgn) {
  const __m256 s = _mm256_set1_ps(-0.0f);
  return {_mm256_or_ps(_mm256_andnot_ps(s, mag.v), _mm256_and_ps(s, sgn.v))};
}
inline float hsum(F8 a) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(a.v), _mm256_extractf128_ps(a.v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
inline float hmax(F8 a) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(a.v), _mm256_extractf128_ps(a.v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
using Vec = F8;
#endif

#if defined(__AVX512F__)
// ---- AVX-512 backend ------------------------------------------------------------------------
struct F16 { __m512 v; };
struct I16 { __m512i v; };
struct M16 { __mmask16 m; };
template <> struct Traits<F16> {
  using I = I16;
  using M = M16;
  static constexpr int width = 16;
  static constexpr bool fma = true;
};
inline F16 operator+(F16 a, F16 b) { return {_mm512_add_ps(a.v, b.v)}; }
inline F16 operator-(F16 a, F16 b) { return {_mm512_sub_ps(a.v, b.v)}; }
inline F16 operator*(F16 a, F16 b) { return {_mm512_mul_ps(a.v, b.v)}; }
inline F16 operator/(F16 a, F16 b) { return {_mm512_div_ps(a.v, b.v)}; }
inline F16 operator-(F16 a) {
  return {_mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(a.v),
                                               _mm512_set1_epi32(static_cast<int>(0x80000000))))};
}
inline F16 set1(F16, float v) { return {_mm512_set1_ps(v)}; }
inline F16 load(const F16&, const float* p) { return {_mm512_loadu_ps(p)}; }
inline void store(float* p, F16 v) { _mm512_storeu_ps(p, v.v); }
inline F16 load_even(const F16&, const float* p) {
  const __m512i idx = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28,
                                        30);
  return {_mm512_permutex2var_ps(_mm512_loadu_ps(p), idx, _mm512_loadu_ps(p + 16))};
}
inline F16 load_even_raw(const F16& v, const float* p) { return load_even(v, p); }
inline F16 fix_even(F16 v) { return v; }
inline F16 fmadd(F16 a, F16 b, F16 c) { return {_mm512_fmadd_ps(a.v, b.v, c.v)}; }
inline F16 vmax(F16 a, F16 b) { return {_mm512_max_ps(a.v, b.v)}; }
inline F16 vmin(F16 a, F16 b) { return {_mm512_min_ps(a.v, b.v)}; }
inline F16 clamp(F16 x, F16 lo, F16 hi) { return {_mm512_max_ps(lo.v, _mm512_min_ps(hi.v, x.v))}; }
inline F16 vabs(F16 a) { return {_mm512_abs_ps(a.v)}; }
inline F16 vsqrt(F16 a) { return {_mm512_sqrt_ps(a.v)}; }
inline M16 lt(F16 a, F16 b) { return {_mm512_cmp_ps_mask(a.v, b.v, _CMP_LT_OQ)}; }
inline M16 le(F16 a, F16 b) { return {_mm512_cmp_ps_mask(a.v, b.v, _CMP_LE_OQ)}; }
inline M16 gt(F16 a, F16 b) { return {_mm512_cmp_ps_mask(a.v, b.v, _CMP_GT_OQ)}; }
inline M16 ge(F16 a, F16 b) { return {_mm512_cmp_ps_mask(a.v, b.v, _CMP_GE_OQ)}; }
inline M16 eq(F16 a, F16 b) { return {_mm512_cmp_ps_mask(a.v, b.v, _CMP_EQ_OQ)}; }
inline M16 isnan_(F16 a) { return {_mm512_cmp_ps_mask(a.v, a.v, _CMP_UNORD_Q)}; }
inline M16 mor(M16 a, M16 b) { return {static_cast<__mmask16>(a.m | b.m)}; }
inline F16 select(M16 m, F16 a, F16 b) { return {_mm512_mask_blend_ps(m.m, b.v, a.v)}; }
inline F16 round_nearest(F16 x) {
  return {_mm512_roundscale_ps(x.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)};
}
inline F16 vfloor(F16 x) {
  return {_mm512_roundscale_ps(x.v, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC)};
}
inline F16 vceil(F16 x) {
  return {_mm512_roundscale_ps(x.v, _MM_FROUND_TO_POS_INF | _MM_FROUND_NO_EXC)};
}
inline F16 vrint(F16 x) { return round_nearest(x); }
inline I16 to_int(F16 x) { return {_mm512_cvttps_epi32(x.v)}; }
inline F16 to_float(I16 i) { return {_mm512_cvtepi32_ps(i.v)}; }
inline I16 bits(F16 x) { return {_mm512_castps_si512(x.v)}; }
inline F16 from_bits(I16 i) { return {_mm512_castsi512_ps(i.v)}; }
inline I16 shl23(I16 i) { return {_mm512_slli_epi32(i.v, 23)}; }
inline I16 shr23(I16 i) { return {_mm512_srli_epi32(i.v, 23)}; }
inline I16 sra1(I16 i) { return {_mm512_srai_epi32(i.v, 1)}; }
inline I16 iand(I16 a, I16 b) { return {_mm512_and_si512(a.v, b.v)}; }
inline I16 ior(I16 a, I16 b) { return {_mm512_or_si512(a.v, b.v)}; }
inline I16 iadd(I16 a, I16 b) { return {_mm512_add_epi32(a.v, b.v)}; }
inline I16 isub(I16 a, I16 b) { return {_mm512_sub_epi32(a.v, b.v)}; }
inline I16 iset1(F16, int32_t v) { return {_mm512_set1_epi32(v)}; }
inline F16 copysign_(F16 mag, F16 sgn) {
  const __m512i s = _mm512_set1_epi32(static_cast<int>(0x80000000));
  __m512i m = _mm512_andnot_si512(s, _mm512_castps_si512(mag.v));
  return {_mm512_castsi512_ps(_mm512_or_si512(m, _mm512_and_si512(s, _mm512_castps_si512(sgn.v))))};
}
inline float hsum(F16 a) { return _mm512_reduce_add_ps(a.v); }
inline float hmax(F16 a) { return _mm512_reduce_max_ps(a.v); }
using Vec = F16;
#endif

#if !defined(__AVX2__) && !defined(__AVX512F__)
using Vec = float;
#endif

// dst + c * ds (c < 8) receives column c of the 8 x 8 block whose rows are src + r * ss: the
// channel interleaves of the depthwise 8-channel path and of the few-channels conv, in
// registers where the ISA has them (as scalar moves they cost more than the depthwise block's
// convolution on 7x7 and 14x14 planes).
#if defined(__AVX2__)  // the AVX-512 build too (-mavx512f implies it)
// The 8 x 8 transpose in registers: r[i] rows in, c[j] columns out.
inline void transpose8x8_regs(const __m256 (&r)[8], __m256 (&c)[8]) {
  // Pairs of rows interleaved, then 4-row column pieces (columns c and c + 4 per register),
  // then the 128-bit halves joined into whole columns.
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  c[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
  c[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
  c[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
  c[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
  c[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
  c[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
  c[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
  c[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}
#endif

inline void transpose8x8(const float* src, int64_t ss, float* dst, int64_t ds) {
#if defined(__AVX2__)
  __m256 r[8], c[8];
  for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * ss);
  transpose8x8_regs(r, c);
  for (int j = 0; j < 8; ++j) _mm256_storeu_ps(dst + j * ds, c[j]);
#else
  for (int64_t r = 0; r < 8; ++r)
    for (int64_t c = 0; c < 8; ++c) dst[c * ds + r] = src[r * ss + c];
#endif
}

// The 8-lane interleave of the small-plane paths (depthwise 8-channel blocks, 8-plane pools):
// xi[(r * wp + c) * 8 + l] = plane l (at x + l * s_in, h x w) at row r - pt, column c - pl,
// or `fill` outside it, for an hp x wp padded block.
inline void interleave8_padded(const float* x, int64_t s_in, int64_t h, int64_t w, int64_t pt,
                               int64_t pl, int64_t hp, int64_t wp, float fill, float* xi) {
  for (int64_t i = 0; i < hp * wp * 8; ++i) xi[i] = fill;
  const int64_t c0 = pl > 0 ? pl : 0, c1 = wp < w + pl ? wp : w + pl;
  for (int64_t r = 0; r < hp; ++r) {
    const int64_t ih = r - pt;
    if (ih < 0 || ih >= h) continue;
    const float* xr = x + ih * w - pl;  // plane l's row at xr + l * s_in
    int64_t c = c0;
    for (; c + 8 <= c1; c += 8) transpose8x8(xr + c, s_in, xi + (r * wp + c) * 8, 8);
    for (; c < c1; ++c)
      for (int64_t l = 0; l < 8; ++l) xi[(r * wp + c) * 8 + l] = xr[l * s_in + c];
  }
}

// Back to planes: dst[l * ds + j] = src[j * ss + l] for j < n, l < 8.
inline void deinterleave8(const float* src, int64_t ss, int64_t n, float* dst, int64_t ds) {
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) transpose8x8(src + j * ss, ss, dst + j, ds);
  for (; j < n; ++j)
    for (int64_t l = 0; l < 8; ++l) dst[l * ds + j] = src[j * ss + l];
}

// Broadcast helpers that name the vector type: C<V>(1.0f), CI<V>(127).
template <class V> inline V C(float v) { return set1(V{}, v); }
template <class V> inline typename Traits<V>::I CI(int32_t v) { return iset1(V{}, v); }
template <class V> inline V L(const float* p) { return load(V{}, p); }
template <class V> inline V LE(const float* p) { return load_even(V{}, p); }
template <class V> inline V LER(const float* p) { return load_even_raw(V{}, p); }
template <class V> constexpr int W() { return Traits<V>::width; }

}  // namespace
}  // namespace simd
}  // namespace ferry
