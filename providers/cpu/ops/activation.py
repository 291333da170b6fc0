"""Unary math and activations: Relu, Clip, Sigmoid, Tanh, Exp, Log, Sqrt, Abs, Neg, Erf,
HardSigmoid, HardSwish, LeakyRelu, Elu, Selu, Celu, Softplus, Softsign, Gelu, Mish,
ThresholdedRelu, Reciprocal, Floor, Ceil, Round, Sign, Shrink.

float16/bfloat16 are computed in float32 and rounded back. Float32 inputs of every op
but Shrink lower to C++ kernels of the same name (vectorized; the transcendental ones use
polynomial approximations whose error bounds are stated in kernels_cpp/include/ferry/vecmath.h).
"""

from __future__ import annotations

import numpy as np

from providers.cpu.opset import NativeCall, register

_F32 = np.dtype(np.float32)
_FLT_MAX = 3.4028234663852886e38


def _is_low_float(dtype: np.dtype) -> bool:
    return dtype == np.float16 or dtype.name == "bfloat16"


def _unary(x, fn, int_via_float: bool = False):
    """Apply ``fn`` keeping x's dtype (float16/bfloat16 through float32; integers through
    float64 when ``int_via_float``)."""
    x = np.asarray(x)
    dtype = x.dtype
    if _is_low_float(dtype):
        work = x.astype(np.float32)
    elif int_via_float and dtype.kind in "iub":
        work = x.astype(np.float64)
    else:
        work = x
    with np.errstate(all="ignore"):  # inf/NaN results are the op's answer, not an error
        return np.asarray(fn(work)).astype(dtype, copy=False)


def _c(value, like: np.ndarray):
    """A python scalar attribute as a numpy scalar of the computation's dtype."""
    return np.asarray(value, dtype=like.dtype if like.dtype.kind == "f" else np.float64)


def _native(kernel: str, params=None):
    """Lowering of a float32 unary op to the C++ kernel ``kernel``; ``params(attrs)`` gives
    the kernel's parameters."""

    def lower(ins, attrs):
        x = ins[0]
        if x is None or x.dtype != _F32:
            return None
        p = params(attrs) if params is not None else {}
        return NativeCall(kernel, p, [tuple(x.shape)], [_F32], inputs=[0])

    return lower


# --------------------------------------------------------------------------------------------
# Erf (numpy has none): float64 series and continued fraction, ~1e-15 relative.

_TWO_OVER_SQRT_PI = 1.1283791670955126


def _erf(x: np.ndarray) -> np.ndarray:
    """erf in float64: for |x| < 3 the everywhere-positive series
    erf(x) = 2/sqrt(pi) e^{-x^2} sum_n 2^n x^{2n+1} / (2n+1)!!, else 1 - erfc(|x|) by its
    continued fraction (both converge to double precision in <= 80 terms)."""
    x = np.asarray(x, dtype=np.float64)
    ax = np.abs(x)
    out = np.empty_like(x)
    small = ax < 3.0
    xs = ax[small]
    if xs.size:
        term = xs.copy()
        total = xs.copy()
        x2 = xs * xs
        for n in range(1, 120):
            term = term * 2.0 * x2 / (2 * n + 1)
            total += term
            if np.all(term <= 1e-17 * total):
                break
        out[small] = _TWO_OVER_SQRT_PI * np.exp(-x2) * total
    big = ~small & ~np.isnan(ax)
    xb = ax[big]
    if xb.size:
        # erfc(x) = e^{-x^2}/sqrt(pi) * 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + ...)))),
        # evaluated bottom-up with a fixed depth (enough for x >= 3).
        frac = xb.copy()
        for k in range(80, 0, -1):
            frac = xb + (k / 2.0) / frac
        erfc = np.exp(-xb * xb) / np.sqrt(np.pi) / frac
        out[big] = 1.0 - erfc
    out[np.isnan(ax)] = np.nan
    return np.copysign(out, x)


# --------------------------------------------------------------------------------------------
# Simple activations


@register("Relu", since=1, native=_native("Relu"))
def relu(x):
    """max(x, 0)."""
    return _unary(x, lambda v: np.maximum(v, np.zeros((), v.dtype)))


@register("LeakyRelu", since=1, native=_native("LeakyRelu", lambda a: {"alpha": a["alpha"]}))
def leaky_relu(x, *, alpha=0.01):
    """x >= 0 ? x : alpha * x."""
    return _unary(x, lambda v: np.where(v >= 0, v, v * _c(alpha, v)))


@register("ThresholdedRelu", since=10,
          native=_native("ThresholdedRelu", lambda a: {"alpha": a["alpha"]}))
def thresholded_relu(x, *, alpha=1.0):
    """x > alpha ? x : 0."""
    return _unary(x, lambda v: np.where(v > _c(alpha, v), v, np.zeros((), v.dtype)))


@register("Elu", since=1, native=_native("Elu", lambda a: {"alpha": a["alpha"]}))
def elu(x, *, alpha=1.0):
    """x >= 0 ? x : alpha * (exp(x) - 1)."""
    return _unary(x, lambda v: np.where(v >= 0, v, _c(alpha, v) * np.expm1(v)))


@register("Selu", since=1,
          native=_native("Selu", lambda a: {"alpha": a["alpha"], "gamma": a["gamma"]}))
def selu(x, *, alpha=1.67326319217681884765625, gamma=1.05070102214813232421875):
    """gamma * (x > 0 ? x : alpha * (exp(x) - 1))."""
    return _unary(x, lambda v: _c(gamma, v) * np.where(
        v > 0, v, _c(alpha, v) * np.exp(v) - _c(alpha, v)))


@register("Celu", since=12, native=_native("Celu", lambda a: {"alpha": a["alpha"]}))
def celu(x, *, alpha=1.0):
    """max(0, x) + min(0, alpha * (exp(x / alpha) - 1))."""
    def f(v):
        a = _c(alpha, v)
        return np.maximum(v, 0) + np.minimum(0, a * np.expm1(v / a))
    return _unary(x, f)


def _sigmoid(v: np.ndarray) -> np.ndarray:
    # exp of the negative magnitude only: no overflow for either sign.
    e = np.exp(-np.abs(v))
    one = np.ones((), v.dtype)
    return np.where(v >= 0, one / (one + e), e / (one + e))


@register("Sigmoid", since=1, native=_native("Sigmoid"))
def sigmoid(x):
    """1 / (1 + exp(-x))."""
    return _unary(x, _sigmoid)


@register("HardSigmoid", since=1,
          native=_native("HardSigmoid", lambda a: {"alpha": a["alpha"], "beta": a["beta"]}))
def hard_sigmoid(x, *, alpha=0.2, beta=0.5):
    """max(0, min(1, alpha * x + beta))."""
    return _unary(x, lambda v: np.clip(_c(alpha, v) * v + _c(beta, v), 0, 1))


@register("HardSwish", since=14, native=_native("HardSwish"))
def hard_swish(x):
    """x * max(0, min(1, x / 6 + 1/2))."""
    return _unary(x, lambda v: v * np.clip(v * _c(1 / 6, v) + _c(0.5, v), 0, 1))


def _softplus(v: np.ndarray) -> np.ndarray:
    # log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)): no overflow, no cancellation.
    return np.maximum(v, 0) + np.log1p(np.exp(-np.abs(v)))


@register("Softplus", since=1, native=_native("Softplus"))
def softplus(x):
    """log(exp(x) + 1)."""
    return _unary(x, _softplus)


@register("Softsign", since=1, native=_native("Softsign"))
def softsign(x):
    """x / (1 + |x|)."""
    return _unary(x, lambda v: v / (np.ones((), v.dtype) + np.abs(v)))


@register("Mish", since=18, native=_native("Mish"))
def mish(x):
    """x * tanh(softplus(x))."""
    return _unary(x, lambda v: v * np.tanh(_softplus(v)))


@register("Gelu", since=20,
          native=_native("Gelu", lambda a: {"approximate": str(a["approximate"])}))
def gelu(x, *, approximate="none"):
    """0.5 x (1 + erf(x / sqrt 2)), or its tanh approximation."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"Gelu: unknown approximate '{approximate}'")

    def f(v):
        w = v.astype(np.float64)
        if approximate == "tanh":
            inner = np.sqrt(2.0 / np.pi) * (w + 0.044715 * w ** 3)
            return 0.5 * w * (1.0 + np.tanh(inner))
        return 0.5 * w * (1.0 + _erf(w / np.sqrt(2.0)))
    return _unary(x, f)


@register("Shrink", since=9)
def shrink(x, *, bias=0.0, lambd=0.5):
    """x < -lambd ? x + bias : x > lambd ? x - bias : 0."""
    x = np.asarray(x)

    def f(v):
        w = v.astype(np.float64) if v.dtype.kind in "iu" else v
        b, lam = _c(bias, w), _c(lambd, w)
        return np.where(w < -lam, w + b, np.where(w > lam, w - b, np.zeros((), w.dtype)))
    return _unary(x, f)


# --------------------------------------------------------------------------------------------
# Clip: attributes before opset 11, optional inputs after


def _clip(x, lo, hi):
    x = np.asarray(x)
    out = x
    # max then min: when min > max every value becomes max, as the spec says.
    if lo is not None:
        out = np.maximum(out, np.asarray(lo).astype(x.dtype))
    if hi is not None:
        out = np.minimum(out, np.asarray(hi).astype(x.dtype))
    return np.asarray(out).astype(x.dtype, copy=False)


def _clip_native_6(ins, attrs):
    x = ins[0]
    if x is None or x.dtype != _F32:
        return None
    return NativeCall("Clip", {"min": float(attrs["min"]), "max": float(attrs["max"])},
                      [tuple(x.shape)], [_F32], inputs=[0])


def _clip_native_11(ins, attrs):
    x = ins[0]
    if x is None or x.dtype != _F32:
        return None
    for b in ins[1:3]:
        if b is not None and (b.dtype != _F32 or b.size != 1):
            return None
    # min and max stay kernel inputs (read at run time unless constant: packed at make time).
    n = len(ins)
    return NativeCall("Clip", {}, [tuple(x.shape)], [_F32],
                      inputs=[0, 1 if n > 1 else None, 2 if n > 2 else None],
                      constant_inputs=(1, 2))


@register("Clip", since=1, native=_clip_native_6)
def clip_1(x, *, min=-_FLT_MAX, max=_FLT_MAX):
    """min(max(x, min), max) with bounds as attributes."""
    return _clip(x, min, max)


@register("Clip", since=11, native=_clip_native_11)
def clip_11(x, lo=None, hi=None):
    """min(max(x, min), max) with optional bound inputs (absent: unbounded)."""
    return _clip(x, lo, hi)


# --------------------------------------------------------------------------------------------
# Math


@register("Tanh", since=1, native=_native("Tanh"))
def tanh(x):
    return _unary(x, np.tanh, int_via_float=True)


@register("Exp", since=1, native=_native("Exp"))
def exp(x):
    return _unary(x, np.exp, int_via_float=True)


@register("Log", since=1, native=_native("Log"))
def log(x):
    return _unary(x, np.log, int_via_float=True)


@register("Sqrt", since=1, native=_native("Sqrt"))
def sqrt(x):
    return _unary(x, np.sqrt, int_via_float=True)


@register("Abs", since=1, native=_native("Abs"))
def abs_(x):
    return _unary(x, np.abs)


@register("Neg", since=1, native=_native("Neg"))
def neg(x):
    return _unary(x, np.negative)


@register("Erf", since=9, native=_native("Erf"))
def erf(x):
    """The error function (float computed in float64, rounded back)."""
    return _unary(x, lambda v: _erf(v.astype(np.float64)), int_via_float=True)


@register("Reciprocal", since=1, native=_native("Reciprocal"))
def reciprocal(x):
    return _unary(x, lambda v: np.ones((), v.dtype) / v)


@register("Floor", since=1, native=_native("Floor"))
def floor(x):
    return _unary(x, np.floor)


@register("Ceil", since=1, native=_native("Ceil"))
def ceil(x):
    return _unary(x, np.ceil)


@register("Round", since=11, native=_native("Round"))
def round_(x):
    """Round half to even."""
    return _unary(x, np.round)


@register("Sign", since=9, native=_native("Sign"))
def sign(x):
    return _unary(x, np.sign)
