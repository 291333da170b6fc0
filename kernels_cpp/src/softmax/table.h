// Per-ISA functions of the float32 Softmax / LogSoftmax kernels (f32_softmax_impl.h).
#pragma once
#include <cstdint>

#include "ferry/cpu_features.h"

namespace ferry {
namespace softmax {

// One block of shape [n, inner] (row-major): columns [j0, j1) are normalized along n.
// inner == 1 is the contiguous-row case.
using BlockFn = void (*)(const float* x, float* y, int64_t n, int64_t inner, int64_t j0,
                         int64_t j1, bool log);

struct Table {
  BlockFn block;
};

const Table& table_scalar();
const Table& table_avx2();
const Table& table_avx512();
const Table& table_for(Isa isa);  // softmax.cpp

}  // namespace softmax
}  // namespace ferry
