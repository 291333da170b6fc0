// Per-ISA plane functions of the float32 pooling kernels (see f32_pool_impl.h); pool.cpp picks
// the active ISA's table when a kernel is made and runs planes in parallel.
#pragma once
#include <cstdint>

#include "ferry/cpu_features.h"

namespace ferry {
namespace pool {

// One (n, c) plane of a 2-D pool; a 1-D pool is a 2-D one with H = KH = 1.
struct Geometry {
  int64_t H, W, OH, OW;
  int64_t KH, KW, SH, SW, DH, DW;
  int64_t PT, PL;  // begin padding (the end padding only shapes the counts and OH/OW)
  // AveragePool with strides 1: the divisor of every output laid out at the padded row width
  // Wp = (OW - 1) + (KW - 1) * DW + 1 (+inf where no tap counts, 1 in the junk columns), so
  // the separable form divides whole vectors. Null: divide by count_h * count_w.
  const float* den = nullptr;
};

// MaxPool of one plane. With `ind`, also the flat input index of each maximum (the first in
// window order): base + ih * W + iw, or base + iw * H + ih when `col_major`.
using MaxPlaneFn = void (*)(const float* x, float* y, int64_t* ind, int64_t base,
                            bool col_major, const Geometry& g);
// AveragePool of one plane: window sums divided by count_h[oh] * count_w[ow] (0 when 0).
using AvgPlaneFn = void (*)(const float* x, float* y, const float* count_h,
                            const float* count_w, const Geometry& g);
// Global pools: the sum / the maximum of n values.
using ReduceFn = float (*)(const float* x, int64_t n);
// Eight planes at once (planes s_in / s_out floats apart): MaxPool (max) or AveragePool with
// count_h / count_w as above. tmp: block8_scratch_floats(g).
using Block8Fn = void (*)(const float* x, int64_t s_in, float* y, int64_t s_out, bool max,
                          const float* count_h, const float* count_w, const Geometry& g,
                          float* tmp);

inline int64_t block8_scratch_floats(const Geometry& g) {
  const int64_t hp = (g.OH - 1) * g.SH + (g.KH - 1) * g.DH + 1;
  const int64_t wp = (g.OW - 1) * g.SW + (g.KW - 1) * g.DW + 1;
  return (hp * wp + g.OH * g.OW) * 8;
}

// Whether the eight-plane form pays: outputs narrower than 16 (the row and separable forms
// then run mostly border or junk: 3x3 pools on 7 and 14-wide maps were 1.6-2.9x onnxruntime,
// which pools 8 channels per vector), and the padded block within ~1 MB.
inline bool use_block8(const Geometry& g) {
  return g.OH > 0 && g.OW > 0 && g.OW < 16 && block8_scratch_floats(g) <= (int64_t(1) << 18);
}

struct Table {
  MaxPlaneFn max_plane;
  AvgPlaneFn avg_plane;
  ReduceFn sum;
  ReduceFn max;
  Block8Fn block8;
};

const Table& table_scalar();
const Table& table_avx2();
const Table& table_avx512();
const Table& table_for(Isa isa);  // pool.cpp

}  // namespace pool
}  // namespace ferry
