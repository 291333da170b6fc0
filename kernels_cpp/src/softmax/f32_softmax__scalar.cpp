// The float32 softmax loops for scalar (this file's compile flags pick the vector type).
#include "f32_softmax_impl.h"

namespace ferry {
namespace softmax {

const Table& table_scalar() {
  static const Table t{block};
  return t;
}

}  // namespace softmax
}  // namespace ferry
