// The GEMM driver: dispatch, packing, cache blocking, threading.
//
// Loop order (BLIS): K blocks (equal, at most the ISA's kc: the B micro-panel, kc x NR, stays
// in L1 while the A micro-panels of an MC-row block stream from L2) -> MC-row blocks (A packed
// per block unless pre-packed) -> NR-column panels -> MR-row panels -> micro-kernel. Threads
// split the N panels when N >= M, else the M panels, into a few items per thread claimed
// dynamically; the operand every item reads (A when splitting N, B when splitting M) is packed
// once per call, together (or once per model: PackedA, PackedB).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>

#include "ferry/cpu_features.h"
#include "ferry/gemm.h"
#include "../elementwise/table.h"
#include "ferry/kernel.h"
#include "ferry/memory.h"
#include "ferry/threadpool.h"
#include "ukernel.h"

namespace ferry {

namespace {

// FERRY_GEMM_BLOCKING="kc,mc,nc" overrides the cache blocking of the active micro-kernel
// (for tuning on a new machine; mc is rounded to the tile height).
void apply_blocking_override(gemm::Isa& i) {
  const char* env = std::getenv("FERRY_GEMM_BLOCKING");
  if (!env) return;
  long kc = 0, mc = 0, nc = 0;
  if (std::sscanf(env, "%ld,%ld,%ld", &kc, &mc, &nc) != 3 || kc < 8 || mc < 1 || nc < 1) return;
  i.kc = static_cast<int>(kc);
  i.mc = static_cast<int>(std::max<long>(i.mr, mc / i.mr * i.mr));
  i.nc = static_cast<int>(std::max<long>(i.nr, nc / i.nr * i.nr));
}

const gemm::Isa& active() {
  static const gemm::Isa isa = [] {
    gemm::Isa i{};
    const Isa want = active_isa();
    if (!(want == Isa::avx512 && gemm::avx512_isa(i)) &&
        !(want != Isa::scalar && gemm::avx2_isa(i)))
      gemm::scalar_isa(i);
    apply_blocking_override(i);
    return i;
  }();
  return isa;
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The K block of a product: the fewest blocks of at most I.kc, made equal (K = 576 as 288 +
// 288 rather than 512 + 64, whose short block pays a pass over C for little work; BERT's
// K = 768 as 384 + 384: ~1% less time in a 768 <-> 3072 MatMul chain).
int64_t kc_for(const gemm::Isa& I, int64_t K) {
  if (K <= 0) return I.kc;  // no K loop runs; callers divide by the block
  const int64_t blocks = ceil_div(K, I.kc);
  return std::min<int64_t>(I.kc, ceil_div(ceil_div(K, blocks), 8) * 8);
}

float* alloc_floats(size_t n) { return static_cast<float*>(alloc_large(n * sizeof(float))); }

// A grow-only buffer per thread, so that packing allocates nothing in steady state.
class Scratch {
 public:
  ~Scratch() { std::free(p_); }
  float* get(size_t n) {
    if (n > cap_) {
      std::free(p_);
      p_ = nullptr;
      cap_ = 0;
      p_ = alloc_floats(n);
      cap_ = n;
    }
    return p_;
  }
  // Large one-off buffers are not kept.
  void trim(size_t keep) {
    if (cap_ > keep) {
      std::free(p_);
      p_ = nullptr;
      cap_ = 0;
    }
  }

 private:
  float* p_ = nullptr;
  size_t cap_ = 0;
};

thread_local Scratch tl_apack;
thread_local Scratch tl_bpack;   // a whole packed B, shared by the threads of one call
thread_local Scratch tl_bblock;  // one thread's kc x nc block of B
thread_local Scratch tl_apack_all;  // a whole packed A, shared by the threads of one call
constexpr size_t kKeepBPack = size_t(16) << 20;  // floats

// op(A)[i][k] with A stored row-major (trans: A is K x M).
inline float a_at(const float* A, int64_t lda, bool trans, int64_t i, int64_t k) {
  return trans ? A[k * lda + i] : A[i * lda + k];
}

// Packs rows [i0, i0 + rows) x cols [k0, k0 + kc) of op(A) into MR-row panels, zero-padded.
void pack_a(const gemm::Isa& I, const float* A, int64_t lda, bool trans, int64_t i0,
            int64_t rows, int64_t k0, int64_t kc, float* out) {
  const int MR = I.mr;
  for (int64_t q = 0; q < ceil_div(rows, MR); ++q) {
    float* dst = out + q * kc * MR;
    const int64_t r0 = q * MR, rn = std::min<int64_t>(MR, rows - r0);
    if (!trans && rn == MR && I.pack_a_panel) {
      I.pack_a_panel(A + (i0 + r0) * lda + k0, lda, kc, dst);
    } else if (!trans) {
      for (int64_t r = 0; r < rn; ++r) {
        const float* src = A + (i0 + r0 + r) * lda + k0;
        for (int64_t k = 0; k < kc; ++k) dst[k * MR + r] = src[k];
      }
    } else {
      for (int64_t k = 0; k < kc; ++k) {
        const float* src = A + (k0 + k) * lda + i0 + r0;
        for (int64_t r = 0; r < rn; ++r) dst[k * MR + r] = src[r];
      }
    }
    if (rn < MR)
      for (int64_t k = 0; k < kc; ++k)
        for (int64_t r = rn; r < MR; ++r) dst[k * MR + r] = 0.f;
  }
}

// Packs panels [np0, np1) of op(B) rows [pc, pc + kc) into out (panel p at (p - np0) * kc * NR).
// Row by row for a plain B, so that reads are contiguous.
void pack_b_block(const gemm::Isa& I, const float* B, int64_t ldb, bool trans,
                  const float* const* rows, int64_t pc, int64_t kc, int64_t N, int64_t np0,
                  int64_t np1, float* out) {
  const int NR = I.nr;
  if (!trans) {
    // Whole panels first, with a copy of constant size (inlined: a memcpy call per 64-byte
    // row segment cost a third of a K = 64 GEMM), then the last partial panel.
    const int64_t full_end = std::min(np1, np0 + std::max<int64_t>(0, (N - np0 * NR) / NR));
    for (int64_t k = 0; k < kc; ++k) {
      const float* src = rows ? rows[pc + k] : B + (pc + k) * ldb;
      float* d = out + k * NR;
      int64_t p = np0;
      if (NR == 16) {
        for (; p < full_end; ++p) std::memcpy(d + (p - np0) * kc * NR, src + p * 16, 64);
      } else if (NR == 32) {
        for (; p < full_end; ++p) std::memcpy(d + (p - np0) * kc * NR, src + p * 32, 128);
      }
      for (; p < np1; ++p) {
        const int64_t j0 = p * NR, nn = std::min<int64_t>(NR, N - j0);
        float* dp = d + (p - np0) * kc * NR;
        std::memcpy(dp, src + j0, nn * sizeof(float));
        for (int64_t j = nn; j < NR; ++j) dp[j] = 0.f;
      }
    }
    return;
  }
  for (int64_t p = np0; p < np1; ++p) {
    const int64_t j0 = p * NR, nn = std::min<int64_t>(NR, N - j0);
    float* dst = out + (p - np0) * kc * NR;
    if (nn == NR && I.pack_b_panel_t) {
      I.pack_b_panel_t(B + j0 * ldb + pc, ldb, kc, dst);
      continue;
    }
    for (int64_t j = 0; j < nn; ++j) {
      const float* src = B + (j0 + j) * ldb + pc;
      for (int64_t k = 0; k < kc; ++k) dst[k * NR + j] = src[k];
    }
    for (int64_t k = 0; k < kc; ++k)
      for (int64_t j = nn; j < NR; ++j) dst[k * NR + j] = 0.f;
  }
}

// Packs NR-column panel p of op(B) (K x N) for every K block into `out` (the whole packed B).
void pack_b_panel(const gemm::Isa& I, const float* B, int64_t ldb, bool trans,
                  const float* const* rows, int64_t K, int64_t N, int64_t p, float* out) {
  const int64_t npad = ceil_div(N, I.nr) * I.nr, kb = kc_for(I, K);
  for (int64_t pc = 0; pc < K; pc += kb) {
    const int64_t kc = std::min<int64_t>(kb, K - pc);
    pack_b_block(I, B, ldb, trans, rows, pc, kc, N, p, p + 1, out + pc * npad + p * kc * I.nr);
  }
}

void pack_b_all(const gemm::Isa& I, const float* B, int64_t ldb, bool trans,
                const float* const* rows, int64_t K, int64_t N, float* out) {
  const int64_t panels = ceil_div(N, I.nr);
  // Packing moves K*N floats: worth threads only when large.
  parallel_for(panels, std::max<int64_t>(1, (int64_t(1) << 16) / std::max<int64_t>(1, K * I.nr)),
               [&](int64_t b, int64_t e) {
                 for (int64_t p = b; p < e; ++p)
                   pack_b_panel(I, B, ldb, trans, rows, K, N, p, out);
               });
}

void pack_a_all(const gemm::Isa& I, const float* A, int64_t lda, bool trans, int64_t M,
                int64_t K, float* out) {
  const int64_t mpad = ceil_div(M, I.mr) * I.mr, kb = kc_for(I, K);
  for (int64_t pc = 0; pc < K; pc += kb) {
    const int64_t kc = std::min<int64_t>(kb, K - pc);
    pack_a(I, A, lda, trans, 0, M, pc, kc, out + pc * mpad);
  }
}

// pack_a_all with the threads: K blocks x MR-row panels as work items.
void pack_a_all_parallel(const gemm::Isa& I, const float* A, int64_t lda, bool trans, int64_t M,
                         int64_t K, float* out) {
  const int64_t mpan = ceil_div(M, I.mr), mpad = mpan * I.mr, kb = kc_for(I, K);
  parallel_for(ceil_div(K, kb) * mpan, std::max<int64_t>(1, (int64_t(1) << 14) / (I.mr * kb)),
               [&](int64_t b, int64_t e) {
                 for (int64_t w = b; w < e; ++w) {
                   const int64_t pc = (w / mpan) * kb, q = w % mpan;
                   const int64_t kc = std::min<int64_t>(kb, K - pc);
                   const int64_t rows = std::min<int64_t>(I.mr, M - q * I.mr);
                   pack_a(I, A, lda, trans, q * I.mr, rows, pc, kc,
                          out + pc * mpad + q * kc * I.mr);
                 }
               });
}

// B either packed whole (pack_b_all layout) or raw, then packed by each thread block by block.
struct BSource {
  const float* packed;
  const float* b;
  int64_t ldb;
  bool trans;
  const float* const* rows = nullptr;  // row k of B at rows[k] (not transposed; b unused)
};

struct ASource {
  const float* a;      // raw op(A) source, or null when packed
  int64_t lda;
  bool trans;
  const float* packed;  // whole packed A (pack_a_all layout), or null
};

bool in_kernel_clamp(const Epilogue& e, float& lo, float& hi) {
  if (e.act == Activation::relu) {
    lo = 0.f;
    hi = std::numeric_limits<float>::infinity();
    return true;
  }
  if (e.act == Activation::clip) {
    lo = e.act_alpha;
    hi = e.act_beta;
    return true;
  }
  return false;
}

// C rows of panels [mp0, mp1) x columns of panels [np0, np1).
void compute(const gemm::Isa& I, int64_t M, int64_t N, int64_t K, float alpha, const ASource& A,
             const BSource& B, float beta, float* C, int64_t ldc, const Epilogue& epi,
             int64_t mp0, int64_t mp1, int64_t np0, int64_t np1) {
  const int MR = I.mr, NR = I.nr;
  const int64_t mpad = ceil_div(M, MR) * MR, npad = ceil_div(N, NR) * NR;
  const int64_t kb = kc_for(I, K);
  int64_t mc_panels = std::max(1, I.mc / MR);
  if (B.packed && mp1 - mp0 > mc_panels && (mp1 - mp0) * MR * kb <= (int64_t(96) << 10)) {
    // A pre-packed B spans all of N, and every extra row block streams all of it again (from
    // DRAM when it is large: GPT-2's 768 x 50257 head with M = 128 was split 120 + 8 rows).
    // When the A block of the whole row range fits in L2 (<= 384 KB), take it in one block.
    mc_panels = mp1 - mp0;
  }
  // A raw B is packed here, nc columns at a time, so the block is still in cache when used.
  const int64_t nc_panels = B.packed ? std::max<int64_t>(1, np1 - np0)
                                     : std::max(1, I.nc / NR);
  float* abuf = A.packed ? nullptr : tl_apack.get(size_t(mc_panels) * MR * kb);
  float* bbuf = B.packed ? nullptr : tl_bblock.get(size_t(nc_panels) * NR * kb);
  float lo = 0.f, hi = 0.f;
  const bool clamp = in_kernel_clamp(epi, lo, hi);
  // B packed here comes in nc-column blocks that stay in L2: walk tiles row by row, so C is
  // written as a few contiguous row segments the prefetchers follow (column-first order
  // touches MR rows a whole row stride apart per tile: 2.5x slower on a 96 x 12544 output).
  // A pre-packed B spans all of N: column-first keeps each B micro-panel in L1 across rows.
  const bool row_major_tiles = !B.packed;
  const bool post_act = epi.act != Activation::none && !clamp;
  for (int64_t pc = 0; pc < K; pc += kb) {
    const int64_t kc = std::min<int64_t>(kb, K - pc);
    const bool last = pc + kc >= K;
    gemm::TileStore st{alpha, pc == 0 ? beta : 1.f, 0, 0, nullptr, nullptr, last && clamp, lo,
                       hi};
    st.prefetch_c = !row_major_tiles;
    // Both walks: along a row each tile reads B's panel from L2; down a column each reads its
    // A micro-panel from L2 (a 768 <-> 3072 MatMul chain: 0.95-0.97 of the time with it, BERT
    // 0.97, 1 and 2 threads).
    st.prefetch_b = true;
    st.ld_residual = epi.ld_residual;
    for (int64_t nb = np0; nb < np1; nb += nc_panels) {
      const int64_t nb_end = std::min(np1, nb + nc_panels);
      if (!B.packed)
        pack_b_block(I, B.b, B.ldb, B.trans, B.rows, pc, kc, N, nb, nb_end, bbuf);
      for (int64_t mp = mp0; mp < mp1; mp += mc_panels) {
        const int64_t mp_end = std::min(mp1, mp + mc_panels);
        const float* ablock;
        if (A.packed) {
          ablock = A.packed + pc * mpad + mp * kc * MR;
        } else {
          pack_a(I, A.a, A.lda, A.trans, mp * MR, std::min<int64_t>(M, mp_end * MR) - mp * MR,
                 pc, kc, abuf);
          ablock = abuf;
        }
        auto tile = [&](int64_t np, int64_t q) {
          const float* bpanel =
              B.packed ? B.packed + pc * npad + np * kc * NR : bbuf + (np - nb) * kc * NR;
          const int64_t j0 = np * NR, i0 = q * MR;
          st.nr = static_cast<int>(std::min<int64_t>(NR, N - j0));
          st.col_bias =
              last && epi.bias_kind == Epilogue::Bias::per_col ? epi.bias + j0 : nullptr;
          st.mr = static_cast<int>(std::min<int64_t>(MR, M - i0));
          st.row_bias =
              last && epi.bias_kind == Epilogue::Bias::per_row ? epi.bias + i0 : nullptr;
          // The residual enters once, with the first K block (later ones add to C).
          st.residual = pc == 0 && epi.residual ? epi.residual + i0 * epi.ld_residual + j0
                                                : nullptr;
          float* c = C + i0 * ldc + j0;
          I.ukernel(kc, ablock + (q - mp) * kc * MR, bpanel, c, ldc, st);
        };
        if (row_major_tiles) {
          for (int64_t q = mp; q < mp_end; ++q)
            for (int64_t np = nb; np < nb_end; ++np) tile(np, q);
        } else {
          // A pre-packed B (weights: in a model, read from DRAM) is walked panel by panel.
          // The next panel is asked into L2 a slice per tile, so that its first tile does not
          // wait on memory: a 12-layer 768 <-> 3072 MatMul chain went from 1.06-1.08 of
          // onnxruntime's time to 1.00-1.02.
          const int64_t lines = kc * NR * int64_t(sizeof(float)) / 64, ntiles = mp_end - mp;
          for (int64_t np = nb; np < nb_end; ++np) {
            const char* next = np + 1 < np1
                                   ? reinterpret_cast<const char*>(B.packed + pc * npad +
                                                                   (np + 1) * kc * NR)
                                   : nullptr;
            for (int64_t q = mp; q < mp_end; ++q) {
              if (next)
                for (int64_t l = lines * (q - mp) / ntiles; l < lines * (q - mp + 1) / ntiles; ++l)
                  __builtin_prefetch(next + l * 64, 0, 2);  // into L2 (T1)
              tile(np, q);
            }
          }
        }
        if (last && post_act) {
          // Transcendental activations once per finished block, row by row (runs of the
          // block's width): per 16-column tile row, the call overhead cost more than the
          // math (a SiLU 1x1 conv ran at 13 GFLOP/s).
          const int64_t j0 = nb * NR, jn = std::min<int64_t>(N, nb_end * NR) - j0;
          for (int64_t i = mp * MR; i < std::min<int64_t>(M, mp_end * MR); ++i)
            apply_activation(C + i * ldc + j0, jn, epi.act, epi.act_alpha, epi.act_beta);
        }
      }
    }
  }
}

// K == 0: C = beta * C + bias, then the activation.
void degenerate(int64_t M, int64_t N, float beta, float* C, int64_t ldc, const Epilogue& epi) {
  for (int64_t i = 0; i < M; ++i) {
    float* c = C + i * ldc;
    for (int64_t j = 0; j < N; ++j) {
      float x = beta == 0.f ? 0.f : beta * c[j];
      if (epi.bias_kind == Epilogue::Bias::per_row) x += epi.bias[i];
      if (epi.bias_kind == Epilogue::Bias::per_col) x += epi.bias[j];
      if (epi.residual) x += epi.residual[i * epi.ld_residual + j];
      c[j] = x;
    }
    apply_activation(c, N, epi.act, epi.act_alpha, epi.act_beta);
  }
}

int threads_for(int64_t M, int64_t N, int64_t K) {
  if (in_parallel_region()) return 1;  // one item of an outer parallel_for (attention heads)
  const double macs = double(M) * double(N) * double(K);
  const int64_t by_work = static_cast<int64_t>(macs / 65536.0);
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(num_threads(), by_work)));
}

// Work items per thread of a threaded GEMM, claimed dynamically: on this shared VM one core is
// often slower than the other for a while (other tenants), and with one fixed half per thread
// the fast core waits for the slow one at the end of every product.
constexpr int64_t kChunksPerThread = 4;
// Smallest work item (multiply-adds): ~30 us here; below it the claims and the re-walks of
// the shared operand cost more than the balance gains.
constexpr double kMinChunkMacs = double(1 << 21);

void run(const gemm::Isa& I, int64_t M, int64_t N, int64_t K, float alpha, ASource A,
         BSource B, float beta, float* C, int64_t ldc, const Epilogue& epi_in) {
  Epilogue epi = epi_in;
  if (epi.residual == C && epi.ld_residual == ldc) {  // C + R = 2C when R is C
    epi.residual = nullptr;
    beta += 1.f;
  }
  const int64_t mpan = ceil_div(M, I.mr), npan = ceil_div(N, I.nr);
  const int T = threads_for(M, N, K);
  if (T <= 1) {
    compute(I, M, N, K, alpha, A, B, beta, C, ldc, epi, 0, mpan, 0, npan);
    return;
  }
  // Split the larger dimension. Every part needs all of the other operand: pack it once,
  // together, rather than once per part.
  const bool split_n = N >= M;
  if (split_n && !A.packed) {
    float* ap = tl_apack_all.get(size_t(K) * mpan * I.mr);
    pack_a_all_parallel(I, A.a, A.lda, A.trans, M, K, ap);
    A.packed = ap;
  }
  if (!split_n && !B.packed) {
    float* bp = tl_bpack.get(size_t(K) * npan * I.nr);
    pack_b_all(I, B.b, B.ldb, B.trans, B.rows, K, N, bp);
    B.packed = bp;
  }
  const int64_t panels = split_n ? npan : mpan;
  const double macs = double(M) * double(N) * double(K);
  const int64_t n = std::min<int64_t>(
      panels, std::max<int64_t>(T, std::min<int64_t>(int64_t(T) * kChunksPerThread,
                                                     static_cast<int64_t>(macs / kMinChunkMacs))));
  parallel_for(n, 1, [&](int64_t b, int64_t e) {
    if (split_n)
      compute(I, M, N, K, alpha, A, B, beta, C, ldc, epi, 0, mpan, npan * b / n, npan * e / n);
    else
      compute(I, M, N, K, alpha, A, B, beta, C, ldc, epi, mpan * b / n, mpan * e / n, 0, npan);
  });
  tl_bpack.trim(kKeepBPack);
  tl_apack_all.trim(kKeepBPack);
}

}  // namespace

// ---- activations -------------------------------------------------------------------------

Activation activation_from_name(const std::string& name) {
  if (name.empty() || name == "none") return Activation::none;
  if (name == "relu") return Activation::relu;
  if (name == "clip") return Activation::clip;
  if (name == "leaky_relu") return Activation::leaky_relu;
  if (name == "sigmoid") return Activation::sigmoid;
  if (name == "tanh") return Activation::tanh;
  if (name == "hard_sigmoid") return Activation::hard_sigmoid;
  if (name == "hard_swish") return Activation::hard_swish;
  if (name == "gelu") return Activation::gelu;
  if (name == "gelu_tanh") return Activation::gelu_tanh;
  if (name == "silu") return Activation::silu;
  throw KernelArgError("unknown activation '" + name + "'");
}

void apply_activation(float* x, int64_t n, Activation act, float a, float b) {
  namespace ew = elementwise;
  // Transcendental activations reuse the vectorized elementwise loops of the active ISA
  // (in place: each loop reads x[i] before writing y[i]).
  auto table = [](int op) { return ew::table_for(active_isa()).unary[op]; };
  ew::UnaryArgs args;
  switch (act) {
    case Activation::none: return;
    // relu, clip and leaky_relu too: this file is built for the baseline ISA, where the
    // scalar loops (NaN-preserving selects) did not vectorize: a depthwise conv with ReLU6
    // spent as long clipping as convolving.
    case Activation::relu: return table(ew::kRelu)(x, x, n, args);
    case Activation::clip:
      args.alpha = a;
      args.beta = b;
      return table(ew::kClip)(x, x, n, args);
    case Activation::leaky_relu:
      args.alpha = a;
      return table(ew::kLeakyRelu)(x, x, n, args);
    case Activation::hard_sigmoid:
      for (int64_t i = 0; i < n; ++i) x[i] = std::max(0.f, std::min(1.f, a * x[i] + b));
      return;
    case Activation::sigmoid: return table(ew::kSigmoid)(x, x, n, args);
    case Activation::tanh: return table(ew::kTanh)(x, x, n, args);
    case Activation::hard_swish: return table(ew::kHardSwish)(x, x, n, args);
    case Activation::gelu: return table(ew::kGeluErf)(x, x, n, args);
    case Activation::gelu_tanh: return table(ew::kGeluTanh)(x, x, n, args);
    case Activation::silu: return table(ew::kSilu)(x, x, n, args);
  }
}

// ---- public API ----------------------------------------------------------------------------

GemmGeometry gemm_geometry() {
  const gemm::Isa& I = active();
  return GemmGeometry{I.mr, I.nr, I.kc, I.mc, I.name};
}

PackedB::PackedB(bool transB, int64_t K, int64_t N, const float* B, int64_t ldb)
    : K_(K), N_(N), data_(nullptr, std::free) {
  const gemm::Isa& I = active();
  data_.reset(alloc_floats(size_t(std::max<int64_t>(K, 1)) * ceil_div(N, I.nr) * I.nr));
  if (K > 0 && N > 0) pack_b_all(I, B, ldb, transB, nullptr, K, N, data_.get());
}

PackedA::PackedA(bool transA, int64_t M, int64_t K, const float* A, int64_t lda)
    : M_(M), K_(K), data_(nullptr, std::free) {
  const gemm::Isa& I = active();
  data_.reset(alloc_floats(size_t(std::max<int64_t>(K, 1)) * ceil_div(M, I.mr) * I.mr));
  if (K > 0 && M > 0) pack_a_all(I, A, lda, transA, M, K, data_.get());
}

void sgemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha,
           const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
           int64_t ldc, const Epilogue& epi) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) return degenerate(M, N, beta, C, ldc, epi);
  run(active(), M, N, K, alpha, ASource{A, lda, transA, nullptr},
      BSource{nullptr, B, ldb, transB}, beta, C, ldc, epi);
}

void sgemm(bool transA, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
           int64_t lda, const PackedB& B, float beta, float* C, int64_t ldc,
           const Epilogue& epi) {
  if (B.K() != K || B.N() != N) throw std::invalid_argument("sgemm: PackedB has another shape");
  if (M <= 0 || N <= 0) return;
  if (K <= 0) return degenerate(M, N, beta, C, ldc, epi);
  run(active(), M, N, K, alpha, ASource{A, lda, transA, nullptr},
      BSource{B.data(), nullptr, 0, false}, beta, C, ldc, epi);
}

void sgemm(const PackedA& A, bool transB, int64_t M, int64_t N, int64_t K, float alpha,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc, const Epilogue& epi) {
  if (A.M() != M || A.K() != K) throw std::invalid_argument("sgemm: PackedA has another shape");
  if (M <= 0 || N <= 0) return;
  if (K <= 0) return degenerate(M, N, beta, C, ldc, epi);
  run(active(), M, N, K, alpha, ASource{nullptr, 0, false, A.data()},
      BSource{nullptr, B, ldb, transB}, beta, C, ldc, epi);
}

void sgemm_rows(const PackedA& A, int64_t M, int64_t N, int64_t K, const float* const* rows,
                float beta, float* C, int64_t ldc, const Epilogue& epi) {
  if (A.M() != M || A.K() != K) throw std::invalid_argument("sgemm: PackedA has another shape");
  if (M <= 0 || N <= 0) return;
  if (K <= 0) return degenerate(M, N, beta, C, ldc, epi);
  BSource b{nullptr, nullptr, 0, false};
  b.rows = rows;
  run(active(), M, N, K, 1.f, ASource{nullptr, 0, false, A.data()}, b, beta, C, ldc, epi);
}

}  // namespace ferry
