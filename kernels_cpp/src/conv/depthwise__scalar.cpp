// Depthwise plane loop compiled for scalar (this file's flags; see depthwise_impl.h).
#include "depthwise_impl.h"

namespace ferry {
namespace conv {

void depthwise_plane_scalar(const DepthwiseGeometry& g, const float* x, const float* w, float b,
                          const float* z, float* y, float* row_tmp) {
  depthwise_plane_impl(g, x, w, b, z, y, row_tmp);
}

}  // namespace conv
}  // namespace ferry
