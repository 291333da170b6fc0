// The few-channels direct convolution compiled for avx512 (this file's flags; see
// few_channels_impl.h).
#include "few_channels_impl.h"

namespace ferry {
namespace conv {

void few_channels_avx512(const FewChannelsGeometry& g, const float* xpad, const float* wt,
                       const float* bias, int64_t oh0, int64_t oh1, float* y,
                       const float* clamp_lo_hi, float* scratch) {
  few_channels_impl(g, xpad, wt, bias, oh0, oh1, y, clamp_lo_hi, scratch);
}

}  // namespace conv
}  // namespace ferry
