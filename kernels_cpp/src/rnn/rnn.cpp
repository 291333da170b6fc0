// "LSTM", "GRU" and "RNN" kernels (float32) on top of sgemm.
//
// One GEMM projects the inputs of every time step of every direction at once
// (X [S*B, I] times the stacked W^T [I, D*G*H], with W packed once when it is a constant and
// the input-side biases folded into the epilogue); then each step runs one GEMM of the hidden
// state by R^T and the gate math row by row, the transcendental parts on the vectorized
// elementwise loops of the active ISA (apply_activation). The step product runs on the
// small-M loops of small_gemm.h up to batch 32 (R packed into their panels once when constant,
// else per run), on sgemm with R packed once (or raw) above. Only the default
// activations are taken (Sigmoid/Tanh/Tanh, Sigmoid/Tanh, Tanh); Python sends anything else to
// numpy.
//
// Inputs, in the ONNX order: X, W, R, optional B, sequence_lens (int32), initial_h,
// initial_c (LSTM), P (LSTM). Outputs: Y, Y_h and Y_c (LSTM), all written.
// Params (all resolved in Python): hidden_size, directions (one int per direction: 0 forward,
// 1 reverse), layout (0: [seq, batch, ...], 1: [batch, seq, ...]), has_clip and clip,
// input_forget (LSTM), linear_before_reset (GRU).
//
// Rows past a batch entry's sequence length are not updated and their Y is zero; the final
// states are those of each entry's last valid step (zero for a length of 0), as onnxruntime.
#include <algorithm>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "ferry/cpu_features.h"
#include "ferry/gemm.h"
#include "ferry/kernel.h"
#include "ferry/threadpool.h"
#include "small_gemm.h"

namespace ferry {
namespace rnn {

void small_gemm_scalar(const float* panels, int64_t K, int64_t N, const float* A, int64_t lda,
                       int64_t M, float* C, int64_t ldc, int64_t p0, int64_t p1) {
  constexpr int P = kSmallGemmPanel;
  for (int64_t p = p0; p < p1; ++p) {
    const int64_t n0 = p * P;
    const int64_t ncols = std::min<int64_t>(P, N - n0);
    for (int64_t m = 0; m < M; ++m) {
      float acc[P] = {};
      const float* a = A + m * lda;
      const float* b = panels + p * K * P;
      for (int64_t k = 0; k < K; ++k, b += P)
        for (int j = 0; j < P; ++j) acc[j] += a[k] * b[j];
      for (int64_t j = 0; j < ncols; ++j) C[m * ldc + n0 + j] = acc[j];
    }
  }
}

}  // namespace rnn

namespace {

// R rows [row0, row0 + N) of one direction (each K = hidden values) as small-GEMM panels of
// R^T: panel p holds columns [p * P, p * P + P) of R^T, k-major, zero padded.
std::vector<float> pack_panels(const float* R, int64_t N, int64_t K) {
  constexpr int P = rnn::kSmallGemmPanel;
  const int64_t np = (N + P - 1) / P;
  std::vector<float> out(static_cast<size_t>(np * K * P), 0.f);
  for (int64_t n = 0; n < N; ++n) {
    float* dst = out.data() + (n / P) * K * P + n % P;
    for (int64_t k = 0; k < K; ++k) dst[k * P] = R[n * K + k];
  }
  return out;
}

enum class Cell { rnn, gru, lstm };

// Up to this batch the step products run on the small-M loops (rows in groups of 3, each R
// panel reused from L1 by every group); measured faster than sgemm's 6x16 tiles from batch 1
// to 32 at hidden 256 (AVX2), where sgemm's per-call packing and row padding cost more.
constexpr int64_t kSmallPathMaxBatch = 32;

int gates_of(Cell c) { return c == Cell::lstm ? 4 : (c == Cell::gru ? 3 : 1); }
const char* name_of(Cell c) {
  return c == Cell::lstm ? "LSTM" : (c == Cell::gru ? "GRU" : "RNN");
}

inline void sigmoid_inplace(float* x, int64_t n) {
  apply_activation(x, n, Activation::sigmoid, 0.f, 0.f);
}
inline void tanh_inplace(float* x, int64_t n) {
  apply_activation(x, n, Activation::tanh, 0.f, 0.f);
}
inline void clip_inplace(float* x, int64_t n, float c) {
  for (int64_t i = 0; i < n; ++i) x[i] = x[i] < -c ? -c : (x[i] > c ? c : x[i]);
}

// Biases derived from B [D, 2*G*H]: what the input projection adds (W-side plus, where the
// math allows, R-side biases) and, for GRU, the R-side bias of the h gate kept apart.
struct Biases {
  std::vector<float> xw;  // [D * G * H]
  std::vector<float> rh;  // GRU: [D * H]
};

class RnnKernel : public Kernel {
 public:
  RnnKernel(const KernelArgs& a, Cell cell) : cell_(cell), G_(gates_of(cell)) {
    const char* nm = name_of(cell);
    auto fail = [nm](const std::string& why) {
      throw KernelArgError(std::string(nm) + ": " + why);
    };
    const size_t n_in = cell == Cell::lstm ? 8 : 6;
    if (a.in_shapes.size() < 3 || a.in_shapes.size() > n_in)
      fail("unexpected number of inputs");
    if (a.out_shapes.size() != (cell == Cell::lstm ? 3u : 2u)) fail("unexpected number of outputs");
    auto present = [&](size_t i) {
      return i < a.in_shapes.size() && a.in_dtypes[i] != DType::unknown;
    };
    for (size_t i = 0; i < a.in_shapes.size(); ++i) {
      if (!present(i)) continue;
      const DType want = i == 4 ? DType::i32 : DType::f32;
      if (a.in_dtypes[i] != want)
        fail("input " + std::to_string(i) + " must be " + (i == 4 ? "int32" : "float32"));
    }
    if (!present(0) || !present(1) || !present(2)) fail("X, W and R are required");
    for (DType t : a.out_dtypes)
      if (t != DType::f32) fail("only float32 outputs");

    const Params& p = a.params;
    H_ = p.get_int("hidden_size");
    layout_ = p.get_int("layout");
    for (int64_t d : p.get_ints("directions")) reverse_.push_back(d != 0);
    D_ = static_cast<int64_t>(reverse_.size());
    if (D_ < 1 || D_ > 2) fail("one or two directions");
    has_clip_ = p.get_int("has_clip") != 0;
    clip_ = static_cast<float>(p.get_float("clip", 0.0));
    input_forget_ = cell == Cell::lstm && p.get_int("input_forget", 0) != 0;
    lbr_ = cell == Cell::gru && p.get_int("linear_before_reset", 0) != 0;
    if (layout_ != 0 && layout_ != 1) fail("layout must be 0 or 1");

    const Shape& xs = a.in_shapes[0];
    if (xs.size() != 3) fail("X must be 3-D");
    S_ = layout_ == 0 ? xs[0] : xs[1];
    B_ = layout_ == 0 ? xs[1] : xs[0];
    I_ = xs[2];
    const int64_t GH = G_ * H_;
    if (H_ < 1) fail("hidden_size must be positive");
    if (a.in_shapes[1] != Shape{D_, GH, I_}) fail("W has an unexpected shape");
    if (a.in_shapes[2] != Shape{D_, GH, H_}) fail("R has an unexpected shape");
    if (present(3) && a.in_shapes[3] != Shape{D_, 2 * GH}) fail("B has an unexpected shape");
    if (present(4) && a.in_shapes[4] != Shape{B_}) fail("sequence_lens has an unexpected shape");
    const Shape state = layout_ == 0 ? Shape{D_, B_, H_} : Shape{B_, D_, H_};
    if (present(5) && a.in_shapes[5] != state) fail("initial_h has an unexpected shape");
    if (cell == Cell::lstm) {
      if (present(6) && a.in_shapes[6] != state) fail("initial_c has an unexpected shape");
      if (present(7) && a.in_shapes[7] != Shape{D_, 3 * H_}) fail("P has an unexpected shape");
    }
    const Shape y = layout_ == 0 ? Shape{S_, D_, B_, H_} : Shape{B_, S_, D_, H_};
    if (a.out_shapes[0] != y) fail("Y has an unexpected shape");
    for (size_t o = 1; o < a.out_shapes.size(); ++o)
      if (a.out_shapes[o] != state) fail("a final state has an unexpected shape");
    n_inputs_ = static_cast<int64_t>(a.in_shapes.size());
    has_b_ = present(3);
    has_p_ = cell == Cell::lstm && present(7);

    // Constants: W packed for the one projection GEMM, R per direction for the step GEMMs.
    if (auto it = a.constants.find(1); it != a.constants.end())
      packed_w_ = std::make_unique<PackedB>(true, I_, D_ * GH,
                                            static_cast<const float*>(it->second.data), I_);
    // Small batches: the step products go to the small-M loops instead of sgemm (R packed
    // here when constant, else on every run: each step reads all of R anyway).
    small_ = B_ <= kSmallPathMaxBatch;
    if (small_)
      small_fn_ = active_isa() >= Isa::avx2 && rnn::small_gemm_avx2 ? rnn::small_gemm_avx2
                                                                     : rnn::small_gemm_scalar;
    if (auto it = a.constants.find(2); it != a.constants.end()) {
      const float* R = static_cast<const float*>(it->second.data);
      if (small_) pack_r_panels(R, panels_r_, panels_rh_);
      for (int64_t d = 0; d < D_ && !small_; ++d) {
        const float* Rd = R + d * GH * H_;
        if (cell == Cell::gru && !lbr_) {
          packed_r_.push_back(std::make_unique<PackedB>(true, H_, 2 * H_, Rd, H_));
          packed_rh_.push_back(std::make_unique<PackedB>(true, H_, H_, Rd + 2 * H_ * H_, H_));
        } else {
          packed_r_.push_back(std::make_unique<PackedB>(true, H_, GH, Rd, H_));
        }
      }
    }
    if (!has_b_) {
      bias_ = make_biases(nullptr);
      const_bias_ = true;
    } else if (auto it = a.constants.find(3); it != a.constants.end()) {
      bias_ = make_biases(static_cast<const float*>(it->second.data));
      const_bias_ = true;
    }
    if (has_p_) {
      if (auto it = a.constants.find(7); it != a.constants.end()) {
        const float* P = static_cast<const float*>(it->second.data);
        const_p_.assign(P, P + D_ * 3 * H_);
      }
    }
  }

  void run(const void* const* in, void* const* out) const override {
    const float* X = static_cast<const float*>(in[0]);
    const int64_t GH = G_ * H_, DGH = D_ * GH;
    // The kernel gets as many input pointers as it was made with (trailing ones may be cut).
    auto input = [&](int64_t i) -> const void* { return i < n_inputs_ ? in[i] : nullptr; };

    std::vector<int32_t> lens(static_cast<size_t>(B_), static_cast<int32_t>(S_));
    if (const auto* sl = static_cast<const int32_t*>(input(4))) {
      for (int64_t b = 0; b < B_; ++b) {
        if (sl[b] < 0 || sl[b] > S_)
          throw std::invalid_argument(std::string(name_of(cell_)) +
                                      ": sequence_lens values must be in [0, seq_length]");
        lens[b] = sl[b];
      }
    }
    Biases local;
    const Biases* bias = &bias_;
    if (!const_bias_) {
      local = make_biases(static_cast<const float*>(input(3)));
      bias = &local;
    }
    const float* P = nullptr;
    if (has_p_) P = const_p_.empty() ? static_cast<const float*>(input(7)) : const_p_.data();

    // The input projection of every step and direction: xw[row][d*GH + g*H + j], where a row
    // is X's own row order (t*B + b in layout 0, b*S + t in layout 1).
    // Every element is written by the GEMM: left uninitialized (no memset of megabytes).
    const int64_t n_xw = std::max<int64_t>(S_ * B_ * DGH, 1);
    std::unique_ptr<float[]> xw(new float[static_cast<size_t>(n_xw)]);
    if (S_ * B_ > 0) {
      Epilogue e;
      e.bias_kind = Epilogue::Bias::per_col;
      e.bias = bias->xw.data();
      if (packed_w_)
        sgemm(false, S_ * B_, DGH, I_, 1.f, X, I_, *packed_w_, 0.f, xw.get(), DGH, e);
      else
        sgemm(false, true, S_ * B_, DGH, I_, 1.f, X, I_, static_cast<const float*>(in[1]), I_,
              0.f, xw.get(), DGH, e);
    }

    Outputs o{static_cast<float*>(out[0]), static_cast<float*>(out[1]),
              cell_ == Cell::lstm ? static_cast<float*>(out[2]) : nullptr};
    const float* R = static_cast<const float*>(in[2]);
    Panels pan{&panels_r_, &panels_rh_};
    std::vector<std::vector<float>> run_r, run_rh;
    if (small_ && panels_r_.empty()) {
      pack_r_panels(R, run_r, run_rh);
      pan = Panels{&run_r, &run_rh};
    }
    const float* h0 = static_cast<const float*>(input(5));
    const float* c0 = static_cast<const float*>(input(6));
    auto one = [&](int64_t d) {
      run_direction(d, xw.get(), R, pan, bias->rh.empty() ? nullptr : bias->rh.data() + d * H_,
                    P ? P + d * 3 * H_ : nullptr, lens.data(), h0, c0, o);
    };
    // The two directions are independent: one thread each (their GEMMs then run serially).
    if (D_ == 2 && num_threads() > 1)
      parallel_for(2, 1, [&](int64_t b, int64_t e) {
        for (int64_t d = b; d < e; ++d) one(d);
      });
    else
      for (int64_t d = 0; d < D_; ++d) one(d);
  }

 private:
  struct Panels {
    const std::vector<std::vector<float>>* r;
    const std::vector<std::vector<float>>* rh;
  };

  struct Outputs {
    float* y;
    float* yh;
    float* yc;
  };

  // Small-M panels of every direction's R (GRU without linear_before_reset: z and r apart
  // from h).
  void pack_r_panels(const float* R, std::vector<std::vector<float>>& pr,
                     std::vector<std::vector<float>>& prh) const {
    const int64_t GH = G_ * H_;
    const bool split = cell_ == Cell::gru && !lbr_;
    for (int64_t d = 0; d < D_; ++d) {
      const float* Rd = R + d * GH * H_;
      pr.push_back(pack_panels(Rd, split ? 2 * H_ : GH, H_));
      if (split) prh.push_back(pack_panels(Rd + 2 * H_ * H_, H_, H_));
    }
  }

  Biases make_biases(const float* Bv) const {
    const int64_t GH = G_ * H_;
    Biases r;
    r.xw.assign(static_cast<size_t>(D_ * GH), 0.f);
    if (cell_ == Cell::gru) r.rh.assign(static_cast<size_t>(D_ * H_), 0.f);
    if (!Bv) return r;
    for (int64_t d = 0; d < D_; ++d) {
      const float* wb = Bv + d * 2 * GH;
      const float* rb = wb + GH;
      float* x = r.xw.data() + d * GH;
      for (int64_t k = 0; k < GH; ++k) x[k] = wb[k];
      // GRU's h-gate R bias sits inside the reset product (or its linear part): kept apart.
      const int64_t fold = cell_ == Cell::gru ? 2 * H_ : GH;
      for (int64_t k = 0; k < fold; ++k) x[k] += rb[k];
      if (cell_ == Cell::gru)
        std::memcpy(r.rh.data() + d * H_, rb + 2 * H_, sizeof(float) * H_);
    }
    return r;
  }

  // Offsets (in floats) of a [.., H] state row and of a Y row.
  int64_t state_off(int64_t d, int64_t b) const {
    return (layout_ == 0 ? d * B_ + b : b * D_ + d) * H_;
  }
  int64_t y_off(int64_t t, int64_t d, int64_t b) const {
    return (layout_ == 0 ? (t * D_ + d) * B_ + b : (b * S_ + t) * D_ + d) * H_;
  }
  int64_t x_row(int64_t t, int64_t b) const { return layout_ == 0 ? t * B_ + b : b * S_ + t; }

  // out[M, N] = A[M, H] * R_part^T; part 0: the gates of the step GEMM (all, or z and r of a
  // GRU without linear_before_reset), part 1: that GRU's h gate.
  void gemm_r(int64_t d, int part, const float* A, int64_t M, const float* R,
              const Panels& panels_of, float* out, int64_t N) const {
    const auto& packs = part == 0 ? packed_r_ : packed_rh_;
    if (small_) {
      const float* pan = (*(part == 0 ? panels_of.r : panels_of.rh))[d].data();
      const int64_t np = (N + rnn::kSmallGemmPanel - 1) / rnn::kSmallGemmPanel;
      // Split the panels over the pool once a share holds ~32K multiply-adds.
      const int64_t grain = std::max<int64_t>(1, 32768 / (H_ * rnn::kSmallGemmPanel * M));
      // Rows in groups of at most kSmallGemmMaxM, each panel reused by every group while
      // it is still in cache.
      auto panels = [&](int64_t p0, int64_t p1) {
        for (int64_t p = p0; p < p1; ++p)
          for (int64_t m0 = 0; m0 < M; m0 += rnn::kSmallGemmMaxM)
            small_fn_(pan, H_, N, A + m0 * H_, H_, std::min(rnn::kSmallGemmMaxM, M - m0),
                      out + m0 * N, N, p, p + 1);
      };
      if (np <= grain)
        panels(0, np);
      else
        parallel_for(np, grain, panels);
    } else if (!packs.empty()) {
      sgemm(false, M, N, H_, 1.f, A, H_, *packs[d], 0.f, out, N);
    } else {
      const float* Rd = R + d * G_ * H_ * H_ + (part == 0 ? 0 : 2 * H_ * H_);
      sgemm(false, true, M, N, H_, 1.f, A, H_, Rd, H_, 0.f, out, N);
    }
  }

  // Runs fn(b) for every batch row, split over the pool when the rows carry enough work.
  template <class F>
  void rows(F&& fn) const {
    const int64_t work = G_ * H_;
    const int64_t grain = std::max<int64_t>(1, 8192 / std::max<int64_t>(work, 1));
    if (B_ <= grain) {
      for (int64_t b = 0; b < B_; ++b) fn(b);
      return;
    }
    parallel_for(B_, grain, [&](int64_t s, int64_t e) {
      for (int64_t b = s; b < e; ++b) fn(b);
    });
  }

  void run_direction(int64_t d, const float* xw, const float* R, const Panels& pan,
                     const float* rb_h,
                     const float* P, const int32_t* lens, const float* h0, const float* c0,
                     const Outputs& o) const {
    const int64_t H = H_, GH = G_ * H_, DGH = D_ * GH;
    const bool gru_split = cell_ == Cell::gru && !lbr_;
    const int64_t step_n = gru_split ? 2 * H : GH;  // columns of the step GEMM
    std::vector<float> h(static_cast<size_t>(B_ * H), 0.f);
    std::vector<float> c(cell_ == Cell::lstm ? static_cast<size_t>(B_ * H) : 0, 0.f);
    std::unique_ptr<float[]> g(new float[static_cast<size_t>(B_ * step_n)]);
    std::vector<float> rh, hh;
    if (gru_split) {
      rh.assign(static_cast<size_t>(B_ * H), 0.f);
      hh.assign(static_cast<size_t>(B_ * H), 0.f);
    }
    for (int64_t b = 0; b < B_; ++b) {
      if (h0) std::memcpy(h.data() + b * H, h0 + state_off(d, b), sizeof(float) * H);
      if (c0 && cell_ == Cell::lstm)
        std::memcpy(c.data() + b * H, c0 + state_off(d, b), sizeof(float) * H);
    }
    const bool rev = reverse_[d];
    const float* pi = P;
    const float* po = P ? P + H : nullptr;
    const float* pf = P ? P + 2 * H : nullptr;
    const bool clip = has_clip_;
    const float cl = clip_;

    for (int64_t step = 0; step < S_; ++step) {
      const int64_t t = rev ? S_ - 1 - step : step;
      int64_t active = 0;
      for (int64_t b = 0; b < B_; ++b) active += t < lens[b];
      if (active == 0) {
        for (int64_t b = 0; b < B_; ++b) std::memset(o.y + y_off(t, d, b), 0, sizeof(float) * H);
        continue;
      }
      gemm_r(d, 0, h.data(), B_, R, pan, g.get(), step_n);
      auto xrow = [&](int64_t b) { return xw + x_row(t, b) * DGH + d * GH; };
      auto skip = [&](int64_t b) {
        if (t < lens[b]) return false;
        std::memset(o.y + y_off(t, d, b), 0, sizeof(float) * H);
        return true;
      };

      if (cell_ == Cell::rnn) {
        rows([&](int64_t b) {
          if (skip(b)) return;
          float* gb = g.get() + b * H;
          const float* x = xrow(b);
          for (int64_t j = 0; j < H; ++j) gb[j] += x[j];
          if (clip) clip_inplace(gb, H, cl);
          tanh_inplace(gb, H);
          std::memcpy(h.data() + b * H, gb, sizeof(float) * H);
          std::memcpy(o.y + y_off(t, d, b), gb, sizeof(float) * H);
        });
      } else if (cell_ == Cell::lstm) {
        rows([&](int64_t b) {
          if (skip(b)) return;
          float* gi = g.get() + b * GH;
          float* go = gi + H;
          float* gf = gi + 2 * H;
          float* gc = gi + 3 * H;
          float* cb = c.data() + b * H;
          const float* x = xrow(b);
          for (int64_t j = 0; j < GH; ++j) gi[j] += x[j];
          if (P) {
            for (int64_t j = 0; j < H; ++j) {
              gi[j] += pi[j] * cb[j];
              gf[j] += pf[j] * cb[j];
            }
            if (clip) {
              clip_inplace(gi, H, cl);
              clip_inplace(gf, 2 * H, cl);  // f and c
            }
            sigmoid_inplace(gi, H);
            if (!input_forget_) sigmoid_inplace(gf, H);
          } else {
            if (clip) clip_inplace(gi, GH, cl);
            sigmoid_inplace(gi, input_forget_ ? 2 * H : 3 * H);  // i, o (, f)
          }
          if (input_forget_)
            for (int64_t j = 0; j < H; ++j) gf[j] = 1.f - gi[j];
          tanh_inplace(gc, H);
          for (int64_t j = 0; j < H; ++j) cb[j] = gf[j] * cb[j] + gi[j] * gc[j];
          if (P) {
            for (int64_t j = 0; j < H; ++j) go[j] += po[j] * cb[j];
            if (clip) clip_inplace(go, H, cl);
            sigmoid_inplace(go, H);
          }
          std::memcpy(gc, cb, sizeof(float) * H);
          tanh_inplace(gc, H);
          float* hb = h.data() + b * H;
          float* yb = o.y + y_off(t, d, b);
          for (int64_t j = 0; j < H; ++j) {
            const float v = go[j] * gc[j];
            hb[j] = v;
            yb[j] = v;
          }
        });
      } else if (lbr_) {
        rows([&](int64_t b) {
          if (skip(b)) return;
          float* gz = g.get() + b * GH;
          float* gr = gz + H;
          float* gh = gz + 2 * H;
          const float* x = xrow(b);
          for (int64_t j = 0; j < 2 * H; ++j) gz[j] += x[j];
          if (clip) clip_inplace(gz, 2 * H, cl);
          sigmoid_inplace(gz, 2 * H);
          for (int64_t j = 0; j < H; ++j) gh[j] = x[2 * H + j] + gr[j] * (gh[j] + rb_h[j]);
          if (clip) clip_inplace(gh, H, cl);
          tanh_inplace(gh, H);
          finish_gru(gz, gh, h.data() + b * H, o.y + y_off(t, d, b));
        });
      } else {
        // z and r first, then the h gate's GEMM over (r * h).
        rows([&](int64_t b) {
          if (t >= lens[b]) return;
          float* gz = g.get() + b * step_n;
          const float* x = xrow(b);
          for (int64_t j = 0; j < 2 * H; ++j) gz[j] += x[j];
          if (clip) clip_inplace(gz, 2 * H, cl);
          sigmoid_inplace(gz, 2 * H);
          const float* gr = gz + H;
          const float* hb = h.data() + b * H;
          float* rb = rh.data() + b * H;
          for (int64_t j = 0; j < H; ++j) rb[j] = gr[j] * hb[j];
        });
        gemm_r(d, 1, rh.data(), B_, R, pan, hh.data(), H);
        rows([&](int64_t b) {
          if (skip(b)) return;
          float* gh = hh.data() + b * H;
          const float* x = xrow(b) + 2 * H;
          for (int64_t j = 0; j < H; ++j) gh[j] += x[j] + rb_h[j];
          if (clip) clip_inplace(gh, H, cl);
          tanh_inplace(gh, H);
          finish_gru(g.get() + b * step_n, gh, h.data() + b * H, o.y + y_off(t, d, b));
        });
      }
    }

    for (int64_t b = 0; b < B_; ++b) {
      const bool empty = lens[b] == 0;
      float* yh = o.yh + state_off(d, b);
      if (empty) std::memset(yh, 0, sizeof(float) * H);
      else std::memcpy(yh, h.data() + b * H, sizeof(float) * H);
      if (o.yc) {
        float* yc = o.yc + state_off(d, b);
        if (empty) std::memset(yc, 0, sizeof(float) * H);
        else std::memcpy(yc, c.data() + b * H, sizeof(float) * H);
      }
    }
  }

  // h = (1 - z) * ht + z * h, also written to Y.
  void finish_gru(const float* z, const float* ht, float* hb, float* yb) const {
    for (int64_t j = 0; j < H_; ++j) {
      const float v = (1.f - z[j]) * ht[j] + z[j] * hb[j];
      hb[j] = v;
      yb[j] = v;
    }
  }

  Cell cell_;
  int64_t G_;
  int64_t n_inputs_ = 0;
  int64_t H_ = 0, S_ = 0, B_ = 0, I_ = 0, D_ = 0, layout_ = 0;
  std::vector<bool> reverse_;
  bool has_clip_ = false, input_forget_ = false, lbr_ = false, has_b_ = false, has_p_ = false;
  float clip_ = 0.f;
  bool const_bias_ = false;
  Biases bias_;
  std::vector<float> const_p_;
  std::unique_ptr<PackedB> packed_w_;
  std::vector<std::unique_ptr<PackedB>> packed_r_, packed_rh_;
  bool small_ = false;
  rnn::SmallGemmFn small_fn_ = nullptr;
  std::vector<std::vector<float>> panels_r_, panels_rh_;  // small-M panels per direction
};

}  // namespace

FERRY_REGISTER_KERNEL("LSTM", [](const KernelArgs& a) -> std::unique_ptr<Kernel> {
  return std::make_unique<RnnKernel>(a, Cell::lstm);
});
FERRY_REGISTER_KERNEL("GRU", [](const KernelArgs& a) -> std::unique_ptr<Kernel> {
  return std::make_unique<RnnKernel>(a, Cell::gru);
});
FERRY_REGISTER_KERNEL("RNN", [](const KernelArgs& a) -> std::unique_ptr<Kernel> {
  return std::make_unique<RnnKernel>(a, Cell::rnn);
});

}  // namespace ferry
