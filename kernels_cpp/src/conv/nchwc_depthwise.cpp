// "NchwcDepthwiseConv" (float32): a depthwise 2-D Conv (group == C) on NCHWc activations.
// Parameters as Conv (conv.cpp): group (must be C when given), strides, dilations, pads
// [top, left, bottom, right], optional kernel_shape (checked against W), optional activation /
// activation_alpha / activation_beta.
// Inputs X [N, C/8, H, W, 8], W [C, 1, KH, KW] (constant: repacked at make time as
// [C/8][KH][KW][8]), optional B [C] (constant or run time), optional Z [N, C/8, OH, OW, 8]
// (a residual, may be Y's own buffer). Output Y [N, C/8, OH, OW, 8] = act(dwconv + B + Z).
// Work items: (image, channel block, chunk of output rows), the chunks sized from the map
// alone so that results do not depend on the thread count.
#include <algorithm>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "nchwc_depthwise.h"
#include "ferry/cpu_features.h"
#include "ferry/gemm.h"
#include "ferry/kernel.h"
#include "ferry/threadpool.h"

namespace ferry {
namespace {

class NchwcDepthwiseKernel : public Kernel {
 public:
  explicit NchwcDepthwiseKernel(const KernelArgs& a) {
    const char* name = "NchwcDepthwiseConv";
    for (size_t i = 0; i < a.in_dtypes.size(); ++i)
      if (a.in_dtypes[i] != DType::f32 && a.in_dtypes[i] != DType::unknown)
        throw KernelArgError(std::string(name) + ": only float32");
    if (a.in_shapes.size() < 2 || a.in_shapes.size() > 4 || a.out_shapes.size() != 1 ||
        a.out_dtypes[0] != DType::f32 || a.in_dtypes[0] != DType::f32)
      throw KernelArgError(std::string(name) +
                           " takes X, W, optional B, optional Z and one float32 output");
    const Shape& xs = a.in_shapes[0];
    const Shape& ws = a.in_shapes[1];
    if (xs.size() != 5 || xs[4] != 8)
      throw KernelArgError(std::string(name) + ": X must be NCHWc [N, C/8, H, W, 8]");
    N_ = xs[0];
    CB_ = xs[1];
    const int64_t C = CB_ * 8;
    if (ws.size() != 4 || ws[0] != C || ws[1] != 1)
      throw KernelArgError(std::string(name) + ": W must be [C, 1, KH, KW] with C = " +
                           std::to_string(C));
    const Params& p = a.params;
    if (p.get_int("group", C) != C)
      throw KernelArgError(std::string(name) + ": group must equal the channels (depthwise)");
    g_.ih = xs[2];
    g_.iw = xs[3];
    g_.kh = ws[2];
    g_.kw = ws[3];
    if (g_.kh < 1 || g_.kw < 1) throw KernelArgError(std::string(name) + ": empty kernel");
    if (p.has("kernel_shape") && p.get_ints("kernel_shape") != Shape{g_.kh, g_.kw})
      throw KernelArgError(std::string(name) + ": kernel_shape differs from W");
    const Shape st = p.has("strides") ? p.get_ints("strides") : Shape{1, 1};
    const Shape dl = p.has("dilations") ? p.get_ints("dilations") : Shape{1, 1};
    const Shape pd = p.has("pads") ? p.get_ints("pads") : Shape{0, 0, 0, 0};
    if (st.size() != 2 || dl.size() != 2 || pd.size() != 4)
      throw KernelArgError(std::string(name) + ": strides/dilations need 2 values, pads 4");
    for (int d = 0; d < 2; ++d)
      if (st[d] < 1 || dl[d] < 1 || pd[d] < 0 || pd[2 + d] < 0)
        throw KernelArgError(std::string(name) + ": bad strides, dilations or pads");
    g_.sh = st[0];
    g_.sw = st[1];
    g_.dh = dl[0];
    g_.dw = dl[1];
    g_.pt = pd[0];
    g_.pl = pd[1];
    const int64_t oh = (g_.ih + pd[0] + pd[2] - ((g_.kh - 1) * g_.dh + 1)) / g_.sh + 1;
    const int64_t ow = (g_.iw + pd[1] + pd[3] - ((g_.kw - 1) * g_.dw + 1)) / g_.sw + 1;
    g_.oh = std::max<int64_t>(oh, 0);
    g_.ow = std::max<int64_t>(ow, 0);
    // (a negative span: floor division, not C++'s truncation)
    if (g_.ih + pd[0] + pd[2] < (g_.kh - 1) * g_.dh + 1) g_.oh = 0;
    if (g_.iw + pd[1] + pd[3] < (g_.kw - 1) * g_.dw + 1) g_.ow = 0;
    const Shape expect{N_, CB_, g_.oh, g_.ow, 8};
    if (a.out_shapes[0] != expect)
      throw KernelArgError(std::string(name) + ": unexpected output shape (expected [N, C/8, " +
                           std::to_string(g_.oh) + ", " + std::to_string(g_.ow) + ", 8])");

    act_ = activation_from_name(p.has("activation") ? p.get_str("activation") : "");
    alpha_ = static_cast<float>(p.get_float("activation_alpha", 0.0));
    beta_ = static_cast<float>(p.get_float("activation_beta", 0.0));
    has_bias_ = a.in_shapes.size() >= 3 && a.in_dtypes[2] != DType::unknown;
    has_z_ = a.in_shapes.size() == 4 && a.in_dtypes[3] != DType::unknown;
    if (has_bias_ && a.in_shapes[2] != Shape{C})
      throw KernelArgError(std::string(name) + ": B must be [C]");
    if (has_z_ && a.in_shapes[3] != expect)
      throw KernelArgError(std::string(name) + ": Z must match Y [N, C/8, OH, OW, 8]");
    if (auto it = a.constants.find(2); has_bias_ && it != a.constants.end()) {
      const float* b = static_cast<const float*>(it->second.data);
      const_bias_.assign(b, b + C);
    }
    if (!has_bias_) const_bias_.assign(size_t(C), 0.f);

    auto it = a.constants.find(1);
    if (it == a.constants.end())
      throw KernelArgError(std::string(name) + ": W must be a constant (repacked at make time)");
    const float* w = static_cast<const float*>(it->second.data);
    const int64_t taps = g_.kh * g_.kw;
    w_.resize(size_t(C * taps));
    for (int64_t c = 0; c < C; ++c)
      for (int64_t t = 0; t < taps; ++t)
        w_[size_t(((c / 8) * taps + t) * 8 + c % 8)] = w[c * taps + t];

    switch (active_isa()) {
      case Isa::avx512: fn_ = conv::nchwc_dw_avx512; scale_fn_ = conv::nchwc_scale_avx512; break;
      case Isa::avx2: fn_ = conv::nchwc_dw_avx2; scale_fn_ = conv::nchwc_scale_avx2; break;
      default: fn_ = conv::nchwc_dw_scalar; scale_fn_ = conv::nchwc_scale_scalar; break;
    }
    scale_ = g_.kh == 1 && g_.kw == 1 && g_.sh == 1 && g_.sw == 1 && pd == Shape{0, 0, 0, 0};
    // Small maps whose rows are mostly border columns (7x7 3x3 / 5x5, 14 -> 7 5x5/2): each
    // block through a zero-padded copy (a few KB), so that every pixel takes the register-
    // blocked interior loop. Then one work item per block.
    if (!scale_ && g_.oh > 0 && g_.ow > 0) {
      int64_t owa = (g_.pl + g_.sw - 1) / g_.sw, owb = 0;
      const int64_t last = g_.iw - 1 - (g_.kw - 1) * g_.dw + g_.pl;
      if (last >= 0) owb = last / g_.sw + 1;
      owa = std::min(owa, g_.ow);
      owb = std::max(std::min(owb, g_.ow), owa);
      const int64_t hp = (g_.oh - 1) * g_.sh + (g_.kh - 1) * g_.dh + 1;
      const int64_t wp = (g_.ow - 1) * g_.sw + (g_.kw - 1) * g_.dw + 1;
      if (4 * (g_.ow - (owb - owa)) > g_.ow && hp * wp <= 4096) {
        gp_ = g_;
        gp_.ih = hp;
        gp_.iw = wp;
        gp_.pt = gp_.pl = 0;
        padded_ = true;
      }
    }
    // Rows per work item: ~1024 output pixels (a 3x3 block: ~74k FMAs, well above the pool's
    // per-task cost; 4 KB-pixel chunks for the streaming 1x1 form).
    const int64_t target = scale_ ? 4096 : 1024;
    rows_ = g_.ow > 0 ? std::max<int64_t>(1, std::min(g_.oh, target / g_.ow)) : 1;
    if (padded_) rows_ = g_.oh;
    if (g_.oh > 0) chunks_ = (g_.oh + rows_ - 1) / rows_;
  }

  void run(const void* const* in, void* const* out) const override {
    const float* X = static_cast<const float*>(in[0]);
    const float* bias = !const_bias_.empty() ? const_bias_.data()
                                             : static_cast<const float*>(in[2]);
    const float* Z = has_z_ ? static_cast<const float*>(in[3]) : nullptr;
    float* Y = static_cast<float*>(out[0]);
    const int64_t S_in = g_.ih * g_.iw * 8, S = g_.oh * g_.ow * 8;
    if (N_ == 0 || CB_ == 0 || S == 0) return;
    const bool clamp = act_ == Activation::relu || act_ == Activation::clip;
    const float lohi[2] = {act_ == Activation::clip ? alpha_ : 0.f,
                           act_ == Activation::clip ? beta_
                                                    : std::numeric_limits<float>::infinity()};
    const int64_t items = N_ * CB_ * chunks_;
    const int64_t taps = g_.kh * g_.kw;
    parallel_for(items, 1, [&](int64_t b, int64_t e) {
      float* xpad = nullptr;
      if (padded_) {  // once per chunk: thread_local access is a call in a .so
        thread_local std::vector<float> pad_buf;
        pad_buf.resize(size_t(gp_.ih * gp_.iw * 8));
        xpad = pad_buf.data();
      }
      for (int64_t it = b; it < e; ++it) {
        const int64_t blk = it / chunks_, cb = blk % CB_;
        const int64_t r0 = (it % chunks_) * rows_, r1 = std::min(g_.oh, r0 + rows_);
        const float* x = X + blk * S_in;
        const float* w = w_.data() + cb * taps * 8;
        float* y = Y + blk * S;
        const float* z = Z ? Z + blk * S : nullptr;
        if (scale_) {
          const int64_t o = r0 * g_.ow * 8;
          scale_fn_(x + o, w, bias + cb * 8, z ? z + o : nullptr, y + o, (r1 - r0) * g_.ow,
                    clamp ? lohi : nullptr);
        } else if (padded_) {
          pad_block(x, xpad);
          fn_(gp_, xpad, w, bias + cb * 8, z, y, r0, r1, clamp ? lohi : nullptr);
        } else {
          fn_(g_, x, w, bias + cb * 8, z, y, r0, r1, clamp ? lohi : nullptr);
        }
        // Other activations on the finished rows, still in cache.
        if (!clamp && act_ != Activation::none)
          apply_activation(y + r0 * g_.ow * 8, (r1 - r0) * g_.ow * 8, act_, alpha_, beta_);
      }
    });
  }

 private:
  // One block's input into the zero-padded gp_.ih x gp_.iw map (only the part the taps read).
  void pad_block(const float* x, float* xp) const {
    std::fill(xp, xp + gp_.ih * gp_.iw * 8, 0.f);
    const int64_t cols = std::min(g_.iw, gp_.iw - g_.pl);
    if (cols <= 0) return;
    for (int64_t ih = 0; ih < g_.ih && ih + g_.pt < gp_.ih; ++ih)
      std::memcpy(xp + ((ih + g_.pt) * gp_.iw + g_.pl) * 8, x + ih * g_.iw * 8,
                  sizeof(float) * size_t(cols * 8));
  }

  conv::NchwcDwGeometry g_{}, gp_{};  // gp_: the padded copy's geometry (padded_)
  bool padded_ = false;
  int64_t N_ = 0, CB_ = 0, rows_ = 1, chunks_ = 0;
  bool has_bias_ = false, has_z_ = false, scale_ = false;
  Activation act_ = Activation::none;
  float alpha_ = 0.f, beta_ = 0.f;
  std::vector<float> w_, const_bias_;  // weights [C/8][KH][KW][8]; B (or zeros) when known
  conv::NchwcDwFn fn_ = nullptr;
  conv::NchwcScaleFn scale_fn_ = nullptr;
};

}  // namespace

FERRY_REGISTER_KERNEL("NchwcDepthwiseConv", [](const KernelArgs& a) -> std::unique_ptr<Kernel> {
  return std::make_unique<NchwcDepthwiseKernel>(a);
});

}  // namespace ferry
