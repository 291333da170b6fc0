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
        // Valid ow: 0 <= ow * sw + base < IW.
        const int64_t lo = base >= 0 ? 0 : dw_min(OW, (-base + sw - 1) / sw);
        const int64_t hi = base >= IW ? 0 : dw_min(OW, (IW - 1 - base) / sw + 1);
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
  (void)dw_max;
  (void)row_tmp;
}

}  // namespace
}  // namespace conv
}  // namespace ferry
