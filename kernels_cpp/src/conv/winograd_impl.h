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
  const int64_t tw = g.tiles_w(), rows = 2 * (tr1 - tr0) + 2, ld = tw + 1;
  float* e = scratch;
  float* o = e + (tw + 2);
  float* a = o + (tw + 2);  // a[(row * 4 + j) * ld + t]
  for (int64_t q = 0; q < rows; ++q) {
    float* aq = a + q * 4 * ld;
    wino_row(g, x, 2 * tr0 + q, tw, e, o, aq, aq + ld, aq + 2 * ld, aq + 3 * ld);
  }
  for (int64_t i = tr0; i < tr1; ++i) {
    const float* r0 = a + (2 * (i - tr0)) * 4 * ld;
    const float* r1 = r0 + 4 * ld;
    const float* r2 = r1 + 4 * ld;
    const float* r3 = r2 + 4 * ld;
    const int64_t base = (i - tr0) * tw;
    for (int j = 0; j < 4; ++j) {
      const float* __restrict p0 = r0 + j * ld;
      const float* __restrict p1 = r1 + j * ld;
      const float* __restrict p2 = r2 + j * ld;
      const float* __restrict p3 = r3 + j * ld;
      float* __restrict v0 = v + (0 + j) * v_stride + base;
      float* __restrict v1 = v + (4 + j) * v_stride + base;
      float* __restrict v2 = v + (8 + j) * v_stride + base;
      float* __restrict v3 = v + (12 + j) * v_stride + base;
      for (int64_t t = 0; t < tw; ++t) {
        v0[t] = p0[t] - p2[t];
        v1[t] = p1[t] + p2[t];
        v2[t] = p2[t] - p1[t];
        v3[t] = p1[t] - p3[t];
      }
    }
  }
}

inline void winograd_output_impl(const WinogradGeometry& g, const float* m, int64_t m_stride,
                                 int64_t tr0, int64_t tr1, float bias, float* y,
                                 float* scratch) {
  const int64_t tw = g.tiles_w();
  float* __restrict y00 = scratch;
  float* __restrict y01 = y00 + tw;
  float* __restrict y10 = y01 + tw;
  float* __restrict y11 = y10 + tw;
  for (int64_t i = tr0; i < tr1; ++i) {
    const int64_t base = (i - tr0) * tw;
    const float* mm[16];
    for (int xi = 0; xi < 16; ++xi) mm[xi] = m + xi * m_stride + base;
    for (int64_t t = 0; t < tw; ++t) {
      // Along u: s0j = m0j + m1j + m2j, s1j = m1j - m2j - m3j; then along j the same.
      const float s00 = mm[0][t] + mm[4][t] + mm[8][t], s10 = mm[4][t] - mm[8][t] - mm[12][t];
      const float s01 = mm[1][t] + mm[5][t] + mm[9][t], s11 = mm[5][t] - mm[9][t] - mm[13][t];
      const float s02 = mm[2][t] + mm[6][t] + mm[10][t], s12 = mm[6][t] - mm[10][t] - mm[14][t];
      const float s03 = mm[3][t] + mm[7][t] + mm[11][t], s13 = mm[7][t] - mm[11][t] - mm[15][t];
      y00[t] = s00 + s01 + s02 + bias;
      y01[t] = s01 - s02 - s03 + bias;
      y10[t] = s10 + s11 + s12 + bias;
      y11[t] = s11 - s12 - s13 + bias;
    }
    // Interleave the even and odd output columns; an odd ow drops the last odd column.
    const int64_t oh0 = 2 * i;
    float* row0 = y + oh0 * g.ow;
    const int64_t pairs = g.ow / 2;
    for (int64_t t = 0; t < pairs; ++t) {
      row0[2 * t] = y00[t];
      row0[2 * t + 1] = y01[t];
    }
    if (g.ow & 1) row0[g.ow - 1] = y00[pairs];
    if (oh0 + 1 < g.oh) {
      float* row1 = row0 + g.ow;
      for (int64_t t = 0; t < pairs; ++t) {
        row1[2 * t] = y10[t];
        row1[2 * t + 1] = y11[t];
      }
      if (g.ow & 1) row1[g.ow - 1] = y10[pairs];
    }
  }
}

}  // namespace
}  // namespace conv
}  // namespace ferry
