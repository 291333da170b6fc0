// AVX2 + FMA body of the RNN kernels' small-M product (see small_gemm.h): one 32-column panel
// at a time, 4 ymm per row, rows 1 to 3; one row takes two k steps at once so that 8
// independent FMA chains hide the FMA latency.
#include "small_gemm.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

namespace ferry {
namespace rnn {
namespace {

constexpr int P = kSmallGemmPanel;

void store_row(float* c, int64_t ncols, __m256 v0, __m256 v1, __m256 v2, __m256 v3) {
  if (ncols >= P) {
    _mm256_storeu_ps(c, v0);
    _mm256_storeu_ps(c + 8, v1);
    _mm256_storeu_ps(c + 16, v2);
    _mm256_storeu_ps(c + 24, v3);
    return;
  }
  alignas(32) float tmp[P];
  _mm256_store_ps(tmp, v0);
  _mm256_store_ps(tmp + 8, v1);
  _mm256_store_ps(tmp + 16, v2);
  _mm256_store_ps(tmp + 24, v3);
  for (int64_t j = 0; j < ncols; ++j) c[j] = tmp[j];
}

void panel_m1(const float* b, int64_t K, const float* a, float* c, int64_t ncols) {
  __m256 x0 = _mm256_setzero_ps(), x1 = x0, x2 = x0, x3 = x0;
  __m256 y0 = x0, y1 = x0, y2 = x0, y3 = x0;
  int64_t k = 0;
  for (; k + 1 < K; k += 2, b += 2 * P) {
    const __m256 a0 = _mm256_broadcast_ss(a + k), a1 = _mm256_broadcast_ss(a + k + 1);
    x0 = _mm256_fmadd_ps(a0, _mm256_loadu_ps(b), x0);
    x1 = _mm256_fmadd_ps(a0, _mm256_loadu_ps(b + 8), x1);
    x2 = _mm256_fmadd_ps(a0, _mm256_loadu_ps(b + 16), x2);
    x3 = _mm256_fmadd_ps(a0, _mm256_loadu_ps(b + 24), x3);
    y0 = _mm256_fmadd_ps(a1, _mm256_loadu_ps(b + P), y0);
    y1 = _mm256_fmadd_ps(a1, _mm256_loadu_ps(b + P + 8), y1);
    y2 = _mm256_fmadd_ps(a1, _mm256_loadu_ps(b + P + 16), y2);
    y3 = _mm256_fmadd_ps(a1, _mm256_loadu_ps(b + P + 24), y3);
  }
  if (k < K) {
    const __m256 a0 = _mm256_broadcast_ss(a + k);
    x0 = _mm256_fmadd_ps(a0, _mm256_loadu_ps(b), x0);
    x1 = _mm256_fmadd_ps(a0, _mm256_loadu_ps(b + 8), x1);
    x2 = _mm256_fmadd_ps(a0, _mm256_loadu_ps(b + 16), x2);
    x3 = _mm256_fmadd_ps(a0, _mm256_loadu_ps(b + 24), x3);
  }
  store_row(c, ncols, _mm256_add_ps(x0, y0), _mm256_add_ps(x1, y1), _mm256_add_ps(x2, y2),
            _mm256_add_ps(x3, y3));
}

void panel_m2(const float* b, int64_t K, const float* a, int64_t lda, float* c, int64_t ldc,
              int64_t ncols) {
  __m256 x0 = _mm256_setzero_ps(), x1 = x0, x2 = x0, x3 = x0;
  __m256 y0 = x0, y1 = x0, y2 = x0, y3 = x0;
  const float* a2 = a + lda;
  for (int64_t k = 0; k < K; ++k, b += P) {
    const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
    const __m256 b2 = _mm256_loadu_ps(b + 16), b3 = _mm256_loadu_ps(b + 24);
    const __m256 r0 = _mm256_broadcast_ss(a + k), r1 = _mm256_broadcast_ss(a2 + k);
    x0 = _mm256_fmadd_ps(r0, b0, x0);
    x1 = _mm256_fmadd_ps(r0, b1, x1);
    x2 = _mm256_fmadd_ps(r0, b2, x2);
    x3 = _mm256_fmadd_ps(r0, b3, x3);
    y0 = _mm256_fmadd_ps(r1, b0, y0);
    y1 = _mm256_fmadd_ps(r1, b1, y1);
    y2 = _mm256_fmadd_ps(r1, b2, y2);
    y3 = _mm256_fmadd_ps(r1, b3, y3);
  }
  store_row(c, ncols, x0, x1, x2, x3);
  store_row(c + ldc, ncols, y0, y1, y2, y3);
}

void panel_m3(const float* b, int64_t K, const float* a, int64_t lda, float* c, int64_t ldc,
              int64_t ncols) {
  __m256 x0 = _mm256_setzero_ps(), x1 = x0, x2 = x0, x3 = x0;
  __m256 y0 = x0, y1 = x0, y2 = x0, y3 = x0;
  __m256 z0 = x0, z1 = x0, z2 = x0, z3 = x0;
  const float* a2 = a + lda;
  const float* a3 = a2 + lda;
  for (int64_t k = 0; k < K; ++k, b += P) {
    const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
    const __m256 b2 = _mm256_loadu_ps(b + 16), b3 = _mm256_loadu_ps(b + 24);
    __m256 r = _mm256_broadcast_ss(a + k);
    x0 = _mm256_fmadd_ps(r, b0, x0);
    x1 = _mm256_fmadd_ps(r, b1, x1);
    x2 = _mm256_fmadd_ps(r, b2, x2);
    x3 = _mm256_fmadd_ps(r, b3, x3);
    r = _mm256_broadcast_ss(a2 + k);
    y0 = _mm256_fmadd_ps(r, b0, y0);
    y1 = _mm256_fmadd_ps(r, b1, y1);
    y2 = _mm256_fmadd_ps(r, b2, y2);
    y3 = _mm256_fmadd_ps(r, b3, y3);
    r = _mm256_broadcast_ss(a3 + k);
    z0 = _mm256_fmadd_ps(r, b0, z0);
    z1 = _mm256_fmadd_ps(r, b1, z1);
    z2 = _mm256_fmadd_ps(r, b2, z2);
    z3 = _mm256_fmadd_ps(r, b3, z3);
  }
  store_row(c, ncols, x0, x1, x2, x3);
  store_row(c + ldc, ncols, y0, y1, y2, y3);
  store_row(c + 2 * ldc, ncols, z0, z1, z2, z3);
}

void small_gemm(const float* panels, int64_t K, int64_t N, const float* A, int64_t lda,
                int64_t M, float* C, int64_t ldc, int64_t p0, int64_t p1) {
  for (int64_t p = p0; p < p1; ++p) {
    const float* b = panels + p * K * P;
    const int64_t n0 = p * P;
    const int64_t ncols = N - n0 < P ? N - n0 : P;
    if (M == 1)
      panel_m1(b, K, A, C + n0, ncols);
    else if (M == 2)
      panel_m2(b, K, A, lda, C + n0, ldc, ncols);
    else
      panel_m3(b, K, A, lda, C + n0, ldc, ncols);
  }
}

}  // namespace

const SmallGemmFn small_gemm_avx2 = &small_gemm;

}  // namespace rnn
}  // namespace ferry

#else

namespace ferry {
namespace rnn {
const SmallGemmFn small_gemm_avx2 = nullptr;
}  // namespace rnn
}  // namespace ferry

#endif
