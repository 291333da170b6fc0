// Element types and constant tensors shared by every kernel.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace ferry {

enum class DType : int {
  f32, f64, f16, bf16, i8, i16, i32, i64, u8, u16, u32, u64, boolean, unknown
};

// numpy dtype names ("float32", "int64", "bool", "bfloat16", ...) <-> DType.
DType dtype_from_name(const std::string& name);
const char* dtype_name(DType t);
size_t dtype_size(DType t);

using Shape = std::vector<int64_t>;

inline int64_t numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

// A constant input seen at kernel construction (weights). Valid only during construction:
// a kernel that needs it later copies or packs it.
struct ConstTensor {
  const void* data = nullptr;
  DType dtype = DType::unknown;
  Shape shape;
};

}  // namespace ferry
