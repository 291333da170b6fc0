// Winograd F(2x2, 3x3) input and output transforms (see winograd.h), written as loops over a
// row of tiles that the compiler vectorizes for the including file's ISA.
//
// With B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1] and A^T = [1 1 1 0; 0 1 -1 -1], a 4x4 input
// tile d becomes B^T d B and a 4x4 product m becomes the 2x2 output A^T m A. Tile t of a tile
// row reads padded columns 2t .. 2t + 3: with the row split into even (e[j] = col 2j) and odd
// (o[j] = col 2j + 1) columns, those are e[t], o[t], e[t + 1], o[t + 1], so each transform is
// a few whole-row vector additions.
#pragma once
#include <algorithm>
#include <cstring>

#include "winograd.h"

namespace ferry {
namespace conv {
namespace {

// Row transform of padded row r (may lie in the padding) into a[0..3][0, tw).
inline void wino_row(const WinogradGeometry& g, const float* x, int64_t r, int64_t tw,
                     float* __restrict e, float* __restrict o, float* __restrict a0,
                     float* __restrict a1, float* __restrict a2, float* __restrict a3) {
  const int64_t ir = r - g.pt;
  const int64_t n = tw + 1;  // even/odd columns read: j in [0, tw]
  if (ir < 0 || ir >= g.ih) {
    std::memset(a0, 0, sizeof(float) * tw);
    std::memset(a1, 0, sizeof(float) * tw);
    std::memset(a2, 0, sizeof(float) * tw);
    std::memset(a3, 0, sizeof(float) * tw);
    return;
  }
  const float* xr = x + ir * g.iw;
  // Padded column c holds input column c - pl: inside for c in [pl, pl + iw). Columns
  // [j0, j1) have both their even and odd column inside (a plain deinterleave).
  const int64_t j0 = std::min(n, (g.pl + 1) / 2);
  const int64_t last = g.iw + g.pl - 2;  // the largest 2j with column 2j + 1 inside
  const int64_t j1 = std::max(j0, std::min(n, last >= 0 ? last / 2 + 1 : 0));
  auto edge = [&](int64_t j) {
    const int64_t c0 = 2 * j - g.pl, c1 = c0 + 1;
    e[j] = (c0 >= 0 && c0 < g.iw) ? xr[c0] : 0.f;
    o[j] = (c1 >= 0 && c1 < g.iw) ? xr[c1] : 0.f;
  };
  for (int64_t j = 0; j < j0; ++j) edge(j);
  const float* __restrict xs = xr - g.pl;
  for (int64_t j = j0; j < j1; ++j) {
    e[j] = xs[2 * j];
    o[j] = xs[2 * j + 1];
  }
  for (int64_t j = j1; j < n; ++j) edge(j);
  for (int64_t t = 0; t < tw; ++t) {
    a0[t] = e[t] - e[t + 1];
    a1[t] = o[t] + e[t + 1];
    a2[t] = e[t + 1] - o[t];
    a3[t] = o[t] - o[t + 1];
  }
}

inline void winograd_input_impl(const WinogradGeometry& g, const float* x, int64_t tr0,
                                int64_t tr1, float* v, int64_t v_stride, float* scratch) {
  // Row transforms first, into even and odd padded rows apart (row 2k + u of the band at
  // k * tw in ev / od), so that tile (i, t), flat index q = (i - tr0) * tw + t, finds its four
  // rows at ev[q], od[q], ev[q + tw], od[q + tw]: the column transform is then one flat loop
  // over all tiles of the band (rows of 7-28 tiles alone are too short to vectorize).
  const int64_t tw = g.tiles_w(), nt = tr1 - tr0, tiles = nt * tw, plane = (nt + 1) * tw;
  float* e = scratch;
  float* o = e + (tw + 2);
  float* ev = o + (tw + 2);  // ev[j * plane + k * tw + t]: a_j of padded row 2 (tr0 + k)
  float* od = ev + 4 * plane;
  for (int64_t k = 0; k <= nt; ++k)
    for (int64_t u = 0; u < 2; ++u) {
      float* base = (u == 0 ? ev : od) + k * tw;
      wino_row(g, x, 2 * (tr0 + k) + u, tw, e, o, base, base + plane, base + 2 * plane,
               base + 3 * plane);
    }
  for (int j = 0; j < 4; ++j) {
    const float* __restrict e0 = ev + j * plane;
    const float* __restrict o0 = od + j * plane;
    const float* __restrict e1 = e0 + tw;
    const float* __restrict o1 = o0 + tw;
    float* __restrict v0 = v + (0 + j) * v_stride;
    float* __restrict v1 = v + (4 + j) * v_stride;
    float* __restrict v2 = v + (8 + j) * v_stride;
    float* __restrict v3 = v + (12 + j) * v_stride;
    for (int64_t q = 0; q < tiles; ++q) {
      v0[q] = e0[q] - e1[q];
      v1[q] = o0[q] + e1[q];
      v2[q] = e1[q] - o0[q];
      v3[q] = o0[q] - o1[q];
    }
  }
}

inline void winograd_output_impl(const WinogradGeometry& g, const float* m, int64_t m_stride,
                                 int64_t tr0, int64_t tr1, float bias, float* y,
                                 float* scratch) {
  // All tiles of the band in one flat loop into the four output phases, then rows.
  const int64_t tw = g.tiles_w(), tiles = (tr1 - tr0) * tw;
  float* __restrict y00 = scratch;
  float* __restrict y01 = y00 + tiles;
  float* __restrict y10 = y01 + tiles;
  float* __restrict y11 = y10 + tiles;
  {
    const float* __restrict m0 = m;
    const float* __restrict m1 = m + m_stride;
    const float* __restrict m2 = m + 2 * m_stride;
    const float* __restrict m3 = m + 3 * m_stride;
    const float* __restrict m4 = m + 4 * m_stride;
    const float* __restrict m5 = m + 5 * m_stride;
    const float* __restrict m6 = m + 6 * m_stride;
    const float* __restrict m7 = m + 7 * m_stride;
    const float* __restrict m8 = m + 8 * m_stride;
    const float* __restrict m9 = m + 9 * m_stride;
    const float* __restrict m10 = m + 10 * m_stride;
    const float* __restrict m11 = m + 11 * m_stride;
    const float* __restrict m12 = m + 12 * m_stride;
    const float* __restrict m13 = m + 13 * m_stride;
    const float* __restrict m14 = m + 14 * m_stride;
    const float* __restrict m15 = m + 15 * m_stride;
    for (int64_t q = 0; q < tiles; ++q) {
      // Along u: s0j = m0j + m1j + m2j, s1j = m1j - m2j - m3j; then along j the same.
      const float s00 = m0[q] + m4[q] + m8[q], s10 = m4[q] - m8[q] - m12[q];
      const float s01 = m1[q] + m5[q] + m9[q], s11 = m5[q] - m9[q] - m13[q];
      const float s02 = m2[q] + m6[q] + m10[q], s12 = m6[q] - m10[q] - m14[q];
      const float s03 = m3[q] + m7[q] + m11[q], s13 = m7[q] - m11[q] - m15[q];
      y00[q] = s00 + s01 + s02 + bias;
      y01[q] = s01 - s02 - s03 + bias;
      y10[q] = s10 + s11 + s12 + bias;
      y11[q] = s11 - s12 - s13 + bias;
    }
  }
  // Interleave the even and odd output columns; an odd ow drops the last odd column.
  const int64_t pairs = g.ow / 2;
  for (int64_t i = tr0; i < tr1; ++i) {
    const int64_t oh0 = 2 * i, base = (i - tr0) * tw;
    float* row0 = y + oh0 * g.ow;
    const float* __restrict a = y00 + base;
    const float* __restrict b = y01 + base;
    for (int64_t t = 0; t < pairs; ++t) {
      row0[2 * t] = a[t];
      row0[2 * t + 1] = b[t];
    }
    if (g.ow & 1) row0[g.ow - 1] = a[pairs];
    if (oh0 + 1 < g.oh) {
      float* row1 = row0 + g.ow;
      const float* __restrict c = y10 + base;
      const float* __restrict d = y11 + base;
      for (int64_t t = 0; t < pairs; ++t) {
        row1[2 * t] = c[t];
        row1[2 * t + 1] = d[t];
      }
      if (g.ow & 1) row1[g.ow - 1] = c[pairs];
    }
  }
}

}  // namespace
}  // namespace conv
}  // namespace ferry
