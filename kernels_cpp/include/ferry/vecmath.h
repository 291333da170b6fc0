// float32 transcendental functions over the simd.h backends (float, AVX2, AVX-512).
//
// Polynomial coefficients were fitted for this file (least squares on Chebyshev nodes with
// Lawson reweighting toward minimax, then rounded to float). Each error bound stated below
// was measured against float64 references on dense grids (tests/kernels/test_elementwise.py
// re-checks them) and includes float32 evaluation rounding; NaN inputs give NaN.
#pragma once
#include "ferry/simd.h"

namespace ferry {
namespace simd {
namespace {

template <class V> inline V horner(V x, const float* c, int n) {
  V r = C<V>(c[n - 1]);
  for (int i = n - 2; i >= 0; --i) r = fmadd(r, x, C<V>(c[i]));
  return r;
}

// e^r = 1 + r + r^2 Q(r) on |r| <= ln2/2.
constexpr float kExpQ[6] = {5.0000000e-01f, 1.6666667e-01f, 4.1666467e-02f,
                            8.3332863e-03f, 1.3933643e-03f, 1.9907570e-04f};

// exp(x): max relative error 1.3e-7 (about 1 ulp) for normal results; gradual underflow to
// 0 below -87.3 (denormal results keep their absolute accuracy), +inf above 88.72.
// x = n ln2 + r with ln2 split in two so that r is exact; 2^n is applied as two factors
// 2^(n/2) 2^(n-n/2) so that neither overflows before the product does.
template <class V> inline V exp_(V x) {
  using I = typename Traits<V>::I;
  x = clamp(x, C<V>(-104.0f), C<V>(88.8f));
  V n = round_nearest(x * C<V>(1.44269504088896341f));
  V r = fmadd(n, C<V>(-0.693145751953125f), x);
  r = fmadd(n, C<V>(-1.428606765330187e-06f), r);
  V p = fmadd(r * r, horner(r, kExpQ, 6), r) + C<V>(1.0f);
  I ni = to_int(n);
  I n1 = sra1(ni);
  I n2 = isub(ni, n1);
  V s1 = from_bits(shl23(iadd(n1, CI<V>(127))));
  V s2 = from_bits(shl23(iadd(n2, CI<V>(127))));
  return p * s1 * s2;
}

// exp(x) for x <= 0 (or NaN): the same reduction and polynomial with a single scale factor,
// cheaper than exp_. Max relative error 1.3e-7 for normal results; results below FLT_MIN
// (x < -87.34) flush to 0, so exp_neg_(-inf) = 0.
template <class V> inline V exp_neg_(V x) {
  const V lo = C<V>(-87.3365447f);  // ln(FLT_MIN): n >= -126 keeps 2^n a normal float
  V xc = vmax(lo, x);                // NaN stays NaN (it is the second operand)
  V n = round_nearest(xc * C<V>(1.44269504088896341f));
  V r = fmadd(n, C<V>(-0.693145751953125f), xc);
  r = fmadd(n, C<V>(-1.428606765330187e-06f), r);
  V p = fmadd(r * r, horner(r, kExpQ, 6), r) + C<V>(1.0f);
  V s = from_bits(shl23(iadd(to_int(n), CI<V>(127))));
  return select(lt(x, lo), C<V>(0.0f), p * s);
}

// expm1(x): max relative error 2e-7; for |x| < ln2/2 the polynomial r + r^2 Q(r) is used
// directly, so small arguments keep full relative accuracy (no 1 - 1 cancellation).
template <class V> inline V expm1_(V x) {
  V small = fmadd(x * x, horner(x, kExpQ, 6), x);
  V big = exp_(x) - C<V>(1.0f);
  return select(lt(vabs(x), C<V>(0.34657359f)), small, big);
}

// log(1 + f) = f - f^2/2 + f^3 Q(f) on [sqrt(1/2) - 1, sqrt(2) - 1].
constexpr float kLogQ[9] = {0.33333325f, -0.25f, 0.20002067f, -0.1666787f, 0.14204176f,
                            -0.12405459f, 0.12109527f, -0.11751746f, 0.06131833f};

// log(x): max absolute error 1.2e-7 for x in [0.5, 2] and max relative error 1.5e-7
// elsewhere; denormals handled; log(0) = -inf, log(x < 0) = NaN, log(inf) = inf.
template <class V> inline V log_(V x) {
  using I = typename Traits<V>::I;
  auto tiny = lt(x, C<V>(1.17549435e-38f));
  V xs = select(tiny, x * C<V>(8388608.0f), x);  // denormals scaled by 2^23
  I b = bits(xs);
  V e = to_float(isub(shr23(b), CI<V>(127)));
  e = select(tiny, e - C<V>(23.0f), e);
  V m = from_bits(ior(iand(b, CI<V>(0x007fffff)), CI<V>(0x3f800000)));  // [1, 2)
  auto big = gt(m, C<V>(1.41421356f));
  m = select(big, m * C<V>(0.5f), m);
  e = select(big, e + C<V>(1.0f), e);
  V f = m - C<V>(1.0f);  // exact (Sterbenz)
  V f2 = f * f;
  V y = fmadd(f2 * f, horner(f, kLogQ, 9), fmadd(f2, C<V>(-0.5f), f));
  y = fmadd(e, C<V>(1.428606765330187e-06f), y);
  y = fmadd(e, C<V>(0.693145751953125f), y);
  const float inf = __builtin_inff();
  y = select(eq(x, C<V>(0.0f)), C<V>(-inf), y);
  y = select(lt(x, C<V>(0.0f)), C<V>(__builtin_nanf("")), y);
  y = select(eq(x, C<V>(inf)), C<V>(inf), y);
  return select(isnan_(x), x, y);
}

// log1p(y) for y >= 0 by Kahan's trick log(u) * y / (u - 1), u = 1 + y: max relative
// error 3e-7.
template <class V> inline V log1p_pos_(V y) {
  V u = y + C<V>(1.0f);
  V d = u - C<V>(1.0f);
  return select(eq(d, C<V>(0.0f)), y, log_(u) * (y / d));
}

// tanh(x) = x P(x^2) / Q(x^2) on |x| <= 9 (a rational fit: tanh(9) is 1 in float).
constexpr float kTanhP[6] = {9.9999994e-01f, 1.2919238e-01f, 2.9207710e-03f, 9.2674873e-06f,
                             -1.2780578e-08f, 1.8255453e-11f};
constexpr float kTanhQ[4] = {1.0f, 4.6252522e-01f, 2.3763210e-02f, 2.2810134e-04f};

// tanh(x): max relative error 4e-7; one division, no exponential.
template <class V> inline V tanh_(V x) {
  V a = vmin(C<V>(9.0f), vabs(x));  // NaN stays NaN (it is the second operand)
  V a2 = a * a;
  V t = a * horner(a2, kTanhP, 6) / horner(a2, kTanhQ, 4);
  return copysign_(vmin(C<V>(1.0f), t), x);
}

// sigmoid(x) = 1 / (1 + e^{-x}): max relative error 3e-7 for normal results (the
// exponential is only taken of -|x|, and the negative side is e^x / (1 + e^x)); 0 below
// x = -87.3.
template <class V> inline V sigmoid_(V x) {
  V e = exp_neg_(-vabs(x));
  V r = C<V>(1.0f) / (C<V>(1.0f) + e);
  return select(ge(x, C<V>(0.0f)), r, e * r);
}

// erf(x) = x P(x^2) for |x| < 1.
constexpr float kErfP[7] = {1.1283791e+00f, -3.7612626e-01f, 1.1283600e-01f, -2.6854448e-02f,
                            5.1895417e-03f, -8.0208946e-04f, 7.8892845e-05f};
// erfc(x) e^{x^2} = R(t), t = 1 / (1 + x/2), for 1 <= x <= 10.
constexpr float kErfcR[10] = {2.7488602e-06f, 2.8200790e-01f, 2.8329757e-01f, 2.3725182e-01f,
                              2.2480488e-01f, -7.8215897e-02f, 3.5203424e-01f, -5.4940248e-01f,
                              3.1170750e-01f, -6.3426606e-02f};

// a^2 as hi + lo exactly: one FMA where the ISA has it, else Dekker's product.
template <class V> inline void square2_(V a, V& hi, V& lo) {
  hi = a * a;
  if (Traits<V>::fma) {
    lo = fmadd(a, a, -hi);
    return;
  }
  V t = a * C<V>(4097.0f);  // 2^12 + 1 splits a float in two 12-bit halves
  V ah = t - (t - a);
  V al = a - ah;
  lo = ((ah * ah - hi) + C<V>(2.0f) * ah * al) + al * al;
}

// erfc(a) for 1 <= a, from a and a^2 = s_hi + s_lo: max relative error 5e-7 while the result
// is a normal float (a < 9.1), 0 for a >= 10.
template <class V> inline V erfc_big_(V a, V s_hi, V s_lo) {
  V t = C<V>(1.0f) / fmadd(a, C<V>(0.5f), C<V>(1.0f));
  V ex = exp_neg_(-s_hi) * (C<V>(1.0f) - s_lo);  // e^{-lo} = 1 - lo: |lo| < 2^-20
  V r = ex * horner(t, kErfcR, 10);
  return select(lt(a, C<V>(10.0f)), r, C<V>(0.0f));
}

// erf(x): max relative error 3e-7 (|x| < 1: polynomial; else 1 - erfc).
template <class V> inline V erf_(V x) {
  V ax = vabs(x);
  V small = x * horner(x * x, kErfP, 7);
  V a = vmin(C<V>(10.0f), ax);  // keeps inf * inf - inf out of the square
  V hi, lo;
  square2_(a, hi, lo);
  V big = copysign_(C<V>(1.0f) - erfc_big_(a, hi, lo), x);
  return select(lt(ax, C<V>(1.0f)), small, select(isnan_(x), x, big));
}

// gelu(x) = x/2 (1 + erf(x / sqrt 2)). For x / sqrt 2 <= -1, 1 + erf is erfc(|z|) computed
// directly (no cancellation) with z^2 = x^2 / 2 taken exactly: max relative error 1e-6 while
// the result is a normal float (x > -12.9), 0 below x = -14.1.
template <class V> inline V gelu_erf_(V x) {
  V z = x * C<V>(0.70710678118654752f);
  V az = vabs(z);
  V small = fmadd(z, horner(z * z, kErfP, 7), C<V>(1.0f));
  V xc = vmin(C<V>(15.0f), vabs(x));
  V hi, lo;
  square2_(xc, hi, lo);
  V c = erfc_big_(vmin(C<V>(10.0f), az), hi * C<V>(0.5f), lo * C<V>(0.5f));
  V big = select(ge(z, C<V>(0.0f)), C<V>(2.0f) - c, c);
  V one_plus = select(lt(az, C<V>(1.0f)), small, big);
  return C<V>(0.5f) * x * select(isnan_(x), x, one_plus);
}

// gelu with the tanh approximation, rewritten as x * sigmoid(2u) (1 + tanh(u) =
// 2 sigmoid(2u)), u = sqrt(2/pi) (x + 0.044715 x^3): max relative error 8e-7 for x >= -3;
// below, the float rounding of 2u dominates (about |2u| * 1.2e-7: 2e-6 at x = -5, 1.3e-5 at
// x = -10, where the result is 1e-36); 0 once sigmoid(2u) flushes (x < -10).
template <class V> inline V gelu_tanh_(V x) {
  V two_u = x * fmadd(x * x, C<V>(0.0713548162726f), C<V>(1.5957691216057308f));
  return x * sigmoid_(two_u);
}

// softplus(x) = max(x, 0) + log1p(e^{-|x|}): max relative error 4e-7 for normal results,
// no overflow.
template <class V> inline V softplus_(V x) {
  V l = log1p_pos_(exp_neg_(-vabs(x)));
  return select(isnan_(x), x, vmax(x, C<V>(0.0f)) + l);
}

}  // namespace
}  // namespace simd
}  // namespace ferry
