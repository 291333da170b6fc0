// Direct 2-D convolution producing the NCHWc layout (channels blocked by 8: [N, C/8, H, W, 8]),
// one implementation per ISA (chosen at make time in nchwc_conv.cpp; see nchwc_conv_impl.h).
//
// Seen per output row it is a GEMM: out[p][m] = sum over (kh, kw, c) of in(p + tap)[c] *
// w[(kh, kw, c)][m]. An input pixel's 8 channels of one block are contiguous, so each step
// broadcasts one input scalar per output pixel straight from the activation (no packing) and
// multiplies it by the 8 or 16 output channels' weights, packed once at make time. Register
// tile (AVX2): 2 output blocks x 6 pixels (12 accumulators); the last group of an odd block
// count is 3 x 4 (or 1 x 12 when there is one block in all).
#pragma once
#include <cstdint>

namespace ferry {
namespace conv {

struct NchwcGeometry {
  int64_t ih, iw, oh, ow;   // input and output planes
  int64_t kh, kw, sh, sw, dh, dw, pt, pl;
  bool blocked;             // X in NCHWc; otherwise plain NCHW read as one block of `cin` channels
  int64_t cin;              // channels per input block: 8 (NCHWc) or C (NCHW)
};

// Largest pixel count of a register tile per output-block count (index 1..3).
constexpr int kNchwcMaxPixels[4] = {0, 12, 6, 4};

// One call: output blocks [g, g + mb) of one image over output rows [oh0, oh1) and, within
// each row, columns [ow0, ow1), for one chunk of input blocks. Passes over the chunks run in
// order: the first starts from bias + z, later ones add onto y, the last clamps (lohi).
struct NchwcPass {
  const float* x;       // the image's input at the chunk's first block
  int64_t ncb;          // input blocks in the chunk (1 for NCHW)
  const float* w;       // packed weights of (group, chunk): [kh][kw][block][channel][mb * 8]
  int mb;               // output blocks: 1, 2 or 3
  const float* bias;    // mb * 8 values or null (read by the first pass)
  const float* z;       // residual at the group's first block or null (first pass; may be y)
  float* y;             // output at the group's first block of the image
  bool first, last;
  const float* lohi;    // ReLU / Clip bounds applied by the last pass in registers, or null
  int64_t oh0, oh1, ow0, ow1;
};

using NchwcConvFn = void (*)(const NchwcGeometry& g, const NchwcPass& p);

void nchwc_conv_scalar(const NchwcGeometry&, const NchwcPass&);
void nchwc_conv_avx2(const NchwcGeometry&, const NchwcPass&);
void nchwc_conv_avx512(const NchwcGeometry&, const NchwcPass&);

}  // namespace conv
}  // namespace ferry
