// Depthwise plane loop compiled for avx2 (this file's flags; see depthwise_impl.h).
#include "depthwise_impl.h"

namespace ferry {
namespace conv {

void depthwise_plane_avx2(const DepthwiseGeometry& g, const float* x, const float* w, float b,
                          const float* z, float* y, float* row_tmp) {
  depthwise_plane_impl(g, x, w, b, z, y, row_tmp);
}

void depthwise_padded_avx2(const DepthwiseGeometry& g, const float* x, const float* w, float b,
                             const float* z, float* y, float* tmp, const float* clamp_lo_hi) {
  depthwise_padded_impl(g, x, w, b, z, y, tmp, clamp_lo_hi);
}

void depthwise_s2_phased_avx2(const DepthwiseGeometry& g, const float* x, const float* w,
                              float b, const float* z, float* y, float* tmp,
                              const float* clamp_lo_hi) {
  depthwise_s2_phased_impl(g, x, w, b, z, y, tmp, clamp_lo_hi);
}

void depthwise_block8_avx2(const DepthwiseGeometry& g, const float* x, int64_t s_in,
                           const float* w, const float* bias8, const float* z, float* y,
                           int64_t s_out, float* tmp) {
  depthwise_block8_impl(g, x, s_in, w, bias8, z, y, s_out, tmp);
}

}  // namespace conv
}  // namespace ferry
