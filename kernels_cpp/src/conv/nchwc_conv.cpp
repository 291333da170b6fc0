// "NchwcConv": 2-D convolution (group 1, float32) whose output is in the NCHWc layout
// [N, M/8, OH, OW, 8] (element (n, m, h, w) at (((n * M/8 + m/8) * OH + h) * OW + w) * 8 + m%8).
// Parameters are fully resolved in Python:
//   input_layout ("nchwc", default: X [N, C/8, H, W, 8], C % 8 == 0; or "nchw": X [N, C, H, W]
//   with any C, for an image network's first conv), strides [2], dilations [2], pads [4]
//   (top, left, bottom, right), optional kernel_shape (checked against W), group (must be 1),
//   optional activation / activation_alpha / activation_beta (as Conv, see gemm.h).
// Inputs X, W [M, C, KH, KW] (constant, M % 8 == 0), optional B [M], optional Z (a residual
// in Y's layout, may be Y's own buffer). Y = act(conv(X, W) + B + Z).
//
// Direct convolution (nchwc_conv_impl.h): output blocks in groups of 2 (the last group of an
// odd count 3, or a single block), input blocks in chunks whose packed weights for one group
// stay near L1 (<= 32 KB); each work item (image, rows, group) runs the chunks in order over its rows.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "nchwc_conv.h"
#include "ferry/cpu_features.h"
#include "ferry/gemm.h"
#include "ferry/kernel.h"
#include "ferry/memory.h"
#include "ferry/threadpool.h"

namespace ferry {
namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Packed weights of one group for one input chunk, in floats (two output blocks x 3x3 x 7
// input blocks: 31.5 KB; 1x1: 64 blocks, 32 KB). Measured on 3x3 convs (1 thread, AVX2):
// 16 KB chunks 67-75 GFLOP/s, 32 KB 80-89, 64 KB no better: a tile's weights stream from L2
// fast enough (two vectors per 12 FMAs), while every extra chunk re-reads and re-writes the
// outputs.
constexpr int64_t kChunkFloats = 8192;
constexpr int64_t kL2InputBytes = int64_t(512) << 10;

class NchwcConvKernel : public Kernel {
 public:
  explicit NchwcConvKernel(const KernelArgs& a) : w_(nullptr, std::free) {
    for (size_t i = 0; i < a.in_dtypes.size(); ++i)
      if (a.in_dtypes[i] != DType::f32 && a.in_dtypes[i] != DType::unknown)
        throw KernelArgError("NchwcConv: only float32");
    if (a.in_shapes.size() < 2 || a.in_shapes.size() > 4 || a.out_shapes.size() != 1 ||
        a.out_dtypes[0] != DType::f32 || a.in_dtypes[0] != DType::f32 ||
        a.in_dtypes[1] != DType::f32)
      throw KernelArgError("NchwcConv takes X, W, optional B, optional Z and one float32 output");
    const Params& p = a.params;
    const std::string layout = p.has("input_layout") ? p.get_str("input_layout") : "nchwc";
    if (layout != "nchwc" && layout != "nchw")
      throw KernelArgError("NchwcConv: input_layout must be \"nchwc\" or \"nchw\", not \"" +
                           layout + "\"");
    blocked_ = layout == "nchwc";
    const Shape& xs = a.in_shapes[0];
    const Shape& ws = a.in_shapes[1];
    if (blocked_) {
      if (xs.size() != 5 || xs[4] != 8)
        throw KernelArgError("NchwcConv: X must be [N, C/8, H, W, 8] with input_layout nchwc");
      C_ = xs[1] * 8;
    } else {
      if (xs.size() != 4) throw KernelArgError("NchwcConv: X must be [N, C, H, W] with input_layout nchw");
      C_ = xs[1];
    }
    N_ = xs[0];
    IH_ = xs[2];
    IW_ = xs[3];
    if (ws.size() != 4) throw KernelArgError("NchwcConv: W must be [M, C, KH, KW] (2-D only)");
    M_ = ws[0];
    KH_ = ws[2];
    KW_ = ws[3];
    if (p.get_int("group", 1) != 1) throw KernelArgError("NchwcConv: only group 1");
    if (ws[1] != C_)
      throw KernelArgError("NchwcConv: W has " + std::to_string(ws[1]) + " input channels, X " +
                           std::to_string(C_));
    if (M_ % 8 != 0 || M_ <= 0)
      throw KernelArgError("NchwcConv: output channels must be a positive multiple of 8, got " +
                           std::to_string(M_));
    if (p.has("kernel_shape") && p.get_ints("kernel_shape") != Shape{KH_, KW_})
      throw KernelArgError("NchwcConv: kernel_shape differs from W");
    const Shape st = p.has("strides") ? p.get_ints("strides") : Shape{1, 1};
    const Shape dl = p.has("dilations") ? p.get_ints("dilations") : Shape{1, 1};
    const Shape pads = p.has("pads") ? p.get_ints("pads") : Shape{0, 0, 0, 0};
    if (st.size() != 2 || dl.size() != 2 || pads.size() != 4)
      throw KernelArgError("NchwcConv: strides/dilations need 2 values, pads 4");
    for (int d = 0; d < 2; ++d)
      if (st[d] < 1 || dl[d] < 1 || pads[d] < 0 || pads[2 + d] < 0)
        throw KernelArgError("NchwcConv: bad strides, dilations or pads");
    OH_ = std::max<int64_t>(0, (IH_ + pads[0] + pads[2] - ((KH_ - 1) * dl[0] + 1)) / st[0] + 1);
    OW_ = std::max<int64_t>(0, (IW_ + pads[1] + pads[3] - ((KW_ - 1) * dl[1] + 1)) / st[1] + 1);
    const Shape expect{N_, M_ / 8, OH_, OW_, 8};
    if (a.out_shapes[0] != expect)
      throw KernelArgError("NchwcConv: output must be [N, M/8, OH, OW, 8] = [" +
                           std::to_string(N_) + ", " + std::to_string(M_ / 8) + ", " +
                           std::to_string(OH_) + ", " + std::to_string(OW_) + ", 8]");
    has_bias_ = a.in_shapes.size() >= 3 && a.in_dtypes[2] != DType::unknown;
    has_z_ = a.in_shapes.size() == 4 && a.in_dtypes[3] != DType::unknown;
    if (has_bias_ && a.in_shapes[2] != Shape{M_}) throw KernelArgError("NchwcConv: B must be [M]");
    if (has_z_ && a.in_shapes[3] != expect) throw KernelArgError("NchwcConv: Z must match Y");
    if (auto it = a.constants.find(2); has_bias_ && it != a.constants.end()) {
      const float* b = static_cast<const float*>(it->second.data);
      const_bias_.assign(b, b + M_);
    }
    auto wit = a.constants.find(1);
    if (wit == a.constants.end())
      throw KernelArgError("NchwcConv: W must be a constant (it is packed when the kernel is made)");

    act_ = activation_from_name(p.has("activation") ? p.get_str("activation") : "");
    alpha_ = static_cast<float>(p.get_float("activation_alpha", 0.0));
    beta_ = static_cast<float>(p.get_float("activation_beta", 0.0));

    switch (active_isa()) {
      case Isa::avx512: fn_ = conv::nchwc_conv_avx512; break;
      case Isa::avx2: fn_ = conv::nchwc_conv_avx2; break;
      default: fn_ = conv::nchwc_conv_scalar; break;
    }

    // 1x1 / stride 1 / no padding: the whole plane is one long row (no edges, and a row
    // split is a pixel split).
    // A strided 1x1 conv (a ResNet v1 block's first conv and its projections) reads every
    // sh-th row and sw-th pixel: its input is first gathered into a [C/8, OH, OW, 8] plane
    // and convolved as a pointwise one. Rows of 28 are 4 tiles of 6 and one of 4, a gathered
    // plane is one row: 256->512 and 512->1024 at stride 2 took ~0.8-0.85 of the time,
    // 256->128 and 1024->512 about the same.
    const bool unpadded = pads[0] == 0 && pads[1] == 0 && pads[2] == 0 && pads[3] == 0;
    subsample_ = blocked_ && KH_ == 1 && KW_ == 1 && unpadded && (st[0] > 1 || st[1] > 1);
    sh_ = st[0];
    sw_ = st[1];
    pointwise_ = KH_ == 1 && KW_ == 1 && unpadded && ((st[0] == 1 && st[1] == 1) || subsample_);
    // Input plane the kernel reads: the gathered one when subsampling.
    plane_in_ = subsample_ ? OH_ * OW_ : IH_ * IW_;
    if (pointwise_)
      g_ = conv::NchwcGeometry{1, plane_in_, 1, OH_ * OW_, 1, 1, 1, 1, 1, 1, 0, 0, blocked_,
                               blocked_ ? 8 : C_};
    else
      g_ = conv::NchwcGeometry{IH_,   IW_,   OH_,     OW_,     KH_,      KW_, st[0],
                               st[1], dl[0], dl[1],   pads[0], pads[1], blocked_,
                               blocked_ ? 8 : C_};

    // Output-block groups: pairs; an odd count ends with a group of three (or is one block).
    const int64_t nob = M_ / 8;
    for (int64_t b = 0; b < nob;) {
      const int64_t mb = nob - b == 3 || nob - b == 1 ? nob - b : 2;
      groups_.push_back({b, mb});
      b += mb;
    }
    // Input chunks (NCHW input: one chunk of all C channels).
    const int64_t ib = blocked_ ? C_ / 8 : 1;
    if (blocked_) {
      const int64_t cap = std::max<int64_t>(1, kChunkFloats / (KH_ * KW_ * 8 * 16));
      const int64_t n = std::max<int64_t>(1, ceil_div(ib, cap)), per = ceil_div(ib, n);
      for (int64_t c = 0; c < std::max<int64_t>(ib, 1); c += std::max<int64_t>(per, 1))
        chunks_.push_back({c, std::min(per, ib - c)});
    } else {
      chunks_.push_back({0, 1});
    }
    // Pack: per (group, chunk) [kh][kw][block][channel][mb * 8], each start 64-byte aligned.
    const int64_t bc = blocked_ ? 8 : C_;
    int64_t total = 0;
    for (const Group& gr : groups_)
      for (const Chunk& ch : chunks_) {
        woff_.push_back(total);
        total += (KH_ * KW_ * ch.n * bc * gr.mb * 8 + 15) / 16 * 16;
      }
    w_.reset(static_cast<float*>(alloc_large(size_t(std::max<int64_t>(total, 16)) * 4)));
    const float* w = static_cast<const float*>(wit->second.data);
    const int64_t ksz = KH_ * KW_;
    for (size_t gi = 0; gi < groups_.size(); ++gi)
      for (size_t ci = 0; ci < chunks_.size(); ++ci) {
        const Group& gr = groups_[gi];
        const Chunk& ch = chunks_[ci];
        float* d = w_.get() + woff_[gi * chunks_.size() + ci];
        for (int64_t i = 0; i < KH_; ++i)
          for (int64_t j = 0; j < KW_; ++j)
            for (int64_t b = 0; b < ch.n; ++b)
              for (int64_t c = 0; c < bc; ++c)
                for (int64_t o = 0; o < gr.mb * 8; ++o) {
                  const int64_t m = gr.b0 * 8 + o, cin = (ch.b0 + b) * bc + c;
                  *d++ = w[(m * C_ + cin) * ksz + i * KW_ + j];
                }
      }
  }

  void run(const void* const* in, void* const* out) const override {
    const float* X = static_cast<const float*>(in[0]);
    if (subsample_ && N_ > 0 && OH_ > 0 && OW_ > 0) X = gather_strided(X);
    const float* bias = !has_bias_ ? nullptr
                        : const_bias_.empty() ? static_cast<const float*>(in[2])
                                              : const_bias_.data();
    const float* Z = has_z_ ? static_cast<const float*>(in[3]) : nullptr;
    float* Y = static_cast<float*>(out[0]);
    if (N_ == 0 || OH_ == 0 || OW_ == 0) return;
    // Z may be Y: the first pass of each output reads its z before writing it (the residual
    // enters with the bias), later passes read only y.
    const bool clamp = act_ == Activation::relu || act_ == Activation::clip;
    const bool after = !clamp && act_ != Activation::none;  // apply_activation on each row
    const float lohi[2] = {act_ == Activation::clip ? alpha_ : 0.f,
                           act_ == Activation::clip ? beta_ : std::numeric_limits<float>::infinity()};

    const conv::NchwcGeometry& g = g_;
    const int64_t G = static_cast<int64_t>(groups_.size());
    const int64_t nchunk = static_cast<int64_t>(chunks_.size());
    const int64_t threads = num_threads();
    // Work items (image, row range, group), groups fastest so that neighbouring items share
    // their input rows. A row range is rows of the output or (pointwise) pixels of the plane.
    const int64_t want = ceil_div(4 * threads, N_ * G);  // ranges per image for ~4 items a thread
    int64_t span, extent;
    if (pointwise_) {
      extent = g.ow;
      span = std::clamp<int64_t>(16384 / std::max<int64_t>(C_, 1), 48, 1024);
      span = std::min(span, std::max<int64_t>(6, ceil_div(ceil_div(extent, want), 6) * 6));
      // One range for the whole plane when the groups alone give the threads enough items
      // and it streams less: each group's weights are then read once, but every group reads
      // the whole input (from L2 up to ~512 KB, else from L3). In spans of 48 a 7x7 map was
      // two ranges, and 512->2048 read its 4 MB of weights twice. 512->2048 and 2048->512 on
      // 7x7, 512->1024 and 256->1024 on 14x14 took 0.77-0.9 of the time as one range (1 and 2
      // threads); a 1 MB bound alone lost on 800 KB inputs (64->256 on 56x56: 1.11x).
      const int64_t in_bytes = C_ * extent * int64_t(sizeof(float));
      const int64_t w_bytes = C_ * M_ * int64_t(sizeof(float));
      const int64_t split = ceil_div(extent, span);
      if (want == 1 && (in_bytes <= kL2InputBytes || G * in_bytes <= split * w_bytes))
        span = extent;
    } else {
      extent = g.oh;
      span = std::clamp<int64_t>(ceil_div(256, g.ow), 1, g.oh);
      span = std::min(span, std::max<int64_t>(1, ceil_div(extent, want)));
    }
    const int64_t ranges = ceil_div(extent, span);
    // Equal ranges: a 7x7 plane in spans of 48 left a 1-pixel range per group, whose tile
    // waits on FMA latency (512->2048 and 960->160 on 7x7: 0.88 / 0.92 of the time balanced).
    span = ceil_div(extent, ranges);
    const int64_t in_image = C_ * plane_in_;
    const int64_t out_plane = OH_ * OW_ * 8;
    parallel_for(N_ * ranges * G, 1, [&](int64_t b, int64_t e) {
      for (int64_t it = b; it < e; ++it) {
        const int64_t gi = it % G, r = (it / G) % ranges, n = it / (G * ranges);
        const Group& gr = groups_[size_t(gi)];
        conv::NchwcPass ps{};
        ps.mb = static_cast<int>(gr.mb);
        ps.bias = bias ? bias + gr.b0 * 8 : nullptr;
        ps.y = Y + (n * (M_ / 8) + gr.b0) * out_plane;
        ps.z = Z ? Z + (n * (M_ / 8) + gr.b0) * out_plane : nullptr;
        ps.lohi = clamp ? lohi : nullptr;
        const int64_t r0 = r * span, r1 = std::min(extent, r0 + span);
        for (int64_t k = 0; k < nchunk; ++k) {
          const Chunk& ch = chunks_[size_t(k)];
          ps.x = X + n * in_image + (blocked_ ? ch.b0 * plane_in_ * 8 : 0);
          ps.ncb = ch.n;
          ps.w = w_.get() + woff_[size_t(gi * nchunk + k)];
          ps.first = k == 0;
          ps.last = k == nchunk - 1;
          if (!(ps.last && after)) {
            set_range(ps, r0, r1);
            fn_(g, ps);
            continue;
          }
          // The last pass finishes a row (or <= 96 pixels of a plane) at a time, activated
          // while it is still in L1.
          const int64_t step = pointwise_ ? 96 : 1;
          for (int64_t s = r0; s < r1; s += step) {
            const int64_t s1 = std::min(r1, s + step);
            set_range(ps, s, s1);
            fn_(g, ps);
            const int64_t off = pointwise_ ? s * 8 : s * OW_ * 8;
            const int64_t cnt = pointwise_ ? (s1 - s) * 8 : (s1 - s) * OW_ * 8;
            for (int64_t v = 0; v < gr.mb; ++v)
              apply_activation(ps.y + v * out_plane + off, cnt, act_, alpha_, beta_);
          }
        }
      }
    });
  }

 private:
  struct Group { int64_t b0, mb; };  // output blocks [b0, b0 + mb)
  struct Chunk { int64_t b0, n; };   // input blocks [b0, b0 + n)

  // Every sh-th row and sw-th pixel of X into the calling thread's buffer ([N, C/8, OH, OW,
  // 8]), which the workers read during this run.
  const float* gather_strided(const float* X) const {
    thread_local std::vector<float> buf;
    const int64_t blocks = N_ * (C_ / 8);
    buf.resize(size_t(blocks * OH_ * OW_ * 8));
    float* dst = buf.data();
    parallel_for(blocks * OH_, 16, [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        const int64_t blk = r / OH_, oh = r % OH_;
        const float* src = X + (blk * IH_ + oh * sh_) * IW_ * 8;
        float* d = dst + r * OW_ * 8;
        for (int64_t ow = 0; ow < OW_; ++ow) std::memcpy(d + ow * 8, src + ow * sw_ * 8, 32);
      }
    });
    return dst;
  }

  // Rows [s, s1) of the output, or pixels [s, s1) of the single pointwise row.
  void set_range(conv::NchwcPass& ps, int64_t s, int64_t s1) const {
    if (pointwise_) {
      ps.oh0 = 0;
      ps.oh1 = 1;
      ps.ow0 = s;
      ps.ow1 = s1;
    } else {
      ps.oh0 = s;
      ps.oh1 = s1;
      ps.ow0 = 0;
      ps.ow1 = OW_;
    }
  }

  bool blocked_ = true, pointwise_ = false, subsample_ = false, has_bias_ = false, has_z_ = false;
  int64_t sh_ = 1, sw_ = 1, plane_in_ = 0;
  int64_t N_ = 0, C_ = 0, IH_ = 0, IW_ = 0, M_ = 0, KH_ = 0, KW_ = 0, OH_ = 0, OW_ = 0;
  conv::NchwcGeometry g_{};
  conv::NchwcConvFn fn_ = nullptr;
  Activation act_ = Activation::none;
  float alpha_ = 0.f, beta_ = 0.f;
  std::vector<float> const_bias_;
  std::vector<Group> groups_;
  std::vector<Chunk> chunks_;
  std::vector<int64_t> woff_;  // per (group, chunk): offset of its packed weights in w_
  std::unique_ptr<float, void (*)(void*)> w_;
};

}  // namespace

FERRY_REGISTER_KERNEL("NchwcConv", [](const KernelArgs& a) -> std::unique_ptr<Kernel> {
  return std::make_unique<NchwcConvKernel>(a);
});

}  // namespace ferry
