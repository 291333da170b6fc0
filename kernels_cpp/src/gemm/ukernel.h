// Internal interface between the GEMM driver and the per-ISA micro-kernels.
#pragma once
#include <cstdint>

namespace ferry {
namespace gemm {

// What the micro-kernel does when it stores its MR x NR tile (only mr x nr of it is real):
//   C = alpha * acc + beta * C (C not read when beta == 0) + residual + row_bias[i] + col_bias[j],
//   then clamped to [lo, hi] when clamp is set.
struct TileStore {
  float alpha, beta;
  int mr, nr;
  const float* row_bias;  // mr values or null
  const float* col_bias;  // nr values or null
  bool clamp;
  float lo, hi;
  // Prefetch the tile's rows of C before the k loop: set when tiles go down a column (C rows
  // far apart, which the hardware prefetchers do not follow); row-by-row walks leave it off.
  bool prefetch_c = false;
  // Prefetch A and B ahead in the k loop (the driver sets it: whichever operand's panel comes
  // from L2 arrives late without it).
  bool prefetch_b = false;
  // The tile's mr x nr block of a residual (rows ld_residual apart), added unscaled; or null.
  const float* residual = nullptr;
  int64_t ld_residual = 0;
};

// a: kc x MR packed (a[k * MR + i]); b: kc x NR packed (b[k * NR + j]); c: the tile, ldc apart.
using Ukernel = void (*)(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                         const TileStore& st);

// Packs one full MR-row panel of a row-major A: dst[k * MR + r] = src[r * lda + k], k < kc.
using PackAPanel = void (*)(const float* src, int64_t lda, int64_t kc, float* dst);

// Packs one full NR-column panel of a transposed B (rows of B^T, ldb apart):
// dst[k * NR + j] = src[j * ldb + k], k < kc.
using PackBPanelT = void (*)(const float* src, int64_t ldb, int64_t kc, float* dst);

struct Isa {
  int mr, nr, kc, mc, nc;  // tile, K block, rows and columns per cache block
  Ukernel ukernel;
  const char* name;
  PackAPanel pack_a_panel = nullptr;     // null: the driver's scalar loops
  PackBPanelT pack_b_panel_t = nullptr;
};

// Each returns false/leaves `out` untouched when compiled without its ISA.
bool scalar_isa(Isa& out);
bool avx2_isa(Isa& out);
bool avx512_isa(Isa& out);

}  // namespace gemm
}  // namespace ferry
