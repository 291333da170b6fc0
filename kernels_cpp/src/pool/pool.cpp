// float32 MaxPool / AveragePool (1-D and 2-D, NC[H]W) and the Global pools. The geometry
// (output size, padding from auto_pad and ceil_mode) is resolved in Python
// (providers/cpu/ops/pool.py); planes run in parallel on the pool.
#include <algorithm>
#include <string>
#include <limits>
#include <vector>

#include "ferry/kernel.h"
#include "ferry/threadpool.h"
#include "table.h"

namespace ferry {
namespace pool {

const Table& table_for(Isa isa) {
  switch (isa) {
    case Isa::avx512: return table_avx512();
    case Isa::avx2: return table_avx2();
    default: return table_scalar();
  }
}

namespace {

struct Planes {
  int64_t count = 0;     // N * C
  int64_t in_size = 0;   // H * W
  int64_t out_size = 0;  // OH * OW
};

// Geometry from the kernel's parameters; rank-3 inputs are 2-D pools with H = 1.
Geometry geometry(const KernelArgs& a, Planes& planes) {
  const Shape& xs = a.in_shapes.at(0);
  const Shape& ys = a.out_shapes.at(0);
  if (xs.size() != 3 && xs.size() != 4) throw KernelArgError("pool: 1-D or 2-D inputs only");
  if (ys.size() != xs.size() || ys[0] != xs[0] || ys[1] != xs[1])
    throw KernelArgError("pool: output shape does not match the input's N, C");
  const size_t nd = xs.size() - 2;
  auto get = [&](const char* k, int64_t dflt) {
    std::vector<int64_t> v = a.params.has(k) ? a.params.get_ints(k) : std::vector<int64_t>();
    if (v.empty()) v.assign(nd, dflt);
    if (v.size() != nd) throw KernelArgError(std::string("pool: ") + k + " has the wrong length");
    if (nd == 1) v.insert(v.begin(), dflt == 0 ? 0 : 1);
    return v;
  };
  std::vector<int64_t> k = get("kernel_shape", 1), s = get("strides", 1),
                       d = get("dilations", 1), pb = get("pads_begin", 0);
  Geometry g;
  g.H = nd == 2 ? xs[2] : 1;
  g.W = xs.back();
  g.OH = nd == 2 ? ys[2] : 1;
  g.OW = ys.back();
  g.KH = k[0]; g.KW = k[1];
  g.SH = s[0]; g.SW = s[1];
  g.DH = d[0]; g.DW = d[1];
  g.PT = pb[0]; g.PL = pb[1];
  if (g.KH < 1 || g.KW < 1 || g.SH < 1 || g.SW < 1 || g.DH < 1 || g.DW < 1)
    throw KernelArgError("pool: kernel, strides and dilations must be positive");
  planes.count = xs[0] * xs[1];
  planes.in_size = g.H * g.W;
  planes.out_size = g.OH * g.OW;
  return g;
}

int64_t plane_grain(const Geometry& g) {
  return std::max<int64_t>(1, (1 << 15) / std::max<int64_t>(1, g.OH * g.OW * g.KH * g.KW));
}

// Planes in blocks of eight (Table::block8) where use_block8 says so, the rest one by one
// through `one(i)`; in parallel.
template <class One>
void run_planes(const Geometry& g, const Planes& p, bool max, const float* count_h,
                const float* count_w, Block8Fn block8, const float* x, float* y, One one) {
  const int64_t blocks = block8 && use_block8(g) ? p.count / 8 : 0;
  const int64_t items = blocks + (p.count - blocks * 8);
  const int64_t grain = blocks ? std::max<int64_t>(1, plane_grain(g) / 8) : plane_grain(g);
  parallel_for(items, grain, [&](int64_t b, int64_t e) {
    thread_local std::vector<float> tmp;
    if (blocks && tmp.size() < size_t(block8_scratch_floats(g)))
      tmp.resize(size_t(block8_scratch_floats(g)));
    for (int64_t it = b; it < e; ++it) {
      if (it < blocks)
        block8(x + it * 8 * p.in_size, p.in_size, y + it * 8 * p.out_size, p.out_size, max,
               count_h, count_w, g, tmp.data());
      else
        one(blocks * 8 + (it - blocks));
    }
  });
}

void check_f32(const KernelArgs& a, const char* name) {
  if (a.in_shapes.empty() || a.out_shapes.empty() || a.in_dtypes[0] != DType::f32 ||
      a.out_dtypes[0] != DType::f32)
    throw KernelArgError(std::string(name) + ": float32 input and output");
}

class MaxPoolKernel : public Kernel {
 public:
  MaxPoolKernel(const Geometry& g, const Planes& p, bool col_major, MaxPlaneFn fn,
                Block8Fn block8)
      : g_(g), p_(p), col_major_(col_major), fn_(fn), block8_(block8) {}
  void run(const void* const* in, void* const* out) const override {
    const float* x = static_cast<const float*>(in[0]);
    float* y = static_cast<float*>(out[0]);
    int64_t* ind = out_count_ > 1 ? static_cast<int64_t*>(out[1]) : nullptr;
    run_planes(g_, p_, true, nullptr, nullptr, ind ? nullptr : block8_, x, y, [&](int64_t i) {
      fn_(x + i * p_.in_size, y + i * p_.out_size, ind ? ind + i * p_.out_size : nullptr,
          i * p_.in_size, col_major_, g_);
    });
  }
  int out_count_ = 1;

 private:
  Geometry g_;
  Planes p_;
  bool col_major_;
  MaxPlaneFn fn_;
  Block8Fn block8_;
};

std::unique_ptr<Kernel> whole_plane_pool(const KernelArgs& a, const Geometry& g,
                                         const Planes& p, bool mean);

std::unique_ptr<Kernel> make_maxpool(const KernelArgs& a) {
  check_f32(a, "MaxPool");
  Planes p;
  Geometry g = geometry(a, p);
  if (auto k = whole_plane_pool(a, g, p, false)) return k;
  const bool indices = a.params.get_int("indices", 0) != 0;
  if (indices && (a.out_shapes.size() != 2 || a.out_dtypes[1] != DType::i64 ||
                  a.out_shapes[1] != a.out_shapes[0]))
    throw KernelArgError("MaxPool: indices need a second int64 output of Y's shape");
  const Table& t = table_for(active_isa());
  auto k = std::make_unique<MaxPoolKernel>(g, p, a.params.get_int("storage_order", 0) != 0,
                                           t.max_plane, t.block8);
  k->out_count_ = indices ? 2 : 1;
  return k;
}

class AvgPoolKernel : public Kernel {
 public:
  AvgPoolKernel(const Geometry& g, const Planes& p, std::vector<float> ch,
                std::vector<float> cw, AvgPlaneFn fn, Block8Fn block8)
      : g_(g), p_(p), ch_(std::move(ch)), cw_(std::move(cw)), fn_(fn), block8_(block8) {
    if (g_.SH == 1 && g_.SW == 1 && g_.OH > 0 && g_.OW > 0) {
      const int64_t wp = (g_.OW - 1) + (g_.KW - 1) * g_.DW + 1;
      if (g_.OH * wp <= (int64_t(1) << 20)) {
        den_.assign(size_t(g_.OH * wp), 1.0f);
        for (int64_t oh = 0; oh < g_.OH; ++oh)
          for (int64_t ow = 0; ow < g_.OW; ++ow) {
            const float c = ch_[size_t(oh)] * cw_[size_t(ow)];
            den_[size_t(oh * wp + ow)] = c > 0.0f ? c : std::numeric_limits<float>::infinity();
          }
        g_.den = den_.data();
      }
    }
  }
  void run(const void* const* in, void* const* out) const override {
    const float* x = static_cast<const float*>(in[0]);
    float* y = static_cast<float*>(out[0]);
    run_planes(g_, p_, false, ch_.data(), cw_.data(), block8_, x, y, [&](int64_t i) {
      fn_(x + i * p_.in_size, y + i * p_.out_size, ch_.data(), cw_.data(), g_);
    });
  }

 private:
  Geometry g_;
  Planes p_;
  std::vector<float> ch_, cw_;
  std::vector<float> den_;  // g_.den
  AvgPlaneFn fn_;
  Block8Fn block8_;
};

// Taps per output position along one axis that count in the divisor: inside [lo, hi).
std::vector<float> tap_counts(int64_t out, int64_t k, int64_t s, int64_t d, int64_t pad,
                              int64_t lo, int64_t hi) {
  std::vector<float> c(out);
  for (int64_t o = 0; o < out; ++o) {
    int64_t n = 0;
    for (int64_t j = 0; j < k; ++j) {
      const int64_t i = o * s - pad + j * d;
      n += (i >= lo && i < hi);
    }
    c[o] = static_cast<float>(n);
  }
  return c;
}

std::unique_ptr<Kernel> make_avgpool(const KernelArgs& a) {
  check_f32(a, "AveragePool");
  Planes p;
  Geometry g = geometry(a, p);
  if (auto k = whole_plane_pool(a, g, p, true)) return k;
  const bool include_pad = a.params.get_int("count_include_pad", 0) != 0;
  std::vector<int64_t> pe = a.params.has("pads_end") ? a.params.get_ints("pads_end")
                                                     : std::vector<int64_t>();
  const size_t nd = a.in_shapes[0].size() - 2;
  if (pe.empty()) pe.assign(nd, 0);
  if (nd == 1) pe.insert(pe.begin(), 0);
  std::vector<float> ch = include_pad ? tap_counts(g.OH, g.KH, g.SH, g.DH, g.PT, -g.PT,
                                                   g.H + pe[0])
                                      : tap_counts(g.OH, g.KH, g.SH, g.DH, g.PT, 0, g.H);
  std::vector<float> cw = include_pad ? tap_counts(g.OW, g.KW, g.SW, g.DW, g.PL, -g.PL,
                                                   g.W + pe[1])
                                      : tap_counts(g.OW, g.KW, g.SW, g.DW, g.PL, 0, g.W);
  const Table& t = table_for(active_isa());
  return std::make_unique<AvgPoolKernel>(g, p, std::move(ch), std::move(cw), t.avg_plane,
                                         t.block8);
}

class GlobalKernel : public Kernel {
 public:
  GlobalKernel(int64_t planes, int64_t size, bool mean, ReduceFn fn)
      : planes_(planes), size_(size), mean_(mean), fn_(fn) {}
  void run(const void* const* in, void* const* out) const override {
    const float* x = static_cast<const float*>(in[0]);
    float* y = static_cast<float*>(out[0]);
    const int64_t grain = std::max<int64_t>(1, (1 << 16) / std::max<int64_t>(1, size_));
    parallel_for(planes_, grain, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        float v = fn_(x + i * size_, size_);
        y[i] = mean_ ? v / static_cast<float>(size_) : v;
      }
    });
  }

 private:
  int64_t planes_, size_;
  bool mean_;
  ReduceFn fn_;
};

// A window that covers the whole unpadded plane once (Inception's final 7x7 AveragePool on
// 7x7 maps) is a global pool: one reduction per plane instead of the window loop.
std::unique_ptr<Kernel> whole_plane_pool(const KernelArgs& a, const Geometry& g,
                                         const Planes& p, bool mean) {
  if (g.OH != 1 || g.OW != 1 || g.KH != g.H || g.KW != g.W || g.PT != 0 || g.PL != 0 ||
      g.DH != 1 || g.DW != 1 || p.in_size == 0 || a.params.get_int("indices", 0) != 0)
    return nullptr;
  std::vector<int64_t> pe = a.params.has("pads_end") ? a.params.get_ints("pads_end")
                                                     : std::vector<int64_t>();
  for (int64_t v : pe)
    if (v != 0) return nullptr;
  const Table& t = table_for(active_isa());
  return std::make_unique<GlobalKernel>(p.count, p.in_size, mean, mean ? t.sum : t.max);
}

template <bool Mean> std::unique_ptr<Kernel> make_global(const KernelArgs& a) {
  check_f32(a, Mean ? "GlobalAveragePool" : "GlobalMaxPool");
  const Shape& xs = a.in_shapes[0];
  if (xs.size() < 3) throw KernelArgError("global pool: input rank must be >= 3");
  const int64_t planes = xs[0] * xs[1];
  if (numel(a.out_shapes[0]) != planes) throw KernelArgError("global pool: bad output shape");
  const int64_t size = numel(xs) / std::max<int64_t>(1, planes);
  if (size == 0) throw KernelArgError("global pool: empty spatial axes");
  const Table& t = table_for(active_isa());
  return std::make_unique<GlobalKernel>(planes, size, Mean, Mean ? t.sum : t.max);
}

}  // namespace

FERRY_REGISTER_KERNEL("MaxPool", make_maxpool);
FERRY_REGISTER_KERNEL("AveragePool", make_avgpool);
FERRY_REGISTER_KERNEL("GlobalAveragePool", make_global<true>);
FERRY_REGISTER_KERNEL("GlobalMaxPool", make_global<false>);

}  // namespace pool
}  // namespace ferry
