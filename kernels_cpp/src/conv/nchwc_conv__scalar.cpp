// The NCHWc direct convolution compiled for scalar (this file's flags; see nchwc_conv_impl.h).
#include "nchwc_conv_impl.h"

namespace ferry {
namespace conv {

void nchwc_conv_scalar(const NchwcGeometry& g, const NchwcPass& p) { nchwc_conv_impl(g, p); }

}  // namespace conv
}  // namespace ferry
