// The float32 softmax loops for avx2 (this file's compile flags pick the vector type).
#include "f32_softmax_impl.h"

namespace ferry {
namespace softmax {

const Table& table_avx2() {
  static const Table t{block};
  return t;
}

}  // namespace softmax
}  // namespace ferry
