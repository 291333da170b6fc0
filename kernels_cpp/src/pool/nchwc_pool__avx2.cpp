// The NCHWc pools compiled for avx2 (this file's flags; see nchwc_pool_impl.h).
#include "nchwc_pool_impl.h"

namespace ferry {
namespace pool {

void nchwc_window_avx2(const NchwcPoolGeometry& g, const float* x, float* y, int64_t oh0,
                       int64_t oh1, bool max, const float* count_h, const float* count_w) {
  nchwc_window_impl(g, x, y, oh0, oh1, max, count_h, count_w);
}

void nchwc_global_avx2(const float* x, int64_t pixels, bool max, float* y8) {
  nchwc_global_impl(x, pixels, max, y8);
}

}  // namespace pool
}  // namespace ferry
