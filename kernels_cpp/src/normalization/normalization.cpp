// float32 BatchNormalization (inference), InstanceNormalization, LayerNormalization and LRN.
// Per-channel parameters given as constants at make time are copied (and BatchNormalization's
// folded into a scale) once; otherwise they are read at every run.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "ferry/gemm.h"
#include "ferry/kernel.h"
#include "ferry/threadpool.h"
#include "table.h"

namespace ferry {
namespace normalization {

const Table& table_for(Isa isa) {
  switch (isa) {
    case Isa::avx512: return table_avx512();
    case Isa::avx2: return table_avx2();
    default: return table_scalar();
  }
}

namespace {

void need_f32(const KernelArgs& a, size_t inputs, const char* name) {
  if (a.in_shapes.size() < inputs || a.out_shapes.empty())
    throw KernelArgError(std::string(name) + ": wrong number of inputs or outputs");
  for (size_t i = 0; i < inputs; ++i)
    if (a.in_dtypes[i] != DType::f32)
      throw KernelArgError(std::string(name) + ": float32 inputs only");
  if (a.out_dtypes[0] != DType::f32 || a.out_shapes[0] != a.in_shapes[0])
    throw KernelArgError(std::string(name) + ": float32 output of the input's shape");
}

// An input's values as owned floats when it was constant at make time (else empty).
std::vector<float> constant_values(const KernelArgs& a, int pos) {
  auto it = a.constants.find(pos);
  if (it == a.constants.end()) return {};
  const float* p = static_cast<const float*>(it->second.data);
  return std::vector<float>(p, p + numel(it->second.shape));
}

const float* input_or(const void* const* in, int pos, const std::vector<float>& own) {
  return own.empty() ? static_cast<const float*>(in[pos]) : own.data();
}

// ---- BatchNormalization / InstanceNormalization --------------------------------------------
class ChannelNormKernel : public Kernel {
 public:
  // instance: statistics per (n, c) plane; else BatchNormalization with inputs mean, var.
  ChannelNormKernel(bool instance, int64_t n, int64_t c, int64_t s, double eps,
                    std::vector<std::vector<float>> consts, const Table& t, Epilogue act)
      : instance_(instance), n_(n), c_(c), s_(s), eps_(eps), consts_(std::move(consts)),
        t_(t), act_(act) {}

  void run(const void* const* in, void* const* out) const override {
    const float* x = static_cast<const float*>(in[0]);
    float* y = static_cast<float*>(out[0]);
    const float* scale = input_or(in, 1, consts_[0]);
    const float* bias = input_or(in, 2, consts_[1]);
    std::vector<float> a(c_);
    const float* mean = nullptr;
    if (!instance_) {
      mean = input_or(in, 3, consts_[2]);
      const float* var = input_or(in, 4, consts_[3]);
      for (int64_t k = 0; k < c_; ++k)
        a[k] = static_cast<float>(scale[k] / std::sqrt(static_cast<double>(var[k]) + eps_));
    }
    const int64_t grain = std::max<int64_t>(1, (1 << 15) / std::max<int64_t>(1, s_));
    parallel_for(n_ * c_, grain, [&](int64_t b, int64_t e) {
      for (int64_t p = b; p < e; ++p) {
        const int64_t k = p % c_;
        const float* xp = x + p * s_;
        if (instance_) {
          float m, v;
          t_.moments(xp, s_, &m, &v);
          const float inv = static_cast<float>(1.0 / std::sqrt(static_cast<double>(v) + eps_));
          t_.affine(xp, y + p * s_, s_, m, inv * scale[k], bias[k]);
        } else {
          t_.affine(xp, y + p * s_, s_, mean[k], a[k], bias[k]);
        }
        // A fused activation (FusedBatchNormalization) on the plane just written (in cache).
        apply_activation(y + p * s_, s_, act_.act, act_.act_alpha, act_.act_beta);
      }
    });
  }

 private:
  bool instance_;
  int64_t n_, c_, s_;
  double eps_;
  std::vector<std::vector<float>> consts_;  // scale, bias[, mean, var] when constant
  const Table& t_;
  Epilogue act_;  // activation only (bias unused)
};

template <bool Instance> std::unique_ptr<Kernel> make_channel_norm(const KernelArgs& a) {
  const char* name = Instance ? "InstanceNormalization" : "BatchNormalization";
  const size_t inputs = Instance ? 3 : 5;
  need_f32(a, inputs, name);
  const Shape& xs = a.in_shapes[0];
  if (xs.size() < 2) throw KernelArgError(std::string(name) + ": input rank must be >= 2");
  const int64_t c = xs[1];
  for (size_t i = 1; i < inputs; ++i)
    if (numel(a.in_shapes[i]) != c)
      throw KernelArgError(std::string(name) + ": parameters must have C values");
  std::vector<std::vector<float>> consts;
  for (size_t i = 1; i < inputs; ++i) consts.push_back(constant_values(a, static_cast<int>(i)));
  if (!Instance) consts.resize(4);
  const int64_t n = xs[0], s = (n > 0 && c > 0) ? numel(xs) / (n * c) : 0;
  Epilogue act;
  act.act = activation_from_name(a.params.has("activation") ? a.params.get_str("activation") : "");
  act.act_alpha = static_cast<float>(a.params.get_float("activation_alpha", 0.0));
  act.act_beta = static_cast<float>(a.params.get_float("activation_beta", 0.0));
  return std::make_unique<ChannelNormKernel>(Instance, n, c, s, a.params.get_float("epsilon"),
                                             std::move(consts), table_for(active_isa()), act);
}

// ---- LayerNormalization ---------------------------------------------------------------------
class LayerNormKernel : public Kernel {
 public:
  LayerNormKernel(int64_t rows, int64_t n, float eps, bool has_bias, bool scale_scalar,
                  bool bias_scalar, int outs, std::vector<float> scale, std::vector<float> bias,
                  LayerRowFn fn)
      : rows_(rows), n_(n), eps_(eps), has_bias_(has_bias), scale_scalar_(scale_scalar),
        bias_scalar_(bias_scalar), outs_(outs), scale_(std::move(scale)),
        bias_(std::move(bias)), fn_(fn) {}

  void run(const void* const* in, void* const* out) const override {
    const float* x = static_cast<const float*>(in[0]);
    float* y = static_cast<float*>(out[0]);
    float* mean = outs_ > 1 ? static_cast<float*>(out[1]) : nullptr;
    float* inv = outs_ > 2 ? static_cast<float*>(out[2]) : nullptr;
    // Scalar (size-1) parameters read at run time are widened to a row here.
    std::vector<float> ws, wb;
    const float* scale = input_or(in, 1, scale_);
    if (scale_scalar_ && scale_.empty()) {
      ws.assign(n_, scale[0]);
      scale = ws.data();
    }
    const float* bias = nullptr;
    if (has_bias_) {
      bias = input_or(in, 2, bias_);
      if (bias_scalar_ && bias_.empty()) {
        wb.assign(n_, bias[0]);
        bias = wb.data();
      }
    }
    const int64_t grain = std::max<int64_t>(1, (1 << 14) / std::max<int64_t>(1, n_));
    parallel_for(rows_, grain, [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        float m, s;
        fn_(x + r * n_, y + r * n_, n_, scale, bias, eps_, &m, &s);
        if (mean) mean[r] = m;
        if (inv) inv[r] = s;
      }
    });
  }

 private:
  int64_t rows_, n_;
  float eps_;
  bool has_bias_, scale_scalar_, bias_scalar_;
  int outs_;
  std::vector<float> scale_, bias_;  // constant parameters, widened to n values
  LayerRowFn fn_;
};

std::unique_ptr<Kernel> make_layer_norm(const KernelArgs& a) {
  need_f32(a, 2, "LayerNormalization");
  const Shape& xs = a.in_shapes[0];
  int64_t axis = a.params.get_int("axis");
  if (axis < 0) axis += static_cast<int64_t>(xs.size());
  if (axis < 0 || axis >= static_cast<int64_t>(xs.size()))
    throw KernelArgError("LayerNormalization: axis out of range");
  int64_t rows = 1, n = 1;
  for (int64_t i = 0; i < static_cast<int64_t>(xs.size()); ++i) (i < axis ? rows : n) *= xs[i];
  const bool has_bias = a.in_shapes.size() > 2 && a.in_dtypes[2] != DType::unknown;
  if (has_bias && a.in_dtypes[2] != DType::f32)
    throw KernelArgError("LayerNormalization: float32 bias only");
  auto check = [&](int pos) {
    const int64_t k = numel(a.in_shapes[pos]);
    if (k != n && k != 1)
      throw KernelArgError("LayerNormalization: scale and bias must have 1 or all values");
    return k == 1 && n != 1;
  };
  const bool scale_scalar = check(1), bias_scalar = has_bias && check(2);
  const int outs = static_cast<int>(a.out_shapes.size());
  for (int j = 1; j < outs; ++j)
    if (numel(a.out_shapes[j]) != rows || a.out_dtypes[j] != DType::f32)
      throw KernelArgError("LayerNormalization: Mean / InvStdDev must be float32 [rows]");
  auto widen = [&](int pos, bool scalar) {
    std::vector<float> v = constant_values(a, pos);
    if (scalar && !v.empty()) v.assign(n, v[0]);
    return v;
  };
  std::vector<float> scale = widen(1, scale_scalar);
  std::vector<float> bias = has_bias ? widen(2, bias_scalar) : std::vector<float>();
  return std::make_unique<LayerNormKernel>(
      rows, n, static_cast<float>(a.params.get_float("epsilon")), has_bias, scale_scalar,
      bias_scalar, outs, std::move(scale), std::move(bias), table_for(active_isa()).layer_row);
}

// ---- LRN ------------------------------------------------------------------------------------
class LrnKernel : public Kernel {
 public:
  static constexpr int64_t kChunk = 4096;  // spatial positions per task
  LrnKernel(int64_t n, int64_t c, int64_t s, int64_t size, float alpha, float beta, float bias,
            LrnFn fn)
      : n_(n), c_(c), s_(s), lo_((size - 1) / 2), hi_(size - 1 - (size - 1) / 2),
        alpha_over_size_(alpha / static_cast<float>(size)), beta_(beta), bias_(bias),
        fn_(fn) {}
  void run(const void* const* in, void* const* out) const override {
    const float* x = static_cast<const float*>(in[0]);
    float* y = static_cast<float*>(out[0]);
    const int64_t chunks = (s_ + kChunk - 1) / kChunk;
    const int64_t grain =
        std::max<int64_t>(1, (1 << 13) / std::max<int64_t>(1, std::min(s_, kChunk)));
    parallel_for(n_ * c_ * chunks, grain, [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) {
        const int64_t q = t % chunks, p = t / chunks, k = p % c_, img = p / c_;
        const int64_t off = img * c_ * s_;
        fn_(x + off, y + off, c_, s_, k, lo_, hi_, q * kChunk, std::min(s_, (q + 1) * kChunk),
            alpha_over_size_, bias_, beta_);
      }
    });
  }

 private:
  int64_t n_, c_, s_, lo_, hi_;
  float alpha_over_size_, beta_, bias_;
  LrnFn fn_;
};

std::unique_ptr<Kernel> make_lrn(const KernelArgs& a) {
  need_f32(a, 1, "LRN");
  const Shape& xs = a.in_shapes[0];
  if (xs.size() < 2) throw KernelArgError("LRN: input rank must be >= 2");
  const int64_t size = a.params.get_int("size");
  if (size < 1) throw KernelArgError("LRN: size must be positive");
  const int64_t n = xs[0], c = xs[1];
  const int64_t s = (n > 0 && c > 0) ? numel(xs) / (n * c) : 0;
  return std::make_unique<LrnKernel>(n, c, s, size,
                                     static_cast<float>(a.params.get_float("alpha")),
                                     static_cast<float>(a.params.get_float("beta")),
                                     static_cast<float>(a.params.get_float("bias")),
                                     table_for(active_isa()).lrn);
}

}  // namespace

FERRY_REGISTER_KERNEL("BatchNormalization", make_channel_norm<false>);
FERRY_REGISTER_KERNEL("InstanceNormalization", make_channel_norm<true>);
FERRY_REGISTER_KERNEL("LayerNormalization", make_layer_norm);
FERRY_REGISTER_KERNEL("LRN", make_lrn);

}  // namespace normalization
}  // namespace ferry
