// Depthwise 2-D convolution on NCHWc activations (channels blocked by 8: [N, C/8, H, W, 8]),
// one implementation per ISA (chosen at make time in nchwc_depthwise.cpp; see
// nchwc_depthwise_impl.h).
//
// The channels are already interleaved, so every tap is one 8-wide FMA of a weight vector
// (repacked [C/8][KH][KW][8]) and an input pixel vector, whatever the map size: no per-plane
// borders, gathers or transposes as in the NCHW depthwise paths.
#pragma once
#include <cstdint>

namespace ferry {
namespace conv {

struct NchwcDwGeometry {
  int64_t ih, iw, oh, ow, kh, kw, sh, sw, dh, dw, pt, pl;
};

// Output rows [oh0, oh1) of one channel block: x the block's input (ih * iw * 8 floats), w its
// weights (kh * kw * 8), bias8 8 floats, z null or the block's residual (may be y itself: each
// pixel's residual is read before that pixel is stored), y the block's output (oh * ow * 8).
// clamp_lo_hi: null or the [lo, hi] of a fused ReLU / Clip, applied in registers.
using NchwcDwFn = void (*)(const NchwcDwGeometry& g, const float* x, const float* w,
                           const float* bias8, const float* z, float* y, int64_t oh0,
                           int64_t oh1, const float* clamp_lo_hi);

// 1x1, stride 1, no padding (a BatchNormalization: per-channel scale and shift): `pixels`
// pixels of one block, y = x * w8 + bias8 (+ z), streamed.
using NchwcScaleFn = void (*)(const float* x, const float* w8, const float* bias8,
                              const float* z, float* y, int64_t pixels, const float* clamp_lo_hi);

void nchwc_dw_scalar(const NchwcDwGeometry&, const float*, const float*, const float*,
                     const float*, float*, int64_t, int64_t, const float*);
void nchwc_dw_avx2(const NchwcDwGeometry&, const float*, const float*, const float*,
                   const float*, float*, int64_t, int64_t, const float*);
void nchwc_dw_avx512(const NchwcDwGeometry&, const float*, const float*, const float*,
                     const float*, float*, int64_t, int64_t, const float*);

void nchwc_scale_scalar(const float*, const float*, const float*, const float*, float*, int64_t,
                        const float*);
void nchwc_scale_avx2(const float*, const float*, const float*, const float*, float*, int64_t,
                      const float*);
void nchwc_scale_avx512(const float*, const float*, const float*, const float*, float*, int64_t,
                        const float*);

}  // namespace conv
}  // namespace ferry
