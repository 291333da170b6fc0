// The float32 pooling loops for scalar (this file's compile flags pick the vector type).
#include "f32_pool_impl.h"

namespace ferry {
namespace pool {

const Table& table_scalar() {
  static const Table t = make_table();
  return t;
}

}  // namespace pool
}  // namespace ferry
