// The float32 normalization loops for scalar (this file's compile flags pick the vector type).
#include "f32_normalization_impl.h"

namespace ferry {
namespace normalization {

const Table& table_scalar() {
  static const Table t{moments, affine, layer_row, lrn};
  return t;
}

}  // namespace normalization
}  // namespace ferry
