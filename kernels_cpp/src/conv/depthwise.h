// 2-D depthwise convolution of one channel plane, one implementation per ISA (chosen at run
// time in conv.cpp). See depthwise_impl.h.
#pragma once
#include <cstdint>


namespace ferry {
namespace conv {

struct DepthwiseGeometry {
  int64_t ih, iw, oh, ow, kh, kw, sh, sw, dh, dw, ph, pw;
};

// row_tmp: scratch of at least `ow` floats (strided convolutions gather into it).
using DepthwisePlaneFn = void (*)(const DepthwiseGeometry& g, const float* x, const float* w,
                                  float bias, const float* z, float* y, float* row_tmp);

// Eight channels interleaved (small planes); see depthwise_block8_impl.
using DepthwiseBlock8Fn = void (*)(const DepthwiseGeometry& g, const float* x, int64_t s_in,
                                   const float* w, const float* bias8, const float* z, float* y,
                                   int64_t s_out, float* tmp);

// One plane through a zero-padded copy in tmp (depthwise_padded_scratch floats); strides 1
// and 2; clamp_lo_hi: null or the [lo, hi] of a fused ReLU / Clip. See depthwise_padded_impl.
using DepthwisePaddedFn = void (*)(const DepthwiseGeometry& g, const float* x, const float* w,
                                   float bias, const float* z, float* y, float* tmp,
                                   const float* clamp_lo_hi);
// (the padded plane, slack, and for stride 1 the flat output rows at the padded width).
// (Stride 2: the four phase planes, then the flat rows at the phase width, each with slack
// for a block of four vectors.)
inline int64_t depthwise_padded_scratch_floats(const DepthwiseGeometry& g) {
  const int64_t hp = (g.oh - 1) * g.sh + (g.kh - 1) * g.dh + 1;
  const int64_t wp = (g.ow - 1) * g.sw + (g.kw - 1) * g.dw + 1;
  const int64_t hq = (hp + 1) / 2, wq = (wp + 1) / 2;
  const int64_t phased = 4 * hq * wq + g.oh * wq + 4 * 64 + 64;
  return (2 * hp * wp + 128 > phased ? 2 * hp * wp + 128 : phased);
}
void depthwise_padded_scalar(const DepthwiseGeometry&, const float*, const float*, float,
                             const float*, float*, float*, const float*);
void depthwise_padded_avx2(const DepthwiseGeometry&, const float*, const float*, float,
                           const float*, float*, float*, const float*);
void depthwise_padded_avx512(const DepthwiseGeometry&, const float*, const float*, float,
                             const float*, float*, float*, const float*);

// Stride 2 on both axes, a 3x3 or 5x5 kernel, dilation 1: the padded plane split into four
// phases, one flat loop (see dw_s2_phased). Same arguments and scratch as the padded form.
void depthwise_s2_phased_scalar(const DepthwiseGeometry&, const float*, const float*, float,
                                const float*, float*, float*, const float*);
void depthwise_s2_phased_avx2(const DepthwiseGeometry&, const float*, const float*, float,
                              const float*, float*, float*, const float*);
void depthwise_s2_phased_avx512(const DepthwiseGeometry&, const float*, const float*, float,
                                const float*, float*, float*, const float*);

void depthwise_plane_scalar(const DepthwiseGeometry&, const float*, const float*, float,
                            const float*, float*, float*);
void depthwise_plane_avx2(const DepthwiseGeometry&, const float*, const float*, float,
                          const float*, float*, float*);
void depthwise_plane_avx512(const DepthwiseGeometry&, const float*, const float*, float,
                            const float*, float*, float*);

void depthwise_block8_scalar(const DepthwiseGeometry&, const float*, int64_t, const float*,
                             const float*, const float*, float*, int64_t, float*);
void depthwise_block8_avx2(const DepthwiseGeometry&, const float*, int64_t, const float*,
                           const float*, const float*, float*, int64_t, float*);
void depthwise_block8_avx512(const DepthwiseGeometry&, const float*, int64_t, const float*,
                             const float*, const float*, float*, int64_t, float*);

}  // namespace conv
}  // namespace ferry
