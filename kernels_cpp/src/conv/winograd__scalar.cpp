// Winograd F(2x2, 3x3) transforms compiled for scalar (this file's flags; see winograd_impl.h).
#include "winograd_impl.h"

namespace ferry {
namespace conv {

void winograd_input_scalar(const WinogradGeometry& g, const float* x, int64_t tr0, int64_t tr1,
                         float* v, int64_t v_stride, float* scratch) {
  if (g.m == 4)
    winograd4_input_impl(g, x, tr0, tr1, v, v_stride, scratch);
  else
    winograd_input_impl(g, x, tr0, tr1, v, v_stride, scratch);
}

void winograd_output_scalar(const WinogradGeometry& g, const float* m, int64_t m_stride,
                          int64_t tr0, int64_t tr1, float bias, float* y, float* scratch) {
  if (g.m == 4)
    winograd4_output_impl(g, m, m_stride, tr0, tr1, bias, y, scratch);
  else
    winograd_output_impl(g, m, m_stride, tr0, tr1, bias, y, scratch);
}

}  // namespace conv
}  // namespace ferry
