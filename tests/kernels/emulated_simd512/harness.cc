// Test-only harness: the AVX-512 instantiations of the elementwise, pool, softmax and
// normalization loops (compiled against the emulated immintrin.h in this folder) against the
// scalar ones, on sizes that exercise every tail; then the real AVX2 instantiations the same
// way when the CPU has AVX2. Differences allowed: FMA rounding (a few ulp; more where a
// documented cancellation amplifies it). Prints "TOTAL <n> mismatches"; exits non-zero on any.
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "conv/depthwise.h"
#include "elementwise/table.h"
#include "normalization/table.h"
#include "pool/table.h"
#include "softmax/table.h"

namespace {

int g_bad = 0;
long g_checked = 0;
const char* g_isa = "avx512";

// Same value within rtol (NaN matches NaN, infinities must be equal).
void expect(const char* what, int n, int i, float got, float want, float rtol, float atol) {
  ++g_checked;
  if (std::isnan(want) && std::isnan(got)) return;
  if (std::isinf(want) || std::isinf(got)) {
    if (got == want) return;
  } else if (std::fabs(got - want) <= atol + rtol * std::fabs(want)) {
    return;
  }
  if (g_bad < 20)
    std::printf("MISMATCH %s %s n=%d i=%d: %.9g, scalar %.9g\n", g_isa, what, n, i, got, want);
  ++g_bad;
}

std::vector<float> data(int n, std::mt19937& rng, float scale) {
  std::normal_distribution<float> nd(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  const float specials[] = {0.0f, -0.0f, 0.5f, -2.5f, 1e-30f, 30.0f, -30.0f, 88.0f, -90.0f,
                            INFINITY, -INFINITY, NAN};
  for (int i = 0; i < n && i < 12; ++i) v[(i * 7) % n] = specials[i];
  return v;
}

void check_elementwise(std::mt19937& rng, const ferry::elementwise::Table& a) {
  using namespace ferry::elementwise;
  const Table& s = table_scalar();
  const char* names[kUnaryCount] = {
      "relu", "clip", "sigmoid", "tanh", "exp", "log", "sqrt", "abs", "neg", "erf",
      "leaky_relu", "hard_sigmoid", "hard_swish", "elu", "softplus", "gelu_erf", "gelu_tanh",
      "selu", "celu", "softsign", "mish", "thresholded_relu", "reciprocal", "floor", "ceil",
      "round", "sign"};
  UnaryArgs args;
  args.alpha = 0.3f;
  args.beta = 0.6f;
  for (int op = 0; op < kUnaryCount; ++op) {
    for (int n : {1, 7, 15, 16, 17, 31, 32, 33, 47, 100, 1000}) {
      std::vector<float> x = data(n, rng, 4.0f), ys(n), ya(n);
      if (op == kLog || op == kSqrt)
        for (auto& v : x) v = std::fabs(v);
      s.unary[op](x.data(), ys.data(), n, args);
      a.unary[op](x.data(), ya.data(), n, args);
      // gelu_tanh: the rounding of 2u is amplified for x << 0 (vecmath.h); hard_sigmoid /
      // hard_swish: alpha * x + beta cancels near the clamp edges.
      const float rtol = op == kGeluTanh ? 3e-5f : 2e-6f;
      const float atol = (op == kHardSigmoid || op == kHardSwish) ? 2e-7f : 1e-37f;
      for (int i = 0; i < n; ++i) expect(names[op], n, i, ya[i], ys[i], rtol, atol);
    }
  }
  const char* bnames[kBinaryCount] = {"add", "sub", "mul", "div", "prelu"};
  for (int op = 0; op < kBinaryCount; ++op) {
    for (int kind = 0; kind < kKindCount; ++kind) {
      for (int n : {1, 15, 16, 17, 33, 257}) {
        std::vector<float> x = data(n, rng, 3.0f), y = data(n, rng, 3.0f), ys(n), ya(n);
        s.binary[op][kind](x.data(), y.data(), ys.data(), n);
        a.binary[op][kind](x.data(), y.data(), ya.data(), n);
        for (int i = 0; i < n; ++i) expect(bnames[op], n, i, ya[i], ys[i], 0.0f, 0.0f);
      }
    }
  }
  std::printf("%s elementwise checked\n", g_isa);
}

void check_pool(std::mt19937& rng, const ferry::pool::Table& a) {
  using namespace ferry::pool;
  const Table& s = table_scalar();
  struct G { int64_t H, W, KH, KW, SH, SW, DH, DW, PT, PL, PB, PR; };
  const G gs[] = {{17, 19, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1}, {9, 40, 2, 2, 2, 2, 1, 1, 0, 0, 0, 0},
                  {1, 33, 1, 4, 1, 3, 1, 2, 0, 1, 0, 2}, {7, 7, 7, 7, 1, 1, 1, 1, 3, 3, 3, 3}};
  for (const G& q : gs) {
    Geometry g;
    g.H = q.H; g.W = q.W; g.KH = q.KH; g.KW = q.KW; g.SH = q.SH; g.SW = q.SW;
    g.DH = q.DH; g.DW = q.DW; g.PT = q.PT; g.PL = q.PL;
    g.OH = (q.H + q.PT + q.PB - ((q.KH - 1) * q.DH + 1)) / q.SH + 1;
    g.OW = (q.W + q.PL + q.PR - ((q.KW - 1) * q.DW + 1)) / q.SW + 1;
    std::vector<float> x = data(static_cast<int>(q.H * q.W), rng, 1.0f);
    for (auto& v : x)
      if (std::isnan(v) || std::isinf(v)) v = 0.5f;
    const int no = static_cast<int>(g.OH * g.OW);
    std::vector<float> ys(no), ya(no), ch(g.OH, 2.0f), cw(g.OW, 3.0f);
    std::vector<int64_t> is(no), ia(no);
    for (int with_idx = 0; with_idx < 2; ++with_idx) {
      s.max_plane(x.data(), ys.data(), with_idx ? is.data() : nullptr, 5, false, g);
      a.max_plane(x.data(), ya.data(), with_idx ? ia.data() : nullptr, 5, false, g);
      for (int i = 0; i < no; ++i) {
        expect("max_plane", no, i, ya[i], ys[i], 0.0f, 0.0f);
        if (with_idx) expect("max_plane_idx", no, i, float(ia[i]), float(is[i]), 0.0f, 0.0f);
      }
    }
    s.avg_plane(x.data(), ys.data(), ch.data(), cw.data(), g);
    a.avg_plane(x.data(), ya.data(), ch.data(), cw.data(), g);
    for (int i = 0; i < no; ++i) expect("avg_plane", no, i, ya[i], ys[i], 1e-5f, 2e-6f);
    // Stride 1: the divisors laid out at the padded width (pool.cpp's AvgPoolKernel).
    std::vector<float> den;
    if (g.SH == 1 && g.SW == 1) {
      const int64_t wp = (g.OW - 1) + (g.KW - 1) * g.DW + 1;
      den.assign(size_t(g.OH * wp), 1.0f);
      for (int64_t oh = 0; oh < g.OH; ++oh)
        for (int64_t ow = 0; ow < g.OW; ++ow) den[size_t(oh * wp + ow)] = ch[oh] * cw[ow];
      Geometry gd = g;
      gd.den = den.data();
      a.avg_plane(x.data(), ya.data(), ch.data(), cw.data(), gd);
    }
    // Small planes sum rows first, then columns (the separable form): another order than
    // the scalar loop's, so a 49-tap sum with cancellation differs by a few ulps of its terms.
    for (int i = 0; i < no; ++i) expect("avg_plane", no, i, ya[i], ys[i], 1e-5f, 2e-6f);
  }
  for (int n : {1, 15, 16, 17, 63, 64, 65, 1000}) {
    std::vector<float> x = data(n, rng, 1.0f);
    for (auto& v : x)
      if (std::isnan(v) || std::isinf(v)) v = 0.25f;
    expect("sum", n, 0, a.sum(x.data(), n), s.sum(x.data(), n), 1e-5f, 1e-5f);
    expect("max", n, 0, a.max(x.data(), n), s.max(x.data(), n), 0.0f, 0.0f);
  }
  std::printf("%s pool checked\n", g_isa);
}

void check_softmax(std::mt19937& rng, const ferry::softmax::Table& a) {
  using namespace ferry::softmax;
  const Table& s = table_scalar();
  for (int log = 0; log < 2; ++log) {
    for (int n : {1, 7, 16, 17, 33, 300}) {
      for (int inner : {1, 3, 16, 17, 300}) {
        std::vector<float> x = data(n * inner, rng, 3.0f);
        for (auto& v : x)
          if (std::isnan(v) || std::isinf(v)) v = 1.0f;
        std::vector<float> ys(x.size()), ya(x.size());
        s.block(x.data(), ys.data(), n, inner, 0, inner, log != 0);
        a.block(x.data(), ya.data(), n, inner, 0, inner, log != 0);
        for (size_t i = 0; i < x.size(); ++i)
          expect(log ? "log_softmax" : "softmax", n * inner, static_cast<int>(i), ya[i], ys[i],
                 2e-6f, 1e-7f);
      }
    }
  }
  std::printf("%s softmax checked\n", g_isa);
}

void check_normalization(std::mt19937& rng, const ferry::normalization::Table& a) {
  using namespace ferry::normalization;
  const Table& s = table_scalar();
  for (int n : {1, 7, 16, 17, 63, 64, 65, 768}) {
    std::vector<float> x = data(n, rng, 2.0f), sc = data(n, rng, 1.0f), b = data(n, rng, 1.0f);
    for (auto* v : {&x, &sc, &b})
      for (auto& e : *v)
        if (std::isnan(e) || std::isinf(e)) e = 0.75f;
    float ms, vs, ma, va;
    s.moments(x.data(), n, &ms, &vs);
    a.moments(x.data(), n, &ma, &va);
    expect("mean", n, 0, ma, ms, 1e-5f, 1e-6f);
    expect("var", n, 0, va, vs, 1e-5f, 1e-6f);
    std::vector<float> ys(n), ya(n);
    s.affine(x.data(), ys.data(), n, 0.5f, 1.5f, -0.25f);
    a.affine(x.data(), ya.data(), n, 0.5f, 1.5f, -0.25f);
    for (int i = 0; i < n; ++i) expect("affine", n, i, ya[i], ys[i], 1e-6f, 1e-6f);
    float m1, i1, m2, i2;
    s.layer_row(x.data(), ys.data(), n, sc.data(), b.data(), 1e-5f, &m1, &i1);
    a.layer_row(x.data(), ya.data(), n, sc.data(), b.data(), 1e-5f, &m2, &i2);
    for (int i = 0; i < n; ++i) expect("layer_row", n, i, ya[i], ys[i], 1e-4f, 1e-4f);
    expect("layer_inv", n, 0, i2, i1, 1e-5f, 0.0f);
  }
  for (int spatial : {1, 15, 16, 17, 100}) {
    const int channels = 7;
    std::vector<float> x = data(channels * spatial, rng, 1.0f);
    for (auto& v : x)
      if (std::isnan(v) || std::isinf(v)) v = 0.1f;
    std::vector<float> ys(x.size()), ya(x.size());
    for (int c = 0; c < channels; ++c) {
      s.lrn(x.data(), ys.data(), channels, spatial, c, 2, 2, 0, spatial, 0.02f, 1.0f, 0.75f);
      a.lrn(x.data(), ya.data(), channels, spatial, c, 2, 2, 0, spatial, 0.02f, 1.0f, 0.75f);
    }
    for (size_t i = 0; i < x.size(); ++i)
      expect("lrn", spatial, static_cast<int>(i), ya[i], ys[i], 2e-6f, 1e-7f);
  }
  std::printf("%s normalization checked\n", g_isa);
}

// The padded-plane and 8-channel depthwise loops against the scalar plane loop (strides 1
// and 2, unrolled 3x3 / 5x5 and generic kernels, rows shorter and longer than a vector, z).
using DwPadded = void (*)(const ferry::conv::DepthwiseGeometry&, const float*, const float*,
                          float, const float*, float*, float*, const float*);
using DwBlock8 = void (*)(const ferry::conv::DepthwiseGeometry&, const float*, int64_t,
                          const float*, const float*, const float*, float*, int64_t, float*);
void check_depthwise(std::mt19937& rng, DwPadded padded, DwBlock8 block8, DwPadded phased) {
  using ferry::conv::DepthwiseGeometry;
  struct C { int64_t h, w, k, s, d, p; };
  const C cs[] = {{20, 23, 3, 1, 1, 1}, {30, 70, 3, 2, 1, 1}, {12, 12, 5, 1, 1, 2},
                  {14, 40, 5, 2, 1, 2}, {9, 33, 3, 1, 2, 2}, {7, 7, 3, 1, 1, 1},
                  {11, 50, 7, 1, 1, 3}, {16, 37, 3, 2, 1, 0}, {14, 14, 3, 1, 1, 1},
                  {28, 28, 3, 1, 1, 1}, {28, 28, 3, 2, 1, 1}, {15, 17, 5, 2, 1, 2},
                  {9, 9, 3, 2, 1, 0}};
  for (const C& c : cs) {
    const int64_t span = (c.k - 1) * c.d + 1;
    const int64_t oh = (c.h + 2 * c.p - span) / c.s + 1, ow = (c.w + 2 * c.p - span) / c.s + 1;
    const DepthwiseGeometry g{c.h, c.w, oh, ow, c.k, c.k, c.s, c.s, c.d, c.d, c.p, c.p};
    const int no = static_cast<int>(oh * ow);
    std::vector<float> x(8 * c.h * c.w), wt(8 * c.k * c.k), z(8 * no), b8(8);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    for (auto* v : {&x, &wt, &z, &b8})
      for (auto& e : *v) e = nd(rng);
    std::vector<float> ys(8 * no), ya(8 * no), row(ow + 64);
    std::vector<float> tmp(ferry::conv::depthwise_padded_scratch_floats(g) + 64);
    for (int with_z = 0; with_z < 2; ++with_z) {
      for (int l = 0; l < 8; ++l) {
        const float* zl = with_z ? z.data() + l * no : nullptr;
        ferry::conv::depthwise_plane_scalar(g, x.data() + l * c.h * c.w, wt.data() + l * c.k * c.k,
                                            b8[l], zl, ys.data() + l * no, row.data());
        if (ow >= 16 || c.s == 1)
          padded(g, x.data() + l * c.h * c.w, wt.data() + l * c.k * c.k, b8[l], zl,
                 ya.data() + l * no, tmp.data(), nullptr);
      }
      if (ow >= 16 || c.s == 1) {
        for (int i = 0; i < 8 * no; ++i) expect("depthwise_padded", no, i, ya[i], ys[i], 1e-5f, 1e-5f);
        const float lohi[2] = {-0.5f, 0.7f};  // a fused Clip
        for (int l = 0; l < 8; ++l)
          padded(g, x.data() + l * c.h * c.w, wt.data() + l * c.k * c.k, b8[l],
                 with_z ? z.data() + l * no : nullptr, ya.data() + l * no, tmp.data(), lohi);
        for (int i = 0; i < 8 * no; ++i)
          expect("depthwise_padded_clip", no, i, ya[i], std::fmin(0.7f, std::fmax(-0.5f, ys[i])),
                 1e-5f, 1e-5f);
      }
      if (c.s == 2 && c.d == 1 && (c.k == 3 || c.k == 5)) {  // the four-phase stride-2 loop
        const float lohi[2] = {-0.5f, 0.7f};
        for (int clip = 0; clip < 2; ++clip) {
          for (int l = 0; l < 8; ++l)
            phased(g, x.data() + l * c.h * c.w, wt.data() + l * c.k * c.k, b8[l],
                   with_z ? z.data() + l * no : nullptr, ya.data() + l * no, tmp.data(),
                   clip ? lohi : nullptr);
          for (int i = 0; i < 8 * no; ++i)
            expect("depthwise_s2_phased", no, i, ya[i],
                   clip ? std::fmin(0.7f, std::fmax(-0.5f, ys[i])) : ys[i], 1e-5f, 1e-5f);
        }
      }
      const int64_t hp = (oh - 1) * c.s + span, wp = (ow - 1) * c.s + span;
      std::vector<float> t8((hp * wp + no + c.k * c.k) * 8);
      block8(g, x.data(), c.h * c.w, wt.data(), b8.data(), with_z ? z.data() : nullptr, ya.data(),
             no, t8.data());
      for (int i = 0; i < 8 * no; ++i) expect("depthwise_block8", no, i, ya[i], ys[i], 1e-5f, 1e-5f);
    }
  }
  std::printf("%s depthwise checked\n", g_isa);
}

}  // namespace

int main() {
  std::mt19937 rng(7);
  check_elementwise(rng, ferry::elementwise::table_avx512());
  check_pool(rng, ferry::pool::table_avx512());
  check_softmax(rng, ferry::softmax::table_avx512());
  check_normalization(rng, ferry::normalization::table_avx512());
  check_depthwise(rng, ferry::conv::depthwise_padded_avx512, ferry::conv::depthwise_block8_avx512,
                  ferry::conv::depthwise_s2_phased_avx512);
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    g_isa = "avx2";
    check_elementwise(rng, ferry::elementwise::table_avx2());
    check_pool(rng, ferry::pool::table_avx2());
    check_softmax(rng, ferry::softmax::table_avx2());
    check_normalization(rng, ferry::normalization::table_avx2());
    check_depthwise(rng, ferry::conv::depthwise_padded_avx2, ferry::conv::depthwise_block8_avx2,
                    ferry::conv::depthwise_s2_phased_avx2);
  }
  std::printf("TOTAL %d mismatches in %ld values\n", g_bad, g_checked);
  return g_bad != 0;
}
