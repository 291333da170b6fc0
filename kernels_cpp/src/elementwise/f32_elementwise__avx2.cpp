// The float32 elementwise loops for avx2 (this file's compile flags pick the vector type).
#include "f32_elementwise_impl.h"

namespace ferry {
namespace elementwise {

const Table& table_avx2() {
  static const Table t = make_table<simd::Vec>();
  return t;
}

}  // namespace elementwise
}  // namespace ferry
