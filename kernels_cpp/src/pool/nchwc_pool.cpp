// Pools on NCHWc activations (float32, X [N, C/8, H, W, 8]):
//   "NchwcMaxPool", "NchwcAveragePool": Y [N, C/8, OH, OW, 8]. Parameters as the NCHW pools
//     (pool.cpp): kernel_shape (2), strides, dilations, and either pads [top, left, bottom,
//     right] or pads_begin / pads_end (2 each, as providers/cpu/ops/pool.py passes them);
//     AveragePool also count_include_pad (int). OH / OW come from the output shape (Python
//     resolves ceil_mode and auto_pad); windows are clipped to the input, a max over no tap
//     is -inf and an average over no counted tap 0, as pool.cpp. No Indices output.
//   "NchwcGlobalAveragePool", "NchwcGlobalMaxPool": Y [N, C, 1, 1] (its memory order is
//     [N, C/8, 1, 1, 8], so no reorder is needed afterwards).
// Work items: (image, channel block, chunk of output rows) sized from the map alone.
#include <algorithm>
#include <string>
#include <vector>

#include "nchwc_pool.h"
#include "ferry/cpu_features.h"
#include "ferry/kernel.h"
#include "ferry/threadpool.h"

namespace ferry {
namespace pool {
namespace {

void check_nchwc_input(const KernelArgs& a, const std::string& name) {
  if (a.in_shapes.size() != 1 || a.out_shapes.size() != 1 || a.in_dtypes[0] != DType::f32 ||
      a.out_dtypes[0] != DType::f32)
    throw KernelArgError(name + " takes one float32 input and one float32 output");
  const Shape& xs = a.in_shapes[0];
  if (xs.size() != 5 || xs[4] != 8)
    throw KernelArgError(name + ": X must be NCHWc [N, C/8, H, W, 8]");
}

// Divisor taps per output position along one axis: inside [lo, hi) (pool.cpp's tap_counts).
std::vector<float> nchwc_tap_counts(int64_t out, int64_t k, int64_t s, int64_t d, int64_t pad,
                                    int64_t lo, int64_t hi) {
  std::vector<float> c(size_t(std::max<int64_t>(out, 0)));
  for (int64_t o = 0; o < out; ++o) {
    int64_t n = 0;
    for (int64_t j = 0; j < k; ++j) {
      const int64_t i = o * s - pad + j * d;
      n += (i >= lo && i < hi);
    }
    c[size_t(o)] = static_cast<float>(n);
  }
  return c;
}

class NchwcWindowPoolKernel : public Kernel {
 public:
  NchwcWindowPoolKernel(const KernelArgs& a, bool max) : max_(max) {
    const std::string name = max ? "NchwcMaxPool" : "NchwcAveragePool";
    check_nchwc_input(a, name);
    const Shape& xs = a.in_shapes[0];
    const Shape& ys = a.out_shapes[0];
    if (ys.size() != 5 || ys[0] != xs[0] || ys[1] != xs[1] || ys[4] != 8)
      throw KernelArgError(name + ": Y must be [N, C/8, OH, OW, 8] of X's N, C");
    const Params& p = a.params;
    auto pair = [&](const char* k, int64_t dflt) {
      Shape v = p.has(k) ? p.get_ints(k) : Shape();
      if (v.empty()) v.assign(2, dflt);
      if (v.size() != 2) throw KernelArgError(name + ": " + k + " needs 2 values");
      return v;
    };
    if (!p.has("kernel_shape")) throw KernelArgError(name + ": kernel_shape is required");
    const Shape k = pair("kernel_shape", 1), s = pair("strides", 1), d = pair("dilations", 1);
    Shape pb, pe;
    if (p.has("pads")) {
      const Shape pads = p.get_ints("pads");
      if (pads.size() != 4) throw KernelArgError(name + ": pads needs 4 values");
      pb = {pads[0], pads[1]};
      pe = {pads[2], pads[3]};
    } else {
      pb = pair("pads_begin", 0);
      pe = pair("pads_end", 0);
    }
    for (int i = 0; i < 2; ++i)
      if (k[i] < 1 || s[i] < 1 || d[i] < 1 || pb[i] < 0 || pe[i] < 0)
        throw KernelArgError(name + ": bad kernel_shape, strides, dilations or pads");
    g_ = NchwcPoolGeometry{xs[2], xs[3], ys[2], ys[3], k[0], k[1], s[0], s[1],
                           d[0],  d[1],  pb[0], pb[1]};
    if (g_.OH < 0 || g_.OW < 0) throw KernelArgError(name + ": negative output size");
    N_ = xs[0];
    CB_ = xs[1];
    if (!max) {
      const bool include_pad = p.get_int("count_include_pad", 0) != 0;
      ch_ = include_pad ? nchwc_tap_counts(g_.OH, g_.KH, g_.SH, g_.DH, g_.PT, -g_.PT, g_.H + pe[0])
                        : nchwc_tap_counts(g_.OH, g_.KH, g_.SH, g_.DH, g_.PT, 0, g_.H);
      cw_ = include_pad ? nchwc_tap_counts(g_.OW, g_.KW, g_.SW, g_.DW, g_.PL, -g_.PL, g_.W + pe[1])
                        : nchwc_tap_counts(g_.OW, g_.KW, g_.SW, g_.DW, g_.PL, 0, g_.W);
    }
    switch (active_isa()) {
      case Isa::avx512: fn_ = nchwc_window_avx512; break;
      case Isa::avx2: fn_ = nchwc_window_avx2; break;
      default: fn_ = nchwc_window_scalar; break;
    }
    // ~1024 output pixels per item: enough work per task, and 112x112 maps still split.
    rows_ = g_.OW > 0 ? std::max<int64_t>(1, std::min<int64_t>(g_.OH, 1024 / g_.OW)) : 1;
    chunks_ = g_.OH > 0 ? (g_.OH + rows_ - 1) / rows_ : 0;
  }

  void run(const void* const* in, void* const* out) const override {
    const float* X = static_cast<const float*>(in[0]);
    float* Y = static_cast<float*>(out[0]);
    const int64_t S_in = g_.H * g_.W * 8, S = g_.OH * g_.OW * 8;
    if (N_ == 0 || CB_ == 0 || S == 0) return;
    parallel_for(N_ * CB_ * chunks_, 1, [&](int64_t b, int64_t e) {
      for (int64_t it = b; it < e; ++it) {
        const int64_t blk = it / chunks_;
        const int64_t r0 = (it % chunks_) * rows_, r1 = std::min(g_.OH, r0 + rows_);
        fn_(g_, X + blk * S_in, Y + blk * S, r0, r1, max_, ch_.data(), cw_.data());
      }
    });
  }

 private:
  bool max_;
  NchwcPoolGeometry g_{};
  int64_t N_ = 0, CB_ = 0, rows_ = 1, chunks_ = 0;
  std::vector<float> ch_, cw_;  // AveragePool divisor taps per output row / column
  NchwcWindowFn fn_ = nullptr;
};

class NchwcGlobalPoolKernel : public Kernel {
 public:
  NchwcGlobalPoolKernel(const KernelArgs& a, bool max) : max_(max) {
    const std::string name = max ? "NchwcGlobalMaxPool" : "NchwcGlobalAveragePool";
    check_nchwc_input(a, name);
    const Shape& xs = a.in_shapes[0];
    if (a.out_shapes[0] != Shape{xs[0], xs[1] * 8, 1, 1})
      throw KernelArgError(name + ": Y must be [N, C, 1, 1] (plain NCHW) for X [N, C/8, H, W, 8]");
    blocks_ = xs[0] * xs[1];
    pixels_ = xs[2] * xs[3];
    if (pixels_ == 0 && blocks_ > 0) throw KernelArgError(name + ": empty spatial axes");
    switch (active_isa()) {
      case Isa::avx512: fn_ = nchwc_global_avx512; break;
      case Isa::avx2: fn_ = nchwc_global_avx2; break;
      default: fn_ = nchwc_global_scalar; break;
    }
  }

  void run(const void* const* in, void* const* out) const override {
    const float* x = static_cast<const float*>(in[0]);
    float* y = static_cast<float*>(out[0]);
    const int64_t grain = std::max<int64_t>(1, (1 << 13) / std::max<int64_t>(1, pixels_));
    parallel_for(blocks_, grain, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) fn_(x + i * pixels_ * 8, pixels_, max_, y + i * 8);
    });
  }

 private:
  bool max_;
  int64_t blocks_ = 0, pixels_ = 0;
  NchwcGlobalFn fn_ = nullptr;
};

}  // namespace

FERRY_REGISTER_KERNEL("NchwcMaxPool", [](const KernelArgs& a) -> std::unique_ptr<Kernel> {
  return std::make_unique<NchwcWindowPoolKernel>(a, true);
});
FERRY_REGISTER_KERNEL("NchwcAveragePool", [](const KernelArgs& a) -> std::unique_ptr<Kernel> {
  return std::make_unique<NchwcWindowPoolKernel>(a, false);
});
FERRY_REGISTER_KERNEL("NchwcGlobalMaxPool", [](const KernelArgs& a) -> std::unique_ptr<Kernel> {
  return std::make_unique<NchwcGlobalPoolKernel>(a, true);
});
FERRY_REGISTER_KERNEL("NchwcGlobalAveragePool",
                      [](const KernelArgs& a) -> std::unique_ptr<Kernel> {
                        return std::make_unique<NchwcGlobalPoolKernel>(a, false);
                      });

}  // namespace pool
}  // namespace ferry
