// "Conv" (float32, N-D, NCHW layout). Parameters are fully resolved in Python:
//   group (int), strides, dilations (d ints), pads (2d ints: all begins, then all ends),
//   optional kernel_shape (checked against W), optional activation / activation_alpha /
//   activation_beta (fused epilogue, see gemm.h).
// Inputs X [N, C, *in], W [M, C/group, *k], optional B [M], optional Z [N, M, *out] (a residual
// added before the activation: Y = act(conv(X, W) + B + Z)); output [N, M, *out].
// layout "nchwc" (Winograd convs only, see run_winograd): X [N, C/8, H, W, 8], Z and Y
// [N, M/8, OH, OW, 8], so that the NCHWc layout pass needs no reorders around them.
//
// Paths: depthwise 2-D (group == C == M) has direct kernels (depthwise_impl.h); 1x1 / stride 1
// / no padding is a GEMM on X itself; 3x3 / stride 1 with constant weights and >= 64 input
// channels is Winograd F(4x4 or 2x2, 3x3) (winograd_impl.h); other 2-D convs with constant
// weights are GEMMs over shifted rows of a padded, phase-split input; the rest (runtime
// weights, 1-D / 3-D) im2col over chunks of output positions + GEMM, the chunks spread over
// threads. Constant weights are packed once per group (PackedA).
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "depthwise.h"
#include "few_channels.h"
#include "nchwc_reorder.h"
#include "winograd.h"
#include "ferry/cpu_features.h"
#include "ferry/gemm.h"
#include "ferry/kernel.h"
#include "ferry/threadpool.h"

namespace ferry {

namespace conv {
void winograd_filter(const float* g, float* u, int64_t m) {
  // u = G g G^T. F(2x2, 3x3): G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]. F(4x4, 3x3):
  // G = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1].
  static const double g2[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
  static const double g4[6][3] = {{0.25, 0, 0},
                                  {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                                  {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                                  {1.0 / 24, 1.0 / 12, 1.0 / 6},
                                  {1.0 / 24, -1.0 / 12, 1.0 / 6},
                                  {0, 0, 1}};
  const int n = m == 4 ? 6 : 4;
  auto G = [&](int i, int k) { return m == 4 ? g4[i][k] : g2[i][k]; };
  double t[6][3];  // G g, in double: the weights are rounded to float once
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < 3; ++j)
      t[i][j] = G(i, 0) * g[j] + G(i, 1) * g[3 + j] + G(i, 2) * g[6 + j];
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j)
      u[n * i + j] = static_cast<float>(t[i][0] * G(j, 0) + t[i][1] * G(j, 1) + t[i][2] * G(j, 2));
}
}  // namespace conv

namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Winograd tiles per work item: N of its 16 GEMMs (96 / 192 / 384 measured: 0.75-1.0 / 0.9-1.0
// / best on 64-512 channels; larger bands amortize the per-GEMM packing).
constexpr int64_t kWinogradTiles = 256;

// Per-thread im2col buffer (distinct from the GEMM's own packing buffers).
class ColBuffer {
 public:
  ~ColBuffer() { std::free(p_); }
  float* get(size_t n) {
    if (n > cap_) {
      std::free(p_);
      p_ = static_cast<float*>(std::aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64));
      if (!p_) {
        cap_ = 0;
        throw std::bad_alloc();
      }
      cap_ = n;
    }
    return p_;
  }

 private:
  float* p_ = nullptr;
  size_t cap_ = 0;
};
thread_local ColBuffer tl_col;
thread_local ColBuffer tl_pad;  // the zero-padded input of a shifted-rows conv (calling thread)
thread_local ColBuffer tl_planes;  // NCHWc Winograd: eight channel planes, unblocked

class ConvKernel : public Kernel {
 public:
  explicit ConvKernel(const KernelArgs& a) {
    for (size_t i = 0; i < a.in_dtypes.size(); ++i)
      if (a.in_dtypes[i] != DType::f32 && a.in_dtypes[i] != DType::unknown)
        throw KernelArgError("Conv: only float32");
    if (a.in_shapes.size() < 2 || a.in_shapes.size() > 4 || a.out_shapes.size() != 1 ||
        a.out_dtypes[0] != DType::f32)
      throw KernelArgError("Conv takes X, W, optional B, optional Z and one float32 output");
    const std::string layout =
        a.params.has("layout") ? a.params.get_str("layout") : std::string("nchw");
    if (layout != "nchw" && layout != "nchwc")
      throw KernelArgError("Conv: layout must be \"nchw\" or \"nchwc\"");
    nchwc_ = layout == "nchwc";
    // NCHWc: the logical NCHW shapes of X (and below of Y and Z) for the checks.
    auto logical = [](const Shape& s5) {
      return Shape{s5[0], s5[1] * 8, s5[2], s5[3]};
    };
    if (nchwc_ && (a.in_shapes[0].size() != 5 || a.in_shapes[0][4] != 8 ||
                   a.out_shapes[0].size() != 5 || a.out_shapes[0][4] != 8))
      throw KernelArgError("Conv: layout nchwc takes X [N, C/8, H, W, 8] and gives "
                           "[N, M/8, OH, OW, 8]");
    const Shape xs = nchwc_ ? logical(a.in_shapes[0]) : a.in_shapes[0];
    const Shape& ws = a.in_shapes[1];
    if (xs.size() < 3 || ws.size() != xs.size())
      throw KernelArgError("Conv: X and W must have the same rank >= 3");
    nd_ = static_cast<int>(xs.size()) - 2;
    const Params& p = a.params;
    group_ = p.get_int("group", 1);
    N_ = xs[0];
    C_ = xs[1];
    M_ = ws[0];
    if (group_ <= 0 || C_ % group_ || M_ % group_ || ws[1] != C_ / group_)
      throw KernelArgError("Conv: channels do not match group");
    Cg_ = C_ / group_;
    Mg_ = M_ / group_;
    in_.assign(xs.begin() + 2, xs.end());
    k_.assign(ws.begin() + 2, ws.end());
    if (p.has("kernel_shape") && p.get_ints("kernel_shape") != k_)
      throw KernelArgError("Conv: kernel_shape differs from W");
    stride_ = p.has("strides") ? p.get_ints("strides") : Shape(nd_, 1);
    dil_ = p.has("dilations") ? p.get_ints("dilations") : Shape(nd_, 1);
    Shape pads = p.has("pads") ? p.get_ints("pads") : Shape(2 * nd_, 0);
    if (static_cast<int>(stride_.size()) != nd_ || static_cast<int>(dil_.size()) != nd_ ||
        static_cast<int>(pads.size()) != 2 * nd_)
      throw KernelArgError("Conv: strides/dilations/pads have the wrong length");
    pad_.assign(pads.begin(), pads.begin() + nd_);
    Shape expect{N_, M_};
    for (int d = 0; d < nd_; ++d) {
      if (stride_[d] < 1 || dil_[d] < 1 || pads[d] < 0 || pads[nd_ + d] < 0)
        throw KernelArgError("Conv: bad strides, dilations or pads");
      const int64_t span = (k_[d] - 1) * dil_[d] + 1;
      const int64_t o = (in_[d] + pads[d] + pads[nd_ + d] - span) / stride_[d] + 1;
      expect.push_back(std::max<int64_t>(o, 0));
      out_.push_back(std::max<int64_t>(o, 0));
    }
    const Shape ys = nchwc_ ? logical(a.out_shapes[0]) : a.out_shapes[0];
    if (ys != expect) throw KernelArgError("Conv: unexpected output shape");
    S_in_ = numel(in_);
    S_ = numel(out_);
    ksize_ = numel(k_);
    kdim_ = Cg_ * ksize_;

    epi_.act = activation_from_name(p.has("activation") ? p.get_str("activation") : "");
    epi_.act_alpha = static_cast<float>(p.get_float("activation_alpha", 0.0));
    epi_.act_beta = static_cast<float>(p.get_float("activation_beta", 0.0));
    has_bias_ = a.in_shapes.size() >= 3 && a.in_dtypes[2] != DType::unknown;
    has_z_ = a.in_shapes.size() == 4 && a.in_dtypes[3] != DType::unknown;
    if (has_z_ && a.in_shapes[3] != a.out_shapes[0]) throw KernelArgError("Conv: Z must match Y");
    if (has_bias_ && a.in_shapes[2] != Shape{M_}) throw KernelArgError("Conv: B must be [M]");
    if (auto it = a.constants.find(2); has_bias_ && it != a.constants.end()) {
      const float* b = static_cast<const float*>(it->second.data);
      const_bias_.assign(b, b + M_);
    }

    depthwise_ = nd_ == 2 && Cg_ == 1 && Mg_ == 1;
    switch (active_isa()) {  // the plane loops and transforms compiled for the active ISA
      case Isa::avx512:
        depthwise_padded_fn_ = conv::depthwise_padded_avx512;
        depthwise_phased_fn_ = conv::depthwise_s2_phased_avx512;
        padded_min_ow_ = 16;
        depthwise_fn_ = conv::depthwise_plane_avx512;
        depthwise_block8_fn_ = conv::depthwise_block8_avx512;
        wino_in_ = conv::winograd_input_avx512;
        wino_out_ = conv::winograd_output_avx512;
        few_channels_fn_ = conv::few_channels_avx512;
        to_blocked_ = conv::nchwc_to_blocked_avx512;
        from_blocked_ = conv::nchwc_from_blocked_avx512;
        break;
      case Isa::avx2:
        depthwise_padded_fn_ = conv::depthwise_padded_avx2;
        depthwise_phased_fn_ = conv::depthwise_s2_phased_avx2;
        padded_min_ow_ = 8;
        depthwise_fn_ = conv::depthwise_plane_avx2;
        depthwise_block8_fn_ = conv::depthwise_block8_avx2;
        wino_in_ = conv::winograd_input_avx2;
        wino_out_ = conv::winograd_output_avx2;
        few_channels_fn_ = conv::few_channels_avx2;
        to_blocked_ = conv::nchwc_to_blocked_avx2;
        from_blocked_ = conv::nchwc_from_blocked_avx2;
        break;
      default:
        depthwise_padded_fn_ = conv::depthwise_padded_scalar;
        depthwise_phased_fn_ = conv::depthwise_s2_phased_scalar;
        padded_min_ow_ = 1;
        depthwise_fn_ = conv::depthwise_plane_scalar;
        depthwise_block8_fn_ = conv::depthwise_block8_scalar;
        wino_in_ = conv::winograd_input_scalar;
        wino_out_ = conv::winograd_output_scalar;
        few_channels_fn_ = conv::few_channels_scalar;
        to_blocked_ = conv::nchwc_to_blocked_scalar;
        from_blocked_ = conv::nchwc_from_blocked_scalar;
        break;
    }
    pointwise_ = true;
    for (int d = 0; d < nd_; ++d)
      pointwise_ = pointwise_ && k_[d] == 1 && stride_[d] == 1 && pads[d] == 0 &&
                   pads[nd_ + d] == 0;
    setup_winograd(a);
    if (nchwc_ && (wino_w_.empty() || M_ % 8 != 0))
      throw KernelArgError("Conv: layout nchwc is for Winograd convolutions (3x3, stride 1, "
                           "constant weights, >= 64 input channels, output channels a "
                           "multiple of 8)");
    if (wino_w_.empty()) setup_few_channels(a);  // (Winograd only when forced, for C <= 4)
    shifted_ = nd_ == 2 && !depthwise_ && !pointwise_ && a.constants.count(1) &&
               few_w_.empty() && wino_w_.empty();
    if (shifted_) {
      // On a zero-padded copy of the input, row k = (c, kh, kw) of im2col is the padded plane c
      // read from offset kh*dh*Wp + kw*dw, if each output row is given the padded width Wp
      // (its last Wp - OW columns are junk, dropped afterwards): the GEMM reads those shifted
      // rows in place, no im2col buffer. Strides s > 1: the padded input is split into s x s
      // phase planes (phase (a, b) holds padded rows a, a+s, ... and columns b, b+s, ...), and
      // tap (kh, kw) is phase ((kh*dh) % s, (kw*dw) % s) shifted by ((kh*dh) / s, (kw*dw) / s):
      // shifted rows again, at the phase width Wq. Only the phases some tap reads are made.
      const int64_t sh = stride_[0], sw = stride_[1];
      const int64_t Hp = in_[0] + pads[0] + pads[2], Wp = in_[1] + pads[1] + pads[3];
      Hq_ = ceil_div(Hp, sh);
      Wq_ = ceil_div(Wp, sw);
      std::vector<int64_t> idx(size_t(sh * sw), -1);
      for (int64_t i = 0; i < k_[0]; ++i)
        for (int64_t j = 0; j < k_[1]; ++j) {
          const int64_t ph = (i * dil_[0]) % sh * sw + (j * dil_[1]) % sw;
          if (idx[size_t(ph)] < 0) {
            idx[size_t(ph)] = static_cast<int64_t>(phases_.size());
            phases_.push_back(ph);
          }
        }
      const int64_t phase_size = Hq_ * Wq_;
      for (int64_t c = 0; c < Cg_; ++c)
        for (int64_t i = 0; i < k_[0]; ++i)
          for (int64_t j = 0; j < k_[1]; ++j) {
            const int64_t ph = (i * dil_[0]) % sh * sw + (j * dil_[1]) % sw;
            row_off_.push_back((c * int64_t(phases_.size()) + idx[size_t(ph)]) * phase_size +
                               (i * dil_[0]) / sh * Wq_ + (j * dil_[1]) / sw);
          }
      max_shift_ = ((k_[0] - 1) * dil_[0] / sh + 1) * Wq_ + (k_[1] - 1) * dil_[1] / sw;
      // The junk columns are computed too: fine for 3x3 on 7x7 maps (9 / 7), not for a kernel
      // as wide as its input (VGG's fc6 as a 7x7 conv on 7x7: OW 1, Wq 7), which takes im2col.
      if (Wq_ > out_[1] + std::max<int64_t>(2, out_[1] / 2)) {
        shifted_ = false;
        phases_.clear();
        row_off_.clear();
      }
    }
    if (auto it = a.constants.find(1); it != a.constants.end()) {
      const float* w = static_cast<const float*>(it->second.data);
      if (depthwise_) {
        const_w_.assign(w, w + M_ * kdim_);
      } else if (wino_w_.empty() && few_w_.empty()) {
        // (Winograd and few-channels convs keep only their own weight layouts)
        for (int64_t g = 0; g < group_; ++g)
          packed_w_.push_back(std::make_unique<PackedA>(false, Mg_, kdim_, w + g * Mg_ * kdim_,
                                                        kdim_));
      }
    }
  }

  void run(const void* const* in, void* const* out) const override {
    const float* X = static_cast<const float*>(in[0]);
    const float* W = const_w_.empty() ? static_cast<const float*>(in[1]) : const_w_.data();
    const float* bias = !has_bias_ ? nullptr
                        : const_bias_.empty() ? static_cast<const float*>(in[2])
                                              : const_bias_.data();
    float* Y = static_cast<float*>(out[0]);
    const float* Z = has_z_ ? static_cast<const float*>(in[3]) : nullptr;
    if (N_ == 0 || M_ == 0 || S_ == 0) return;
    if (depthwise_) return run_depthwise(X, W, bias, Z, Y);
    if (!few_w_.empty()) return run_few_channels(X, bias, Z, Y);
    // A residual given in Y's own buffer: the Winograd and shifted-rows paths write Y before
    // they read Z, so Winograd reads a copy of it and shifted rows takes the GEMM path below,
    // which starts from C = Z.
    const bool z_in_y = Z != nullptr && Z == Y;
    if (!wino_w_.empty()) {
      if (z_in_y) {
        thread_local std::vector<float> residual;
        residual.assign(Z, Z + N_ * M_ * S_);
        Z = residual.data();
      }
      return run_winograd(X, bias, Z, Y);
    }
    if (shifted_ && !z_in_y) return run_shifted(X, bias, Z, Y);

    // Work items: (image, group, chunk of output positions).
    const GemmGeometry geo = gemm_geometry();
    const int threads = num_threads();
    int64_t jn = S_;
    if (!pointwise_) {
      // Keep each im2col buffer at most ~2 MB.
      const int64_t cap = std::max<int64_t>(geo.nr, (int64_t(1) << 19) / std::max<int64_t>(1, kdim_)
                                                         / geo.nr * geo.nr);
      jn = std::min(jn, cap);
    }
    const int64_t ng = N_ * group_;
    // Small maps with many output channels (7x7 x 2048): split M inside one GEMM rather than
    // the few columns over items, which made each thread stream all of the weights.
    const bool split_m = Mg_ >= S_ && ng < threads;
    if (split_m) jn = S_;
    if (!split_m && ng * ceil_div(S_, jn) < threads && S_ >= 2 * 64) {
      // Too few items for the threads: split the output positions further (>= 64 each).
      const int64_t want = ceil_div(threads, ng);
      jn = std::min(jn, std::max<int64_t>(64, ceil_div(ceil_div(S_, want), geo.nr) * geo.nr));
    }
    if (!split_m && threads > 1 && ng * ceil_div(S_, jn) >= threads &&
        (ng * ceil_div(S_, jn)) % threads) {
      // Round the item count up to a multiple of the threads (smaller chunks): 7 chunks of a
      // 56x56 map on 2 threads left one thread idle for a seventh of the conv.
      const int64_t per_image = ceil_div(ceil_div(ng * ceil_div(S_, jn), threads) * threads, ng);
      jn = std::max<int64_t>(geo.nr, ceil_div(ceil_div(S_, per_image), geo.nr) * geo.nr);
    }
    const int64_t chunks = ceil_div(S_, jn);
    const int64_t items = ng * chunks;
    auto item = [&](int64_t it) {
      const int64_t n = it / (group_ * chunks);
      const int64_t g = (it / chunks) % group_;
      const int64_t j0 = (it % chunks) * jn, jc = std::min(jn, S_ - j0);
      const float* x = X + (n * C_ + g * Cg_) * S_in_;
      float* y = Y + (n * M_ + g * Mg_) * S_ + j0;
      Epilogue epi = epi_;
      if (bias) {
        epi.bias_kind = Epilogue::Bias::per_row;
        epi.bias = bias + g * Mg_;
      }
      const float* b;
      int64_t ldb;
      if (pointwise_) {
        b = x + j0;
        ldb = S_;
      } else {
        float* col = tl_col.get(size_t(kdim_) * jc);
        im2col(x, j0, jc, col);
        b = col;
        ldb = jc;
      }
      const float beta = 0.f;
      if (Z) {  // the GEMM adds the residual as it stores each tile: the activation sees the sum
        epi.residual = Z + (n * M_ + g * Mg_) * S_ + j0;  // may be y itself
        epi.ld_residual = S_;
      }
      if (!packed_w_.empty())
        sgemm(*packed_w_[g], false, Mg_, jc, kdim_, 1.f, b, ldb, beta, y, S_, epi);
      else
        sgemm(false, false, Mg_, jc, kdim_, 1.f, W + g * Mg_ * kdim_, kdim_, b, ldb, beta, y,
              S_, epi);
    };
    if (items >= threads && threads > 1) {
      parallel_for(items, 1, [&](int64_t b, int64_t e) {
        for (int64_t it = b; it < e; ++it) item(it);
      });
    } else {
      for (int64_t it = 0; it < items; ++it) item(it);  // each GEMM uses the threads
    }
  }

 private:
  // col[k][j - j0] = x[c][o * stride - pad + kk * dil] (0 outside), k = (c, kk...) and
  // j = output position in [j0, j0 + jc). The last spatial dimension is done as a run.
  void im2col(const float* x, int64_t j0, int64_t jc, float* col) const {
    const int last = nd_ - 1;
    const int64_t OL = out_[last], IL = in_[last], sL = stride_[last], dL = dil_[last],
                  pL = pad_[last];
    std::vector<int64_t> kk(nd_), oo(nd_);
    for (int64_t k = 0; k < kdim_; ++k) {
      int64_t r = k;
      for (int d = nd_ - 1; d >= 0; --d) {
        kk[d] = r % k_[d];
        r /= k_[d];
      }
      const int64_t c = r;
      const float* xc = x + c * S_in_;
      float* dst = col + k * jc;
      // Output positions [j0, j0 + jc) walked row by row of the last dimension.
      int64_t j = j0;
      while (j < j0 + jc) {
        int64_t rem = j;
        for (int d = nd_ - 1; d >= 0; --d) {
          oo[d] = rem % out_[d];
          rem /= out_[d];
        }
        const int64_t run = std::min(OL - oo[last], j0 + jc - j);
        // Offset of the input row for the outer dimensions, or -1 when it is padding.
        int64_t off = 0;
        bool inside = true;
        for (int d = 0; d < last; ++d) {
          const int64_t i = oo[d] * stride_[d] - pad_[d] + kk[d] * dil_[d];
          if (i < 0 || i >= in_[d]) {
            inside = false;
            break;
          }
          off = off * in_[d] + i;
        }
        float* o = dst + (j - j0);
        if (!inside) {
          std::memset(o, 0, sizeof(float) * run);
        } else {
          const float* xr = xc + off * IL;
          const int64_t base = -pL + kk[last] * dL;  // input index = ow * sL + base
          const int64_t ow0 = oo[last];
          // Valid ow: 0 <= ow * sL + base < IL.
          int64_t lo = base >= 0 ? 0 : ceil_div(-base, sL);
          int64_t hi = base >= IL ? 0 : (IL - 1 - base) / sL + 1;
          lo = std::clamp<int64_t>(lo - ow0, 0, run);
          hi = std::clamp<int64_t>(hi - ow0, lo, run);
          for (int64_t t = 0; t < lo; ++t) o[t] = 0.f;
          if (sL == 1) {
            std::memcpy(o + lo, xr + ow0 + lo + base, sizeof(float) * (hi - lo));
          } else {
            for (int64_t t = lo; t < hi; ++t) o[t] = xr[(ow0 + t) * sL + base];
          }
          for (int64_t t = hi; t < run; ++t) o[t] = 0.f;
        }
        j += run;
      }
    }
  }

  // See the constructor (shifted_). Work items: (image, group, chunk of output rows).
  void run_shifted(const float* X, const float* bias, const float* Z, float* Y) const {
    const int64_t OH = out_[0], OW = out_[1];
    const int64_t nph = static_cast<int64_t>(phases_.size()), phase_size = Hq_ * Wq_;
    const int64_t plane = nph * phase_size;  // one input channel's phase planes
    const int64_t planes = C_;  // one image at a time: the padded copy stays image-sized
    // The last rows' junk columns and the last taps read up to max_shift_ floats past the
    // output rows of the last plane: zeroed slack, plus a panel's width.
    const size_t total = size_t(planes * plane + max_shift_ + 64);
    float* pad = tl_pad.get(total);
    const int64_t pt = pad_[0], pl = pad_[1], IH = in_[0], IW = in_[1];
    const int64_t sh = stride_[0], sw = stride_[1];
    std::memset(pad + planes * plane, 0, sizeof(float) * (total - size_t(planes * plane)));
    for (int64_t n = 0; n < N_; ++n) {
      const float* Xn = X + n * C_ * S_in_;
      parallel_for(planes * nph, 4, [&](int64_t b, int64_t e) {
        for (int64_t q = b; q < e; ++q) {
          const int64_t ph = phases_[size_t(q % nph)], pa = ph / sw, pb = ph % sw;
          float* dst = pad + q * phase_size;
          const float* src = Xn + (q / nph) * S_in_;
          // Phase column j holds input column j * sw + pb - pl: inside for j in [j0, j1).
          const int64_t j0 = std::min(Wq_, ceil_div(std::max<int64_t>(0, pl - pb), sw));
          const int64_t j1 = std::max(j0, std::min(Wq_, ceil_div(IW + pl - pb, sw)));
          for (int64_t i = 0; i < Hq_; ++i) {
            float* d = dst + i * Wq_;
            const int64_t ih = i * sh + pa - pt;
            if (ih < 0 || ih >= IH) {
              std::memset(d, 0, sizeof(float) * Wq_);
              continue;
            }
            const float* xr = src + ih * IW + pb - pl;  // xr[j * sw] = input column
            std::memset(d, 0, sizeof(float) * j0);
            if (sw == 1) {
              std::memcpy(d + j0, xr + j0, sizeof(float) * (j1 - j0));
            } else {
              for (int64_t j = j0; j < j1; ++j) d[j] = xr[j * sw];
            }
            std::memset(d + j1, 0, sizeof(float) * (Wq_ - j1));
          }
        }
      });

      const int threads = num_threads();
      const int64_t ng = group_;  // items of this image
      // Rows per chunk: the chunk's GEMM output (Mg x rows*Wq, a scratch block) within ~1 MB,
      // then enough chunks for the threads, rounded to a multiple of them.
      int64_t rows = std::max<int64_t>(1, (int64_t(1) << 18) / std::max<int64_t>(1, Mg_ * Wq_));
      rows = std::min(rows, OH);
      int64_t chunks = ceil_div(OH, rows);
      // As in run(): small maps with many output channels split M inside one GEMM instead.
      const bool split_m = Mg_ >= OH * Wq_ && ng < threads && chunks == 1;
      if (!split_m && threads > 1 && ng * chunks % threads) {
        const int64_t want = ceil_div(ceil_div(ng * chunks, threads) * threads, ng);
        if (want <= OH) {
          rows = ceil_div(OH, want);
          chunks = ceil_div(OH, rows);
        }
      }
      const int64_t items = ng * chunks;
      auto item = [&](int64_t it) {
        const int64_t g = it / chunks;
        const int64_t oh0 = (it % chunks) * rows, nr = std::min(rows, OH - oh0);
        const int64_t cols = nr * Wq_;
        const float* base = pad + g * Cg_ * plane + oh0 * Wq_;
        thread_local std::vector<const float*> row_ptrs;
        row_ptrs.resize(size_t(kdim_));
        for (int64_t k = 0; k < kdim_; ++k) row_ptrs[size_t(k)] = base + row_off_[size_t(k)];
        float* tmp = tl_col.get(size_t(Mg_ * cols));
        Epilogue epi = epi_;
        if (bias) {
          epi.bias_kind = Epilogue::Bias::per_row;
          epi.bias = bias + g * Mg_;
        }
        if (Z) epi.act = Activation::none;  // the residual enters before the activation
        sgemm_rows(*packed_w_[g], Mg_, cols, kdim_, row_ptrs.data(), 0.f, tmp, cols, epi);
        // Drop the junk columns: output row oh is tmp[.., (oh - oh0) * Wq, + OW).
        for (int64_t m = 0; m < Mg_; ++m) {
          const int64_t ch = n * M_ + g * Mg_ + m;
          float* y = Y + ch * S_ + oh0 * OW;
          const float* t = tmp + m * cols;
          for (int64_t r = 0; r < nr; ++r)
            std::memcpy(y + r * OW, t + r * Wq_, sizeof(float) * OW);
          if (Z) {
            const float* z = Z + ch * S_ + oh0 * OW;
            for (int64_t i = 0; i < nr * OW; ++i) y[i] += z[i];
            apply_activation(y, nr * OW, epi_.act, epi_.act_alpha, epi_.act_beta);
          }
        }
      };
      if (items >= threads && threads > 1) {
        parallel_for(items, 1, [&](int64_t b, int64_t e) {
          for (int64_t it = b; it < e; ++it) item(it);
        });
      } else {
        for (int64_t it = 0; it < items; ++it) item(it);  // each GEMM uses the threads
      }
    }  // images
  }

  // Winograd F(2x2, 3x3) (winograd.h) for 3x3 / stride 1 / dilation 1 convs with constant
  // weights and one group: 16 GEMMs with K = C instead of one with K = 9C. Only where the
  // channels keep those GEMMs efficient and the map has enough tiles; FERRY_CONV_WINOGRAD=0
  // turns it off, =1 takes every conv of that form (tests reach small shapes with it), =2 / =4
  // also fix the output tile.
  // Inputs with at most 4 channels (an image network's first layer), constant weights, output
  // channels a multiple of 8: the direct kernel of few_channels.h. The 3x3/2 first convs ran at
  // ~25 GFLOP/s as GEMMs (K = 27). FERRY_CONV_FEW_CHANNELS=0 turns it off.
  void setup_few_channels(const KernelArgs& a) {
    const char* env = std::getenv("FERRY_CONV_FEW_CHANNELS");
    // Up to 3x3 taps: measured in one process against the shifted-rows GEMM (1 and 2 threads),
    // 3 -> 32 3x3/2 on 224x224 0.60-0.70 of its time, 3 -> 64 3x3/2 0.81-0.88, but the 7x7/2
    // stem 1.01-1.10 (its K = 147 keeps the GEMM efficient).
    if ((env && std::string(env) == "0") || nd_ != 2 || group_ != 1 || depthwise_ ||
        pointwise_ || C_ > 4 || M_ % 8 != 0 || S_ == 0 || k_[0] * k_[1] > 9 ||
        !a.constants.count(1))
      return;
    const int64_t hp = (out_[0] - 1) * stride_[0] + (k_[0] - 1) * dil_[0] + 1;
    const int64_t wp_need = (out_[1] - 1) * stride_[1] + (k_[1] - 1) * dil_[1] + 1;
    few_geo_ = conv::FewChannelsGeometry{
        C_, M_, out_[0], out_[1], k_[0], k_[1], stride_[0], stride_[1], dil_[0], dil_[1], hp,
        conv::few_channels_padded_width(out_[1], k_[1], stride_[1], dil_[1], wp_need)};
    // Weights channels-last: tap (c, i, j) holds the M output channels' weights.
    const float* w = static_cast<const float*>(a.constants.at(1).data);
    few_w_.resize(size_t(kdim_ * M_));
    for (int64_t m = 0; m < M_; ++m)
      for (int64_t t = 0; t < kdim_; ++t) few_w_[size_t(t * M_ + m)] = w[m * kdim_ + t];
  }

  void run_few_channels(const float* X, const float* bias, const float* Z, float* Y) const {
    const conv::FewChannelsGeometry& g = few_geo_;
    if (Z != nullptr && Z == Y) {  // the rows are written before the residual is added
      thread_local std::vector<float> residual;
      residual.assign(Z, Z + N_ * M_ * S_);
      Z = residual.data();
    }
    const bool clamp = Z == nullptr &&
                       (epi_.act == Activation::relu || epi_.act == Activation::clip);
    const float lohi[2] = {epi_.act == Activation::clip ? epi_.act_alpha : 0.f,
                           epi_.act == Activation::clip ? epi_.act_beta
                                                        : std::numeric_limits<float>::infinity()};
    const int64_t OW = out_[1], plane = g.hp * g.wp;
    float* xpad = tl_pad.get(size_t(C_ * plane));
    const size_t scratch = size_t(conv::few_channels_scratch_floats(g));
    for (int64_t n = 0; n < N_; ++n) {
      // The zero-padded input, as wide as whole pixel tiles read (see padded_width).
      for (int64_t c = 0; c < C_; ++c) {
        float* pc = xpad + c * plane;
        std::fill(pc, pc + plane, 0.f);
        for (int64_t ih = 0; ih < in_[0]; ++ih) {
          const int64_t r = ih + pad_[0];
          if (r >= g.hp) break;
          const int64_t n_cols = std::min(in_[1], g.wp - pad_[1]);
          if (n_cols > 0)
            std::memcpy(pc + r * g.wp + pad_[1], X + (n * C_ + c) * S_in_ + ih * in_[1],
                        sizeof(float) * size_t(n_cols));
        }
      }
      float* y = Y + n * M_ * S_;
      // Rows in chunks of ~4 per item, so that both threads get work on small maps too.
      const int64_t rows =
          std::max<int64_t>(1, std::min<int64_t>(4, ceil_div(g.oh, 2 * num_threads())));
      parallel_for(ceil_div(g.oh, rows), 1, [&](int64_t b, int64_t e) {
        float* tmp = tl_col.get(scratch);
        for (int64_t it = b; it < e; ++it) {
          const int64_t r0 = it * rows, r1 = std::min(g.oh, r0 + rows);
          few_channels_fn_(g, xpad, few_w_.data(), bias, r0, r1, y, clamp ? lohi : nullptr,
                           tmp);
          if (clamp) continue;
          for (int64_t m = 0; m < M_; ++m) {
            float* yr = y + m * S_ + r0 * OW;
            const int64_t count = (r1 - r0) * OW;
            if (Z) {
              const float* z = Z + (n * M_ + m) * S_ + r0 * OW;
              for (int64_t i = 0; i < count; ++i) yr[i] += z[i];
            }
            apply_activation(yr, count, epi_.act, epi_.act_alpha, epi_.act_beta);
          }
        }
      });
    }
  }

  void setup_winograd(const KernelArgs& a) {
    const char* env = std::getenv("FERRY_CONV_WINOGRAD");
    const std::string mode = env ? env : "";
    if (mode == "0" || nd_ != 2 || group_ != 1 || depthwise_ || !a.constants.count(1) ||
        k_ != Shape{3, 3} || stride_ != Shape{1, 1} || dil_ != Shape{1, 1} || S_ == 0)
      return;
    // Measured against the shifted-rows GEMM (one conv, 1 and 2 threads, AVX2): 0.62-0.85 of
    // its time from 64 input channels (256 -> 256 on 14 x 14: 0.65-0.67, 128 -> 32 on 28 x 28:
    // 0.72-0.81, 64 -> 128 on 7 x 7: 0.75-0.81; 64 -> 64 on 14 x 14 0.89-1.02), no gain below
    // (the input transform is then a large share: 32 -> 64 0.96-0.98, 48 -> 192 1.05-1.07,
    // 16 -> 64 1.3).
    const bool forced = mode == "1" || mode == "2" || mode == "4";
    if (!forced && (C_ < 64 || M_ < 32)) return;
    // F(4x4, 3x3) on maps of 24 x 24 and more: 36 GEMMs on a quarter of the tiles do 0.56 of
    // F(2x2)'s multiplies, and its transforms move fewer values per output (measured 0.7-0.85
    // of F(2x2)'s time on 27-56 maps, 1 and 2 threads). On 14 x 14 maps both tie, and on 7 x 7
    // the 4 tiles make GEMMs too narrow (2x slower): F(2x2).
    wino_m_ = mode == "2" ? 2 : mode == "4" ? 4 : (out_[0] >= 24 && out_[1] >= 24 ? 4 : 2);
    const int64_t nxi = (wino_m_ + 2) * (wino_m_ + 2);
    const float* w = static_cast<const float*>(a.constants.at(1).data);
    std::vector<float> u(size_t(nxi * M_ * C_));  // u[(xi * M + m) * C + c]
    float t[36];
    for (int64_t m = 0; m < M_; ++m)
      for (int64_t c = 0; c < C_; ++c) {
        conv::winograd_filter(w + (m * C_ + c) * 9, t, wino_m_);
        for (int64_t xi = 0; xi < nxi; ++xi) u[size_t((xi * M_ + m) * C_ + c)] = t[xi];
      }
    for (int64_t xi = 0; xi < nxi; ++xi)
      wino_w_.push_back(std::make_unique<PackedA>(false, M_, C_, u.data() + xi * M_ * C_, C_));
  }

  // Tile rows per band (one work item: its 16 GEMMs have N = the band's tiles), or 0 when
  // the map is too small to split (then the phases of one image run one after the other,
  // each spread over the threads).
  int64_t winograd_band(int threads) const {
    const int64_t th = ceil_div(out_[0], wino_m_), tw = ceil_div(out_[1], wino_m_);
    // ~kWinogradTiles tiles per band: GEMMs wide enough for the 16-column panels, and V / P
    // scratch (16 (C + M) floats per tile) that stays near L2.
    const int64_t target = kWinogradTiles * 4 / (wino_m_ * wino_m_);  // the same map area
    int64_t band = std::min(th, std::max<int64_t>(1, ceil_div(target, tw)));
    const int64_t bands = ceil_div(th, band);
    if (threads > 1 && (N_ * bands) % threads) {  // whole rounds for the threads
      const int64_t want = ceil_div(ceil_div(N_ * bands, threads) * threads, N_);
      if (want > th) return 0;
      band = ceil_div(th, want);
    }
    if (threads > 1 && band * tw < target / 4) return 0;  // bands too thin for GEMMs
    return band;
  }

  void run_winograd(const float* X, const float* bias, const float* Z, float* Y) const {
    const conv::WinogradGeometry g{in_[0], in_[1], out_[0], out_[1], pad_[0], pad_[1], wino_m_};
    const int64_t th = g.tiles_h(), tw = g.tiles_w(), nxi = g.positions();
    const int64_t band = winograd_band(num_threads());
    const int64_t OH = out_[0], OW = out_[1];
    // Bias, residual and activation of output channel m over output rows [r0, r1).
    auto finish = [&](int64_t n, int64_t m, int64_t r0, int64_t r1) {
      float* rows = Y + (n * M_ + m) * S_ + r0 * OW;
      const int64_t count = (r1 - r0) * OW;
      if (Z) {
        const float* z = Z + (n * M_ + m) * S_ + r0 * OW;
        for (int64_t i = 0; i < count; ++i) rows[i] += z[i];
      }
      apply_activation(rows, count, epi_.act, epi_.act_alpha, epi_.act_beta);
    };
    // Input transforms of channels [c0, c1) of image n over tile rows [tr0, tr1) into V. In
    // NCHWc (c0, c1 whole blocks) each block's rows those tiles read are first unblocked into
    // eight planes (a thread's own), in cache, instead of by a reorder pass over memory.
    auto transform_in = [&](int64_t n, int64_t c0, int64_t c1, int64_t tr0, int64_t tr1,
                            float* V, int64_t tiles, int64_t vs, float* sc) {
      if (!nchwc_) {
        for (int64_t c = c0; c < c1; ++c)
          wino_in_(g, X + (n * C_ + c) * S_in_, tr0, tr1, V + c * tiles, vs, sc);
        return;
      }
      const int64_t r_lo = std::max<int64_t>(0, tr0 * g.m - g.pt - 1);
      const int64_t r_hi = std::min<int64_t>(g.ih, tr1 * g.m - g.pt + 3);
      float* planes = tl_planes.get(size_t(8 * S_in_));
      for (int64_t c = c0; c < c1; c += 8) {
        if (r_lo < r_hi)
          from_blocked_(X + (n * C_ + c) * S_in_, planes, S_in_, r_lo * g.iw, r_hi * g.iw);
        for (int64_t l = 0; l < 8; ++l)
          wino_in_(g, planes + l * S_in_, tr0, tr1, V + (c + l) * tiles, vs, sc);
      }
    };
    // Output transforms of channels [m0, m1) (NCHWc: whole blocks, through eight planes)
    // over tile rows [tr0, tr1), then bias, residual and activation of their output rows.
    auto transform_out = [&](int64_t n, int64_t m0, int64_t m1, int64_t tr0, int64_t tr1,
                             const float* P, int64_t tiles, int64_t ps, float* sc) {
      const int64_t r0 = g.m * tr0, r1 = std::min(OH, g.m * tr1);
      if (!nchwc_) {
        for (int64_t m = m0; m < m1; ++m) {
          wino_out_(g, P + m * tiles, ps, tr0, tr1, bias ? bias[m] : 0.f,
                    Y + (n * M_ + m) * S_, sc);
          finish(n, m, r0, r1);
        }
        return;
      }
      float* planes = tl_planes.get(size_t(8 * S_));
      for (int64_t m = m0; m < m1; m += 8) {
        for (int64_t l = 0; l < 8; ++l)
          wino_out_(g, P + (m + l) * tiles, ps, tr0, tr1, bias ? bias[m + l] : 0.f,
                    planes + l * S_, sc);
        float* block = Y + (n * M_ + m) * S_;
        to_blocked_(planes, block, S_, r0 * OW, r1 * OW);
        float* rows = block + r0 * OW * 8;
        const int64_t count = (r1 - r0) * OW * 8;
        if (Z) {
          const float* z = Z + (n * M_ + m) * S_ + r0 * OW * 8;
          for (int64_t i = 0; i < count; ++i) rows[i] += z[i];
        }
        apply_activation(rows, count, epi_.act, epi_.act_alpha, epi_.act_beta);
      }
    };
    const int64_t unit = nchwc_ ? 8 : 1;  // channels per work item of the phase loops
    const int64_t in_scratch =
        std::max(conv::winograd_input_scratch_floats(g, th),
                 conv::winograd_output_scratch_floats(g, th * tw));
    if (band == 0) {  // whole images, phase by phase
      const int64_t tiles = th * tw, vs = C_ * tiles + 16, ps = M_ * tiles + 16;
      float* V = tl_pad.get(size_t(nxi * (vs + ps)));
      float* P = V + nxi * vs;
      for (int64_t n = 0; n < N_; ++n) {
        parallel_for(C_ / unit, 1, [&](int64_t b, int64_t e) {
          float* sc = tl_col.get(size_t(in_scratch));
          transform_in(n, b * unit, e * unit, 0, th, V, tiles, vs, sc);
        });
        parallel_for(nxi, 1, [&](int64_t b, int64_t e) {
          for (int64_t xi = b; xi < e; ++xi)
            sgemm(*wino_w_[size_t(xi)], false, M_, tiles, C_, 1.f, V + xi * vs, tiles, 0.f,
                  P + xi * ps, tiles);
        });
        parallel_for(M_ / unit, 1, [&](int64_t b, int64_t e) {
          float* sc = tl_col.get(size_t(in_scratch));
          transform_out(n, b * unit, e * unit, 0, th, P, tiles, ps, sc);
        });
      }
      return;
    }
    const int64_t bands = ceil_div(th, band);
    parallel_for(N_ * bands, 1, [&](int64_t b, int64_t e) {
      for (int64_t it = b; it < e; ++it) {
        const int64_t n = it / bands, tr0 = (it % bands) * band, tr1 = std::min(th, tr0 + band);
        const int64_t tiles = (tr1 - tr0) * tw;
        const int64_t scratch = std::max<int64_t>(
            conv::winograd_input_scratch_floats(g, tr1 - tr0),
            conv::winograd_output_scratch_floats(g, tiles));
        // V[xi * vs + c * tiles + t] and the 16 GEMM products P[xi * ps + m * tiles + t]. The
        // 16 blocks sit 64 bytes off a multiple of their size: the transforms stream all 16,
        // which at strides of a power of two (64 x 256 floats) share 8-way cache sets.
        const int64_t vs = C_ * tiles + 16, ps = M_ * tiles + 16;
        float* V = tl_col.get(size_t(nxi * (vs + ps) + scratch));
        float* P = V + nxi * vs;
        float* sc = P + nxi * ps;
        transform_in(n, 0, C_, tr0, tr1, V, tiles, vs, sc);
        for (int64_t xi = 0; xi < nxi; ++xi)
          sgemm(*wino_w_[size_t(xi)], false, M_, tiles, C_, 1.f, V + xi * vs, tiles, 0.f,
                P + xi * ps, tiles);
        transform_out(n, 0, M_, tr0, tr1, P, tiles, ps, sc);
      }
    });
  }

  void run_depthwise(const float* X, const float* W, const float* bias, const float* Z,
                     float* Y) const {
    const conv::DepthwiseGeometry g{in_[0], in_[1], out_[0], out_[1], k_[0], k_[1], stride_[0],
                                    stride_[1], dil_[0], dil_[1], pad_[0], pad_[1]};
    // Strides 1 and 2 with at least a vector per output row: plane by plane through a padded
    // copy (all taps in registers). Smaller planes: eight channels interleaved per block (full
    // vectors whatever the row length); the rest plane by plane along each output row.
    // (7x7 planes too for the 3x3/1 pad-1 case, which the padded kernel has at fixed size.)
    const bool fixed7 = g.ow == 7 && g.oh == 7 && g.iw == 7 && g.ih == 7 && g.kh == 3 &&
                        g.kw == 3 && g.sh == 1 && g.sw == 1 && g.dh == 1 && g.dw == 1 &&
                        g.ph == 1 && g.pw == 1;
    // Stride 2 on both axes with a 3x3 / 5x5 kernel: four phase planes, one flat loop
    // (192 x 28x28 -> 14x14: 0.7 of the row-by-row time; 144 x 56 -> 28: 0.85). Used for
    // outputs 32 and more wide, and for the channels left over from the 8-channel blocks
    // below (s2_blocks) on narrower ones.
    const bool phased = g.sh == 2 && g.sw == 2 && g.kh == g.kw && (g.kh == 3 || g.kh == 5) &&
                        g.dh == 1 && g.dw == 1 && g.ow >= padded_min_ow_;
    // Stride 1 (both axes: the flat loop walks rows one apart) or a horizontal stride of 2.
    const bool padded = (((g.sw == 1 && g.sh == 1) || g.sw == 2) && g.ow >= padded_min_ow_) ||
                        fixed7 || phased;
    // ReLU / Clip: clamped by the padded kernel as it writes each row.
    const bool clamp = epi_.act == Activation::relu || epi_.act == Activation::clip;
    const float lohi[2] = {epi_.act == Activation::clip ? epi_.act_alpha : 0.f,
                           epi_.act == Activation::clip ? epi_.act_beta
                                                        : std::numeric_limits<float>::infinity()};
    // Stride 2 on both axes with outputs up to 28 wide: eight channels interleaved beat the
    // phase planes too now that the interleave is in registers (144 x 56 -> 28 3x3: 225 vs
    // 310 us; 240 x 28 -> 14: 97 vs 170; 144 x 56 -> 28 5x5: 326 vs 360; 1 thread, medians of
    // 4 alternating runs). At 56 wide the phases stay ahead (96 x 112 -> 56: 439 vs 634 us).
    const bool s2_blocks = g.sh == 2 && g.sw == 2 && g.ow < 32;
    const int64_t blocks = (!padded && out_[1] < 16) || s2_blocks ? C_ / 8 : 0;
    const int64_t tail = C_ - blocks * 8;
    const int64_t items = N_ * (blocks + tail);
    const int64_t hp = (g.oh - 1) * g.sh + (g.kh - 1) * g.dh + 1;
    const int64_t wp = (g.ow - 1) * g.sw + (g.kw - 1) * g.dw + 1;
    const size_t scratch = std::max<size_t>(
        {size_t((hp * wp + S_ + ksize_) * 8), size_t(conv::depthwise_padded_scratch_floats(g)),
         size_t(std::max<int64_t>(g.ow, 1))});
    parallel_for(items, 1, [&](int64_t b, int64_t e) {
      float* tmp = tl_col.get(scratch);  // once per chunk: thread_local access is a call in a .so
      for (int64_t it = b; it < e; ++it) {
        const int64_t n = it / (blocks + tail), r = it % (blocks + tail);
        if (r < blocks) {
          const int64_t c0 = r * 8;
          float b8[8];
          for (int l = 0; l < 8; ++l) b8[l] = bias ? bias[c0 + l] : 0.f;
          float* y = Y + (n * C_ + c0) * S_;
          depthwise_block8_fn_(g, X + (n * C_ + c0) * S_in_, S_in_, W + c0 * ksize_, b8,
                               Z ? Z + (n * C_ + c0) * S_ : nullptr, y, S_, tmp);
          apply_activation(y, 8 * S_, epi_.act, epi_.act_alpha, epi_.act_beta);
        } else {
          const int64_t c = blocks * 8 + (r - blocks);
          const int64_t pl = n * C_ + c;
          float* y = Y + pl * S_;
          if (padded) {
            (phased ? depthwise_phased_fn_ : depthwise_padded_fn_)(
                g, X + pl * S_in_, W + c * ksize_, bias ? bias[c] : 0.f,
                Z ? Z + pl * S_ : nullptr, y, tmp, clamp ? lohi : nullptr);
            if (clamp) continue;  // applied in the kernel
          } else {
            depthwise_fn_(g, X + pl * S_in_, W + c * ksize_, bias ? bias[c] : 0.f,
                          Z ? Z + pl * S_ : nullptr, y, tmp);
          }
          apply_activation(y, S_, epi_.act, epi_.act_alpha, epi_.act_beta);
        }
      }
    });
  }

  int nd_ = 0;
  int64_t group_ = 1, N_ = 0, C_ = 0, M_ = 0, Cg_ = 0, Mg_ = 0;
  Shape in_, out_, k_, stride_, dil_, pad_;
  int64_t S_in_ = 0, S_ = 0, ksize_ = 0, kdim_ = 0;
  bool has_bias_ = false, has_z_ = false, depthwise_ = false, pointwise_ = false;
  bool nchwc_ = false;  // X, Z, Y in NCHWc (Winograd only)
  conv::NchwcReorderFn to_blocked_ = nullptr, from_blocked_ = nullptr;
  bool shifted_ = false;  // 2-D conv read as shifted rows of a padded (phase-split) input
  int64_t Hq_ = 0, Wq_ = 0, max_shift_ = 0;  // phase plane size; the largest tap offset
  std::vector<int64_t> phases_;  // the phases (a * sw + b) some tap reads, in plane order
  std::vector<int64_t> row_off_;  // per im2col row (c, kh, kw): its offset in the padded input
  Epilogue epi_;
  conv::DepthwisePlaneFn depthwise_fn_ = nullptr;
  conv::DepthwisePaddedFn depthwise_padded_fn_ = nullptr;
  conv::DepthwisePaddedFn depthwise_phased_fn_ = nullptr;  // stride 2, 3x3 / 5x5
  int64_t padded_min_ow_ = 8;  // the vector width: the padded path needs a vector per row
  conv::DepthwiseBlock8Fn depthwise_block8_fn_ = nullptr;
  std::vector<float> const_bias_, const_w_;
  std::vector<std::unique_ptr<PackedA>> packed_w_;
  std::vector<std::unique_ptr<PackedA>> wino_w_;  // Winograd: U[xi] (M x C), 16 or 36
  int64_t wino_m_ = 2;  // Winograd output tile: 2 or 4
  conv::WinogradInputFn wino_in_ = nullptr;
  conv::FewChannelsFn few_channels_fn_ = nullptr;
  conv::FewChannelsGeometry few_geo_{};
  std::vector<float> few_w_;  // channels-last weights of a few-channels conv, or empty
  conv::WinogradOutputFn wino_out_ = nullptr;
};

}  // namespace

FERRY_REGISTER_KERNEL("Conv", [](const KernelArgs& a) -> std::unique_ptr<Kernel> {
  return std::make_unique<ConvKernel>(a);
});

}  // namespace ferry
