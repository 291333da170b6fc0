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

// F(4x4, 3x3). B^T rows: [4 0 -5 0 1 0], [0 -4 -4 1 1 0], [0 4 -4 -1 1 0], [0 -2 -1 2 1 0],
// [0 2 -1 -2 1 0], [0 4 0 -5 0 1]; A^T rows: [1 1 1 1 1 0], [0 1 -1 2 -2 0], [0 1 1 4 4 0],
// [0 1 -1 8 -8 1]. Tile t reads padded columns 4t .. 4t + 5: with the row split into its four
// column phases (p_q[j] = col 4j + q), those are p0[t] .. p3[t], p0[t + 1], p1[t + 1].
#define FERRY_WINO4_BT(d0, d1, d2, d3, d4, d5, o0, o1, o2, o3, o4, o5) \
  do {                                                                  \
    const float t_a = d4 - 4.f * d2, t_b = d3 - 4.f * d1;               \
    const float t_c = d4 - d2, t_d = 2.f * (d3 - d1);                   \
    o0 = 4.f * d0 - 5.f * d2 + d4;                                      \
    o1 = t_a + t_b;                                                     \
    o2 = t_a - t_b;                                                     \
    o3 = t_c + t_d;                                                     \
    o4 = t_c - t_d;                                                     \
    o5 = 4.f * d1 - 5.f * d3 + d5;                                      \
  } while (0)

inline void wino4_row(const WinogradGeometry& g, const float* x, int64_t r, int64_t tw,
                      float* const* ph, float* const* a) {
  const int64_t ir = r - g.pt, n = tw + 1;  // column phases read: j in [0, tw]
  if (ir < 0 || ir >= g.ih) {
    for (int k = 0; k < 6; ++k)
      for (int64_t t = 0; t < tw; ++t) a[k][t] = 0.f;
    return;
  }
  const float* xr = x + ir * g.iw;
  // Columns [j0, j1) have all four phases inside the input; the others are checked.
  const int64_t j0 = std::min(n, (g.pl + 3) / 4);
  const int64_t last = g.iw + g.pl - 4;  // the largest 4j with column 4j + 3 inside
  const int64_t j1 = std::max(j0, std::min(n, last >= 0 ? last / 4 + 1 : 0));
  for (int64_t j = 0; j < n; ++j) {
    if (j == j0) j = j1;
    if (j >= n) break;
    for (int q = 0; q < 4; ++q) {
      const int64_t c = 4 * j + q - g.pl;
      ph[q][j] = (c >= 0 && c < g.iw) ? xr[c] : 0.f;
    }
  }
  const float* __restrict xs = xr - g.pl;
  float* __restrict p0 = ph[0];
  float* __restrict p1 = ph[1];
  float* __restrict p2 = ph[2];
  float* __restrict p3 = ph[3];
  for (int64_t j = j0; j < j1; ++j) {
    p0[j] = xs[4 * j];
    p1[j] = xs[4 * j + 1];
    p2[j] = xs[4 * j + 2];
    p3[j] = xs[4 * j + 3];
  }
  float* __restrict a0 = a[0];
  float* __restrict a1 = a[1];
  float* __restrict a2 = a[2];
  float* __restrict a3 = a[3];
  float* __restrict a4 = a[4];
  float* __restrict a5 = a[5];
  for (int64_t t = 0; t < tw; ++t)
    FERRY_WINO4_BT(p0[t], p1[t], p2[t], p3[t], p0[t + 1], p1[t + 1], a0[t], a1[t], a2[t],
                   a3[t], a4[t], a5[t]);
}

inline void winograd4_input_impl(const WinogradGeometry& g, const float* x, int64_t tr0,
                                 int64_t tr1, float* v, int64_t v_stride, float* scratch) {
  // Row transforms into four arrays by padded row phase (row 4k + q of the band at k * tw in
  // rq[q], one array per output j), so that tile row i finds its six rows at flat offsets
  // q' and q' + tw: the column transform is one flat loop over the band's tiles.
  const int64_t tw = g.tiles_w(), nt = tr1 - tr0, tiles = nt * tw, plane = (nt + 1) * tw;
  float* ph[4];
  for (int q = 0; q < 4; ++q) ph[q] = scratch + q * (tw + 2);
  float* rq = scratch + 4 * (tw + 2);  // rq[(q * 6 + j) * plane + k * tw + t]
  for (int64_t k = 0; k <= nt; ++k)
    for (int q = 0; q < 4; ++q) {
      if (k == nt && q >= 2) break;  // the last tile row reads rows 4 nt .. 4 nt + 1 only
      float* a[6];
      for (int j = 0; j < 6; ++j) a[j] = rq + (q * 6 + j) * plane + k * tw;
      wino4_row(g, x, 4 * (tr0 + k) + q, tw, ph, a);
    }
  for (int j = 0; j < 6; ++j) {
    const float* __restrict d0 = rq + (0 * 6 + j) * plane;
    const float* __restrict d1 = rq + (1 * 6 + j) * plane;
    const float* __restrict d2 = rq + (2 * 6 + j) * plane;
    const float* __restrict d3 = rq + (3 * 6 + j) * plane;
    const float* __restrict d4 = d0 + tw;
    const float* __restrict d5 = d1 + tw;
    float* __restrict v0 = v + (0 + j) * v_stride;
    float* __restrict v1 = v + (6 + j) * v_stride;
    float* __restrict v2 = v + (12 + j) * v_stride;
    float* __restrict v3 = v + (18 + j) * v_stride;
    float* __restrict v4 = v + (24 + j) * v_stride;
    float* __restrict v5 = v + (30 + j) * v_stride;
    for (int64_t q = 0; q < tiles; ++q)
      FERRY_WINO4_BT(d0[q], d1[q], d2[q], d3[q], d4[q], d5[q], v0[q], v1[q], v2[q], v3[q],
                     v4[q], v5[q]);
  }
}

inline void winograd4_output_impl(const WinogradGeometry& g, const float* m, int64_t m_stride,
                                  int64_t tr0, int64_t tr1, float bias, float* y,
                                  float* scratch) {
  // All tiles of the band in flat loops into the 16 output phases (A^T along u for each j,
  // then along j), then rows.
  const int64_t tw = g.tiles_w(), tiles = (tr1 - tr0) * tw;
  float* s = scratch;  // s[(a * 6 + j) * tiles + q]: A^T along u, row a of the tile
  float* yo = scratch + 24 * tiles;  // yo[(a * 4 + b) * tiles + q]
  for (int j = 0; j < 6; ++j) {
    const float* __restrict m0 = m + (0 + j) * m_stride;
    const float* __restrict m1 = m + (6 + j) * m_stride;
    const float* __restrict m2 = m + (12 + j) * m_stride;
    const float* __restrict m3 = m + (18 + j) * m_stride;
    const float* __restrict m4 = m + (24 + j) * m_stride;
    const float* __restrict m5 = m + (30 + j) * m_stride;
    float* __restrict s0 = s + (0 * 6 + j) * tiles;
    float* __restrict s1 = s + (1 * 6 + j) * tiles;
    float* __restrict s2 = s + (2 * 6 + j) * tiles;
    float* __restrict s3 = s + (3 * 6 + j) * tiles;
    for (int64_t q = 0; q < tiles; ++q) {
      const float p12 = m1[q] + m2[q], d12 = m1[q] - m2[q];
      const float p34 = m3[q] + m4[q], d34 = m3[q] - m4[q];
      s0[q] = m0[q] + p12 + p34;
      s1[q] = d12 + 2.f * d34;
      s2[q] = p12 + 4.f * p34;
      s3[q] = d12 + 8.f * d34 + m5[q];
    }
  }
  for (int a = 0; a < 4; ++a) {
    const float* __restrict t0 = s + (a * 6 + 0) * tiles;
    const float* __restrict t1 = s + (a * 6 + 1) * tiles;
    const float* __restrict t2 = s + (a * 6 + 2) * tiles;
    const float* __restrict t3 = s + (a * 6 + 3) * tiles;
    const float* __restrict t4 = s + (a * 6 + 4) * tiles;
    const float* __restrict t5 = s + (a * 6 + 5) * tiles;
    float* __restrict y0 = yo + (a * 4 + 0) * tiles;
    float* __restrict y1 = yo + (a * 4 + 1) * tiles;
    float* __restrict y2 = yo + (a * 4 + 2) * tiles;
    float* __restrict y3 = yo + (a * 4 + 3) * tiles;
    for (int64_t q = 0; q < tiles; ++q) {
      const float p12 = t1[q] + t2[q], d12 = t1[q] - t2[q];
      const float p34 = t3[q] + t4[q], d34 = t3[q] - t4[q];
      y0[q] = t0[q] + p12 + p34 + bias;
      y1[q] = d12 + 2.f * d34 + bias;
      y2[q] = p12 + 4.f * p34 + bias;
      y3[q] = d12 + 8.f * d34 + t5[q] + bias;
    }
  }
  // Rows: output (4i + a, 4t + b) = yo[a * 4 + b][(i - tr0) * tw + t]; partial tiles at the
  // right and bottom edges drop their extra columns / rows.
  for (int64_t i = tr0; i < tr1; ++i)
    for (int a = 0; a < 4; ++a) {
      const int64_t oh = 4 * i + a;
      if (oh >= g.oh) break;
      float* row = y + oh * g.ow;
      const int64_t base = (i - tr0) * tw;
      const float* __restrict c0 = yo + (a * 4 + 0) * tiles + base;
      const float* __restrict c1 = yo + (a * 4 + 1) * tiles + base;
      const float* __restrict c2 = yo + (a * 4 + 2) * tiles + base;
      const float* __restrict c3 = yo + (a * 4 + 3) * tiles + base;
      const int64_t full = g.ow / 4;
      for (int64_t t = 0; t < full; ++t) {
        row[4 * t] = c0[t];
        row[4 * t + 1] = c1[t];
        row[4 * t + 2] = c2[t];
        row[4 * t + 3] = c3[t];
      }
      const float* cs[4] = {c0, c1, c2, c3};
      for (int64_t b = 0; 4 * full + b < g.ow; ++b) row[4 * full + b] = cs[b][full];
    }
}

#undef FERRY_WINO4_BT

}  // namespace
}  // namespace conv
}  // namespace ferry
