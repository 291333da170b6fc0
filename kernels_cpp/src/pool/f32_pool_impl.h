// Pooling loops over the simd.h vector type, instantiated by each ISA file with its own
// flags: window pools vectorized along the output row, global reductions with several vector
// accumulators.
#pragma once
#include "ferry/simd.h"
#include "table.h"

#include <algorithm>
#include <cstring>
#include <vector>

namespace ferry {
namespace pool {
namespace {

using namespace ::ferry::simd;

// One output of a window pool, every tap checked against the input's bounds (borders).
template <bool Max> inline float pool_one(const float* x, const Geometry& g, int64_t oh,
                                          int64_t ow) {
  float acc = Max ? -__builtin_inff() : 0.0f;
  for (int64_t kh = 0; kh < g.KH; ++kh) {
    const int64_t ih = oh * g.SH - g.PT + kh * g.DH;
    if (ih < 0 || ih >= g.H) continue;
    for (int64_t kw = 0; kw < g.KW; ++kw) {
      const int64_t iw = ow * g.SW - g.PL + kw * g.DW;
      if (iw < 0 || iw >= g.W) continue;
      const float v = x[ih * g.W + iw];
      acc = Max ? vmax(acc, v) : acc + v;  // vmax: the vector path's NaN rule
    }
  }
  return acc;
}

template <bool Max> inline Vec pool_op(Vec a, Vec b) { return Max ? vmax(a, b) : a + b; }

// Stride 2 loads the even elements in the ISA's raw lane order (fixed once per block).
template <int SW> inline Vec pool_load(const float* p) {
  return SW == 1 ? L<Vec>(p) : LER<Vec>(p);
}

// One border output from the valid kernel rows' offsets: only the taps inside the row.
template <bool Max> inline float pool_border(const float* x, const int64_t* off, int64_t nrows,
                                             int64_t ow, const Geometry& g) {
  const int64_t first = ow * g.SW - g.PL;  // input column of tap 0
  int64_t k0 = first >= 0 ? 0 : (-first + g.DW - 1) / g.DW;
  int64_t k1 = g.W - first <= 0 ? 0 : (g.W - first - 1) / g.DW + 1;
  if (k1 > g.KW) k1 = g.KW;
  float acc = Max ? -__builtin_inff() : 0.0f;
  for (int64_t r = 0; r < nrows; ++r) {
    const float* p = x + off[r] + first;
    for (int64_t kw = k0; kw < k1; ++kw) acc = Max ? vmax(acc, p[kw * g.DW]) : acc + p[kw * g.DW];
  }
  return acc;
}

// NB (1 or 2) blocks of w output columns; block j's tap kw of kernel row r is read at
// base + off[r] + j * SW * w + kw * dw. KW > 0 fixes the kernel width at compile time (the
// tap loop unrolls); 0 takes kwn. Each block keeps two accumulators (alternate taps):
// independent chains hide the max/add latency.
template <bool Max, int NB, int SW, int KW>
inline void pool_blocks(const float* base, const int64_t* off, int64_t nrows, int64_t kwn,
                        int64_t dw, Vec* out) {
  constexpr int w = W<Vec>();
  const int64_t k = KW > 0 ? KW : kwn;
  const Vec init = C<Vec>(Max ? -__builtin_inff() : 0.0f);
  Vec a0 = init, a1 = init, b0 = init, b1 = init;
  for (int64_t r = 0; r < nrows; ++r) {
    const float* p = base + off[r];
    int64_t kw = 0;
    for (; kw + 1 < k; kw += 2) {
      a0 = pool_op<Max>(a0, pool_load<SW>(p + kw * dw));
      a1 = pool_op<Max>(a1, pool_load<SW>(p + (kw + 1) * dw));
      if (NB == 2) {
        b0 = pool_op<Max>(b0, pool_load<SW>(p + SW * w + kw * dw));
        b1 = pool_op<Max>(b1, pool_load<SW>(p + SW * w + (kw + 1) * dw));
      }
    }
    if (kw < k) {
      a0 = pool_op<Max>(a0, pool_load<SW>(p + kw * dw));
      if (NB == 2) b0 = pool_op<Max>(b0, pool_load<SW>(p + SW * w + kw * dw));
    }
  }
  out[0] = pool_op<Max>(a0, a1);
  if (NB == 2) out[1] = pool_op<Max>(b0, b1);
  if (SW == 2) {
    out[0] = fix_even(out[0]);
    if (NB == 2) out[1] = fix_even(out[1]);
  }
}

// The vector blocks of one output row: pairs, then single blocks, the last one shifted back
// to end at `end` (recomputing a few outputs rather than going scalar).
template <bool Max, int SW, int KW>
void pool_row_blocks(const float* x, float* yr, const int64_t* off, int64_t nrows,
                     int64_t begin, int64_t end, const float* count_w, float ch,
                     const Geometry& g) {
  constexpr int w = W<Vec>();
  const Vec vch = C<Vec>(ch);
  auto finish = [&](int64_t ow, Vec acc) {
    if (!Max) {
      const Vec c = vch * L<Vec>(count_w + ow);
      acc = select(eq(c, C<Vec>(0.0f)), C<Vec>(0.0f), acc / c);
    }
    store(yr + ow, acc);
  };
  Vec out[2];
  int64_t ow = begin;
  for (; ow + 2 * w <= end; ow += 2 * w) {
    pool_blocks<Max, 2, SW, KW>(x + ow * SW - g.PL, off, nrows, g.KW, g.DW, out);
    finish(ow, out[0]);
    finish(ow + w, out[1]);
  }
  while (ow < end) {
    const int64_t b = ow + w <= end ? ow : end - w;
    pool_blocks<Max, 1, SW, KW>(x + b * SW - g.PL, off, nrows, g.KW, g.DW, out);
    finish(b, out[0]);
    ow = b + w;
  }
}

// MaxPool (Max) or the window sums of AveragePool for one plane. For strides 1 and 2 the
// output columns whose taps all lie inside the input row are computed a vector at a time,
// every tap accumulated in registers (stride 2 deinterleaves two loaded vectors); kernel
// rows outside the input are skipped. The few border columns, and other strides, go one
// output at a time. Sums are divided by count_h[oh] * count_w[ow] (0 where that is 0).
template <bool Max> void pool_plane(const float* x, float* y, const float* count_h,
                                    const float* count_w, const Geometry& g) {
  constexpr int w = W<Vec>();
  const int64_t span = (g.KW - 1) * g.DW;
  // [owa, owb): output columns a vector block may cover. A block starting at ow reads input
  // columns [ow * SW - PL, ow * SW - PL + SW * w + span) (stride 2 reads one past its last
  // tap).
  int64_t owa = (g.PL + g.SW - 1) / g.SW, owb = 0;
  const int64_t room = g.W + g.PL - span - g.SW * w;  // ow * SW <= room for a block at ow
  if (room >= 0) owb = room / g.SW + w;
  if (owa > g.OW) owa = g.OW;
  if (owb > g.OW) owb = g.OW;
  const bool vec = (g.SW == 1 || g.SW == 2) && w > 1 && g.KH <= 64 && owb - owa >= w;
  int64_t off[64];
  for (int64_t oh = 0; oh < g.OH; ++oh) {
    float* yr = y + oh * g.OW;
    const float ch = Max ? 1.0f : count_h[oh];
    auto scalar = [&](int64_t o0, int64_t o1) {
      for (int64_t ow = o0; ow < o1; ++ow) {
        const float v = pool_one<Max>(x, g, oh, ow);
        const float c = ch * (Max ? 1.0f : count_w[ow]);
        yr[ow] = Max ? v : (c > 0.0f ? v / c : 0.0f);
      }
    };
    if (!vec || (!Max && ch <= 0.0f)) {
      scalar(0, g.OW);
      continue;
    }
    int64_t nrows = 0;
    for (int64_t kh = 0; kh < g.KH; ++kh) {
      const int64_t ih = oh * g.SH - g.PT + kh * g.DH;
      if (ih >= 0 && ih < g.H) off[nrows++] = ih * g.W;
    }
    auto border = [&](int64_t o0, int64_t o1) {
      for (int64_t ow = o0; ow < o1; ++ow) {
        const float v = pool_border<Max>(x, off, nrows, ow, g);
        const float c = ch * (Max ? 1.0f : count_w[ow]);
        yr[ow] = Max ? v : (c > 0.0f ? v / c : 0.0f);
      }
    };
    border(0, owa);
    if (g.SW == 1) {
      if (g.KW == 3)
        pool_row_blocks<Max, 1, 3>(x, yr, off, nrows, owa, owb, count_w, ch, g);
      else if (g.KW == 2)
        pool_row_blocks<Max, 1, 2>(x, yr, off, nrows, owa, owb, count_w, ch, g);
      else
        pool_row_blocks<Max, 1, 0>(x, yr, off, nrows, owa, owb, count_w, ch, g);
    } else {
      if (g.KW == 3)
        pool_row_blocks<Max, 2, 3>(x, yr, off, nrows, owa, owb, count_w, ch, g);
      else if (g.KW == 2)
        pool_row_blocks<Max, 2, 2>(x, yr, off, nrows, owa, owb, count_w, ch, g);
      else
        pool_row_blocks<Max, 2, 0>(x, yr, off, nrows, owa, owb, count_w, ch, g);
    }
    border(owb, g.OW);
  }
}

// Grow-only scratch of this thread (the padded plane and the row-pass results).
inline float* pool_scratch(size_t n) {
  thread_local std::vector<float> buf;
  if (buf.size() < n) buf.resize(n);
  return buf.data();
}

// Separable form for small planes, where a vector along one output row is mostly border:
// the plane is copied once into a padded buffer (-inf or 0 outside), the kernel row pass
// runs over the whole padded plane as one flat vector loop (stride 1 along the row; the
// columns a row does not need are junk), then the column pass combines kernel rows for each
// output row and picks every SW-th column. Everything vectorized, no per-tap bounds checks.
template <bool Max> void pool_plane_sep(const float* x, float* y, const float* count_h,
                                        const float* count_w, const Geometry& g) {
  constexpr int w = W<Vec>();
  const float init = Max ? -__builtin_inff() : 0.0f;
  const int64_t Wp = (g.OW - 1) * g.SW + (g.KW - 1) * g.DW + 1;  // input cols -PL ..
  const int64_t Hp = (g.OH - 1) * g.SH + (g.KH - 1) * g.DH + 1;  // input rows -PT ..
  const int64_t cols = (g.OW - 1) * g.SW + 1;  // row-pass columns needed per row
  float* pad = pool_scratch(size_t(2 * Hp * Wp + 2 * Wp + 2 * w));
  float* hz = pad + Hp * Wp + w;
  for (int64_t r = 0; r < Hp; ++r) {
    const int64_t ih = r - g.PT;
    float* d = pad + r * Wp;
    if (ih < 0 || ih >= g.H) {
      for (int64_t c = 0; c < Wp; ++c) d[c] = init;
      continue;
    }
    const int64_t c0 = std::min<int64_t>(Wp, std::max<int64_t>(0, g.PL));  // first in-row col
    const int64_t c1 = std::min<int64_t>(Wp, std::max<int64_t>(c0, g.PL + g.W));
    for (int64_t c = 0; c < c0; ++c) d[c] = init;
    std::memcpy(d + c0, x + ih * g.W + (c0 - g.PL), sizeof(float) * (c1 - c0));
    for (int64_t c = c1; c < Wp; ++c) d[c] = init;
  }
  // Row pass: hz[i] = op over kw of pad[i + kw * DW], i over the flat padded plane.
  const int64_t n = (Hp - 1) * Wp + cols;
  int64_t i = 0;
  for (; i + w <= n; i += w) {
    Vec a = L<Vec>(pad + i);
    for (int64_t kw = 1; kw < g.KW; ++kw) a = pool_op<Max>(a, L<Vec>(pad + i + kw * g.DW));
    store(hz + i, a);
  }
  for (; i < n; ++i) {
    float a = pad[i];
    for (int64_t kw = 1; kw < g.KW; ++kw)
      a = Max ? vmax(a, pad[i + kw * g.DW]) : a + pad[i + kw * g.DW];
    hz[i] = a;
  }
  // Column pass. Stride-1 rows: one flat vector loop over the output rows at the padded
  // width (into the padded buffer, no longer needed), then the OW real columns of each row
  // are divided by their counts.
  if (g.SH == 1 && g.SW == 1) {
    const int64_t m = (g.OH - 1) * Wp + g.OW;
    const int64_t step = g.DH * Wp;
    int64_t j = 0;
    const bool flat_div = !Max && g.den;  // divide whole vectors by the padded divisors
    for (; j + w <= m; j += w) {
      Vec a = L<Vec>(hz + j);
      for (int64_t kh = 1; kh < g.KH; ++kh) a = pool_op<Max>(a, L<Vec>(hz + j + kh * step));
      if (flat_div) a = a / L<Vec>(g.den + j);
      store(pad + j, a);
    }
    for (; j < m; ++j) {
      float a = hz[j];
      for (int64_t kh = 1; kh < g.KH; ++kh)
        a = Max ? vmax(a, hz[j + kh * step]) : a + hz[j + kh * step];
      pad[j] = flat_div ? a / g.den[j] : a;
    }
    for (int64_t oh = 0; oh < g.OH; ++oh) {
      const float* src = pad + oh * Wp;
      float* yr = y + oh * g.OW;
      if (Max || flat_div) {
        std::memcpy(yr, src, sizeof(float) * g.OW);
        continue;
      }
      const float ch = count_h[oh];
      for (int64_t ow = 0; ow < g.OW; ++ow) {
        const float c = ch * count_w[ow];
        yr[ow] = c > 0.0f ? src[ow] / c : 0.0f;
      }
    }
    return;
  }
  for (int64_t oh = 0; oh < g.OH; ++oh) {
    const float* src = hz + oh * g.SH * Wp;
    float* yr = y + oh * g.OW;
    const float ch = Max ? 1.0f : count_h[oh];
    for (int64_t ow = 0; ow < g.OW; ++ow) {
      const int64_t c = ow * g.SW;
      float a = src[c];
      for (int64_t kh = 1; kh < g.KH; ++kh)
        a = Max ? vmax(a, src[kh * g.DH * Wp + c]) : a + src[kh * g.DH * Wp + c];
      if (!Max) {
        const float cnt = ch * count_w[ow];
        a = cnt > 0.0f ? a / cnt : 0.0f;
      }
      yr[ow] = a;
    }
  }
}

// Whether the separable form is used: rows shorter than a vector (the row form is all
// scalar there), or stride-1 rows shorter than two (mostly border). Longer rows vectorize
// along the row with no junk columns (measured: 2x faster at 28 wide).
inline bool use_separable(const Geometry& g) {
  if (g.OH <= 0 || g.OW <= 0 || g.KH * g.KW < 2) return false;
  const int64_t Wp = (g.OW - 1) * g.SW + (g.KW - 1) * g.DW + 1;
  const int64_t Hp = (g.OH - 1) * g.SH + (g.KH - 1) * g.DH + 1;
  if (Wp * Hp > (int64_t(1) << 20)) return false;
  return g.OW < W<Vec>() || (g.SW == 1 && g.OW < 2 * W<Vec>());
}

void max_plane(const float* x, float* y, int64_t* ind, int64_t base, bool col_major,
               const Geometry& g) {
  if (!ind) {
    if (use_separable(g))
      pool_plane_sep<true>(x, y, nullptr, nullptr, g);
    else
      pool_plane<true>(x, y, nullptr, nullptr, g);
    return;
  }
  // With indices: one output at a time, the first maximum in window order.
  for (int64_t oh = 0; oh < g.OH; ++oh) {
    for (int64_t ow = 0; ow < g.OW; ++ow) {
      float best = -__builtin_inff();
      int64_t at = -1;
      for (int64_t kh = 0; kh < g.KH; ++kh) {
        const int64_t ih = oh * g.SH - g.PT + kh * g.DH;
        if (ih < 0 || ih >= g.H) continue;
        for (int64_t kw = 0; kw < g.KW; ++kw) {
          const int64_t iw = ow * g.SW - g.PL + kw * g.DW;
          if (iw < 0 || iw >= g.W) continue;
          const float v = x[ih * g.W + iw];
          if (at < 0 || v > best) {
            best = v;
            at = col_major ? iw * g.H + ih : ih * g.W + iw;
          }
        }
      }
      y[oh * g.OW + ow] = best;
      // A window entirely in padding points at the plane's first element.
      ind[oh * g.OW + ow] = base + (at < 0 ? 0 : at);
    }
  }
}

void avg_plane(const float* x, float* y, const float* count_h, const float* count_w,
               const Geometry& g) {
  if (use_separable(g))
    pool_plane_sep<false>(x, y, count_h, count_w, g);
  else
    pool_plane<false>(x, y, count_h, count_w, g);
}

float sum_n(const float* x, int64_t n) {
  constexpr int w = W<Vec>();
  Vec a0 = C<Vec>(0.0f), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + 4 * w <= n; i += 4 * w) {
    a0 = a0 + L<Vec>(x + i);
    a1 = a1 + L<Vec>(x + i + w);
    a2 = a2 + L<Vec>(x + i + 2 * w);
    a3 = a3 + L<Vec>(x + i + 3 * w);
  }
  for (; i + w <= n; i += w) a0 = a0 + L<Vec>(x + i);
  float s = hsum((a0 + a1) + (a2 + a3));
  for (; i < n; ++i) s += x[i];
  return s;
}

float max_n(const float* x, int64_t n) {
  constexpr int w = W<Vec>();
  const float ninf = -__builtin_inff();
  Vec a0 = C<Vec>(ninf), a1 = a0;
  int64_t i = 0;
  for (; i + 2 * w <= n; i += 2 * w) {
    a0 = vmax(a0, L<Vec>(x + i));
    a1 = vmax(a1, L<Vec>(x + i + w));
  }
  for (; i + w <= n; i += w) a0 = vmax(a0, L<Vec>(x + i));
  float m = hmax(vmax(a0, a1));
  for (; i < n; ++i) m = x[i] > m ? x[i] : m;
  return m;
}

// Eight planes interleaved ([position][8 planes], -inf or 0 around them) by 8x8 register
// transposes: every tap is one unconditional 8-wide max / add whatever the plane size (the
// depthwise conv's 8-channel form); the results are transposed back.
void block8(const float* x, int64_t s_in, float* y, int64_t s_out, bool max,
            const float* count_h, const float* count_w, const Geometry& g, float* tmp) {
  const int64_t HP = (g.OH - 1) * g.SH + (g.KH - 1) * g.DH + 1;
  const int64_t WP = (g.OW - 1) * g.SW + (g.KW - 1) * g.DW + 1;
  float* xi = tmp;
  float* yo = tmp + HP * WP * 8;
  const float fill = max ? -__builtin_inff() : 0.0f;
  interleave8_padded(x, s_in, g.H, g.W, g.PT, g.PL, HP, WP, fill, xi);
  for (int64_t oh = 0; oh < g.OH; ++oh)
    for (int64_t ow = 0; ow < g.OW; ++ow) {
      const float* xb = xi + (oh * g.SH * WP + ow * g.SW) * 8;
      float* o = yo + (oh * g.OW + ow) * 8;
      const float c = max ? 1.0f : count_h[oh] * count_w[ow];
#if defined(__AVX2__)
      __m256 acc = _mm256_set1_ps(fill);
      for (int64_t kh = 0; kh < g.KH; ++kh)
        for (int64_t kw = 0; kw < g.KW; ++kw) {
          const __m256 v = _mm256_loadu_ps(xb + (kh * g.DH * WP + kw * g.DW) * 8);
          acc = max ? _mm256_max_ps(acc, v) : _mm256_add_ps(acc, v);  // pool_one's NaN rule
        }
      if (!max)
        acc = c > 0.0f ? _mm256_div_ps(acc, _mm256_set1_ps(c)) : _mm256_setzero_ps();
      _mm256_storeu_ps(o, acc);
#else
      for (int64_t l = 0; l < 8; ++l) {
        float acc = fill;
        for (int64_t kh = 0; kh < g.KH; ++kh)
          for (int64_t kw = 0; kw < g.KW; ++kw) {
            const float v = xb[(kh * g.DH * WP + kw * g.DW) * 8 + l];
            acc = max ? (acc > v ? acc : v) : acc + v;
          }
        o[l] = max ? acc : (c > 0.0f ? acc / c : 0.0f);
      }
#endif
    }
  deinterleave8(yo, 8, g.OH * g.OW, y, s_out);
}

Table make_table() { return Table{max_plane, avg_plane, sum_n, max_n, block8}; }

}  // namespace
}  // namespace pool
}  // namespace ferry
