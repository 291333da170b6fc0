// The NCHWc depthwise convolution (see nchwc_depthwise.h), written once and compiled by each
// ISA file (nchwc_depthwise__scalar/__avx2/__avx512.cpp) with its own flags. Internal linkage
// only. The AVX-512 file runs the same 8-wide loops: the channel block is 8 on every ISA.
//
// Padding is never materialized. Per output row only the kernel rows inside the input are
// visited; the output columns whose taps all lie inside the input row (the interior) go in
// register blocks of 8 / 4 / 1 pixels with no bounds checks, the few border columns one pixel
// at a time over their valid taps only.
#pragma once
#include <cstdint>
#include <type_traits>

#include "nchwc_depthwise.h"
#include "nchwc_v8.h"

namespace ferry {
namespace conv {
namespace {

using namespace ::ferry::nchwc;

// Residual, clamp and store of one finished pixel. z may alias y: it is read first.
inline void nchwc_dw_store(V8 acc, const float* z, float* y, const V8* lohi) {
  if (z) acc = add8(acc, ld8(z));
  if (lohi) acc = clamp8(acc, lohi[0], lohi[1]);
  st8(y, acc);
}

// P interior pixels of one output row: acc[p] = bias + sum over kernel rows [k0, k1) and all
// kw of w[kh][kw] * x[ihb + kh * dh][col0 + p * S + kw * D].
// KW > 0 (then stride S and dilation 1 are fixed too): each loaded input pixel feeds every
// accumulator that uses it (stride 1, 3 taps: 10 loads for 24 FMAs instead of 24), the row's
// KW weight vectors held in registers (3x3 with 8 accumulators: 3 + 8 + 1 live vectors).
// KW == 0: kernel width, stride and dilation at run time, one load per FMA.
template <int KW, int S, int P>
inline void nchwc_dw_block(const NchwcDwGeometry& g, const float* x, const float* w, V8 b,
                           int64_t ihb, int64_t k0, int64_t k1, int64_t col0, V8* acc) {
#pragma GCC unroll 8
  for (int p = 0; p < P; ++p) acc[p] = b;
  for (int64_t kh = k0; kh < k1; ++kh) {
    const float* xr = x + ((ihb + kh * g.dh) * g.iw + col0) * 8;
    if constexpr (KW > 0) {
      const float* wr = w + kh * KW * 8;
      V8 wv[KW];
#pragma GCC unroll 8
      for (int kw = 0; kw < KW; ++kw) wv[kw] = ld8(wr + kw * 8);
#pragma GCC unroll 64
      for (int j = 0; j < (P - 1) * S + KW; ++j) {
        const V8 v = ld8(xr + j * 8);
#pragma GCC unroll 8
        for (int kw = 0; kw < KW; ++kw) {
          const int t = j - kw;  // = p * S for the pixel p this tap serves, if any
          if (t >= 0 && t % S == 0 && t / S < P) acc[t / S] = fma8(wv[kw], v, acc[t / S]);
        }
      }
    } else {
      const int64_t nkw = g.kw, step = g.sw * 8, dstep = g.dw * 8;
      const float* wr = w + kh * nkw * 8;
      for (int64_t kw = 0; kw < nkw; ++kw) {
        const V8 wv = ld8(wr + kw * 8);
        const float* xp = xr + kw * dstep;
#pragma GCC unroll 8
        for (int p = 0; p < P; ++p) acc[p] = fma8(wv, ld8(xp + p * step), acc[p]);
      }
    }
  }
}

// One border pixel: only the taps inside the input.
inline V8 nchwc_dw_edge(const NchwcDwGeometry& g, const float* x, const float* w, V8 b,
                        int64_t ihb, int64_t k0, int64_t k1, int64_t ow) {
  const int64_t base = ow * g.sw - g.pl;
  int64_t c0, c1;
  tap_range(base, g.dw, g.kw, g.iw, c0, c1);
  V8 acc = b;
  for (int64_t kh = k0; kh < k1; ++kh) {
    const float* xr = x + ((ihb + kh * g.dh) * g.iw + base) * 8;
    const float* wr = w + kh * g.kw * 8;
    for (int64_t kw = c0; kw < c1; ++kw) acc = fma8(ld8(wr + kw * 8), ld8(xr + kw * g.dw * 8), acc);
  }
  return acc;
}

template <int KW, int S>
void nchwc_dw_rows(const NchwcDwGeometry& g, const float* x, const float* w, const float* bias8,
                   const float* z, float* y, int64_t oh0, int64_t oh1, const float* clamp_lo_hi) {
  const V8 b = ld8(bias8);
  V8 lohi_v[2];
  const V8* lohi = nullptr;
  if (clamp_lo_hi) {
    lohi_v[0] = set8(clamp_lo_hi[0]);
    lohi_v[1] = set8(clamp_lo_hi[1]);
    lohi = lohi_v;
  }
  // Interior columns [owa, owb): ow * sw - pl >= 0 and ow * sw - pl + (kw - 1) * dw < iw.
  const int64_t OW = g.ow;
  int64_t owa = (g.pl + g.sw - 1) / g.sw, owb = 0;
  const int64_t last = g.iw - 1 - (g.kw - 1) * g.dw + g.pl;  // ow * sw <= last
  if (last >= 0) owb = last / g.sw + 1;
  if (owa > OW) owa = OW;
  if (owb > OW) owb = OW;
  if (owb < owa) owb = owa;
  for (int64_t oh = oh0; oh < oh1; ++oh) {
    const int64_t ihb = oh * g.sh - g.pt;
    int64_t k0, k1;
    tap_range(ihb, g.dh, g.kh, g.ih, k0, k1);
    float* yr = y + oh * OW * 8;
    const float* zr = z ? z + oh * OW * 8 : nullptr;
    auto edge = [&](int64_t ow) {
      nchwc_dw_store(nchwc_dw_edge(g, x, w, b, ihb, k0, k1, ow), zr ? zr + ow * 8 : nullptr,
                     yr + ow * 8, lohi);
    };
    for (int64_t ow = 0; ow < owa; ++ow) edge(ow);
    int64_t ow = owa;
    V8 acc[8];
    for (; ow + 8 <= owb; ow += 8) {
      nchwc_dw_block<KW, S, 8>(g, x, w, b, ihb, k0, k1, ow * g.sw - g.pl, acc);
#pragma GCC unroll 8
      for (int p = 0; p < 8; ++p)
        nchwc_dw_store(acc[p], zr ? zr + (ow + p) * 8 : nullptr, yr + (ow + p) * 8, lohi);
    }
    // The last 1-7 interior pixels as one block of that size (rows of 7 on small maps).
    auto tail = [&](auto pc) {
      constexpr int P = decltype(pc)::value;
      nchwc_dw_block<KW, S, P>(g, x, w, b, ihb, k0, k1, ow * g.sw - g.pl, acc);
#pragma GCC unroll 8
      for (int p = 0; p < P; ++p)
        nchwc_dw_store(acc[p], zr ? zr + (ow + p) * 8 : nullptr, yr + (ow + p) * 8, lohi);
    };
    switch (owb - ow) {
      case 7: tail(std::integral_constant<int, 7>{}); break;
      case 6: tail(std::integral_constant<int, 6>{}); break;
      case 5: tail(std::integral_constant<int, 5>{}); break;
      case 4: tail(std::integral_constant<int, 4>{}); break;
      case 3: tail(std::integral_constant<int, 3>{}); break;
      case 2: tail(std::integral_constant<int, 2>{}); break;
      case 1: tail(std::integral_constant<int, 1>{}); break;
      default: break;
    }
    for (ow = owb; ow < OW; ++ow) edge(ow);
  }
}

void nchwc_dw_impl(const NchwcDwGeometry& g, const float* x, const float* w, const float* bias8,
                   const float* z, float* y, int64_t oh0, int64_t oh1, const float* clamp_lo_hi) {
  // Kernel widths and strides of the mobile networks at compile time; the rest generic.
#define FERRY_NCHWC_DW(KW, S) \
  return nchwc_dw_rows<KW, S>(g, x, w, bias8, z, y, oh0, oh1, clamp_lo_hi)
  if (g.dw == 1 && (g.sw == 1 || g.sw == 2)) {
    const bool s1 = g.sw == 1;
    switch (g.kw) {
      case 1: if (s1) FERRY_NCHWC_DW(1, 1); else FERRY_NCHWC_DW(1, 2);
      case 3: if (s1) FERRY_NCHWC_DW(3, 1); else FERRY_NCHWC_DW(3, 2);
      case 5: if (s1) FERRY_NCHWC_DW(5, 1); else FERRY_NCHWC_DW(5, 2);
      case 7: if (s1) FERRY_NCHWC_DW(7, 1); else FERRY_NCHWC_DW(7, 2);
      default: break;
    }
  }
#undef FERRY_NCHWC_DW
  nchwc_dw_rows<0, 1>(g, x, w, bias8, z, y, oh0, oh1, clamp_lo_hi);
}

void nchwc_scale_impl(const float* x, const float* w8, const float* bias8, const float* z,
                      float* y, int64_t pixels, const float* clamp_lo_hi) {
  const V8 wv = ld8(w8), b = ld8(bias8);
  V8 lohi_v[2];
  const V8* lohi = nullptr;
  if (clamp_lo_hi) {
    lohi_v[0] = set8(clamp_lo_hi[0]);
    lohi_v[1] = set8(clamp_lo_hi[1]);
    lohi = lohi_v;
  }
  int64_t i = 0;
  // Four pixels per step: independent FMAs, loads and stores (a pure streaming pass).
  for (; i + 4 <= pixels; i += 4) {
    const float* xp = x + i * 8;
    float* yp = y + i * 8;
    const float* zp = z ? z + i * 8 : nullptr;
    const V8 a0 = fma8(ld8(xp), wv, b), a1 = fma8(ld8(xp + 8), wv, b);
    const V8 a2 = fma8(ld8(xp + 16), wv, b), a3 = fma8(ld8(xp + 24), wv, b);
    nchwc_dw_store(a0, zp, yp, lohi);
    nchwc_dw_store(a1, zp ? zp + 8 : nullptr, yp + 8, lohi);
    nchwc_dw_store(a2, zp ? zp + 16 : nullptr, yp + 16, lohi);
    nchwc_dw_store(a3, zp ? zp + 24 : nullptr, yp + 24, lohi);
  }
  for (; i < pixels; ++i)
    nchwc_dw_store(fma8(ld8(x + i * 8), wv, b), z ? z + i * 8 : nullptr, y + i * 8, lohi);
}

}  // namespace
}  // namespace conv
}  // namespace ferry
