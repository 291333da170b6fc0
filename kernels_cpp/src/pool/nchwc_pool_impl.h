// The NCHWc pools (see nchwc_pool.h), written once and compiled by each ISA file
// (nchwc_pool__scalar/__avx2/__avx512.cpp) with its own flags. Internal linkage only. The
// AVX-512 file runs the 8-wide loops too (the channel block is 8 on every ISA).
//
// As the NCHWc depthwise conv: per output row only the kernel rows inside the input, the
// interior columns (all taps inside the input row) in register blocks of 8 / 4 / 1 pixels with
// no bounds checks, the border columns one by one over their valid taps. Padding is never
// materialized.
#pragma once
#include <cstdint>

#include "../conv/nchwc_v8.h"
#include "nchwc_pool.h"

namespace ferry {
namespace pool {
namespace {

using namespace ::ferry::nchwc;

template <bool Max> inline V8 nchwc_pool_op(V8 acc, V8 v) {
  return Max ? max8(acc, v) : add8(acc, v);
}

// P interior pixels of one output row over kernel rows [k0, k1). KW > 0 (stride S, dilation
// 1 fixed): each loaded pixel feeds every window that holds it (3x3/2: 17 loads for 8 pixels'
// 24 taps). KW == 0: everything at run time, one load per tap.
template <bool Max, int KW, int S, int P>
inline void nchwc_pool_block(const NchwcPoolGeometry& g, const float* x, int64_t ihb, int64_t k0,
                             int64_t k1, int64_t col0, V8* acc) {
  const V8 init = set8(Max ? -__builtin_inff() : 0.0f);
#pragma GCC unroll 8
  for (int p = 0; p < P; ++p) acc[p] = init;
  for (int64_t kh = k0; kh < k1; ++kh) {
    const float* xr = x + ((ihb + kh * g.DH) * g.W + col0) * 8;
    if constexpr (KW > 0) {
#pragma GCC unroll 64
      for (int j = 0; j < (P - 1) * S + KW; ++j) {
        const V8 v = ld8(xr + j * 8);
#pragma GCC unroll 8
        for (int kw = 0; kw < KW; ++kw) {
          const int t = j - kw;
          if (t >= 0 && t % S == 0 && t / S < P) acc[t / S] = nchwc_pool_op<Max>(acc[t / S], v);
        }
      }
    } else {
      const int64_t step = g.SW * 8, dstep = g.DW * 8;
      for (int64_t kw = 0; kw < g.KW; ++kw) {
        const float* xp = xr + kw * dstep;
#pragma GCC unroll 8
        for (int p = 0; p < P; ++p) acc[p] = nchwc_pool_op<Max>(acc[p], ld8(xp + p * step));
      }
    }
  }
}

template <bool Max, int KW, int S>
void nchwc_pool_rows(const NchwcPoolGeometry& g, const float* x, float* y, int64_t oh0,
                     int64_t oh1, const float* count_h, const float* count_w) {
  const int64_t OW = g.OW;
  int64_t owa = (g.PL + g.SW - 1) / g.SW, owb = 0;
  const int64_t last = g.W - 1 - (g.KW - 1) * g.DW + g.PL;  // interior: ow * SW <= last
  if (last >= 0) owb = last / g.SW + 1;
  if (owa > OW) owa = OW;
  if (owb > OW) owb = OW;
  if (owb < owa) owb = owa;
  for (int64_t oh = oh0; oh < oh1; ++oh) {
    const int64_t ihb = oh * g.SH - g.PT;
    int64_t k0, k1;
    tap_range(ihb, g.DH, g.KH, g.H, k0, k1);
    float* yr = y + oh * OW * 8;
    const float ch = Max ? 1.0f : count_h[oh];
    auto store = [&](int64_t ow, V8 acc) {
      if (!Max) {
        const float c = ch * count_w[ow];
        acc = c > 0.0f ? div8(acc, set8(c)) : set8(0.0f);
      }
      st8(yr + ow * 8, acc);
    };
    auto edge = [&](int64_t ow) {
      const int64_t base = ow * g.SW - g.PL;
      int64_t c0, c1;
      tap_range(base, g.DW, g.KW, g.W, c0, c1);
      V8 acc = set8(Max ? -__builtin_inff() : 0.0f);
      for (int64_t kh = k0; kh < k1; ++kh) {
        const float* xr = x + ((ihb + kh * g.DH) * g.W + base) * 8;
        for (int64_t kw = c0; kw < c1; ++kw)
          acc = nchwc_pool_op<Max>(acc, ld8(xr + kw * g.DW * 8));
      }
      store(ow, acc);
    };
    for (int64_t ow = 0; ow < owa; ++ow) edge(ow);
    int64_t ow = owa;
    V8 acc[8];
    for (; ow + 8 <= owb; ow += 8) {
      nchwc_pool_block<Max, KW, S, 8>(g, x, ihb, k0, k1, ow * g.SW - g.PL, acc);
#pragma GCC unroll 8
      for (int p = 0; p < 8; ++p) store(ow + p, acc[p]);
    }
    for (; ow + 4 <= owb; ow += 4) {
      nchwc_pool_block<Max, KW, S, 4>(g, x, ihb, k0, k1, ow * g.SW - g.PL, acc);
#pragma GCC unroll 4
      for (int p = 0; p < 4; ++p) store(ow + p, acc[p]);
    }
    for (; ow < owb; ++ow) {
      nchwc_pool_block<Max, KW, S, 1>(g, x, ihb, k0, k1, ow * g.SW - g.PL, acc);
      store(ow, acc[0]);
    }
    for (ow = owb; ow < OW; ++ow) edge(ow);
  }
}

template <bool Max>
void nchwc_pool_dispatch(const NchwcPoolGeometry& g, const float* x, float* y, int64_t oh0,
                         int64_t oh1, const float* count_h, const float* count_w) {
  // The common pools' widths and strides at compile time (3x3/1, 3x3/2, 2x2/2), the rest
  // generic.
  if (g.DW == 1 && g.KW == 3 && g.SW == 1)
    return nchwc_pool_rows<Max, 3, 1>(g, x, y, oh0, oh1, count_h, count_w);
  if (g.DW == 1 && g.KW == 3 && g.SW == 2)
    return nchwc_pool_rows<Max, 3, 2>(g, x, y, oh0, oh1, count_h, count_w);
  if (g.DW == 1 && g.KW == 2 && g.SW == 2)
    return nchwc_pool_rows<Max, 2, 2>(g, x, y, oh0, oh1, count_h, count_w);
  nchwc_pool_rows<Max, 0, 1>(g, x, y, oh0, oh1, count_h, count_w);
}

void nchwc_window_impl(const NchwcPoolGeometry& g, const float* x, float* y, int64_t oh0,
                       int64_t oh1, bool max, const float* count_h, const float* count_w) {
  if (max)
    nchwc_pool_dispatch<true>(g, x, y, oh0, oh1, count_h, count_w);
  else
    nchwc_pool_dispatch<false>(g, x, y, oh0, oh1, count_h, count_w);
}

// Four accumulators over alternate pixels hide the add latency; the pixel order within
// each is fixed, so the result does not depend on threads.
void nchwc_global_impl(const float* x, int64_t pixels, bool max, float* y8) {
  const V8 init = set8(max ? -__builtin_inff() : 0.0f);
  V8 a0 = init, a1 = init, a2 = init, a3 = init;
  int64_t i = 0;
  if (max) {
    for (; i + 4 <= pixels; i += 4) {
      a0 = max8(a0, ld8(x + i * 8));
      a1 = max8(a1, ld8(x + i * 8 + 8));
      a2 = max8(a2, ld8(x + i * 8 + 16));
      a3 = max8(a3, ld8(x + i * 8 + 24));
    }
    for (; i < pixels; ++i) a0 = max8(a0, ld8(x + i * 8));
    st8(y8, max8(max8(a0, a1), max8(a2, a3)));
  } else {
    for (; i + 4 <= pixels; i += 4) {
      a0 = add8(a0, ld8(x + i * 8));
      a1 = add8(a1, ld8(x + i * 8 + 8));
      a2 = add8(a2, ld8(x + i * 8 + 16));
      a3 = add8(a3, ld8(x + i * 8 + 24));
    }
    for (; i < pixels; ++i) a0 = add8(a0, ld8(x + i * 8));
    st8(y8, div8(add8(add8(a0, a1), add8(a2, a3)), set8(static_cast<float>(pixels))));
  }
}

}  // namespace
}  // namespace pool
}  // namespace ferry
