// Pooling loops, instantiated by each ISA file with its own flags. The window loops are plain
// C++ that the compiler vectorizes along the output row (stride-1 rows are contiguous); the
// global reductions use simd.h vectors with several accumulators.
#pragma once
#include "ferry/simd.h"
#include "table.h"

namespace ferry {
namespace pool {
namespace {

using namespace ::ferry::simd;

// The output columns [lo, hi) whose tap at input offset `off` (iw = ow * sw + off) is inside
// [0, w).
inline void tap_range(int64_t off, int64_t sw, int64_t w, int64_t ow_n, int64_t& lo,
                      int64_t& hi) {
  lo = off >= 0 ? 0 : (-off + sw - 1) / sw;
  const int64_t last = w - 1 - off;  // ow * sw <= last
  hi = last < 0 ? 0 : last / sw + 1;
  if (hi > ow_n) hi = ow_n;
  if (lo > hi) lo = hi;
}

void max_plane(const float* x, float* y, int64_t* ind, int64_t base, bool col_major,
               const Geometry& g) {
  const float ninf = -__builtin_inff();
  for (int64_t oh = 0; oh < g.OH; ++oh) {
    float* __restrict yr = y + oh * g.OW;
    int64_t* ir = ind ? ind + oh * g.OW : nullptr;
    for (int64_t ow = 0; ow < g.OW; ++ow) yr[ow] = ninf;
    if (ir)
      for (int64_t ow = 0; ow < g.OW; ++ow) ir[ow] = -1;
    for (int64_t kh = 0; kh < g.KH; ++kh) {
      const int64_t ih = oh * g.SH - g.PT + kh * g.DH;
      if (ih < 0 || ih >= g.H) continue;
      const float* __restrict xr = x + ih * g.W;
      for (int64_t kw = 0; kw < g.KW; ++kw) {
        const int64_t off = kw * g.DW - g.PL;
        int64_t lo, hi;
        tap_range(off, g.SW, g.W, g.OW, lo, hi);
        if (ir) {
          for (int64_t ow = lo; ow < hi; ++ow) {
            const int64_t iw = ow * g.SW + off;
            const float v = xr[iw];
            if (v > yr[ow] || ir[ow] < 0) {  // strict: the first maximum wins
              yr[ow] = v;
              ir[ow] = base + (col_major ? iw * g.H + ih : ih * g.W + iw);
            }
          }
        } else if (g.SW == 1) {
          const float* __restrict xs = xr + off;
          for (int64_t ow = lo; ow < hi; ++ow) yr[ow] = xs[ow] > yr[ow] ? xs[ow] : yr[ow];
        } else {
          for (int64_t ow = lo; ow < hi; ++ow) {
            const float v = xr[ow * g.SW + off];
            yr[ow] = v > yr[ow] ? v : yr[ow];
          }
        }
      }
    }
    if (ir)  // windows entirely in padding point nowhere; report 0 as onnxruntime's layout
      for (int64_t ow = 0; ow < g.OW; ++ow) ir[ow] = ir[ow] < 0 ? base : ir[ow];
  }
}

void avg_plane(const float* x, float* y, const float* count_h, const float* count_w,
               const Geometry& g) {
  for (int64_t oh = 0; oh < g.OH; ++oh) {
    float* __restrict yr = y + oh * g.OW;
    for (int64_t ow = 0; ow < g.OW; ++ow) yr[ow] = 0.0f;
    for (int64_t kh = 0; kh < g.KH; ++kh) {
      const int64_t ih = oh * g.SH - g.PT + kh * g.DH;
      if (ih < 0 || ih >= g.H) continue;
      const float* __restrict xr = x + ih * g.W;
      for (int64_t kw = 0; kw < g.KW; ++kw) {
        const int64_t off = kw * g.DW - g.PL;
        int64_t lo, hi;
        tap_range(off, g.SW, g.W, g.OW, lo, hi);
        if (g.SW == 1) {
          const float* __restrict xs = xr + off;
          for (int64_t ow = lo; ow < hi; ++ow) yr[ow] += xs[ow];
        } else {
          for (int64_t ow = lo; ow < hi; ++ow) yr[ow] += xr[ow * g.SW + off];
        }
      }
    }
    const float ch = count_h[oh];
    for (int64_t ow = 0; ow < g.OW; ++ow) {
      const float c = ch * count_w[ow];
      yr[ow] = c > 0.0f ? yr[ow] / c : 0.0f;
    }
  }
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

Table make_table() { return Table{max_plane, avg_plane, sum_n, max_n}; }

}  // namespace
}  // namespace pool
}  // namespace ferry
