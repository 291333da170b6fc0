// The NCHWc direct convolution (see nchwc_conv.h), written once and compiled by each ISA file
// (nchwc_conv__scalar/__avx2/__avx512.cpp) with its own flags. Internal linkage only. The
// AVX-512 file runs the AVX2 loops: the block is 8 channels on every ISA, and it was not
// measured on an AVX-512 machine.
//
// Per output row: the taps kh whose input row is inside the image (no padded copy); along the
// row, the interior columns (every kw tap inside) go through register tiles of MB blocks x P
// pixels, the edge columns one pixel at a time over their in-bounds kw taps only. Every
// output's summation order depends only on its position (tiles never mix pixels' sums), so
// the result does not depend on how the work is split over threads.
#pragma once
#include <cstdint>

#include "nchwc_conv.h"
#include "nchwc_v8.h"
#include "ferry/simd.h"

namespace ferry {
namespace conv {
namespace {

using ::ferry::nchwc::tap_range;

// What one output row of a pass needs (offsets in floats; pointers formed only when used).
// Output rows up to this wide take the gathered tiles (nchwc_small).
constexpr int64_t kNchwcSmallWidth = 16;

struct NchwcRow {
  int64_t x_off;   // input offset of (first in-bounds kh, kw 0, column -pl) from p.x
  const float* w;  // weights at the first in-bounds kh
  int64_t nkh;     // in-bounds kh taps
  int64_t y_off;   // output offset of the row's pixel 0 (block 0)
};

// Output row oh: its in-bounds kh taps. pix: floats per input pixel of one block (8, or 1 for
// NCHW); tapw: packed weight floats per (kh, kw) tap.
inline NchwcRow nchwc_row(const NchwcGeometry& g, const NchwcPass& ps, int64_t oh, int64_t pix,
                          int64_t tapw) {
  const int64_t ihb = oh * g.sh - g.pt;
  int64_t kh0, kh1;
  tap_range(ihb, g.dh, g.kh, g.ih, kh0, kh1);
  return NchwcRow{((ihb + kh0 * g.dh) * g.iw - g.pl) * pix, ps.w + kh0 * g.kw * tapw, kh1 - kh0,
                  oh * g.ow * 8};
}

#if defined(__AVX2__)
// One step of a tile: MB weight vectors (one input channel, MB output blocks) times P
// broadcast input scalars (one per pixel, pstep floats apart).
template <int MB, int P>
inline void nchwc_step(__m256 (&acc)[MB][P], const float* w, const float* x, int64_t pstep) {
  __m256 wv[MB];
#pragma GCC unroll 3
  for (int v = 0; v < MB; ++v) wv[v] = _mm256_loadu_ps(w + 8 * v);
#pragma GCC unroll 12
  for (int q = 0; q < P; ++q) {
    const __m256 xv = _mm256_broadcast_ss(x + q * pstep);
#pragma GCC unroll 3
    for (int v = 0; v < MB; ++v) acc[v][q] = _mm256_fmadd_ps(wv[v], xv, acc[v][q]);
  }
}

// Start values of MB blocks x P pixels at y / z (ostride floats between blocks): bias + z on
// the first pass (z read before y is written: z may be y), y's partial sums on later ones.
template <int MB, int P>
inline void nchwc_init(__m256 (&acc)[MB][P], const NchwcPass& ps, const float* y, const float* z,
                       int64_t ostride) {
#pragma GCC unroll 3
  for (int v = 0; v < MB; ++v) {
    if (ps.first) {
      const __m256 b = ps.bias ? _mm256_loadu_ps(ps.bias + 8 * v) : _mm256_setzero_ps();
#pragma GCC unroll 12
      for (int q = 0; q < P; ++q)
        acc[v][q] = z ? _mm256_add_ps(b, _mm256_loadu_ps(z + v * ostride + 8 * q)) : b;
    } else {
#pragma GCC unroll 12
      for (int q = 0; q < P; ++q) acc[v][q] = _mm256_loadu_ps(y + v * ostride + 8 * q);
    }
  }
}

// ReLU / Clip of the last pass, in registers.
template <int MB, int P>
inline void nchwc_clamp(__m256 (&acc)[MB][P], const NchwcPass& ps) {
  if (ps.last && ps.lohi) {  // NaN passes (acc second)
    const __m256 lo = _mm256_set1_ps(ps.lohi[0]), hi = _mm256_set1_ps(ps.lohi[1]);
#pragma GCC unroll 3
    for (int v = 0; v < MB; ++v)
#pragma GCC unroll 12
      for (int q = 0; q < P; ++q) acc[v][q] = _mm256_min_ps(hi, _mm256_max_ps(lo, acc[v][q]));
  }
}

template <int MB, int P>
inline void nchwc_store(__m256 (&acc)[MB][P], const NchwcPass& ps, float* y, int64_t ostride) {
  nchwc_clamp<MB, P>(acc, ps);
#pragma GCC unroll 3
  for (int v = 0; v < MB; ++v)
#pragma GCC unroll 12
    for (int q = 0; q < P; ++q) _mm256_storeu_ps(y + v * ostride + 8 * q, acc[v][q]);
}

// Interior tile: MB output blocks x P consecutive pixels of one row, all kw taps in bounds.
// x: the first pixel's input at (first in-bounds kh, kw 0, chunk block 0). SW: the column
// stride when it is 1 or 2 (constant pixel offsets), 0 otherwise.
template <int MB, int P, bool BLK, int SW>
inline void nchwc_tile(const NchwcGeometry& g, const NchwcPass& ps, const float* x,
                       const float* w, int64_t nkh, float* y, const float* z) {
  const int64_t ostride = g.oh * g.ow * 8;
  __m256 acc[MB][P];
  nchwc_init<MB, P>(acc, ps, y, z, ostride);
  constexpr int64_t pix = BLK ? 8 : 1;
  const int64_t pstep = (SW > 0 ? SW : g.sw) * pix;
  const int64_t rstep = g.dh * g.iw * pix, kstep = g.dw * pix;
  const int64_t bstride = g.ih * g.iw * 8, cstride = g.ih * g.iw;
  for (int64_t i = 0; i < nkh; ++i) {
    const float* xr = x + i * rstep;
    for (int64_t j = 0; j < g.kw; ++j) {
      const float* xk = xr + j * kstep;
      if constexpr (BLK) {
        for (int64_t b = 0; b < ps.ncb; ++b, w += 8 * MB * 8) {
          const float* xb = xk + b * bstride;
#pragma GCC unroll 8
          for (int c = 0; c < 8; ++c) nchwc_step<MB, P>(acc, w + c * MB * 8, xb + c, pstep);
        }
      } else {
        for (int64_t c = 0; c < g.cin; ++c, w += MB * 8)
          nchwc_step<MB, P>(acc, w, xk + c * cstride, pstep);
      }
    }
  }
  nchwc_store<MB, P>(acc, ps, y, ostride);
}

// The last n (< the full tile) pixels of a run: the tile of exactly n pixels.
template <int MB, int P, bool BLK, int SW>
inline void nchwc_tail(int64_t n, const NchwcGeometry& g, const NchwcPass& ps, const float* x,
                       const float* w, int64_t nkh, float* y, const float* z) {
  if constexpr (P >= 1) {
    if (n == P) return nchwc_tile<MB, P, BLK, SW>(g, ps, x, w, nkh, y, z);
    nchwc_tail<MB, P - 1, BLK, SW>(n, g, ps, x, w, nkh, y, z);
  }
}

// Interior columns [a, b) of one row.
template <int MB, bool BLK, int SW>
inline void nchwc_interior(const NchwcGeometry& g, const NchwcPass& ps, const NchwcRow& r,
                           int64_t a, int64_t b) {
  constexpr int PM = kNchwcMaxPixels[MB];
  const int64_t pstep = g.sw * (BLK ? 8 : 1);
  // As few tiles as full ones would take, of nearly equal size: 7 pixels as 4 + 3 rather than
  // 6 + 1 (a one-pixel tile has MB accumulators: FMA latency bound).
  const int64_t n = b - a, tiles = (n + PM - 1) / PM, small = n / tiles, big = n % tiles;
  int64_t ow = a;
  for (int64_t t = 0; t < tiles; ++t) {
    const int64_t np = small + (t < big ? 1 : 0);
    const float* x = ps.x + (r.x_off + ow * pstep);
    float* y = ps.y + (r.y_off + ow * 8);
    const float* z = ps.z ? ps.z + (r.y_off + ow * 8) : nullptr;
    if (np == PM)
      nchwc_tile<MB, PM, BLK, SW>(g, ps, x, r.w, r.nkh, y, z);
    else
      nchwc_tail<MB, PM - 1, BLK, SW>(np, g, ps, x, r.w, r.nkh, y, z);
    ow += np;
  }
}

// One edge pixel (some kw taps out of bounds): its in-bounds taps only. A single pixel has
// MB accumulators, too few to hide the FMA latency: four partial sums (channel c % 4), added
// at the end.
template <int MB, bool BLK>
inline void nchwc_edge(const NchwcGeometry& g, const NchwcPass& ps, const NchwcRow& r,
                       int64_t ow) {
  const int64_t ostride = g.oh * g.ow * 8;
  constexpr int64_t pix = BLK ? 8 : 1;
  const int64_t ncb = BLK ? ps.ncb : 1;
  const int64_t tapw = ncb * g.cin * MB * 8;
  int64_t kw0, kw1;
  tap_range(ow * g.sw - g.pl, g.dw, g.kw, g.iw, kw0, kw1);
  __m256 part[4][MB];
  for (int s = 0; s < 4; ++s)
    for (int v = 0; v < MB; ++v) part[s][v] = _mm256_setzero_ps();
  if (kw1 > kw0 && r.nkh > 0) {
    const float* x = ps.x + (r.x_off + (ow * g.sw + kw0 * g.dw) * pix);
    const int64_t rstep = g.dh * g.iw * pix, kstep = g.dw * pix;
    const int64_t bstride = g.ih * g.iw * 8, cstride = g.ih * g.iw;
    for (int64_t i = 0; i < r.nkh; ++i)
      for (int64_t j = kw0; j < kw1; ++j) {
        const float* xk = x + i * rstep + (j - kw0) * kstep;
        const float* w = r.w + (i * g.kw + j) * tapw;
        if constexpr (BLK) {
          for (int64_t b = 0; b < ncb; ++b, w += 8 * MB * 8) {
            const float* xb = xk + b * bstride;
#pragma GCC unroll 8
            for (int c = 0; c < 8; ++c) {
              const __m256 xv = _mm256_broadcast_ss(xb + c);
#pragma GCC unroll 3
              for (int v = 0; v < MB; ++v)
                part[c & 3][v] = _mm256_fmadd_ps(_mm256_loadu_ps(w + c * MB * 8 + 8 * v), xv,
                                                 part[c & 3][v]);
            }
          }
        } else {
          int64_t c = 0;
          for (; c + 4 <= g.cin; c += 4)
#pragma GCC unroll 4
            for (int s = 0; s < 4; ++s) {
              const __m256 xv = _mm256_broadcast_ss(xk + (c + s) * cstride);
#pragma GCC unroll 3
              for (int v = 0; v < MB; ++v)
                part[s][v] = _mm256_fmadd_ps(_mm256_loadu_ps(w + (c + s) * MB * 8 + 8 * v), xv,
                                             part[s][v]);
            }
          for (; c < g.cin; ++c) {
            const __m256 xv = _mm256_broadcast_ss(xk + c * cstride);
            for (int v = 0; v < MB; ++v)
              part[0][v] =
                  _mm256_fmadd_ps(_mm256_loadu_ps(w + c * MB * 8 + 8 * v), xv, part[0][v]);
          }
        }
      }
  }
  float* y = ps.y + (r.y_off + ow * 8);
  const float* z = ps.z ? ps.z + (r.y_off + ow * 8) : nullptr;
  __m256 acc[MB][1];
  nchwc_init<MB, 1>(acc, ps, y, z, ostride);
  for (int v = 0; v < MB; ++v)
    acc[v][0] = _mm256_add_ps(acc[v][0], _mm256_add_ps(_mm256_add_ps(part[0][v], part[1][v]),
                                                       _mm256_add_ps(part[2][v], part[3][v])));
  nchwc_store<MB, 1>(acc, ps, y, ostride);
}

// Gathered tile (small maps): P pixels anywhere in the plane that share their in-bounds taps
// (kh in [kh0, kh0 + nkh), kw in [kw0, kw1)): xo / yo hold each pixel's input offset (at kh0,
// kw0, from p.x) and output offset (from p.y). Same summation order as nchwc_tile.
template <int MB, int P>
inline void nchwc_tile_gather(const NchwcGeometry& g, const NchwcPass& ps, const int64_t* xo,
                              const int64_t* yo, const float* w, int64_t nkh, int64_t kw0,
                              int64_t kw1) {
  const int64_t ostride = g.oh * g.ow * 8;
  __m256 acc[MB][P];
  if (ps.first) {
#pragma GCC unroll 3
    for (int v = 0; v < MB; ++v) {
      const __m256 b = ps.bias ? _mm256_loadu_ps(ps.bias + 8 * v) : _mm256_setzero_ps();
#pragma GCC unroll 12
      for (int q = 0; q < P; ++q)
        acc[v][q] = ps.z ? _mm256_add_ps(b, _mm256_loadu_ps(ps.z + (yo[q] + v * ostride))) : b;
    }
  } else {
#pragma GCC unroll 3
    for (int v = 0; v < MB; ++v)
#pragma GCC unroll 12
      for (int q = 0; q < P; ++q) acc[v][q] = _mm256_loadu_ps(ps.y + (yo[q] + v * ostride));
  }
  int64_t o[P];
#pragma GCC unroll 12
  for (int q = 0; q < P; ++q) o[q] = xo[q];
  const int64_t tapw = ps.ncb * 8 * MB * 8;
  const int64_t rstep = g.dh * g.iw * 8, kstep = g.dw * 8, bstride = g.ih * g.iw * 8;
  const float* x = ps.x;
  for (int64_t i = 0; i < nkh; ++i)
    for (int64_t j = kw0; j < kw1; ++j) {
      const float* xk = x + (i * rstep + (j - kw0) * kstep);
      const float* wk = w + (i * g.kw + j) * tapw;
      for (int64_t b = 0; b < ps.ncb; ++b, wk += 8 * MB * 8) {
        const float* xb = xk + b * bstride;
#pragma GCC unroll 8
        for (int c = 0; c < 8; ++c) {
          __m256 wv[MB];
#pragma GCC unroll 3
          for (int v = 0; v < MB; ++v) wv[v] = _mm256_loadu_ps(wk + c * MB * 8 + 8 * v);
#pragma GCC unroll 12
          for (int q = 0; q < P; ++q) {
            const __m256 xv = _mm256_broadcast_ss(xb + o[q] + c);
#pragma GCC unroll 3
            for (int v = 0; v < MB; ++v) acc[v][q] = _mm256_fmadd_ps(wv[v], xv, acc[v][q]);
          }
        }
      }
    }
  nchwc_clamp<MB, P>(acc, ps);
#pragma GCC unroll 3
  for (int v = 0; v < MB; ++v)
#pragma GCC unroll 12
    for (int q = 0; q < P; ++q) _mm256_storeu_ps(ps.y + (yo[q] + v * ostride), acc[v][q]);
}

template <int MB, int P>
inline void nchwc_gather_n(int64_t n, const NchwcGeometry& g, const NchwcPass& ps,
                           const int64_t* xo, const int64_t* yo, const float* w, int64_t nkh,
                           int64_t kw0, int64_t kw1) {
  if constexpr (P >= 1) {
    if (n == P) return nchwc_tile_gather<MB, P>(g, ps, xo, yo, w, nkh, kw0, kw1);
    nchwc_gather_n<MB, P - 1>(n, g, ps, xo, yo, w, nkh, kw0, kw1);
  }
}

// Small maps (NCHWc input): rows cut a row's interior into tiles too short to hide the FMA
// latency (5 pixels on 7 x 7, and the edges one by one), so pixels are grouped instead by
// their in-bounds taps (rows with the same kh range x the interior columns, or x one edge
// column) and each group is tiled as evenly as full tiles allow. Edge columns of rows with a
// clipped kh range (the corners) go one pixel at a time.
template <int MB>
void nchwc_small(const NchwcGeometry& g, const NchwcPass& ps, int64_t lo, int64_t hi) {
  constexpr int PM = kNchwcMaxPixels[MB];
  const int64_t tapw = ps.ncb * 8 * MB * 8;
  const int64_t b = ps.ow1 < hi ? ps.ow1 : hi;
  for (int64_t r0 = ps.oh0, r1; r0 < ps.oh1; r0 = r1) {
    int64_t kh0, kh1;
    tap_range(r0 * g.sh - g.pt, g.dh, g.kh, g.ih, kh0, kh1);
    for (r1 = r0 + 1; r1 < ps.oh1; ++r1) {  // the rows with the same kh range
      int64_t k0, k1;
      tap_range(r1 * g.sh - g.pt, g.dh, g.kh, g.ih, k0, k1);
      if (k0 != kh0 || k1 != kh1) break;
    }
    const bool clipped = kh1 - kh0 != g.kh;
    // Column groups: each edge column alone, the interior together.
    for (int64_t c0 = ps.ow0, c1; c0 < ps.ow1; c0 = c1) {
      const bool edge = c0 < lo || c0 >= hi;
      c1 = edge ? c0 + 1 : b;
      if (edge && clipped) {
        for (int64_t oh = r0; oh < r1; ++oh)
          nchwc_edge<MB, true>(g, ps, nchwc_row(g, ps, oh, 8, tapw), c0);
        continue;
      }
      int64_t kw0, kw1;
      tap_range(c0 * g.sw - g.pl, g.dw, g.kw, g.iw, kw0, kw1);
      // This column group's kh range: the row group's, or empty with no taps at all
      // (zero-length loops, any offsets). A copy: the row group's range must stay intact
      // for its other columns (a padded 1x1 conv's edge column has no taps).
      int64_t ka = kh0, kb = kh1;
      if (kb <= ka || kw1 <= kw0) {
        kb = ka;
        kw1 = kw0;
      }
      const int64_t nc = c1 - c0, n = (r1 - r0) * nc;
      const int64_t tiles = (n + PM - 1) / PM, small = n / tiles, big = n % tiles;
      int64_t idx = 0;
      for (int64_t t = 0; t < tiles; ++t) {
        const int64_t np = small + (t < big ? 1 : 0);
        int64_t xo[PM], yo[PM];
        for (int64_t q = 0; q < np; ++q, ++idx) {
          const int64_t oh = r0 + idx / nc, ow = c0 + idx % nc;
          xo[q] = kb > ka ? ((oh * g.sh - g.pt + ka * g.dh) * g.iw +
                             (ow * g.sw - g.pl + kw0 * g.dw)) * 8
                          : 0;
          yo[q] = (oh * g.ow + ow) * 8;
        }
        nchwc_gather_n<MB, PM>(np, g, ps, xo, yo, ps.w + ka * g.kw * tapw, kb - ka, kw0, kw1);
      }
    }
  }
}

template <int MB, bool BLK, int SW>
void nchwc_rows(const NchwcGeometry& g, const NchwcPass& ps, int64_t lo, int64_t hi) {
  const int64_t pix = BLK ? 8 : 1;
  const int64_t tapw = (BLK ? ps.ncb : 1) * g.cin * MB * 8;
  for (int64_t oh = ps.oh0; oh < ps.oh1; ++oh) {
    const NchwcRow r = nchwc_row(g, ps, oh, pix, tapw);
    for (int64_t ow = ps.ow0; ow < ps.ow1 && ow < lo; ++ow) nchwc_edge<MB, BLK>(g, ps, r, ow);
    const int64_t a = ps.ow0 > lo ? ps.ow0 : lo, b = ps.ow1 < hi ? ps.ow1 : hi;
    if (a < b) nchwc_interior<MB, BLK, SW>(g, ps, r, a, b);
    for (int64_t ow = ps.ow0 > hi ? ps.ow0 : hi; ow < ps.ow1; ++ow)
      nchwc_edge<MB, BLK>(g, ps, r, ow);
  }
}

template <int MB>
void nchwc_dispatch(const NchwcGeometry& g, const NchwcPass& ps, int64_t lo, int64_t hi) {
  if (!g.blocked) return nchwc_rows<MB, false, 0>(g, ps, lo, hi);
  if (g.ow <= kNchwcSmallWidth) return nchwc_small<MB>(g, ps, lo, hi);
  if (g.sw == 1) return nchwc_rows<MB, true, 1>(g, ps, lo, hi);
  if (g.sw == 2) return nchwc_rows<MB, true, 2>(g, ps, lo, hi);
  nchwc_rows<MB, true, 0>(g, ps, lo, hi);
}
#else
// Portable path: every pixel over its in-bounds taps.
void nchwc_pixel(const NchwcGeometry& g, const NchwcPass& ps, const NchwcRow& r, int64_t ow) {
  const int64_t ostride = g.oh * g.ow * 8, mw = int64_t(ps.mb) * 8;
  const int64_t pix = g.blocked ? 8 : 1, ncb = g.blocked ? ps.ncb : 1;
  const int64_t tapw = ncb * g.cin * mw;
  const int64_t cstride = g.blocked ? 1 : g.ih * g.iw, bstride = g.ih * g.iw * 8;
  float acc[3 * 8];
  float* y = ps.y + (r.y_off + ow * 8);
  const float* z = ps.z ? ps.z + (r.y_off + ow * 8) : nullptr;
  for (int64_t o = 0; o < mw; ++o) {
    const int64_t at = (o / 8) * ostride + o % 8;
    acc[o] = ps.first ? (ps.bias ? ps.bias[o] : 0.f) + (z ? z[at] : 0.f) : y[at];
  }
  int64_t kw0, kw1;
  tap_range(ow * g.sw - g.pl, g.dw, g.kw, g.iw, kw0, kw1);
  for (int64_t i = 0; i < r.nkh; ++i)
    for (int64_t j = kw0; j < kw1; ++j) {
      const float* xk = ps.x + (r.x_off + i * g.dh * g.iw * pix + (ow * g.sw + j * g.dw) * pix);
      const float* w = r.w + (i * g.kw + j) * tapw;
      for (int64_t b = 0; b < ncb; ++b)
        for (int64_t c = 0; c < g.cin; ++c, w += mw) {
          const float xv = xk[b * bstride + c * cstride];
          for (int64_t o = 0; o < mw; ++o) acc[o] += w[o] * xv;
        }
    }
  for (int64_t o = 0; o < mw; ++o) {
    float v = acc[o];
    if (ps.last && ps.lohi)  // written so that NaN passes, as in the vector clamp
      v = v < ps.lohi[0] ? ps.lohi[0] : (v > ps.lohi[1] ? ps.lohi[1] : v);
    y[(o / 8) * ostride + o % 8] = v;
  }
}
#endif

void nchwc_conv_impl(const NchwcGeometry& g, const NchwcPass& ps) {
  // Interior columns [lo, hi): every kw tap inside the input row.
  int64_t lo = g.pl > 0 ? (g.pl + g.sw - 1) / g.sw : 0;
  const int64_t last = g.iw - 1 + g.pl - (g.kw - 1) * g.dw;
  int64_t hi = last < 0 ? 0 : last / g.sw + 1;
  if (lo > g.ow) lo = g.ow;
  if (hi > g.ow) hi = g.ow;
  if (hi < lo) hi = lo;
#if defined(__AVX2__)
  switch (ps.mb) {
    case 1: return nchwc_dispatch<1>(g, ps, lo, hi);
    case 2: return nchwc_dispatch<2>(g, ps, lo, hi);
    default: return nchwc_dispatch<3>(g, ps, lo, hi);
  }
#else
  (void)lo;
  (void)hi;
  const int64_t pix = g.blocked ? 8 : 1;
  const int64_t tapw = (g.blocked ? ps.ncb : 1) * g.cin * ps.mb * 8;
  for (int64_t oh = ps.oh0; oh < ps.oh1; ++oh) {
    const NchwcRow r = nchwc_row(g, ps, oh, pix, tapw);
    for (int64_t ow = ps.ow0; ow < ps.ow1; ++ow) nchwc_pixel(g, ps, r, ow);
  }
#endif
}

}  // namespace
}  // namespace conv
}  // namespace ferry
