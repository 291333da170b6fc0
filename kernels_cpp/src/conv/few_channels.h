// Direct convolution for inputs with few channels (C <= 4: the first layer of an image
// network), one implementation per ISA (chosen at run time in conv.cpp; see
// few_channels_impl.h).
//
// With C = 3 the GEMM formulations have K = 27 (3x3) and pay their packing and per-tile
// overheads on a third of the usual work per tile: the first 3x3/2 convs ran at ~25 GFLOP/s.
// Here the output channels are the vector lanes: each tap multiplies a broadcast input pixel
// by 8 output channels' weights, register-blocked as 32 channels x 3 pixels (12
// accumulators), and each finished output row is turned back to channel planes by 8x8
// transposes.
#pragma once
#include <cstdint>

namespace ferry {
namespace conv {

struct FewChannelsGeometry {
  int64_t c, m;          // input channels, output channels (a multiple of 8)
  int64_t oh, ow;        // output plane
  int64_t kh, kw, sh, sw, dh, dw;
  int64_t hp, wp;        // the zero-padded input plane the kernel reads (see padded_width)
};

// Pixels per register tile (the padded input must cover them: padded_width).
constexpr int64_t kFewChannelsPixels = 12;

// Columns of the padded input so that whole pixel tiles (past ow, up to a multiple of
// kFewChannelsPixels) read inside it.
inline int64_t few_channels_padded_width(int64_t ow, int64_t kw, int64_t sw, int64_t dw,
                                         int64_t wp_needed) {
  const int64_t tiles = (ow + kFewChannelsPixels - 1) / kFewChannelsPixels;
  const int64_t need = (tiles * kFewChannelsPixels - 1) * sw + (kw - 1) * dw + 1;
  return need > wp_needed ? need : wp_needed;
}

// Scratch floats of one call (one output row at a time): the row in pixel-major order.
inline int64_t few_channels_scratch_floats(const FewChannelsGeometry& g) {
  return ((g.ow + kFewChannelsPixels - 1) / kFewChannelsPixels) * kFewChannelsPixels * g.m;
}

// Output rows [oh0, oh1) of one image. xpad: c planes of hp x wp, zero-padded; wt: weights
// channels-last, wt[((c * kh + i) * kw + j) * m + o]; bias: m values or null; y: m planes of
// oh * ow. clamp_lo_hi: ReLU / Clip bounds applied in registers, or null.
using FewChannelsFn = void (*)(const FewChannelsGeometry& g, const float* xpad, const float* wt,
                               const float* bias, int64_t oh0, int64_t oh1, float* y,
                               const float* clamp_lo_hi, float* scratch);

void few_channels_scalar(const FewChannelsGeometry&, const float*, const float*, const float*,
                         int64_t, int64_t, float*, const float*, float*);
void few_channels_avx2(const FewChannelsGeometry&, const float*, const float*, const float*,
                       int64_t, int64_t, float*, const float*, float*);
void few_channels_avx512(const FewChannelsGeometry&, const float*, const float*, const float*,
                         int64_t, int64_t, float*, const float*, float*);

}  // namespace conv
}  // namespace ferry
