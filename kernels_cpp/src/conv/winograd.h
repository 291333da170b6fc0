// Winograd F(2x2, 3x3) transforms for 3x3 / stride 1 / dilation 1 convolutions, one
// implementation per ISA (chosen at run time in conv.cpp; see winograd_impl.h).
//
// Output tiles are m x m (2 or 4), computed from (m + 2) x (m + 2) input tiles; each of the
// transformed positions xi = (m + 2) u + j is one GEMM U[xi] (M x C) x V[xi] (C x tiles).
// F(2x2, 3x3): 16 GEMMs of K = C replace one of K = 9C, 2.25x fewer multiplies; F(4x4, 3x3):
// 36 GEMMs on a quarter of the tiles, 4x fewer, for larger transforms (coefficients up to 8:
// rounding errors ~10x F(2x2)'s, a few 1e-6 of the output's scale).
#pragma once
#include <cstdint>

namespace ferry {
namespace conv {

struct WinogradGeometry {
  int64_t ih, iw, oh, ow, pt, pl;  // input and output plane, begin pads
  int64_t m = 2;                   // output tile: 2 (F(2x2, 3x3)) or 4 (F(4x4, 3x3))
  int64_t tiles_h() const { return (oh + m - 1) / m; }
  int64_t tiles_w() const { return (ow + m - 1) / m; }
  int64_t positions() const { return (m + 2) * (m + 2); }  // 16 or 36 GEMMs
};

// Input transform of one channel plane x over tile rows [tr0, tr1): the 16 values of tile
// ((i - tr0) * tiles_w + t) at v[xi * v_stride + (i - tr0) * tiles_w + t]. scratch: at least
// winograd_input_scratch_floats(g, tr1 - tr0).
using WinogradInputFn = void (*)(const WinogradGeometry& g, const float* x, int64_t tr0,
                                 int64_t tr1, float* v, int64_t v_stride, float* scratch);
// Output transform of one output channel: m laid out as v above; writes output rows
// [m tr0, min(m tr1, oh)) of the plane y (row stride ow), bias added. scratch:
// winograd_output_scratch_floats.
using WinogradOutputFn = void (*)(const WinogradGeometry& g, const float* m, int64_t m_stride,
                                  int64_t tr0, int64_t tr1, float bias, float* y, float* scratch);

inline int64_t winograd_input_scratch_floats(const WinogradGeometry& g, int64_t tile_rows) {
  if (g.m == 4) return 24 * (tile_rows + 1) * g.tiles_w() + 4 * (g.tiles_w() + 2) + 16;
  return 8 * (tile_rows + 1) * g.tiles_w() + 2 * (g.tiles_w() + 2) + 16;
}
// Output scratch of a band of `tiles` tiles.
inline int64_t winograd_output_scratch_floats(const WinogradGeometry& g, int64_t tiles) {
  return (g.m == 4 ? 40 : 4) * tiles;
}

// U = G g G^T for one 3x3 filter g (row-major); u[xi], xi = (m + 2) u + j (16 or 36 values).
void winograd_filter(const float* g, float* u, int64_t m);

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
