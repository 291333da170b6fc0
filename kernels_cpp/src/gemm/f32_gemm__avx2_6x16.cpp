// AVX2 + FMA micro-kernel: 6 rows x 16 columns, 12 ymm accumulators.
#include "ukernel.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

#include "ferry/simd.h"

namespace ferry {
namespace gemm {
namespace {

constexpr int MR = 6, NR = 16;
constexpr int kPrefetchB = 8 * NR, kPrefetchA = 256;  // floats ahead (see the k loop)

alignas(32) const int32_t kMaskTable[16] = {-1, -1, -1, -1, -1, -1, -1, -1,
                                            0,  0,  0,  0,  0,  0,  0,  0};

// Lanes [0, n) on, n in [0, 8].
inline __m256i lane_mask(int n) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kMaskTable + 8 - n));
}

// Asks for the tile's rows of C now, so that they arrive during the k loop: a C larger than
// L2, walked tile by tile down a column (the pre-packed B order), otherwise stalls every
// tile's stores (or beta loads) on a miss (10-15% of a 128 x 3072 x 768 GEMM here).
inline void prefetch_tile(const float* c, int64_t ldc, const TileStore& st) {
  if (!st.prefetch_c) return;
  for (int i = 0; i < st.mr; ++i) {
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + st.nr - 1), _MM_HINT_T0);
  }
}

// Rows [0, R) of a tile whose other rows are padding (the last row panel: M = 128 is 21 full
// tiles and one of 2 rows). Same arithmetic as the full tile (one accumulator per row and
// column vector, k in order), so a row's result does not depend on which tile it falls in.
template <int R>
inline void partial_rows(int64_t kc, const float* a, const float* b, __m256 (&acc)[5][2]) {
  for (int64_t k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) {
      const __m256 ai = _mm256_broadcast_ss(a + i);
      acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
    }
    a += MR;
    b += NR;
  }
}

void ukernel_6x16(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                  const TileStore& st) {
  // Named accumulators and one k step per iteration: 12 + 2 + 1 = 15 of the 16 ymm registers,
  // which GCC keeps without spilling (an array with an unrolled k loop made it spill).
  __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
  __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
  prefetch_tile(c, ldc, st);
  if (st.mr == 1) {
    // One real row (matrix-vector products: a batch-1 Linear): the other five rows' FMAs would
    // be 5/6 of the work. Four k steps in flight on separate accumulators hide the FMA latency.
    int64_t k = 0;
    for (; k + 4 <= kc; k += 4) {
      c00 = _mm256_fmadd_ps(_mm256_broadcast_ss(a), _mm256_loadu_ps(b), c00);
      c01 = _mm256_fmadd_ps(_mm256_broadcast_ss(a), _mm256_loadu_ps(b + 8), c01);
      c10 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + MR), _mm256_loadu_ps(b + NR), c10);
      c11 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + MR), _mm256_loadu_ps(b + NR + 8), c11);
      c20 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 2 * MR), _mm256_loadu_ps(b + 2 * NR), c20);
      c21 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 2 * MR), _mm256_loadu_ps(b + 2 * NR + 8),
                            c21);
      c30 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 3 * MR), _mm256_loadu_ps(b + 3 * NR), c30);
      c31 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 3 * MR), _mm256_loadu_ps(b + 3 * NR + 8),
                            c31);
      a += 4 * MR;
      b += 4 * NR;
    }
    for (; k < kc; ++k) {
      c00 = _mm256_fmadd_ps(_mm256_broadcast_ss(a), _mm256_loadu_ps(b), c00);
      c01 = _mm256_fmadd_ps(_mm256_broadcast_ss(a), _mm256_loadu_ps(b + 8), c01);
      a += MR;
      b += NR;
    }
    c00 = _mm256_add_ps(_mm256_add_ps(c00, c10), _mm256_add_ps(c20, c30));
    c01 = _mm256_add_ps(_mm256_add_ps(c01, c11), _mm256_add_ps(c21, c31));
    c10 = c11 = c20 = c21 = c30 = c31 = _mm256_setzero_ps();
    kc = 0;  // the tile is done: skip the 6-row loop, store row 0 below
  } else if (st.mr < MR && st.nr > 8) {
    // 2-5 real rows: their FMAs only (a 2-row tile in 4 cycles per k rather than 6; with
    // fewer than 8 accumulators the FMA latency, not the ports, bounds it).
    __m256 t[5][2] = {};
    switch (st.mr) {
      case 2: partial_rows<2>(kc, a, b, t); break;
      case 3: partial_rows<3>(kc, a, b, t); break;
      case 4: partial_rows<4>(kc, a, b, t); break;
      default: partial_rows<5>(kc, a, b, t); break;
    }
    c00 = t[0][0]; c01 = t[0][1]; c10 = t[1][0]; c11 = t[1][1]; c20 = t[2][0]; c21 = t[2][1];
    c30 = t[3][0]; c31 = t[3][1]; c40 = t[4][0]; c41 = t[4][1];
    kc = 0;  // rows >= mr are not stored
  } else if (st.nr <= 8) {
    // At most 8 real columns (the last panel of N = 49, a 7x7 map: 1 column of 16): the
    // right half's FMAs would be wasted. One accumulator per row and k in order, as in the
    // full tile, so that a column's sum does not depend on where the panel boundaries fall
    // (they move with the thread count: parallel runs must equal sequential ones bit for bit).
    for (int64_t k = 0; k < kc; ++k) {
      const __m256 b0 = _mm256_loadu_ps(b);
      c00 = _mm256_fmadd_ps(_mm256_broadcast_ss(a), b0, c00);
      c10 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 1), b0, c10);
      c20 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 2), b0, c20);
      c30 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 3), b0, c30);
      c40 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 4), b0, c40);
      c50 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 5), b0, c50);
      a += MR;
      b += NR;
    }
    kc = 0;  // columns 8..15 (c01 ...) stay zero and are not stored
  }
  // One k step: a row of the B panel (one 64-byte line) times six broadcast A values.
  auto step = [&](const float* ak, const float* bk) {
    const __m256 b0 = _mm256_loadu_ps(bk), b1 = _mm256_loadu_ps(bk + 8);
    __m256 ai = _mm256_broadcast_ss(ak);
    c00 = _mm256_fmadd_ps(ai, b0, c00);
    c01 = _mm256_fmadd_ps(ai, b1, c01);
    ai = _mm256_broadcast_ss(ak + 1);
    c10 = _mm256_fmadd_ps(ai, b0, c10);
    c11 = _mm256_fmadd_ps(ai, b1, c11);
    ai = _mm256_broadcast_ss(ak + 2);
    c20 = _mm256_fmadd_ps(ai, b0, c20);
    c21 = _mm256_fmadd_ps(ai, b1, c21);
    ai = _mm256_broadcast_ss(ak + 3);
    c30 = _mm256_fmadd_ps(ai, b0, c30);
    c31 = _mm256_fmadd_ps(ai, b1, c31);
    ai = _mm256_broadcast_ss(ak + 4);
    c40 = _mm256_fmadd_ps(ai, b0, c40);
    c41 = _mm256_fmadd_ps(ai, b1, c41);
    ai = _mm256_broadcast_ss(ak + 5);
    c50 = _mm256_fmadd_ps(ai, b0, c50);
    c51 = _mm256_fmadd_ps(ai, b1, c51);
  };
  // Software prefetch, 8 k steps ahead in B and ~40 in A: the hardware prefetchers do not
  // keep up with a panel streaming from L2. Tiles along a row (im2col and Winograd convs)
  // read B's panel from L2 again: these convs took 2-7% less time with it. Tiles down a column
  // (a pre-packed B, in L1 across the column) read each A micro-panel from L2: a 768 <-> 3072
  // MatMul chain took 0.95-0.97 of the time.
  int64_t k = 0;
  if (st.prefetch_b) {
    for (; k + 2 <= kc; k += 2) {
      _mm_prefetch(reinterpret_cast<const char*>(b + kPrefetchB), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(b + kPrefetchB + NR), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(a + kPrefetchA), _MM_HINT_T0);
      step(a, b);
      step(a + MR, b + NR);
      a += 2 * MR;
      b += 2 * NR;
    }
  }
  for (; k < kc; ++k) {
    step(a, b);
    a += MR;
    b += NR;
  }
  const __m256 acc[MR][2] = {{c00, c01}, {c10, c11}, {c20, c21},
                             {c30, c31}, {c40, c41}, {c50, c51}};

  const bool full = st.nr == NR;
  const __m256i m0 = lane_mask(st.nr < 8 ? st.nr : 8);
  const __m256i m1 = lane_mask(st.nr > 8 ? st.nr - 8 : 0);
  const __m256 alpha = _mm256_set1_ps(st.alpha), beta = _mm256_set1_ps(st.beta);
  const __m256 lo = _mm256_set1_ps(st.lo), hi = _mm256_set1_ps(st.hi);
  __m256 cb0 = _mm256_setzero_ps(), cb1 = _mm256_setzero_ps();
  if (st.col_bias) {
    cb0 = full ? _mm256_loadu_ps(st.col_bias) : _mm256_maskload_ps(st.col_bias, m0);
    cb1 = full ? _mm256_loadu_ps(st.col_bias + 8) : _mm256_maskload_ps(st.col_bias + 8, m1);
  }
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) {
    if (i >= st.mr) break;
    float* ci = c + i * ldc;
    __m256 x0 = _mm256_mul_ps(acc[i][0], alpha), x1 = _mm256_mul_ps(acc[i][1], alpha);
    if (st.beta != 0.f) {
      const __m256 c0 = full ? _mm256_loadu_ps(ci) : _mm256_maskload_ps(ci, m0);
      const __m256 c1 = full ? _mm256_loadu_ps(ci + 8) : _mm256_maskload_ps(ci + 8, m1);
      x0 = _mm256_fmadd_ps(c0, beta, x0);
      x1 = _mm256_fmadd_ps(c1, beta, x1);
    }
    if (st.residual) {
      const float* ri = st.residual + i * st.ld_residual;
      x0 = _mm256_add_ps(x0, full ? _mm256_loadu_ps(ri) : _mm256_maskload_ps(ri, m0));
      x1 = _mm256_add_ps(x1, full ? _mm256_loadu_ps(ri + 8) : _mm256_maskload_ps(ri + 8, m1));
    }
    if (st.row_bias) {
      const __m256 rb = _mm256_set1_ps(st.row_bias[i]);
      x0 = _mm256_add_ps(x0, rb);
      x1 = _mm256_add_ps(x1, rb);
    }
    if (st.col_bias) {
      x0 = _mm256_add_ps(x0, cb0);
      x1 = _mm256_add_ps(x1, cb1);
    }
    if (st.clamp) {  // max/min return the second operand for NaN: keep x second
      x0 = _mm256_min_ps(hi, _mm256_max_ps(lo, x0));
      x1 = _mm256_min_ps(hi, _mm256_max_ps(lo, x1));
    }
    if (full) {
      _mm256_storeu_ps(ci, x0);
      _mm256_storeu_ps(ci + 8, x1);
    } else {
      _mm256_maskstore_ps(ci, m0, x0);
      _mm256_maskstore_ps(ci + 8, m1, x1);
    }
  }
}

// A's rows are packed for every call (the activations of a MatMul): as scalar moves, six rows
// at stride 6 took ~85 us of a 128 x 768 A, 3% of BERT's 768 x 768 projections. Here each 8
// columns of the six rows are transposed in registers (two zero rows make it 8 x 8) and each
// k's six values stored as a vector whose last two lanes the next k's store overwrites.
void pack_a_panel_6(const float* src, int64_t lda, int64_t kc, float* dst) {
  const __m256i six = lane_mask(6);
  int64_t k = 0;
  for (; k + 8 <= kc; k += 8) {
    __m256 r[8], c[8];
    for (int i = 0; i < MR; ++i) r[i] = _mm256_loadu_ps(src + i * lda + k);
    r[6] = r[7] = _mm256_setzero_ps();
    simd::transpose8x8_regs(r, c);
    float* d = dst + k * MR;
    for (int j = 0; j < 7; ++j) _mm256_storeu_ps(d + j * MR, c[j]);
    // The last k of the block: six lanes only, or it would write past the panel.
    _mm256_maskstore_ps(d + 7 * MR, six, c[7]);
  }
  for (; k < kc; ++k)
    for (int r = 0; r < MR; ++r) dst[k * MR + r] = src[r * lda + k];
}

// A transposed B packed per call (attention's K, a Gemm with transB and runtime weights): by
// 8 x 8 register transposes, two per 8 k. As scalar stores 16 floats apart it was the largest
// fixed cost of an attention head's 64-row block.
void pack_b_panel_t_16(const float* src, int64_t ldb, int64_t kc, float* dst) {
  int64_t k = 0;
  for (; k + 8 <= kc; k += 8) {
    simd::transpose8x8(src + k, ldb, dst + k * NR, NR);
    simd::transpose8x8(src + 8 * ldb + k, ldb, dst + k * NR + 8, NR);
  }
  for (; k < kc; ++k)
    for (int j = 0; j < NR; ++j) dst[k * NR + j] = src[j * ldb + k];
}

}  // namespace

bool avx2_isa(Isa& out) {
  // kc 512: fewer passes over C (measured on a 2-core EPYC: 256 lost ~25% at 1024^3).
  // nc 128: a B block packed per call (kc x nc, 256 KB) stays in L2 while every row tile
  // streams it (at 256 the 512 KB block spilled to L3: 3x3 convs ran ~15% slower undisturbed).
  out = Isa{MR, NR, 512, 120, 128, ukernel_6x16, "avx2_6x16", pack_a_panel_6,
            pack_b_panel_t_16};
  return true;
}

}  // namespace gemm
}  // namespace ferry

#else
namespace ferry {
namespace gemm {
bool avx2_isa(Isa&) { return false; }
}  // namespace gemm
}  // namespace ferry
#endif
