// Per-ISA function tables of the float32 elementwise kernels. Each ISA file
// (f32_elementwise__scalar/__avx2/__avx512.cpp) instantiates the loops of
// f32_elementwise_impl.h with its vector type and exports one table; elementwise.cpp picks
// the table of the active ISA once, when a kernel is made.
#pragma once
#include <cstdint>

#include "ferry/cpu_features.h"

namespace ferry {
namespace elementwise {

enum UnaryOp : int {
  kRelu, kClip, kSigmoid, kTanh, kExp, kLog, kSqrt, kAbs, kNeg, kErf, kLeakyRelu,
  kHardSigmoid, kHardSwish, kElu, kSoftplus, kGeluErf, kGeluTanh, kSelu, kCelu, kSoftsign,
  kMish, kThresholdedRelu, kReciprocal, kFloor, kCeil, kRound, kSign, kSilu, kUnaryCount
};

// alpha/beta/gamma: the op's attributes (Clip: alpha = min, beta = max).
struct UnaryArgs {
  float alpha = 0.0f, beta = 0.0f, gamma = 0.0f;
};

enum BinaryOp : int { kAdd, kSub, kMul, kDiv, kPRelu, kBinaryCount };

// How the operands advance in the innermost loop: both, A only (B one value), B only.
enum BinaryKind : int { kVV, kVS, kSV, kKindCount };

using UnaryFn = void (*)(const float* x, float* y, int64_t n, const UnaryArgs& args);
using BinaryFn = void (*)(const float* a, const float* b, float* y, int64_t n);

struct Table {
  UnaryFn unary[kUnaryCount];
  BinaryFn binary[kBinaryCount][kKindCount];
};

const Table& table_scalar();
const Table& table_avx2();
const Table& table_avx512();
const Table& table_for(Isa isa);  // defined in elementwise.cpp (baseline flags)

}  // namespace elementwise
}  // namespace ferry
