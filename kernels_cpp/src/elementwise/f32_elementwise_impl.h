// The float32 elementwise loops, written once over the simd.h vector type `V` and
// instantiated by each ISA file (which then exports its table, see table.h). Internal
// linkage throughout: each instantiation is compiled with its own file's flags.
#pragma once
#include <cstring>

#include "ferry/simd.h"
#include "ferry/vecmath.h"
#include "table.h"

namespace ferry {
namespace elementwise {
namespace {

using namespace ::ferry::simd;

// y[i] = f(x[i]); the tail goes through a zero-padded vector so it runs the same code.
template <class V, class F> inline void map1(const float* x, float* y, int64_t n, F f) {
  constexpr int w = W<V>();
  int64_t i = 0;
  for (; i + 2 * w <= n; i += 2 * w) {
    V a = L<V>(x + i), b = L<V>(x + i + w);
    store(y + i, f(a));
    store(y + i + w, f(b));
  }
  for (; i + w <= n; i += w) store(y + i, f(L<V>(x + i)));
  if (i < n) {
    float buf[w] = {};
    std::memcpy(buf, x + i, sizeof(float) * (n - i));
    store(buf, f(L<V>(buf)));
    std::memcpy(y + i, buf, sizeof(float) * (n - i));
  }
}

template <class V, class F> inline void map2(const float* a, const float* b, float* y,
                                             int64_t n, F f) {
  constexpr int w = W<V>();
  int64_t i = 0;
  for (; i + w <= n; i += w) store(y + i, f(L<V>(a + i), L<V>(b + i)));
  if (i < n) {
    float ba[w] = {}, bb[w] = {};
    std::memcpy(ba, a + i, sizeof(float) * (n - i));
    std::memcpy(bb, b + i, sizeof(float) * (n - i));
    store(ba, f(L<V>(ba), L<V>(bb)));
    std::memcpy(y + i, ba, sizeof(float) * (n - i));
  }
}

// ---- unary ----------------------------------------------------------------------------------
#define FERRY_UNARY(name, expr)                                                       \
  template <class V> void name(const float* x, float* y, int64_t n, const UnaryArgs& p) { \
    (void)p;                                                                          \
    map1<V>(x, y, n, [&](V v) { return expr; });                                      \
  }

FERRY_UNARY(u_relu, vmax(C<V>(0.0f), v))
FERRY_UNARY(u_clip, vmin(C<V>(p.beta), vmax(C<V>(p.alpha), v)))  // NaN kept: x is 2nd
FERRY_UNARY(u_sigmoid, sigmoid_(v))
FERRY_UNARY(u_tanh, tanh_(v))
FERRY_UNARY(u_exp, exp_(v))
FERRY_UNARY(u_log, log_(v))
FERRY_UNARY(u_sqrt, vsqrt(v))
FERRY_UNARY(u_abs, vabs(v))
FERRY_UNARY(u_neg, -v)
FERRY_UNARY(u_erf, erf_(v))
FERRY_UNARY(u_leaky_relu, select(ge(v, C<V>(0.0f)), v, v * C<V>(p.alpha)))
FERRY_UNARY(u_hard_sigmoid,
            vmax(C<V>(0.0f), vmin(C<V>(1.0f), fmadd(v, C<V>(p.alpha), C<V>(p.beta)))))
FERRY_UNARY(u_hard_swish,
            v * vmax(C<V>(0.0f), vmin(C<V>(1.0f), fmadd(v, C<V>(1.0f / 6.0f), C<V>(0.5f)))))
FERRY_UNARY(u_elu, select(ge(v, C<V>(0.0f)), v, C<V>(p.alpha) * expm1_(v)))
FERRY_UNARY(u_softplus, softplus_(v))
FERRY_UNARY(u_gelu_erf, gelu_erf_(v))
FERRY_UNARY(u_gelu_tanh, gelu_tanh_(v))
FERRY_UNARY(u_selu, C<V>(p.beta) * select(gt(v, C<V>(0.0f)), v, C<V>(p.alpha) * expm1_(v)))
FERRY_UNARY(u_celu, vmax(C<V>(0.0f), v) +
                        vmin(C<V>(0.0f), C<V>(p.alpha) * expm1_(v / C<V>(p.alpha))))
FERRY_UNARY(u_softsign, v / (C<V>(1.0f) + vabs(v)))
// Mish: max relative error 5e-7 for x > -87.3; below, e^x (hence the result) flushes to 0.
FERRY_UNARY(u_mish, v * tanh_(softplus_(v)))
FERRY_UNARY(u_silu, v * sigmoid_(v))
FERRY_UNARY(u_thresholded_relu, select(gt(v, C<V>(p.alpha)), v, C<V>(0.0f)))
FERRY_UNARY(u_reciprocal, C<V>(1.0f) / v)
FERRY_UNARY(u_floor, vfloor(v))
FERRY_UNARY(u_ceil, vceil(v))
FERRY_UNARY(u_round, vrint(v))
FERRY_UNARY(u_sign, select(gt(v, C<V>(0.0f)), C<V>(1.0f),
                           select(lt(v, C<V>(0.0f)), C<V>(-1.0f), v)))
#undef FERRY_UNARY

// ---- binary ---------------------------------------------------------------------------------
struct OpAdd { template <class V> V operator()(V a, V b) const { return a + b; } };
struct OpSub { template <class V> V operator()(V a, V b) const { return a - b; } };
struct OpMul { template <class V> V operator()(V a, V b) const { return a * b; } };
struct OpDiv { template <class V> V operator()(V a, V b) const { return a / b; } };
struct OpPRelu {
  template <class V> V operator()(V x, V s) const { return select(lt(x, C<V>(0.0f)), x * s, x); }
};

template <class V, class Op> void b_vv(const float* a, const float* b, float* y, int64_t n) {
  map2<V>(a, b, y, n, [](V u, V v) { return Op()(u, v); });
}
template <class V, class Op> void b_vs(const float* a, const float* b, float* y, int64_t n) {
  const V s = C<V>(*b);
  map1<V>(a, y, n, [&](V u) { return Op()(u, s); });
}
template <class V, class Op> void b_sv(const float* a, const float* b, float* y, int64_t n) {
  const V s = C<V>(*a);
  map1<V>(b, y, n, [&](V v) { return Op()(s, v); });
}

template <class V> Table make_table() {
  Table t{};
  t.unary[kRelu] = u_relu<V>;
  t.unary[kClip] = u_clip<V>;
  t.unary[kSigmoid] = u_sigmoid<V>;
  t.unary[kTanh] = u_tanh<V>;
  t.unary[kExp] = u_exp<V>;
  t.unary[kLog] = u_log<V>;
  t.unary[kSqrt] = u_sqrt<V>;
  t.unary[kAbs] = u_abs<V>;
  t.unary[kNeg] = u_neg<V>;
  t.unary[kErf] = u_erf<V>;
  t.unary[kLeakyRelu] = u_leaky_relu<V>;
  t.unary[kHardSigmoid] = u_hard_sigmoid<V>;
  t.unary[kHardSwish] = u_hard_swish<V>;
  t.unary[kElu] = u_elu<V>;
  t.unary[kSoftplus] = u_softplus<V>;
  t.unary[kGeluErf] = u_gelu_erf<V>;
  t.unary[kGeluTanh] = u_gelu_tanh<V>;
  t.unary[kSelu] = u_selu<V>;
  t.unary[kCelu] = u_celu<V>;
  t.unary[kSoftsign] = u_softsign<V>;
  t.unary[kMish] = u_mish<V>;
  t.unary[kThresholdedRelu] = u_thresholded_relu<V>;
  t.unary[kReciprocal] = u_reciprocal<V>;
  t.unary[kFloor] = u_floor<V>;
  t.unary[kCeil] = u_ceil<V>;
  t.unary[kRound] = u_round<V>;
  t.unary[kSign] = u_sign<V>;
  t.unary[kSilu] = u_silu<V>;
  t.binary[kAdd][kVV] = b_vv<V, OpAdd>;
  t.binary[kAdd][kVS] = b_vs<V, OpAdd>;
  t.binary[kAdd][kSV] = b_sv<V, OpAdd>;
  t.binary[kSub][kVV] = b_vv<V, OpSub>;
  t.binary[kSub][kVS] = b_vs<V, OpSub>;
  t.binary[kSub][kSV] = b_sv<V, OpSub>;
  t.binary[kMul][kVV] = b_vv<V, OpMul>;
  t.binary[kMul][kVS] = b_vs<V, OpMul>;
  t.binary[kMul][kSV] = b_sv<V, OpMul>;
  t.binary[kDiv][kVV] = b_vv<V, OpDiv>;
  t.binary[kDiv][kVS] = b_vs<V, OpDiv>;
  t.binary[kDiv][kSV] = b_sv<V, OpDiv>;
  t.binary[kPRelu][kVV] = b_vv<V, OpPRelu>;
  t.binary[kPRelu][kVS] = b_vs<V, OpPRelu>;
  t.binary[kPRelu][kSV] = b_sv<V, OpPRelu>;
  return t;
}

}  // namespace
}  // namespace elementwise
}  // namespace ferry
