// Per-ISA functions of the float32 normalization kernels (f32_normalization_impl.h).
#pragma once
#include <cstdint>

#include "ferry/cpu_features.h"

namespace ferry {
namespace normalization {

// Mean and (population) variance of n values, two passes.
using MomentsFn = void (*)(const float* x, int64_t n, float* mean, float* var);
// y = (x - shift) * a + b (the shift first: no cancellation between a * x and b).
using AffineFn = void (*)(const float* x, float* y, int64_t n, float shift, float a, float b);
// One LayerNormalization row: y = (x - mean) * inv_std * scale + bias (bias may be null);
// writes mean and inv_std.
using LayerRowFn = void (*)(const float* x, float* y, int64_t n, const float* scale,
                            const float* bias, float epsilon, float* mean, float* inv_std);
// LRN of spatial positions [s0, s1) of channel c in one image x[C][S]:
// y = x / (bias + alpha_over_size * sum of x^2 over channels [c - lo, c + hi])^beta.
using LrnFn = void (*)(const float* x, float* y, int64_t channels, int64_t spatial, int64_t c,
                       int64_t lo, int64_t hi, int64_t s0, int64_t s1, float alpha_over_size,
                       float bias, float beta);

struct Table {
  MomentsFn moments;
  AffineFn affine;
  LayerRowFn layer_row;
  LrnFn lrn;
};

const Table& table_scalar();
const Table& table_avx2();
const Table& table_avx512();
const Table& table_for(Isa isa);  // normalization.cpp

}  // namespace normalization
}  // namespace ferry
