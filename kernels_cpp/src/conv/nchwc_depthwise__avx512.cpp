// The NCHWc depthwise convolution compiled for avx512 (this file's flags; see
// nchwc_depthwise_impl.h).
#include "nchwc_depthwise_impl.h"

namespace ferry {
namespace conv {

void nchwc_dw_avx512(const NchwcDwGeometry& g, const float* x, const float* w, const float* bias8,
                   const float* z, float* y, int64_t oh0, int64_t oh1, const float* clamp_lo_hi) {
  nchwc_dw_impl(g, x, w, bias8, z, y, oh0, oh1, clamp_lo_hi);
}

void nchwc_scale_avx512(const float* x, const float* w8, const float* bias8, const float* z,
                      float* y, int64_t pixels, const float* clamp_lo_hi) {
  nchwc_scale_impl(x, w8, bias8, z, y, pixels, clamp_lo_hi);
}

}  // namespace conv
}  // namespace ferry
