// The NCHW <-> NCHWc reorders compiled for avx2 (this file's flags; see nchwc_reorder_impl.h).
#include "nchwc_reorder_impl.h"

namespace ferry {
namespace conv {

void nchwc_to_blocked_avx2(const float* x, float* y, int64_t plane, int64_t p0, int64_t p1) {
  nchwc_to_blocked_impl(x, y, plane, p0, p1);
}

void nchwc_from_blocked_avx2(const float* x, float* y, int64_t plane, int64_t p0, int64_t p1) {
  nchwc_from_blocked_impl(x, y, plane, p0, p1);
}

}  // namespace conv
}  // namespace ferry
