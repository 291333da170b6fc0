// Portable 4x8 micro-kernel (baseline flags: the compiler may still use SSE2 on x86-64).
#include <algorithm>

#include "ukernel.h"

namespace ferry {
namespace gemm {
namespace {

constexpr int MR = 4, NR = 8;

void ukernel_4x8(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                 const TileStore& st) {
  float acc[MR][NR] = {};
  for (int64_t k = 0; k < kc; ++k) {
    for (int i = 0; i < MR; ++i) {
      const float ai = a[i];
      for (int j = 0; j < NR; ++j) acc[i][j] += ai * b[j];
    }
    a += MR;
    b += NR;
  }
  for (int i = 0; i < st.mr; ++i) {
    float* ci = c + i * ldc;
    for (int j = 0; j < st.nr; ++j) {
      float x = st.alpha * acc[i][j];
      if (st.beta != 0.f) x += st.beta * ci[j];
      if (st.residual) x += st.residual[i * st.ld_residual + j];
      if (st.row_bias) x += st.row_bias[i];
      if (st.col_bias) x += st.col_bias[j];
      // Written so that NaN passes through as it does in the vector kernels.
      if (st.clamp) x = x < st.lo ? st.lo : (x > st.hi ? st.hi : x);
      ci[j] = x;
    }
  }
}

}  // namespace

bool scalar_isa(Isa& out) {
  out = Isa{MR, NR, 256, 128, 256, ukernel_4x8, "scalar_4x8"};
  return true;
}

}  // namespace gemm
}  // namespace ferry
