// "Gemm" and "MatMul" kernels (float32) on top of sgemm.
//
// Gemm params: transA, transB (int), alpha, beta (float); optional activation (str, see
// activation_from_name) with activation_alpha / activation_beta. Inputs A, B, optional C
// (uni-directionally broadcastable to M x N). MatMul: numpy matmul semantics, including 1-D
// operands and broadcast batch dimensions, an optional third input bias [N] added to every row
// and the same optional activation; transB (int) reads B as [..., N, K]. A constant B is
// packed at make time.
#include <cstring>
#include <utility>
#include <vector>

#include "ferry/gemm.h"
#include "ferry/kernel.h"
#include "ferry/threadpool.h"

namespace ferry {
namespace {

void require_f32(const KernelArgs& a, const char* name) {
  for (size_t i = 0; i < a.in_dtypes.size(); ++i)
    if (a.in_dtypes[i] != DType::f32 && a.in_dtypes[i] != DType::unknown)
      throw KernelArgError(std::string(name) + ": only float32 inputs");
  for (DType t : a.out_dtypes)
    if (t != DType::f32) throw KernelArgError(std::string(name) + ": only float32 outputs");
}

Epilogue activation_epilogue(const Params& p) {
  Epilogue e;
  e.act = activation_from_name(p.has("activation") ? p.get_str("activation") : "");
  e.act_alpha = static_cast<float>(p.get_float("activation_alpha", 0.0));
  e.act_beta = static_cast<float>(p.get_float("activation_beta", 0.0));
  return e;
}

// ---- Gemm ----------------------------------------------------------------------------------

class GemmKernel : public Kernel {
 public:
  enum class CMode { none, per_row, per_col, full };

  explicit GemmKernel(const KernelArgs& a) {
    require_f32(a, "Gemm");
    if (a.in_shapes.size() < 2 || a.in_shapes.size() > 3 || a.out_shapes.size() != 1)
      throw KernelArgError("Gemm takes A, B, optional C and one output");
    const Params& p = a.params;
    trans_a_ = p.get_int("transA", 0) != 0;
    trans_b_ = p.get_int("transB", 0) != 0;
    alpha_ = static_cast<float>(p.get_float("alpha", 1.0));
    beta_ = static_cast<float>(p.get_float("beta", 1.0));
    epi_ = activation_epilogue(p);
    const Shape& sa = a.in_shapes[0];
    const Shape& sb = a.in_shapes[1];
    if (sa.size() != 2 || sb.size() != 2) throw KernelArgError("Gemm: A and B must be 2-D");
    M_ = trans_a_ ? sa[1] : sa[0];
    K_ = trans_a_ ? sa[0] : sa[1];
    const int64_t kb = trans_b_ ? sb[1] : sb[0];
    N_ = trans_b_ ? sb[0] : sb[1];
    if (kb != K_) throw KernelArgError("Gemm: inner dimensions differ");
    if (a.out_shapes[0] != Shape{M_, N_}) throw KernelArgError("Gemm: output shape is not M x N");

    const bool has_c = a.in_shapes.size() == 3 && a.in_dtypes[2] != DType::unknown;
    if (has_c && beta_ != 0.f) {
      Shape c = a.in_shapes[2];
      if (c.size() > 2) throw KernelArgError("Gemm: C has more than 2 dimensions");
      while (c.size() < 2) c.insert(c.begin(), 1);
      if (c[0] == 1 && c[1] == 1) {
        mode_ = CMode::per_col;
        scalar_c_ = true;
      } else if (c[0] == M_ && c[1] == 1) {
        mode_ = CMode::per_row;
      } else if (c[0] == 1 && c[1] == N_) {
        mode_ = CMode::per_col;
      } else if (c[0] == M_ && c[1] == N_) {
        mode_ = CMode::full;
      } else {
        throw KernelArgError("Gemm: C is not broadcastable to M x N");
      }
      auto it = a.constants.find(2);
      if (it != a.constants.end()) {
        const float* cv = static_cast<const float*>(it->second.data);
        const_c_.assign(cv, cv + numel(a.in_shapes[2]));
        if (mode_ != CMode::full) bias_ = make_bias(const_c_.data());
      }
    }
    auto it = a.constants.find(1);
    if (it != a.constants.end())
      packed_b_ = std::make_unique<PackedB>(trans_b_, K_, N_,
                                            static_cast<const float*>(it->second.data),
                                            trans_b_ ? K_ : N_);
  }

  void run(const void* const* in, void* const* out) const override {
    const float* A = static_cast<const float*>(in[0]);
    float* Y = static_cast<float*>(out[0]);
    Epilogue epi = epi_;
    float beta = 0.f;
    std::vector<float> bias;
    if (mode_ != CMode::none) {
      const float* c = const_c_.empty() ? static_cast<const float*>(in[2]) : const_c_.data();
      if (mode_ == CMode::full) {
        if (Y != c) std::memcpy(Y, c, sizeof(float) * M_ * N_);
        beta = beta_;
      } else {
        if (bias_.empty()) bias = make_bias(c);
        epi.bias = bias_.empty() ? bias.data() : bias_.data();
        epi.bias_kind = mode_ == CMode::per_row ? Epilogue::Bias::per_row
                                                : Epilogue::Bias::per_col;
      }
    }
    const int64_t lda = trans_a_ ? M_ : K_;
    if (packed_b_)
      sgemm(trans_a_, M_, N_, K_, alpha_, A, lda, *packed_b_, beta, Y, N_, epi);
    else
      sgemm(trans_a_, trans_b_, M_, N_, K_, alpha_, A, lda, static_cast<const float*>(in[1]),
            trans_b_ ? K_ : N_, beta, Y, N_, epi);
  }

 private:
  std::vector<float> make_bias(const float* c) const {
    const int64_t n = mode_ == CMode::per_row ? M_ : N_;
    std::vector<float> b(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) b[i] = beta_ * (scalar_c_ ? c[0] : c[i]);
    return b;
  }

  bool trans_a_ = false, trans_b_ = false, scalar_c_ = false;
  float alpha_ = 1.f, beta_ = 1.f;
  int64_t M_ = 0, N_ = 0, K_ = 0;
  CMode mode_ = CMode::none;
  Epilogue epi_;
  std::vector<float> const_c_, bias_;
  std::unique_ptr<PackedB> packed_b_;
};

// ---- MatMul --------------------------------------------------------------------------------

class MatMulKernel : public Kernel {
 public:
  explicit MatMulKernel(const KernelArgs& a) {
    require_f32(a, "MatMul");
    if (a.in_shapes.size() < 2 || a.in_shapes.size() > 3 || a.out_shapes.size() != 1)
      throw KernelArgError("MatMul takes A, B, optional bias and one output");
    epi_ = activation_epilogue(a.params);
    Shape sa = a.in_shapes[0], sb = a.in_shapes[1];
    if (sa.empty() || sb.empty()) throw KernelArgError("MatMul: scalar operands");
    const bool a1 = sa.size() == 1, b1 = sb.size() == 1;
    // transB: B is stored [..., N, K] (a Transpose folded in by the optimizer).
    trans_b_ = a.params.get_int("transB", 0) != 0;
    if (trans_b_ && b1) throw KernelArgError("MatMul: transB needs a matrix B");
    if (a1) sa.insert(sa.begin(), 1);
    if (b1) sb.push_back(1);
    if (trans_b_) std::swap(sb[sb.size() - 1], sb[sb.size() - 2]);
    M_ = sa[sa.size() - 2];
    K_ = sa.back();
    N_ = sb.back();
    if (sb[sb.size() - 2] != K_) throw KernelArgError("MatMul: inner dimensions differ");
    Shape ba(sa.begin(), sa.end() - 2), bb(sb.begin(), sb.end() - 2);
    const size_t nd = std::max(ba.size(), bb.size());
    while (ba.size() < nd) ba.insert(ba.begin(), 1);
    while (bb.size() < nd) bb.insert(bb.begin(), 1);
    Shape bo(nd);
    for (size_t d = 0; d < nd; ++d) {
      if (ba[d] != bb[d] && ba[d] != 1 && bb[d] != 1)
        throw KernelArgError("MatMul: batch dimensions do not broadcast");
      bo[d] = ba[d] == 1 ? bb[d] : ba[d];
    }
    Shape expect = bo;
    if (!a1) expect.push_back(M_);
    if (!b1) expect.push_back(N_);
    if (a.out_shapes[0] != expect) throw KernelArgError("MatMul: unexpected output shape");
    has_bias_ = a.in_shapes.size() == 3 && a.in_dtypes[2] != DType::unknown;
    if (has_bias_) {
      if (b1 || numel(a.in_shapes[2]) != N_) throw KernelArgError("MatMul: bias must have N values");
      if (auto c = a.constants.find(2); c != a.constants.end()) {
        const float* bv = static_cast<const float*>(c->second.data);
        const_bias_.assign(bv, bv + N_);
      }
    }

    const int64_t nbatch_b = numel(bb);
    if (nbatch_b == 1) {
      // B is one matrix: fold every batch of A into M (A and Y are contiguous).
      M_ *= numel(ba);
      a_off_.push_back(0);
      b_idx_.push_back(0);
    } else {
      // Offsets of each output batch in A and B (in matrices), broadcasting size-1 dims.
      const int64_t nb = numel(bo);
      std::vector<int64_t> sta(nd, 0), stb(nd, 0);
      int64_t ma = 1, mb = 1;
      for (size_t d = nd; d-- > 0;) {
        sta[d] = ba[d] == 1 ? 0 : ma;
        stb[d] = bb[d] == 1 ? 0 : mb;
        ma *= ba[d];
        mb *= bb[d];
      }
      for (int64_t i = 0; i < nb; ++i) {
        int64_t rem = i, oa = 0, ob = 0;
        for (size_t d = nd; d-- > 0;) {
          const int64_t idx = rem % bo[d];
          rem /= bo[d];
          oa += idx * sta[d];
          ob += idx * stb[d];
        }
        a_off_.push_back(oa);
        b_idx_.push_back(ob);
      }
    }
    auto it = a.constants.find(1);
    if (it != a.constants.end()) {
      const float* B = static_cast<const float*>(it->second.data);
      for (int64_t i = 0; i < nbatch_b; ++i)
        packed_b_.push_back(std::make_unique<PackedB>(trans_b_, K_, N_, B + i * K_ * N_,
                                                      trans_b_ ? K_ : N_));
    }
  }

  void run(const void* const* in, void* const* out) const override {
    const float* A = static_cast<const float*>(in[0]);
    const float* B = static_cast<const float*>(in[1]);
    float* Y = static_cast<float*>(out[0]);
    const int64_t nb = static_cast<int64_t>(a_off_.size());
    Epilogue epi = epi_;  // plus this run's bias
    if (has_bias_) {
      epi.bias_kind = Epilogue::Bias::per_col;
      epi.bias = const_bias_.empty() ? static_cast<const float*>(in[2]) : const_bias_.data();
    }
    auto one = [&](int64_t i) {
      const float* a = A + a_off_[i] * M_ * K_;
      float* y = Y + i * M_ * N_;
      if (!packed_b_.empty())
        sgemm(false, M_, N_, K_, 1.f, a, K_, *packed_b_[b_idx_[i]], 0.f, y, N_, epi);
      else
        sgemm(false, trans_b_, M_, N_, K_, 1.f, a, K_, B + b_idx_[i] * K_ * N_,
              trans_b_ ? K_ : N_, 0.f, y, N_, epi);
    };
    // Many small products (attention heads): one thread per product is cheaper than
    // splitting each product across threads.
    if (nb > 1 && double(M_) * N_ * K_ < double(1 << 20)) {
      parallel_for(nb, 1, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) one(i);
      });
    } else {
      for (int64_t i = 0; i < nb; ++i) one(i);
    }
  }

 private:
  int64_t M_ = 0, N_ = 0, K_ = 0;
  Epilogue epi_;
  bool trans_b_ = false;
  bool has_bias_ = false;
  std::vector<float> const_bias_;
  std::vector<int64_t> a_off_, b_idx_;  // per output batch: A matrix index, B matrix index
  std::vector<std::unique_ptr<PackedB>> packed_b_;
};

}  // namespace

FERRY_REGISTER_KERNEL("Gemm", [](const KernelArgs& a) -> std::unique_ptr<Kernel> {
  return std::make_unique<GemmKernel>(a);
});
FERRY_REGISTER_KERNEL("MatMul", [](const KernelArgs& a) -> std::unique_ptr<Kernel> {
  return std::make_unique<MatMulKernel>(a);
});

}  // namespace ferry
