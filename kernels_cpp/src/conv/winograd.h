// Winograd F(2x2, 3x3) transforms for 3x3 / stride 1 / dilation 1 convolutions, one
// implementation per ISA (chosen at run time in conv.cpp; see winograd_impl.h).
//
// Output tiles are 2x2, computed from 4x4 input tiles; each of the 16 transformed positions
// xi = 4u + j is one GEMM U[xi] (M x C) x V[xi] (C x tiles). 16 GEMMs of K = C replace one of
// K = 9C: 2.25x fewer multiplies, for two passes of additions.
#pragma once
#include <cstdint>

namespace ferry {
namespace conv {

struct WinogradGeometry {
  int64_t ih, iw, oh, ow, pt, pl;  // input and output plane, begin pads
  int64_t tiles_h() const { return (oh + 1) / 2; }
  int64_t tiles_w() const { return (ow + 1) / 2; }
};

// Input transform of one channel plane x over tile rows [tr0, tr1): the 16 values of tile
// ((i - tr0) * tiles_w + t) at v[xi * v_stride + (i - tr0) * tiles_w + t]. scratch: at least
// winograd_input_scratch_floats(g, tr1 - tr0).
using WinogradInputFn = void (*)(const WinogradGeometry& g, const float* x, int64_t tr0,
                                 int64_t tr1, float* v, int64_t v_stride, float* scratch);
// Output transform of one output channel: m laid out as v above; writes output rows
// [2 tr0, min(2 tr1, oh)) of the plane y (row stride ow), bias added. scratch: 4 * the
// band's tiles.
using WinogradOutputFn = void (*)(const WinogradGeometry& g, const float* m, int64_t m_stride,
                                  int64_t tr0, int64_t tr1, float bias, float* y, float* scratch);

inline int64_t winograd_input_scratch_floats(const WinogradGeometry& g, int64_t tile_rows) {
  return 8 * (tile_rows + 1) * g.tiles_w() + 2 * (g.tiles_w() + 2) + 16;
}

// U = G g G^T for one 3x3 filter g (row-major); u[xi], xi = 4u + j.
void winograd_filter(const float* g, float* u);

void winograd_input_scalar(const WinogradGeometry&, const float*, int64_t, int64_t, float*,
                           int64_t, float*);
void winograd_input_avx2(const WinogradGeometry&, const float*, int64_t, int64_t, float*,
                         int64_t, float*);
void winograd_input_avx512(const WinogradGeometry&, const float*, int64_t, int64_t, float*,
                           int64_t, float*);
void winograd_output_scalar(const WinogradGeometry&, const float*, int64_t, int64_t, int64_t,
                            float, float*, float*);
void winograd_output_avx2(const WinogradGeometry&, const float*, int64_t, int64_t, int64_t,
                          float, float*, float*);
void winograd_output_avx512(const WinogradGeometry&, const float*, int64_t, int64_t, int64_t,
                            float, float*, float*);

}  // namespace conv
}  // namespace ferry
