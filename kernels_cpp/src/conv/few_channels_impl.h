// The few-channels direct convolution (see few_channels.h), written once and compiled by each
// ISA file (few_channels__scalar/__avx2/__avx512.cpp) with its own flags. Internal linkage only.
// The AVX-512 file runs the AVX2 loops (8 channels per vector): the first layer's 32 or 64
// output channels fit them, and it was not measured on an AVX-512 machine.
#pragma once
#include <cstdint>

#include "few_channels.h"
#include "ferry/simd.h"

namespace ferry {
namespace conv {
namespace {

#if defined(__AVX2__)
// One register tile: output channels [mg, mg + 8 MV) x pixels [ow0, ow0 + P) of one output row
// (xrow: the padded input's first row that output row reads, in channel plane 0), written
// pixel-major to tmp (m floats per pixel). MV * P = 12 accumulators; the other operand order
// keeps the live registers within 16 (MV 4: three broadcasts, then one weight vector at a
// time; otherwise one broadcast, then every weight vector).
template <int MV, int P>
inline void few_channels_tile(const FewChannelsGeometry& g, const float* xrow, const int64_t* xoff,
                              const float* wt, const float* bias, int64_t mg, int64_t ow0,
                              float* tmp, const float* lohi) {
  __m256 acc[MV][P];
#pragma GCC unroll 4
  for (int v = 0; v < MV; ++v) {
    const __m256 b = bias ? _mm256_loadu_ps(bias + mg + 8 * v) : _mm256_setzero_ps();
#pragma GCC unroll 12
    for (int p = 0; p < P; ++p) acc[v][p] = b;
  }
  // One flat loop over the c * kh * kw taps (offsets from a table, weights one row of m per
  // tap): nested tap loops cost more instructions than the 12 FMAs they fed.
  const int64_t taps = g.c * g.kh * g.kw, sw = g.sw;
  const float* x0 = xrow + ow0 * sw;
  const float* wp = wt + mg;
  for (int64_t t = 0; t < taps; ++t, wp += g.m) {
    const float* xp = x0 + xoff[t];
    if constexpr (MV == 4) {
      __m256 xv[P];
#pragma GCC unroll 12
      for (int p = 0; p < P; ++p) xv[p] = _mm256_broadcast_ss(xp + p * sw);
#pragma GCC unroll 4
      for (int v = 0; v < MV; ++v) {
        const __m256 w = _mm256_loadu_ps(wp + 8 * v);
#pragma GCC unroll 12
        for (int p = 0; p < P; ++p) acc[v][p] = _mm256_fmadd_ps(w, xv[p], acc[v][p]);
      }
    } else {
      __m256 w[MV];
#pragma GCC unroll 4
      for (int v = 0; v < MV; ++v) w[v] = _mm256_loadu_ps(wp + 8 * v);
#pragma GCC unroll 12
      for (int p = 0; p < P; ++p) {
        const __m256 xv = _mm256_broadcast_ss(xp + p * sw);
#pragma GCC unroll 4
        for (int v = 0; v < MV; ++v) acc[v][p] = _mm256_fmadd_ps(w[v], xv, acc[v][p]);
      }
    }
  }
  if (lohi) {  // NaN passes (x second)
    const __m256 lo = _mm256_set1_ps(lohi[0]), hi = _mm256_set1_ps(lohi[1]);
#pragma GCC unroll 4
    for (int v = 0; v < MV; ++v)
#pragma GCC unroll 12
      for (int p = 0; p < P; ++p) acc[v][p] = _mm256_min_ps(hi, _mm256_max_ps(lo, acc[v][p]));
  }
#pragma GCC unroll 4
  for (int v = 0; v < MV; ++v)
#pragma GCC unroll 12
    for (int p = 0; p < P; ++p) _mm256_storeu_ps(tmp + (ow0 + p) * g.m + mg + 8 * v, acc[v][p]);
}

template <int MV, int P>
inline void few_channels_group(const FewChannelsGeometry& g, const float* xrow,
                               const int64_t* xoff, const float* wt, const float* bias,
                               int64_t mg, float* tmp, const float* lohi) {
  for (int64_t ow0 = 0; ow0 < g.ow; ow0 += P)  // the last tile's extra pixels: junk, not copied
    few_channels_tile<MV, P>(g, xrow, xoff, wt, bias, mg, ow0, tmp, lohi);
}
#endif

void few_channels_impl(const FewChannelsGeometry& g, const float* xpad, const float* wt,
                       const float* bias, int64_t oh0, int64_t oh1, float* y,
                       const float* lohi, float* tmp) {
  const int64_t S = g.oh * g.ow;
#if defined(__AVX2__)
  // Offset of tap (c, i, j) from an output pixel's top-left input (c <= 4, so <= 4 * kh * kw).
  int64_t xoff_small[4 * 7 * 7];
  const int64_t taps = g.c * g.kh * g.kw;
  int64_t* xoff = taps <= 4 * 7 * 7 ? xoff_small : new int64_t[size_t(taps)];
  for (int64_t c = 0, t = 0; c < g.c; ++c)
    for (int64_t i = 0; i < g.kh; ++i)
      for (int64_t j = 0; j < g.kw; ++j, ++t)
        xoff[t] = c * g.hp * g.wp + i * g.dh * g.wp + j * g.dw;
#endif
  for (int64_t oh = oh0; oh < oh1; ++oh) {
    const float* xrow = xpad + oh * g.sh * g.wp;
#if defined(__AVX2__)
    int64_t mg = 0;
    for (; mg + 32 <= g.m; mg += 32)
      few_channels_group<4, 3>(g, xrow, xoff, wt, bias, mg, tmp, lohi);
    for (; mg + 16 <= g.m; mg += 16)
      few_channels_group<2, 6>(g, xrow, xoff, wt, bias, mg, tmp, lohi);
    for (; mg < g.m; mg += 8) few_channels_group<1, 12>(g, xrow, xoff, wt, bias, mg, tmp, lohi);
#else
    const int64_t plane = g.hp * g.wp;
    for (int64_t ow = 0; ow < g.ow; ++ow) {
      float* t = tmp + ow * g.m;
      for (int64_t o = 0; o < g.m; ++o) t[o] = bias ? bias[o] : 0.f;
      for (int64_t c = 0; c < g.c; ++c)
        for (int64_t i = 0; i < g.kh; ++i)
          for (int64_t j = 0; j < g.kw; ++j) {
            const float xv = xrow[c * plane + i * g.dh * g.wp + ow * g.sw + j * g.dw];
            const float* w = wt + ((c * g.kh + i) * g.kw + j) * g.m;
            for (int64_t o = 0; o < g.m; ++o) t[o] += w[o] * xv;
          }
      if (lohi)  // written so that NaN passes, as in the vector clamp
        for (int64_t o = 0; o < g.m; ++o)
          t[o] = t[o] < lohi[0] ? lohi[0] : (t[o] > lohi[1] ? lohi[1] : t[o]);
    }
#endif
    // Pixel-major row -> channel planes, 8 channels x 8 pixels at a time.
    float* yr = y + oh * g.ow;
    for (int64_t m0 = 0; m0 < g.m; m0 += 8) simd::deinterleave8(tmp + m0, g.m, g.ow, yr + m0 * S, S);
  }
#if defined(__AVX2__)
  if (xoff != xoff_small) delete[] xoff;
#endif
}

}  // namespace
}  // namespace conv
}  // namespace ferry
