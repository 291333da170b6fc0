// The NCHWc direct convolution compiled for avx512 (this file's flags; see nchwc_conv_impl.h).
#include "nchwc_conv_impl.h"

namespace ferry {
namespace conv {

void nchwc_conv_avx512(const NchwcGeometry& g, const NchwcPass& p) { nchwc_conv_impl(g, p); }

}  // namespace conv
}  // namespace ferry
