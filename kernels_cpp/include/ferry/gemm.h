// Single-precision GEMM: C = act(alpha * op(A) op(B) + beta * C + bias + R).
//
// Row-major throughout. Operands are packed into the micro-kernel's panel layout (B into
// NR-column strips, A into MR-row strips, both K-blocked); constant operands (weights) can be
// packed once with PackedA / PackedB and reused. Micro-kernels per ISA (scalar, AVX2 6x16,
// AVX-512 12x32) are chosen once from active_isa(). Multi-threaded through parallel_for; a call
// from inside a parallel_for task runs single-threaded.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

namespace ferry {

// Activations an epilogue can apply. relu and clip are applied in the micro-kernel's registers;
// the others right after each output tile is finished (still in L1).
enum class Activation : int {
  none, relu, clip, leaky_relu, sigmoid, tanh, hard_sigmoid, hard_swish, gelu, gelu_tanh, silu
};

// "" or "none", "relu", "clip", "leaky_relu", "sigmoid", "tanh", "hard_sigmoid", "hard_swish",
// "gelu" (erf form), "gelu_tanh", "silu" (x * sigmoid(x)).
// Throws KernelArgError for anything else.
Activation activation_from_name(const std::string& name);

// Applies `act` in place to n floats. clip: [a, b]; leaky_relu: slope a; hard_sigmoid:
// max(0, min(1, a * x + b)).
void apply_activation(float* x, int64_t n, Activation act, float a, float b);

struct Epilogue {
  enum class Bias : int { none, per_row, per_col };
  Bias bias_kind = Bias::none;
  const float* bias = nullptr;  // M values (per_row) or N values (per_col), added unscaled
  Activation act = Activation::none;
  float act_alpha = 0.f, act_beta = 0.f;
  // A residual R (M x N, rows ld_residual apart) added unscaled before the activation, read
  // as the tiles are stored: a conv's skip connection without first copying it into C. R may
  // be C itself (same pointer and ld: then it is beta + 1); it must not partly overlap C.
  const float* residual = nullptr;
  int64_t ld_residual = 0;
};

// op(B) (K x N) packed for the active micro-kernel. Immutable once made: safe to share.
class PackedB {
 public:
  PackedB(bool transB, int64_t K, int64_t N, const float* B, int64_t ldb);
  int64_t K() const { return K_; }
  int64_t N() const { return N_; }
  const float* data() const { return data_.get(); }

 private:
  int64_t K_, N_;
  std::unique_ptr<float, void (*)(void*)> data_;
};

// op(A) (M x K) packed for the active micro-kernel.
class PackedA {
 public:
  PackedA(bool transA, int64_t M, int64_t K, const float* A, int64_t lda);
  int64_t M() const { return M_; }
  int64_t K() const { return K_; }
  const float* data() const { return data_.get(); }

 private:
  int64_t M_, K_;
  std::unique_ptr<float, void (*)(void*)> data_;
};

// beta == 0 means C is not read (it may hold garbage or NaN).
void sgemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha,
           const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
           int64_t ldc, const Epilogue& epi = Epilogue());

void sgemm(bool transA, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
           int64_t lda, const PackedB& B, float beta, float* C, int64_t ldc,
           const Epilogue& epi = Epilogue());

void sgemm(const PackedA& A, bool transB, int64_t M, int64_t N, int64_t K, float alpha,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc,
           const Epilogue& epi = Epilogue());

// B given by row pointers: op(B)[k][j] = rows[k][j] for j < N (each row readable for N
// floats). Convolutions pass shifted views of one padded input this way (no im2col copy).
void sgemm_rows(const PackedA& A, int64_t M, int64_t N, int64_t K, const float* const* rows,
                float beta, float* C, int64_t ldc, const Epilogue& epi = Epilogue());

// Micro-kernel geometry of the active ISA (for callers that size their own chunks).
struct GemmGeometry {
  int mr, nr, kc, mc;
  const char* name;
};
GemmGeometry gemm_geometry();

}  // namespace ferry
