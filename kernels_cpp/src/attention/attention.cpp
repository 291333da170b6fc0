// "MultiHeadAttention" (float32): softmax(scale * Q K^T + mask) V for every (batch, head), with
// Q, K, V read in place from the projections' [batch, seq, heads * head_size] layout (separate
// tensors or one packed QKV tensor) and the result written as [batch, q_len, heads * v_size],
// so no head split/merge transposes are materialized.
//
// Params (all resolved in Python, providers/cpu/ops/fused.py):
//   batch, q_len, kv_len, num_heads, head_size, v_head_size, scale
//   q_ld, q_col / k_input, k_ld, k_col / v_input, v_ld, v_col: row stride and column offset of
//     each operand; k_input / v_input say which kernel input holds K / V (0 = the packed input)
//   mask_strides [4]: element strides of the additive mask over (batch, head, q, kv), 0 where
//     the mask broadcasts; only read when input 3 is present.
// Work items are (batch, head, block of query rows); each computes its scores block with one
// GEMM, adds the mask, normalizes the rows with the Softmax kernel's row function and multiplies
// by V with a second GEMM straight into the output. Scratch: one rows x kv_len block per thread.
#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "../softmax/table.h"
#include "ferry/gemm.h"
#include "ferry/kernel.h"
#include "ferry/threadpool.h"

namespace ferry {
namespace {

// Queries per work item. Each item packs its head's K^T again, so taller blocks cost less:
// BERT's 128-query heads took 0.94 of the time as one block of 128 rather than two of 64.
// Blocks of 64 when 128 would make fewer than four items (threads need work). The choice
// depends on the shapes only: a row's result must not change with the thread count.
constexpr int64_t kRowBlock = 128, kRowBlockSmall = 64, kMinItems = 4;

class AttentionKernel : public Kernel {
 public:
  explicit AttentionKernel(const KernelArgs& a) {
    const char* name = "MultiHeadAttention";
    if (a.in_shapes.size() != 4 || a.out_shapes.size() != 1)
      throw KernelArgError(std::string(name) + ": inputs (qkv|q, k, v, mask) and one output");
    for (size_t i = 0; i < a.in_dtypes.size(); ++i)
      if (a.in_dtypes[i] != DType::f32 && a.in_dtypes[i] != DType::unknown)
        throw KernelArgError(std::string(name) + ": only float32 inputs");
    if (a.out_dtypes[0] != DType::f32)
      throw KernelArgError(std::string(name) + ": float32 output");
    const Params& p = a.params;
    B_ = p.get_int("batch");
    S_ = p.get_int("q_len");
    T_ = p.get_int("kv_len");
    H_ = p.get_int("num_heads");
    D_ = p.get_int("head_size");
    Dv_ = p.get_int("v_head_size");
    scale_ = static_cast<float>(p.get_float("scale"));
    q_ld_ = p.get_int("q_ld");
    q_col_ = p.get_int("q_col");
    k_in_ = p.get_int("k_input");
    k_ld_ = p.get_int("k_ld");
    k_col_ = p.get_int("k_col");
    v_in_ = p.get_int("v_input");
    v_ld_ = p.get_int("v_ld");
    v_col_ = p.get_int("v_col");
    if (B_ < 0 || S_ < 0 || T_ < 0 || H_ <= 0 || D_ <= 0 || Dv_ <= 0)
      throw KernelArgError(std::string(name) + ": bad sizes");
    if ((k_in_ != 0 && k_in_ != 1) || (v_in_ != 0 && v_in_ != 2))
      throw KernelArgError(std::string(name) + ": k_input must be 0 or 1, v_input 0 or 2");
    // Every operand must hold the rows and columns the strides say it does.
    auto check = [&](int idx, int64_t rows, int64_t ld, int64_t col, int64_t width,
                     const char* what) {
      const Shape& s = a.in_shapes[idx];
      if (a.in_dtypes[idx] == DType::unknown || s.size() != 3 || s[0] != B_ || s[1] != rows ||
          s[2] != ld || col < 0 || col + width > ld)
        throw KernelArgError(std::string(name) + ": " + what + " does not match its layout");
    };
    check(0, S_, q_ld_, q_col_, H_ * D_, "Q");
    check(static_cast<int>(k_in_), T_, k_ld_, k_col_, H_ * D_, "K");
    check(static_cast<int>(v_in_), T_, v_ld_, v_col_, H_ * Dv_, "V");
    has_mask_ = a.in_dtypes[3] != DType::unknown;
    if (has_mask_) {
      ms_ = p.get_ints("mask_strides");
      if (ms_.size() != 4) throw KernelArgError(std::string(name) + ": mask_strides needs 4");
      // The largest element offset reached must lie inside the mask.
      const int64_t last = (B_ ? B_ - 1 : 0) * ms_[0] + (H_ - 1) * ms_[1] +
                           (S_ ? S_ - 1 : 0) * ms_[2] + (T_ ? T_ - 1 : 0) * ms_[3];
      for (int64_t st : ms_)
        if (st < 0) throw KernelArgError(std::string(name) + ": negative mask stride");
      if (B_ * S_ * T_ > 0 && last >= numel(a.in_shapes[3]))
        throw KernelArgError(std::string(name) + ": mask smaller than its strides say");
    }
    const Shape expect{B_, S_, H_ * Dv_};
    if (a.out_shapes[0] != expect)
      throw KernelArgError(std::string(name) + ": output must be [batch, q_len, heads * v_size]");
    softmax_row_ = softmax::table_for(active_isa()).block;
  }

  void run(const void* const* in, void* const* out) const override {
    const float* q = static_cast<const float*>(in[0]);
    const float* k = static_cast<const float*>(in[k_in_]);
    const float* v = static_cast<const float*>(in[v_in_]);
    const float* mask = has_mask_ ? static_cast<const float*>(in[3]) : nullptr;
    float* o = static_cast<float*>(out[0]);
    const int64_t ldo = H_ * Dv_;
    if (B_ * S_ == 0) return;
    if (T_ == 0) {  // no keys: every weighted sum is empty
      std::memset(o, 0, sizeof(float) * B_ * S_ * ldo);
      return;
    }
    int64_t row_block = kRowBlock;
    if (B_ * H_ * ((S_ + kRowBlock - 1) / kRowBlock) < kMinItems)
      row_block = kRowBlockSmall;
    const int64_t nblk = (S_ + row_block - 1) / row_block;
    parallel_for(B_ * H_ * nblk, 1, [&](int64_t begin, int64_t end) {
      thread_local std::vector<float> scratch;
      scratch.resize(static_cast<size_t>(std::min(S_, row_block) * T_));
      float* sc = scratch.data();
      for (int64_t t = begin; t < end; ++t) {
        const int64_t b = t / (H_ * nblk), h = (t / nblk) % H_, blk = t % nblk;
        const int64_t s0 = blk * row_block, rows = std::min(row_block, S_ - s0);
        const float* qp = q + (b * S_ + s0) * q_ld_ + q_col_ + h * D_;
        const float* kp = k + b * T_ * k_ld_ + k_col_ + h * D_;
        const float* vp = v + b * T_ * v_ld_ + v_col_ + h * Dv_;
        sgemm(false, true, rows, T_, D_, scale_, qp, q_ld_, kp, k_ld_, 0.0f, sc, T_);
        for (int64_t r = 0; r < rows; ++r) {
          float* srow = sc + r * T_;
          if (mask) {
            const float* mrow = mask + b * ms_[0] + h * ms_[1] + (s0 + r) * ms_[2];
            if (ms_[3] == 1) {
              for (int64_t j = 0; j < T_; ++j) srow[j] += mrow[j];
            } else if (ms_[3] == 0) {
              const float m = mrow[0];
              for (int64_t j = 0; j < T_; ++j) srow[j] += m;
            } else {
              for (int64_t j = 0; j < T_; ++j) srow[j] += mrow[j * ms_[3]];
            }
          }
          softmax_row_(srow, srow, T_, 1, 0, 1, false);
        }
        sgemm(false, false, rows, Dv_, T_, 1.0f, sc, T_, vp, v_ld_, 0.0f,
              o + (b * S_ + s0) * ldo + h * Dv_, ldo);
      }
    });
  }

 private:
  int64_t B_, S_, T_, H_, D_, Dv_;
  float scale_;
  int64_t q_ld_, q_col_, k_in_, k_ld_, k_col_, v_in_, v_ld_, v_col_;
  bool has_mask_ = false;
  std::vector<int64_t> ms_;
  softmax::BlockFn softmax_row_;
};

std::unique_ptr<Kernel> make_attention(const KernelArgs& a) {
  return std::make_unique<AttentionKernel>(a);
}

}  // namespace

FERRY_REGISTER_KERNEL("MultiHeadAttention", make_attention);

}  // namespace ferry
