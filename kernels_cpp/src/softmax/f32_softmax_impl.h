// Softmax loops over the simd.h vector type, instantiated by each ISA file (x - max <= 0,
// so exp_neg_ applies; e^{-inf} is exactly 0). A row: max,
// then exp(x - max) written out while summing, then one scaling pass (or, for LogSoftmax,
// x - max - log(sum)). Strided blocks (the reduced axis is not the last) vectorize across
// columns, a chunk of columns at a time with their maxima and sums on the stack.
#pragma once
#include <cstring>

#include "ferry/simd.h"
#include "ferry/vecmath.h"
#include "table.h"

namespace ferry {
namespace softmax {
namespace {

using namespace ::ferry::simd;

void row(const float* x, float* y, int64_t n, bool log) {
  constexpr int w = W<Vec>();
  const float ninf = -__builtin_inff();
  Vec vm = C<Vec>(ninf);
  int64_t i = 0;
  for (; i + w <= n; i += w) vm = vmax(vm, L<Vec>(x + i));
  float m = hmax(vm);
  for (; i < n; ++i) m = x[i] > m ? x[i] : m;
  // An infinite maximum makes the row NaN (inf - inf), as in onnxruntime.
  const Vec vmx = C<Vec>(m);
  // Long rows sum with compensation (Kahan) so that the sum keeps ~1 ulp of relative error;
  // short ones (the common attention rows) with two plain accumulators.
  Vec vs = C<Vec>(0.0f), vc = vs;
  i = 0;
  if (n > 2048) {
    for (; i + w <= n; i += w) {
      Vec e = exp_neg_(L<Vec>(x + i) - vmx);
      if (!log) store(y + i, e);
      Vec t = vs + (e - vc);
      vc = (t - vs) - (e - vc);
      vs = t;
    }
  } else {
    Vec vs2 = vs;
    for (; i + 2 * w <= n; i += 2 * w) {
      Vec e0 = exp_neg_(L<Vec>(x + i) - vmx), e1 = exp_neg_(L<Vec>(x + i + w) - vmx);
      if (!log) {
        store(y + i, e0);
        store(y + i + w, e1);
      }
      vs = vs + e0;
      vs2 = vs2 + e1;
    }
    for (; i + w <= n; i += w) {
      Vec e = exp_neg_(L<Vec>(x + i) - vmx);
      if (!log) store(y + i, e);
      vs = vs + e;
    }
    vs = vs + vs2;
  }
  float s = hsum(vs) - hsum(vc), c = 0.0f;
  for (; i < n; ++i) {
    float e = exp_neg_(x[i] - m);
    if (!log) y[i] = e;
    float t = s + (e - c);
    c = (t - s) - (e - c);
    s = t;
  }
  i = 0;
  if (log) {
    // (x - max) - log(sum): a near-zero result keeps its relative accuracy.
    const float ls = log_(s);
    const Vec vls = C<Vec>(ls);
    for (; i + w <= n; i += w) store(y + i, (L<Vec>(x + i) - vmx) - vls);
    for (; i < n; ++i) y[i] = (x[i] - m) - ls;
  } else {
    const float r = 1.0f / s;
    const Vec vr = C<Vec>(r);
    for (; i + w <= n; i += w) store(y + i, L<Vec>(y + i) * vr);
    for (; i < n; ++i) y[i] *= r;
  }
}

constexpr int64_t kChunk = 256;  // columns per pass in the strided case (stack buffers)

// Columns [j0, j1) of x[n][inner], j1 - j0 <= kChunk; a partial vector at the end of the
// chunk goes through zero-padded stack copies.
void columns(const float* x, float* y, int64_t n, int64_t inner, int64_t j0, int64_t j1,
             bool log) {
  constexpr int w = W<Vec>();
  const float ninf = -__builtin_inff();
  float mx[kChunk + w], sm[kChunk + w], cm[kChunk + w];  // maxima, sums, compensations
  const int64_t cols = j1 - j0;
  for (int64_t j = 0; j < cols + w; ++j) {
    mx[j] = ninf;
    sm[j] = 0.0f;
    cm[j] = 0.0f;
  }
  auto load_cols = [&](const float* p, int64_t j) {  // columns j.. of row p, padded
    if (j + w <= cols) return L<Vec>(p + j);
    float buf[w];
    for (int k = 0; k < w; ++k) buf[k] = j + k < cols ? p[j + k] : 0.0f;
    return L<Vec>(buf);
  };
  auto store_cols = [&](float* p, int64_t j, Vec v) {
    if (j + w <= cols) {
      store(p + j, v);
      return;
    }
    float buf[w];
    store(buf, v);
    for (int k = 0; j + k < cols; ++k) p[j + k] = buf[k];
  };
  for (int64_t i = 0; i < n; ++i) {
    const float* xr = x + i * inner + j0;
    for (int64_t j = 0; j < cols; j += w) store(mx + j, vmax(L<Vec>(mx + j), load_cols(xr, j)));
  }
  for (int64_t i = 0; i < n; ++i) {
    const float* xr = x + i * inner + j0;
    float* yr = y + i * inner + j0;
    for (int64_t j = 0; j < cols; j += w) {
      Vec e = exp_neg_(load_cols(xr, j) - L<Vec>(mx + j));
      if (!log) store_cols(yr, j, e);
      Vec s0 = L<Vec>(sm + j), y0 = e - L<Vec>(cm + j);  // Kahan, as in row()
      Vec t = s0 + y0;
      store(cm + j, (t - s0) - y0);
      store(sm + j, t);
    }
  }
  if (log) {
    for (int64_t j = 0; j < cols; j += w) store(sm + j, log_(L<Vec>(sm + j)));
  } else {
    for (int64_t j = 0; j < cols; j += w) store(sm + j, C<Vec>(1.0f) / L<Vec>(sm + j));
  }
  for (int64_t i = 0; i < n; ++i) {
    const float* xr = x + i * inner + j0;
    float* yr = y + i * inner + j0;
    for (int64_t j = 0; j < cols; j += w) {
      Vec v = log ? (load_cols(xr, j) - L<Vec>(mx + j)) - L<Vec>(sm + j)
                  : load_cols(yr, j) * L<Vec>(sm + j);
      store_cols(yr, j, v);
    }
  }
}

void block(const float* x, float* y, int64_t n, int64_t inner, int64_t j0, int64_t j1,
           bool log) {
  if (inner == 1) {
    row(x, y, n, log);
    return;
  }
  for (int64_t j = j0; j < j1; j += kChunk)
    columns(x, y, n, inner, j, j + kChunk < j1 ? j + kChunk : j1, log);
}

}  // namespace
}  // namespace softmax
}  // namespace ferry
