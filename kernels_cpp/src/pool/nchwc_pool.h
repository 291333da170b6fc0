// Pools on NCHWc activations (channels blocked by 8: [N, C/8, H, W, 8]), one implementation per
// ISA (chosen at make time in nchwc_pool.cpp; see nchwc_pool_impl.h). Every tap is one 8-wide
// max / add over a pixel vector.
#pragma once
#include <cstdint>

namespace ferry {
namespace pool {

struct NchwcPoolGeometry {
  int64_t H, W, OH, OW;
  int64_t KH, KW, SH, SW, DH, DW;
  int64_t PT, PL;  // begin padding (the end padding only shapes OH / OW and the counts)
};

// Output rows [oh0, oh1) of one channel block (x: H * W * 8 floats, y: OH * OW * 8). max: the
// window maximum over the taps inside the input (-inf where there is none); else the window
// sum divided by count_h[oh] * count_w[ow] (0 where that is 0), as pool.cpp.
using NchwcWindowFn = void (*)(const NchwcPoolGeometry& g, const float* x, float* y, int64_t oh0,
                               int64_t oh1, bool max, const float* count_h, const float* count_w);
// One block's global pool: y8[l] = max, or sum / pixels, over the block's `pixels` pixels.
using NchwcGlobalFn = void (*)(const float* x, int64_t pixels, bool max, float* y8);

void nchwc_window_scalar(const NchwcPoolGeometry&, const float*, float*, int64_t, int64_t, bool,
                         const float*, const float*);
void nchwc_window_avx2(const NchwcPoolGeometry&, const float*, float*, int64_t, int64_t, bool,
                       const float*, const float*);
void nchwc_window_avx512(const NchwcPoolGeometry&, const float*, float*, int64_t, int64_t, bool,
                         const float*, const float*);
void nchwc_global_scalar(const float*, int64_t, bool, float*);
void nchwc_global_avx2(const float*, int64_t, bool, float*);
void nchwc_global_avx512(const float*, int64_t, bool, float*);

}  // namespace pool
}  // namespace ferry
