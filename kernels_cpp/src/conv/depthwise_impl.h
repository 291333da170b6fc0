// The 2-D depthwise convolution loop (one channel plane), written once in plain C++ and
// compiled by each ISA file (depthwise__scalar/__avx2/__avx512.cpp) with its own flags, so the
// compiler vectorizes the output-row loops for that ISA. Internal linkage only, and no STL or
// shared inline helpers: each instantiation must stay in its own file (see kernels_cpp/README).
#pragma once
#include <cstdint>

#include "depthwise.h"

namespace ferry {
namespace conv {
namespace {

inline int64_t dw_max(int64_t a, int64_t b) { return a > b ? a : b; }
inline int64_t dw_min(int64_t a, int64_t b) { return a < b ? a : b; }

// y[oh][ow] = b0 + z[oh][ow] + sum_{kh,kw} w[kh][kw] * x[oh*sh - ph + kh*dh][ow*sw - pw + kw*dw]
// over the valid input positions (zero padding). Activation is applied by the caller.
void depthwise_plane_impl(const DepthwiseGeometry& g, const float* x, const float* w, float b0,
                          const float* z, float* y, float* row_tmp) {
  const int64_t IH = g.ih, IW = g.iw, OH = g.oh, OW = g.ow, KH = g.kh, KW = g.kw;
  const int64_t sh = g.sh, sw = g.sw, dh = g.dh, dw = g.dw, ph = g.ph, pw = g.pw;
  // Output columns each tap reaches, 0 <= ow * sw + base < IW with base = kw * dw - pw: the
  // same for every row, and two divisions each, so computed once per plane.
  int64_t bounds_small[2 * 32];
  int64_t* bounds = KW <= 32 ? bounds_small : new int64_t[2 * KW];
  for (int64_t kw = 0; kw < KW; ++kw) {
    const int64_t base = -pw + kw * dw;
    bounds[2 * kw] = base >= 0 ? 0 : dw_min(OW, (-base + sw - 1) / sw);
    bounds[2 * kw + 1] = base >= IW ? 0 : dw_min(OW, (IW - 1 - base) / sw + 1);
  }
  for (int64_t oh = 0; oh < OH; ++oh) {
    float* __restrict o = y + oh * OW;
    if (z) {
      const float* zr = z + oh * OW;
      for (int64_t ow = 0; ow < OW; ++ow) o[ow] = b0 + zr[ow];
    } else {
      for (int64_t ow = 0; ow < OW; ++ow) o[ow] = b0;
    }
    for (int64_t kh = 0; kh < KH; ++kh) {
      const int64_t ih = oh * sh - ph + kh * dh;
      if (ih < 0 || ih >= IH) continue;
      const float* xr = x + ih * IW;
      for (int64_t kw = 0; kw < KW; ++kw) {
        const float wv = w[kh * KW + kw];
        const int64_t base = -pw + kw * dw;
        const int64_t lo = bounds[2 * kw], hi = bounds[2 * kw + 1];
        if (hi <= lo) continue;
        if (sw == 1) {
          const float* __restrict xs = xr + base;
          for (int64_t ow = lo; ow < hi; ++ow) o[ow] += wv * xs[ow];
        } else {
          const float* xs = xr + base;
          for (int64_t ow = lo; ow < hi; ++ow) o[ow] += wv * xs[ow * sw];
        }
      }
    }
  }
  if (bounds != bounds_small) delete[] bounds;
  (void)dw_max;
  (void)row_tmp;
}

// Eight channels at once, interleaved ([position][8 channels]) and zero-padded, so that every
// tap is one unconditional 8-wide multiply-add whatever the plane size: the path for small
// planes (7x7, 14x14), where vectorizing along a row leaves mostly scalar tails. x/y/z point
// at the block's first channel; planes are s_in / s_out floats apart.
// tmp: (padded_size(g) + s_out + ksize) * 8 floats.
void depthwise_block8_impl(const DepthwiseGeometry& g, const float* x, int64_t s_in,
                           const float* w, const float* bias8, const float* z, float* y,
                           int64_t s_out, float* tmp) {
  const int64_t IH = g.ih, IW = g.iw, OH = g.oh, OW = g.ow, KH = g.kh, KW = g.kw;
  const int64_t HP = (OH - 1) * g.sh + (KH - 1) * g.dh + 1;
  const int64_t WP = (OW - 1) * g.sw + (KW - 1) * g.dw + 1;
  const int64_t ks = KH * KW;
  float* __restrict xi = tmp;
  float* __restrict yo = tmp + HP * WP * 8;
  float* __restrict wi = yo + s_out * 8;
  for (int64_t i = 0; i < HP * WP * 8; ++i) xi[i] = 0.f;
  for (int64_t l = 0; l < 8; ++l) {
    const float* xl = x + l * s_in;
    for (int64_t hp = 0; hp < HP; ++hp) {
      const int64_t ih = hp - g.ph;
      if (ih < 0 || ih >= IH) continue;
      const int64_t w0 = dw_max(0, g.pw), w1 = dw_min(WP, IW + g.pw);
      for (int64_t wp = w0; wp < w1; ++wp) xi[(hp * WP + wp) * 8 + l] = xl[ih * IW + wp - g.pw];
    }
    for (int64_t t = 0; t < ks; ++t) wi[t * 8 + l] = w[l * ks + t];
  }
  for (int64_t oh = 0; oh < OH; ++oh) {
    for (int64_t ow = 0; ow < OW; ++ow) {
      float acc[8];
      for (int l = 0; l < 8; ++l) acc[l] = bias8[l];
      if (z)
        for (int l = 0; l < 8; ++l) acc[l] += z[l * s_out + oh * OW + ow];
      const float* xb = xi + (oh * g.sh * WP + ow * g.sw) * 8;
      for (int64_t kh = 0; kh < KH; ++kh) {
        const float* xr = xb + kh * g.dh * WP * 8;
        const float* wr = wi + kh * KW * 8;
        for (int64_t kw = 0; kw < KW; ++kw) {
          const float* xv = xr + kw * g.dw * 8;
          const float* wv = wr + kw * 8;
          for (int l = 0; l < 8; ++l) acc[l] += wv[l] * xv[l];
        }
      }
      float* o = yo + (oh * OW + ow) * 8;
      for (int l = 0; l < 8; ++l) o[l] = acc[l];
    }
  }
  for (int64_t l = 0; l < 8; ++l) {
    float* yl = y + l * s_out;
    for (int64_t j = 0; j < s_out; ++j) yl[j] = yo[j * 8 + l];
  }
}

}  // namespace
}  // namespace conv
}  // namespace ferry
