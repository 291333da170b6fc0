// AVX-512 micro-kernel: 12 rows x 32 columns, 24 zmm accumulators; column tails by k-masks.
#include "ukernel.h"

#if defined(__AVX512F__)
#include <immintrin.h>

namespace ferry {
namespace gemm {
namespace {

constexpr int MR = 12, NR = 32;

inline __mmask16 lane_mask(int n) {  // lanes [0, n) on, n in [0, 16]
  return static_cast<__mmask16>((1u << n) - 1u);
}

void ukernel_12x32(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                   const TileStore& st) {
  // The tile's rows of C, asked for before the k loop (see the AVX2 kernel's prefetch_tile).
  for (int i = 0; st.prefetch_c && i < st.mr; ++i) {
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + st.nr / 2), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + st.nr - 1), _MM_HINT_T0);
  }
  __m512 acc[MR][2];
#pragma GCC unroll 12
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
#pragma GCC unroll 2
  for (int64_t k = 0; k < kc; ++k) {
    const __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
#pragma GCC unroll 12
    for (int i = 0; i < MR; ++i) {
      const __m512 ai = _mm512_set1_ps(a[i]);
      acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
    }
    a += MR;
    b += NR;
  }

  const bool full = st.nr == NR;
  const __mmask16 m0 = lane_mask(st.nr < 16 ? st.nr : 16);
  const __mmask16 m1 = lane_mask(st.nr > 16 ? st.nr - 16 : 0);
  const __m512 alpha = _mm512_set1_ps(st.alpha), beta = _mm512_set1_ps(st.beta);
  const __m512 lo = _mm512_set1_ps(st.lo), hi = _mm512_set1_ps(st.hi);
  __m512 cb0 = _mm512_setzero_ps(), cb1 = _mm512_setzero_ps();
  if (st.col_bias) {
    cb0 = _mm512_maskz_loadu_ps(m0, st.col_bias);
    cb1 = _mm512_maskz_loadu_ps(m1, st.col_bias + 16);
  }
#pragma GCC unroll 12
  for (int i = 0; i < MR; ++i) {
    if (i >= st.mr) break;
    float* ci = c + i * ldc;
    __m512 x0 = _mm512_mul_ps(acc[i][0], alpha), x1 = _mm512_mul_ps(acc[i][1], alpha);
    if (st.beta != 0.f) {
      const __m512 c0 = full ? _mm512_loadu_ps(ci) : _mm512_maskz_loadu_ps(m0, ci);
      const __m512 c1 = full ? _mm512_loadu_ps(ci + 16) : _mm512_maskz_loadu_ps(m1, ci + 16);
      x0 = _mm512_fmadd_ps(c0, beta, x0);
      x1 = _mm512_fmadd_ps(c1, beta, x1);
    }
    if (st.residual) {
      const float* ri = st.residual + i * st.ld_residual;
      x0 = _mm512_add_ps(x0, full ? _mm512_loadu_ps(ri) : _mm512_maskz_loadu_ps(m0, ri));
      x1 = _mm512_add_ps(x1, full ? _mm512_loadu_ps(ri + 16) : _mm512_maskz_loadu_ps(m1, ri + 16));
    }
    if (st.row_bias) {
      const __m512 rb = _mm512_set1_ps(st.row_bias[i]);
      x0 = _mm512_add_ps(x0, rb);
      x1 = _mm512_add_ps(x1, rb);
    }
    if (st.col_bias) {
      x0 = _mm512_add_ps(x0, cb0);
      x1 = _mm512_add_ps(x1, cb1);
    }
    if (st.clamp) {  // max/min return the second operand for NaN: keep x second
      x0 = _mm512_min_ps(hi, _mm512_max_ps(lo, x0));
      x1 = _mm512_min_ps(hi, _mm512_max_ps(lo, x1));
    }
    if (full) {
      _mm512_storeu_ps(ci, x0);
      _mm512_storeu_ps(ci + 16, x1);
    } else {
      _mm512_mask_storeu_ps(ci, m0, x0);
      _mm512_mask_storeu_ps(ci + 16, m1, x1);
    }
  }
}

}  // namespace

bool avx512_isa(Isa& out) {
  // Untuned starting point (kc 384 x 32 columns = 48 KB B micro-panel).
  out = Isa{MR, NR, 384, 240, 512, ukernel_12x32, "avx512_12x32"};
  return true;
}

}  // namespace gemm
}  // namespace ferry

#else
namespace ferry {
namespace gemm {
bool avx512_isa(Isa&) { return false; }
}  // namespace gemm
}  // namespace ferry
#endif
