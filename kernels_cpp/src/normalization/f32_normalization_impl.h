// Normalization loops over the simd.h vector type, instantiated by each ISA file. Variances
// are two-pass (sum of squared deviations from the mean), which keeps them accurate when the
// mean is large against the spread.
#pragma once
#include <cstring>

#include "ferry/simd.h"
#include "ferry/vecmath.h"
#include "table.h"

namespace ferry {
namespace normalization {
namespace {

using namespace ::ferry::simd;

// Sum of (x - shift)^k, k = 1 or 2, with four vector accumulators.
template <int K> float sum_pow(const float* x, int64_t n, float shift) {
  constexpr int w = W<Vec>();
  const Vec sh = C<Vec>(shift);
  Vec a0 = C<Vec>(0.0f), a1 = a0, a2 = a0, a3 = a0;
  auto term = [&](Vec v) {
    Vec d = v - sh;
    return K == 1 ? d : d * d;
  };
  int64_t i = 0;
  for (; i + 4 * w <= n; i += 4 * w) {
    a0 = a0 + term(L<Vec>(x + i));
    a1 = a1 + term(L<Vec>(x + i + w));
    a2 = a2 + term(L<Vec>(x + i + 2 * w));
    a3 = a3 + term(L<Vec>(x + i + 3 * w));
  }
  for (; i + w <= n; i += w) a0 = a0 + term(L<Vec>(x + i));
  float s = hsum((a0 + a1) + (a2 + a3));
  for (; i < n; ++i) {
    float d = x[i] - shift;
    s += K == 1 ? d : d * d;
  }
  return s;
}

void moments(const float* x, int64_t n, float* mean, float* var) {
  const float m = n ? sum_pow<1>(x, n, 0.0f) / static_cast<float>(n) : 0.0f;
  *mean = m;
  *var = n ? sum_pow<2>(x, n, m) / static_cast<float>(n) : 0.0f;
}

void affine(const float* x, float* y, int64_t n, float shift, float a, float b) {
  constexpr int w = W<Vec>();
  const Vec vs = C<Vec>(shift), va = C<Vec>(a), vb = C<Vec>(b);
  int64_t i = 0;
  for (; i + w <= n; i += w) store(y + i, fmadd(L<Vec>(x + i) - vs, va, vb));
  for (; i < n; ++i) y[i] = (x[i] - shift) * a + b;
}

void layer_row(const float* x, float* y, int64_t n, const float* scale, const float* bias,
               float epsilon, float* mean, float* inv_std) {
  float m, v;
  moments(x, n, &m, &v);
  const float inv = 1.0f / vsqrt(v + epsilon);
  *mean = m;
  *inv_std = inv;
  constexpr int w = W<Vec>();
  const Vec vm = C<Vec>(m), vi = C<Vec>(inv);
  int64_t i = 0;
  if (bias) {
    for (; i + w <= n; i += w)
      store(y + i, fmadd((L<Vec>(x + i) - vm) * vi, L<Vec>(scale + i), L<Vec>(bias + i)));
    for (; i < n; ++i) y[i] = (x[i] - m) * inv * scale[i] + bias[i];
  } else {
    for (; i + w <= n; i += w) store(y + i, (L<Vec>(x + i) - vm) * vi * L<Vec>(scale + i));
    for (; i < n; ++i) y[i] = (x[i] - m) * inv * scale[i];
  }
}

// v^-beta = exp(-beta log v): relative error about 3e-7 * (1 + |beta log v|).
void lrn(const float* x, float* y, int64_t channels, int64_t spatial, int64_t c, int64_t lo,
         int64_t hi, int64_t s0, int64_t s1, float alpha_over_size, float bias, float beta) {
  constexpr int w = W<Vec>();
  const int64_t c0 = c - lo < 0 ? 0 : c - lo;
  const int64_t c1 = c + hi >= channels ? channels - 1 : c + hi;
  const Vec va = C<Vec>(alpha_over_size), vb = C<Vec>(bias), vnb = C<Vec>(-beta);
  const float* xc = x + c * spatial;
  float* yc = y + c * spatial;
  int64_t s = s0;
  for (; s + w <= s1; s += w) {
    Vec acc = C<Vec>(0.0f);
    for (int64_t k = c0; k <= c1; ++k) {
      Vec v = L<Vec>(x + k * spatial + s);
      acc = fmadd(v, v, acc);
    }
    Vec d = fmadd(acc, va, vb);
    store(yc + s, L<Vec>(xc + s) * exp_(vnb * log_(d)));
  }
  for (; s < s1; ++s) {
    float acc = 0.0f;
    for (int64_t k = c0; k <= c1; ++k) acc += x[k * spatial + s] * x[k * spatial + s];
    const float d = acc * alpha_over_size + bias;
    yc[s] = xc[s] * exp_(-beta * log_(d));
  }
}

}  // namespace
}  // namespace normalization
}  // namespace ferry
