// Test-only harness: the AVX-512 micro-kernel (compiled against the emulated immintrin.h in this
// folder) against a float64 reference, for every tile size, k, beta, bias and clamp variant.
#include <cstdio>
#include <random>
#include <vector>
#include <cmath>
#include <limits>
#include "ukernel.h"
using namespace ferry::gemm;
int main() {
  Isa a512, sc; if (!avx512_isa(a512)) { printf("no avx512 compiled\n"); return 1; }
  scalar_isa(sc);
  std::mt19937 rng(1); std::normal_distribution<float> nd;
  const int MR = a512.mr, NR = a512.nr; int bad = 0, runs = 0;
  for (int kc : {0, 1, 7, 64}) for (int mr = 1; mr <= MR; ++mr) for (int nr = 1; nr <= NR; ++nr)
  for (int variant = 0; variant < 4; ++variant) {
    std::vector<float> A(kc * MR + 1), B(kc * NR + 1), rb(MR), cb(NR);
    for (auto& x : A) x = nd(rng); for (auto& x : B) x = nd(rng);
    for (auto& x : rb) x = nd(rng); for (auto& x : cb) x = nd(rng);
    const int ldc = NR + 5;
    std::vector<float> C(MR * ldc), C0;
    for (auto& x : C) x = nd(rng);
    C0 = C;
    TileStore st{0.5f, variant & 1 ? 0.f : 1.5f, mr, nr, variant & 2 ? rb.data() : nullptr,
                 variant & 2 ? cb.data() : nullptr, variant == 3, -0.3f, 0.7f};
    a512.ukernel(kc, A.data(), B.data(), C.data(), ldc, st);
    // reference
    for (int i = 0; i < MR; ++i) for (int j = 0; j < ldc; ++j) {
      float want = C0[i * ldc + j];
      if (i < mr && j < nr) {
        double acc = 0; for (int k = 0; k < kc; ++k) acc += double(A[k * MR + i]) * B[k * NR + j];
        double x = 0.5 * acc + (st.beta != 0 ? st.beta * C0[i * ldc + j] : 0.0);
        if (st.row_bias) x += rb[i]; if (st.col_bias) x += cb[j];
        if (st.clamp) x = std::min<double>(std::max<double>(x, -0.3), 0.7);
        want = (float)x;
      }
      if (std::fabs(C[i * ldc + j] - want) > 1e-4 * (1 + std::fabs(want))) { if (bad < 5) printf("bad kc=%d mr=%d nr=%d v=%d i=%d j=%d got %f want %f\n", kc, mr, nr, variant, i, j, C[i*ldc+j], want); ++bad; }
    }
    ++runs;
  }
  printf("%s: %d runs, %d bad elements\n", a512.name, runs, bad);
  return bad != 0;
}
