// The 2-D depthwise convolution loop (one channel plane), written once in plain C++ and
// compiled by each ISA file (depthwise__scalar/__avx2/__avx512.cpp) with its own flags, so the
// compiler vectorizes the output-row loops for that ISA. Internal linkage only, and no STL or
// shared inline helpers: each instantiation must stay in its own file (see kernels_cpp/README).
#pragma once
#include <cstdint>

#include "depthwise.h"
#include "ferry/simd.h"

namespace ferry {
namespace conv {
namespace {

inline int64_t dw_max(int64_t a, int64_t b) { return a > b ? a : b; }
inline int64_t dw_min(int64_t a, int64_t b) { return a < b ? a : b; }

// y[oh][ow] = b0 + z[oh][ow] + sum_{kh,kw} w[kh][kw] * x[oh*sh - ph + kh*dh][ow*sw - pw + kw*dw]
// over the valid input positions (zero padding). Activation is applied by the caller.
void depthwise_plane_impl(const DepthwiseGeometry& g, const float* x, const float* w, float b0,
                          const float* z, float* y, float* row_tmp) {
  const int64_t IH = g.ih, IW = g.iw, OH = g.oh, OW = g.ow, KH = g.kh, KW = g.kw;
  const int64_t sh = g.sh, sw = g.sw, dh = g.dh, dw = g.dw, ph = g.ph, pw = g.pw;
  // Output columns each tap reaches, 0 <= ow * sw + base < IW with base = kw * dw - pw: the
  // same for every row, and two divisions each, so computed once per plane.
  int64_t bounds_small[2 * 32];
  int64_t* bounds = KW <= 32 ? bounds_small : new int64_t[2 * KW];
  for (int64_t kw = 0; kw < KW; ++kw) {
    const int64_t base = -pw + kw * dw;
    bounds[2 * kw] = base >= 0 ? 0 : dw_min(OW, (-base + sw - 1) / sw);
    bounds[2 * kw + 1] = base >= IW ? 0 : dw_min(OW, (IW - 1 - base) / sw + 1);
  }
  for (int64_t oh = 0; oh < OH; ++oh) {
    float* __restrict o = y + oh * OW;
    if (z) {
      const float* zr = z + oh * OW;
      for (int64_t ow = 0; ow < OW; ++ow) o[ow] = b0 + zr[ow];
    } else {
      for (int64_t ow = 0; ow < OW; ++ow) o[ow] = b0;
    }
    for (int64_t kh = 0; kh < KH; ++kh) {
      const int64_t ih = oh * sh - ph + kh * dh;
      if (ih < 0 || ih >= IH) continue;
      const float* xr = x + ih * IW;
      for (int64_t kw = 0; kw < KW; ++kw) {
        const float wv = w[kh * KW + kw];
        const int64_t base = -pw + kw * dw;
        const int64_t lo = bounds[2 * kw], hi = bounds[2 * kw + 1];
        if (hi <= lo) continue;
        if (sw == 1) {
          const float* __restrict xs = xr + base;
          for (int64_t ow = lo; ow < hi; ++ow) o[ow] += wv * xs[ow];
        } else {
          const float* xs = xr + base;
          for (int64_t ow = lo; ow < hi; ++ow) o[ow] += wv * xs[ow * sw];
        }
      }
    }
  }
  if (bounds != bounds_small) delete[] bounds;
  (void)dw_max;
  (void)row_tmp;
}

// Eight channels at once, interleaved ([position][8 channels]) and zero-padded, so that every
// tap is one unconditional 8-wide multiply-add whatever the plane size: the path for small
// planes (7x7, 14x14), where vectorizing along a row leaves mostly scalar tails. x/y/z point
// at the block's first channel; planes are s_in / s_out floats apart.
// tmp: (padded_size(g) + s_out + ksize) * 8 floats.
// K > 0: a K x K kernel fixed at compile time (unrolled taps).
template <int K>
void depthwise_block8_k(const DepthwiseGeometry& g, const float* x, int64_t s_in,
                        const float* w, const float* bias8, const float* z, float* y,
                        int64_t s_out, float* tmp) {
  const int64_t IH = g.ih, IW = g.iw, OH = g.oh, OW = g.ow;
  const int64_t KH = K ? K : g.kh, KW = K ? K : g.kw;
  const int64_t HP = (OH - 1) * g.sh + (KH - 1) * g.dh + 1;
  const int64_t WP = (OW - 1) * g.sw + (KW - 1) * g.dw + 1;
  const int64_t ks = KH * KW;
  float* __restrict xi = tmp;
  float* __restrict yo = tmp + HP * WP * 8;
  float* __restrict wi = yo + s_out * 8;
  simd::interleave8_padded(x, s_in, IH, IW, g.ph, g.pw, HP, WP, 0.f, xi);
  for (int64_t l = 0; l < 8; ++l)
    for (int64_t t = 0; t < ks; ++t) wi[t * 8 + l] = w[l * ks + t];
  for (int64_t oh = 0; oh < OH; ++oh) {
    for (int64_t ow = 0; ow < OW; ++ow) {
      float acc[8];
      for (int l = 0; l < 8; ++l) acc[l] = bias8[l];
      if (z)
        for (int l = 0; l < 8; ++l) acc[l] += z[l * s_out + oh * OW + ow];
      const float* xb = xi + (oh * g.sh * WP + ow * g.sw) * 8;
      for (int64_t kh = 0; kh < KH; ++kh) {
        const float* xr = xb + kh * g.dh * WP * 8;
        const float* wr = wi + kh * KW * 8;
        for (int64_t kw = 0; kw < KW; ++kw) {
          const float* xv = xr + kw * g.dw * 8;
          const float* wv = wr + kw * 8;
          for (int l = 0; l < 8; ++l) acc[l] += wv[l] * xv[l];
        }
      }
      float* o = yo + (oh * OW + ow) * 8;
      for (int l = 0; l < 8; ++l) o[l] = acc[l];
    }
  }
  simd::deinterleave8(yo, 8, s_out, y, s_out);
}

void depthwise_block8_impl(const DepthwiseGeometry& g, const float* x, int64_t s_in,
                           const float* w, const float* bias8, const float* z, float* y,
                           int64_t s_out, float* tmp) {
  if (g.kh == 3 && g.kw == 3)
    depthwise_block8_k<3>(g, x, s_in, w, bias8, z, y, s_out, tmp);
  else if (g.kh == 5 && g.kw == 5)
    depthwise_block8_k<5>(g, x, s_in, w, bias8, z, y, s_out, tmp);
  else
    depthwise_block8_k<0>(g, x, s_in, w, bias8, z, y, s_out, tmp);
}


// One block of NB vectors of output row `yr` from column ow: every tap a broadcast weight
// times a (stride-2: deinterleaved) load of the padded rows, accumulated in registers.
// K > 0 fixes a K x K kernel with dilation 1 at compile time (the tap loops unroll: 2x faster
// for 3x3 than runtime bounds); K == 0 takes KH, KW, dh, dw.
template <int S, int NB, int K = 0>
inline void dw_block(const float* prow, int64_t WP, const float* w, int64_t KH_, int64_t KW_,
                     int64_t dh_, int64_t dw_, float b0, const float* zr, float* yr, int64_t ow) {
  using namespace ::ferry::simd;
  constexpr int vw = W<Vec>();
  const int64_t KH = K ? K : KH_, KW = K ? K : KW_, dh = K ? 1 : dh_, dw = K ? 1 : dw_;
  Vec acc[NB];
  for (int b = 0; b < NB; ++b) acc[b] = C<Vec>(0.0f);
  for (int64_t kh = 0; kh < KH; ++kh) {
    const float* p = prow + kh * dh * WP + ow * S;
    for (int64_t kw = 0; kw < KW; ++kw) {
      const Vec wv = C<Vec>(w[kh * KW + kw]);
      for (int b = 0; b < NB; ++b)
        acc[b] = fmadd(wv, S == 1 ? L<Vec>(p + kw * dw + b * vw) : LER<Vec>(p + kw * dw + 2 * b * vw),
                       acc[b]);
    }
  }
  for (int b = 0; b < NB; ++b) {
    Vec r = S == 2 ? fix_even(acc[b]) : acc[b];
    r = r + C<Vec>(b0);
    if (zr) r = r + L<Vec>(zr + ow + b * vw);
    store(yr + ow + b * vw, r);
  }
}

// dw_block for the plane's kernel: 3x3 and 5x5 (dilation 1) unrolled, others generic.
template <int S, int NB>
inline void dw_run(int kfix, const float* prow, int64_t WP, const float* w, int64_t KH,
                   int64_t KW, int64_t dh, int64_t dw, float b0, const float* zr, float* yr,
                   int64_t ow) {
  if (kfix == 3)
    dw_block<S, NB, 3>(prow, WP, w, KH, KW, dh, dw, b0, zr, yr, ow);
  else if (kfix == 5)
    dw_block<S, NB, 5>(prow, WP, w, KH, KW, dh, dw, b0, zr, yr, ow);
  else
    dw_block<S, NB, 0>(prow, WP, w, KH, KW, dh, dw, b0, zr, yr, ow);
}

// The end of a flat-loop plane: `flat` holds the OH output rows at row stride ld (n values,
// junk between rows, slack after). Residual and clamp in whole vectors over it, then the OW
// real columns of each row out to y: per element, the clamp and its branches cost as much as
// the 9 taps on 7x7 planes.
inline void dw_flat_out(float* flat, int64_t ld, int64_t OH, int64_t OW, int64_t n,
                        const float* z, const float* clamp_lo_hi, float* y) {
  using namespace ::ferry::simd;
  constexpr int vw = W<Vec>();
  if (z)
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t i = 0; i < OW; ++i) flat[oh * ld + i] += z[oh * OW + i];
  if (clamp_lo_hi) {
    const Vec lo = C<Vec>(clamp_lo_hi[0]), hi = C<Vec>(clamp_lo_hi[1]);
    for (int64_t i = 0; i < n; i += vw) store(flat + i, clamp(L<Vec>(flat + i), lo, hi));
  }
  for (int64_t oh = 0; oh < OH; ++oh)
    for (int64_t i = 0; i < OW; ++i) y[oh * OW + i] = flat[oh * ld + i];
}

// The padded plane for the most common depthwise conv (3x3, stride 1, padding 1) on an
// N x N plane with N fixed at compile time: every loop bound a constant, which halved the
// time of 7x7 and 14x14 planes, where loop overhead outweighs the 9 taps.
template <int N>
void dw3x3_s1_fixed(const float* x, const float* w, float b0, const float* z, float* y,
                    float* tmp, const float* clamp_lo_hi) {
  using namespace ::ferry::simd;
  constexpr int vw = W<Vec>();
  constexpr int WP = N + 2, HP = N + 2;
  for (int i = 0; i < WP; ++i) tmp[i] = 0.f;
  for (int h = 0; h < N; ++h) {
    float* d = tmp + (h + 1) * WP;
    d[0] = 0.f;
    for (int i = 0; i < N; ++i) d[1 + i] = x[h * N + i];
    d[N + 1] = 0.f;
  }
  for (int i = 0; i < WP + 64; ++i) tmp[(HP - 1) * WP + i] = 0.f;
  float* flat = tmp + HP * WP + 64;
  constexpr int n = (N - 1) * WP + N;
  int j = 0;
  for (; j + 4 * vw <= n; j += 4 * vw) dw_block<1, 4, 3>(tmp, WP, w, 3, 3, 1, 1, b0, nullptr, flat, j);
  for (; j < n; j += vw) dw_block<1, 1, 3>(tmp, WP, w, 3, 3, 1, 1, b0, nullptr, flat, j);
  dw_flat_out(flat, WP, N, N, n, z, clamp_lo_hi, y);
}

// Stride 2, K x K (3 or 5), dilation 1: the padded plane split into its four phases (even /
// odd rows x even / odd columns, each Hq x Wq), where tap (kh, kw) of output (oh, ow) is
// phase (kh % 2, kw % 2) at (oh + kh / 2, ow + kw / 2): a stride-1 read. So one flat loop over
// j = oh * Wq + ow computes all rows at the phase width (one or two junk columns per row),
// four vectors at a time with every load contiguous; then rows of OW are copied out. Planes
// of 7-28 outputs per row ran 2-4x slower row by row (deinterleaving loads, short rows).
template <int K>
void dw_s2_phased(const DepthwiseGeometry& g, const float* x, const float* w, float b0,
                  const float* z, float* y, float* tmp, const float* clamp_lo_hi) {
  using namespace ::ferry::simd;
  constexpr int vw = W<Vec>();
  const int64_t IH = g.ih, IW = g.iw, OH = g.oh, OW = g.ow;
  const int64_t HP = (OH - 1) * 2 + K, WP = (OW - 1) * 2 + K;
  const int64_t Hq = (HP + 1) / 2, Wq = (WP + 1) / 2, plane = Hq * Wq;
  // Phase (a, b) at tmp + (2a + b) * plane: row i of phase a is padded row 2i + a, its even
  // and odd columns in phases b = 0 and 1. Columns [j0, j1) have both inside the input (a
  // plain deinterleave); the few others are checked.
  const int64_t j0 = dw_min(Wq, (g.pw + 1) / 2);
  const int64_t last = IW + g.pw - 2;  // the largest 2j with column 2j + 1 inside
  const int64_t j1 = dw_max(j0, dw_min(Wq, last >= 0 ? last / 2 + 1 : 0));
  for (int64_t i = 0; i < Hq; ++i)
    for (int64_t a = 0; a < 2; ++a) {
      float* __restrict e = tmp + 2 * a * plane + i * Wq;
      float* __restrict o = e + plane;
      const int64_t ih = 2 * i + a - g.ph;
      if (2 * i + a >= HP || ih < 0 || ih >= IH) {
        for (int64_t j = 0; j < Wq; ++j) e[j] = o[j] = 0.f;
        continue;
      }
      const float* xr = x + ih * IW - g.pw;  // xr[c] = padded column c
      for (int64_t j = 0; j < Wq; ++j) {
        if (j == j0) j = j1;
        if (j >= Wq) break;
        const int64_t c = 2 * j - g.pw;
        e[j] = (c >= 0 && c < IW) ? x[ih * IW + c] : 0.f;
        o[j] = (c + 1 >= 0 && c + 1 < IW) ? x[ih * IW + c + 1] : 0.f;
      }
      for (int64_t j = j0; j < j1; ++j) {
        e[j] = xr[2 * j];
        o[j] = xr[2 * j + 1];
      }
    }
  for (int64_t i = 4 * plane; i < 4 * plane + 4 * vw; ++i) tmp[i] = 0.f;
  const float* tap[K * K];
  for (int kh = 0; kh < K; ++kh)
    for (int kw = 0; kw < K; ++kw)
      tap[kh * K + kw] = tmp + (2 * (kh & 1) + (kw & 1)) * plane + (kh >> 1) * Wq + (kw >> 1);
  float* flat = tmp + 4 * plane + 4 * vw;
  const int64_t n = (OH - 1) * Wq + OW;
  const Vec bias = C<Vec>(b0);
  int64_t j = 0;
  for (; j < n; j += 4 * vw) {  // the flat buffer and the phases have slack for the last block
    Vec a0 = bias, a1 = bias, a2 = bias, a3 = bias;
#pragma GCC unroll 25
    for (int t = 0; t < K * K; ++t) {
      const Vec wv = C<Vec>(w[t]);
      const float* p = tap[t] + j;
      a0 = fmadd(wv, L<Vec>(p), a0);
      a1 = fmadd(wv, L<Vec>(p + vw), a1);
      a2 = fmadd(wv, L<Vec>(p + 2 * vw), a2);
      a3 = fmadd(wv, L<Vec>(p + 3 * vw), a3);
    }
    store(flat + j, a0);
    store(flat + j + vw, a1);
    store(flat + j + 2 * vw, a2);
    store(flat + j + 3 * vw, a3);
  }
  dw_flat_out(flat, Wq, OH, OW, n, z, clamp_lo_hi, y);
}

// clamp_lo_hi: null, or [lo, hi] applied to the outputs (a fused ReLU / Clip; NaN kept).
// One plane through a zero-padded copy (tmp, depthwise_padded_scratch_floats): no bounds
// checks in the tap loops, each output vector's taps summed in registers (four vectors in
// flight along the row), the row's tail by one vector shifted back to end at OW. Strides 1
// and 2 (deinterleaving loads); needs OW >= the vector width.
void depthwise_padded_impl(const DepthwiseGeometry& g, const float* x, const float* w, float b0,
                           const float* z, float* y, float* tmp, const float* clamp_lo_hi) {
  using namespace ::ferry::simd;
  constexpr int vw = W<Vec>();
  const int64_t IH = g.ih, IW = g.iw, OH = g.oh, OW = g.ow;
  const int64_t HP = (OH - 1) * g.sh + (g.kh - 1) * g.dh + 1;
  const int64_t WP = (OW - 1) * g.sw + (g.kw - 1) * g.dw + 1;
  const int kfix = g.kh == g.kw && g.dh == 1 && g.dw == 1 && (g.kh == 3 || g.kh == 5)
                       ? static_cast<int>(g.kh) : 0;
  if (kfix == 3 && g.sh == 1 && g.sw == 1 && g.ph == 1 && g.pw == 1 && IH == IW && OH == OW &&
      IH == OH && (OW == 7 || OW == 14 || OW == 28)) {
    if (OW == 7) return dw3x3_s1_fixed<7>(x, w, b0, z, y, tmp, clamp_lo_hi);
    if (OW == 14) return dw3x3_s1_fixed<14>(x, w, b0, z, y, tmp, clamp_lo_hi);
    return dw3x3_s1_fixed<28>(x, w, b0, z, y, tmp, clamp_lo_hi);
  }
  for (int64_t hp = 0; hp < HP; ++hp) {
    float* d = tmp + hp * WP;
    const int64_t ih = hp - g.ph;
    if (ih < 0 || ih >= IH) {
      for (int64_t i = 0; i < WP; ++i) d[i] = 0.f;
      continue;
    }
    const int64_t c0 = dw_min(WP, dw_max(0, g.pw)), c1 = dw_min(WP, dw_max(c0, g.pw + IW));
    for (int64_t i = 0; i < c0; ++i) d[i] = 0.f;
    const float* src = x + ih * IW + (c0 - g.pw);
    for (int64_t i = c0; i < c1; ++i) d[i] = src[i - c0];
    for (int64_t i = c1; i < WP; ++i) d[i] = 0.f;
  }
  for (int64_t i = HP * WP; i < HP * WP + 64; ++i) tmp[i] = 0.f;  // stride-2 loads overrun
  if (g.sw == 1) {
    // Stride 1: output (oh, ow) reads the padded plane from oh * WP + ow, so one flat loop
    // over j = oh * WP + ow computes every row at the padded width (junk between rows), four
    // vectors at a time; then each row's OW outputs are copied out (adding z).
    float* flat = tmp + HP * WP + 64;
    const int64_t n = (OH - 1) * WP + OW;
    int64_t j = 0;
    for (; j + 4 * vw <= n; j += 4 * vw)
      dw_run<1, 4>(kfix, tmp, WP, w, g.kh, g.kw, g.dh, g.dw, b0, nullptr, flat, j);
    for (; j < n; j += vw)  // the flat buffer has a vector of slack
      dw_run<1, 1>(kfix, tmp, WP, w, g.kh, g.kw, g.dh, g.dw, b0, nullptr, flat, j);
    const Vec lo = C<Vec>(clamp_lo_hi ? clamp_lo_hi[0] : 0.f);
    const Vec hi = C<Vec>(clamp_lo_hi ? clamp_lo_hi[1] : 0.f);
    for (int64_t oh = 0; oh < OH; ++oh) {
      const float* src = flat + oh * WP;
      float* yr = y + oh * OW;
      const float* zr = z ? z + oh * OW : nullptr;
      int64_t i = 0;
      for (; i + vw <= OW; i += vw) {
        Vec v = L<Vec>(src + i);
        if (zr) v = v + L<Vec>(zr + i);
        if (clamp_lo_hi) v = clamp(v, lo, hi);
        store(yr + i, v);
      }
      for (; i < OW; ++i) {
        float v = src[i] + (zr ? zr[i] : 0.f);
        yr[i] = clamp_lo_hi ? clamp(v, clamp_lo_hi[0], clamp_lo_hi[1]) : v;
      }
    }
    return;
  }
  const bool alias = z == y;  // an in-place residual: the shifted tail must not re-add z
  for (int64_t oh = 0; oh < OH; ++oh) {
    const float* prow = tmp + oh * g.sh * WP;
    float* yr = y + oh * OW;
    const float* zr = z ? z + oh * OW : nullptr;
    int64_t ow = 0;
    for (; ow + 4 * vw <= OW; ow += 4 * vw)
      dw_run<2, 4>(kfix, prow, WP, w, g.kh, g.kw, g.dh, g.dw, b0, zr, yr, ow);
    const int64_t rest = (OW - ow) / vw;  // whole vectors left, independent accumulators
    if (rest == 3) dw_run<2, 3>(kfix, prow, WP, w, g.kh, g.kw, g.dh, g.dw, b0, zr, yr, ow);
    if (rest == 2) dw_run<2, 2>(kfix, prow, WP, w, g.kh, g.kw, g.dh, g.dw, b0, zr, yr, ow);
    if (rest == 1) dw_run<2, 1>(kfix, prow, WP, w, g.kh, g.kw, g.dh, g.dw, b0, zr, yr, ow);
    ow += rest * vw;
    if (ow < OW) {
      if (alias || OW < vw) {
        for (; ow < OW; ++ow) {
          float acc = 0.f;
          for (int64_t kh = 0; kh < g.kh; ++kh)
            for (int64_t kw = 0; kw < g.kw; ++kw)
              acc += w[kh * g.kw + kw] * prow[kh * g.dh * WP + ow * 2 + kw * g.dw];
          yr[ow] = acc + b0 + (zr ? zr[ow] : 0.f);
        }
      } else {
        dw_run<2, 1>(kfix, prow, WP, w, g.kh, g.kw, g.dh, g.dw, b0, zr, yr, OW - vw);
      }
    }
    if (clamp_lo_hi) {  // the row just written, still in L1
      const Vec lo = C<Vec>(clamp_lo_hi[0]), hi = C<Vec>(clamp_lo_hi[1]);
      int64_t i = 0;
      for (; i + vw <= OW; i += vw) store(yr + i, clamp(L<Vec>(yr + i), lo, hi));
      for (; i < OW; ++i) yr[i] = clamp(yr[i], clamp_lo_hi[0], clamp_lo_hi[1]);
    }
  }
}

// Stride-2 3x3 / 5x5 planes (dilation 1): dw_s2_phased. Kept out of depthwise_padded_impl:
// one more early return there made GCC 12 compile its stride-1 loops 3-8x slower.
void depthwise_s2_phased_impl(const DepthwiseGeometry& g, const float* x, const float* w,
                              float b0, const float* z, float* y, float* tmp,
                              const float* clamp_lo_hi) {
  if (g.kh == 3)
    dw_s2_phased<3>(g, x, w, b0, z, y, tmp, clamp_lo_hi);
  else
    dw_s2_phased<5>(g, x, w, b0, z, y, tmp, clamp_lo_hi);
}

}  // namespace
}  // namespace conv
}  // namespace ferry
