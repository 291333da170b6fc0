// Small-M products for the recurrence step of the RNN kernels: C[M, N] = A[M, K] * B[K, N],
// M in [1, kSmallGemmMaxM] per call (callers loop over row groups), with B packed once into
// panels of kSmallGemmPanel columns ([panel][K][kSmallGemmPanel], zero padded). At small
// batches the general sgemm wastes much of its 6- or 12-row tiles and repacks A on every
// call; these loops stream each panel with every row's accumulators in registers.
// Per-ISA bodies: f32_small_gemm__avx2_3x32.cpp (own flags; also used on AVX-512 CPUs),
// scalar in rnn.cpp.
#pragma once
#include <cstdint>

namespace ferry {
namespace rnn {

constexpr int kSmallGemmPanel = 32;
constexpr int64_t kSmallGemmMaxM = 3;

// Panels [p0, p1) of C = A * B. ldc >= N; columns past N are not written.
using SmallGemmFn = void (*)(const float* panels, int64_t K, int64_t N, const float* A,
                             int64_t lda, int64_t M, float* C, int64_t ldc, int64_t p0,
                             int64_t p1);

void small_gemm_scalar(const float* panels, int64_t K, int64_t N, const float* A, int64_t lda,
                       int64_t M, float* C, int64_t ldc, int64_t p0, int64_t p1);
// Defined only where the compiler targets AVX2 + FMA (nullptr otherwise).
extern const SmallGemmFn small_gemm_avx2;

}  // namespace rnn
}  // namespace ferry
