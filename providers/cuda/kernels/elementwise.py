"""Elementwise kernels with numpy broadcasting: arithmetic, comparisons, logic, activations."""

from __future__ import annotations

import math

import numpy as np

from providers.cuda.kernels import np_dtype, register


def _same(ctx, x, y):
    """Cast a result back to the spec's dtype (xp promotes int32 * float and the like)."""
    return y if y.dtype == x.dtype else y.astype(x.dtype)


def _int_div(xp, a, b):
    """Integer division truncating toward zero (C semantics), as ONNX Div on ints."""
    q = xp.floor_divide(a, b)
    fix = (xp.remainder(a, b) != 0) & ((a < 0) != (b < 0))
    return (q + fix.astype(q.dtype)).astype(a.dtype)


def _div(xp, a, b):
    if a.dtype.kind in "iu":
        return _int_div(xp, a, b)
    return xp.true_divide(a, b).astype(a.dtype)


_BINARY = {
    "Add": (lambda xp, a, b: xp.add(a, b), (7, 13, 14)),
    "Sub": (lambda xp, a, b: xp.subtract(a, b), (7, 13, 14)),
    "Mul": (lambda xp, a, b: xp.multiply(a, b), (7, 13, 14)),
    "Div": (_div, (7, 13, 14)),
}


def _make_binary(op, f):
    def kernel(ctx, a, b):
        return _same(ctx, a, f(ctx.xp, a, b))

    kernel.__name__ = op.lower()
    return kernel


for _op, (_f, _versions) in _BINARY.items():
    for _v in _versions:
        register(_op, _v, host_ok=True)(_make_binary(_op, _f))


def _pow(ctx, a, b):
    xp = ctx.xp
    if a.dtype.kind in "iu":
        # Integer base: compute exactly in the integer type (exponents are non-negative here).
        return xp.power(a, b.astype(a.dtype))
    return xp.power(a, b.astype(a.dtype)).astype(a.dtype)


for _v in (7, 12, 13, 15):
    register("Pow", _v)(_pow)


@register("Mod", 10)
def mod(ctx, a, b, *, fmod=0):
    xp = ctx.xp
    if fmod:
        return xp.fmod(a, b).astype(a.dtype)
    # fmod=0: the result takes the divisor's sign (Python's %), for floats too (opset 13+).
    return xp.remainder(a, b).astype(a.dtype)


register("Mod", 13)(mod)


def _variadic(f):
    def kernel(ctx, *xs):
        xs = [x for x in xs if x is not None]
        out = xs[0]
        for x in xs[1:]:
            out = f(ctx.xp, out, x)
        return out.astype(xs[0].dtype) if out.dtype != xs[0].dtype else (
            out.copy() if len(xs) == 1 else out)

    return kernel


for _v in (6, 8, 13):
    register("Sum", _v)(_variadic(lambda xp, a, b: xp.add(a, b)))
    register("Max", _v)(_variadic(lambda xp, a, b: xp.maximum(a, b)))
    register("Min", _v)(_variadic(lambda xp, a, b: xp.minimum(a, b)))


def _mean(ctx, *xs):
    xs = [x for x in xs if x is not None]
    out = xs[0]
    for x in xs[1:]:
        out = ctx.xp.add(out, x)
    return (out / len(xs)).astype(xs[0].dtype)


for _v in (6, 8, 13):
    register("Mean", _v)(_mean)


# ---- comparisons and logic ----------------------------------------------------------------

_COMPARE = {
    "Equal": (lambda xp, a, b: xp.equal(a, b), (7, 11, 13, 19)),
    "Less": (lambda xp, a, b: xp.less(a, b), (7, 9, 13)),
    "Greater": (lambda xp, a, b: xp.greater(a, b), (7, 9, 13)),
    "LessOrEqual": (lambda xp, a, b: xp.less_equal(a, b), (12, 16)),
    "GreaterOrEqual": (lambda xp, a, b: xp.greater_equal(a, b), (12, 16)),
    "And": (lambda xp, a, b: xp.logical_and(a, b), (7,)),
    "Or": (lambda xp, a, b: xp.logical_or(a, b), (7,)),
    "Xor": (lambda xp, a, b: xp.logical_xor(a, b), (7,)),
}


def _make_compare(f):
    def kernel(ctx, a, b):
        return f(ctx.xp, a, b)

    return kernel


for _op, (_f, _versions) in _COMPARE.items():
    for _v in _versions:
        register(_op, _v, host_ok=True)(_make_compare(_f))


@register("Not", 1, host_ok=True)
def not_(ctx, x):
    return ctx.xp.logical_not(x)


@register("Where", 9, host_ok=True)
def where(ctx, cond, x, y):
    out = ctx.xp.where(cond, x, y)
    return out if out.dtype == x.dtype else out.astype(x.dtype)


register("Where", 16, host_ok=True)(where)


# ---- unary math ----------------------------------------------------------------------------

def _erf(xp, x):
    if xp is np:
        try:
            from scipy.special import erf as _scipy_erf

            return _scipy_erf(x)
        except ImportError:
            return np.vectorize(math.erf, otypes=[x.dtype])(x)
    from cupyx.scipy.special import erf as _cupy_erf

    return _cupy_erf(x)


_UNARY = {
    "Neg": (lambda xp, x: xp.negative(x), (6, 13)),
    "Abs": (lambda xp, x: xp.abs(x), (6, 13)),
    "Sqrt": (lambda xp, x: xp.sqrt(x), (6, 13)),
    "Exp": (lambda xp, x: xp.exp(x), (6, 13)),
    "Log": (lambda xp, x: xp.log(x), (6, 13)),
    "Reciprocal": (lambda xp, x: xp.reciprocal(x), (6, 13)),
    "Floor": (lambda xp, x: xp.floor(x), (6, 13)),
    "Ceil": (lambda xp, x: xp.ceil(x), (6, 13)),
    "Round": (lambda xp, x: xp.round(x), (11,)),  # half to even, as ONNX
    "Sign": (lambda xp, x: xp.sign(x), (9, 13)),
    "Erf": (_erf, (9, 13)),
    "Sin": (lambda xp, x: xp.sin(x), (7,)),
    "Cos": (lambda xp, x: xp.cos(x), (7,)),
    "Tan": (lambda xp, x: xp.tan(x), (7,)),
    "Asin": (lambda xp, x: xp.arcsin(x), (7,)),
    "Acos": (lambda xp, x: xp.arccos(x), (7,)),
    "Atan": (lambda xp, x: xp.arctan(x), (7,)),
    "Sinh": (lambda xp, x: xp.sinh(x), (9,)),
    "Cosh": (lambda xp, x: xp.cosh(x), (9,)),
    "Asinh": (lambda xp, x: xp.arcsinh(x), (9,)),
    "Acosh": (lambda xp, x: xp.arccosh(x), (9,)),
    "Atanh": (lambda xp, x: xp.arctanh(x), (9,)),
    "Tanh": (lambda xp, x: xp.tanh(x), (6, 13)),
    "Relu": (lambda xp, x: xp.maximum(x, x.dtype.type(0)), (6, 13, 14)),
    "Sigmoid": (lambda xp, x: _sigmoid(xp, x), (6, 13)),
    "Softsign": (lambda xp, x: x / (1 + xp.abs(x)), (1,)),
    "Softplus": (lambda xp, x: xp.logaddexp(x, x.dtype.type(0)), (1,)),
    "HardSwish": (lambda xp, x: x * xp.clip(x / 6 + 0.5, 0, 1), (14,)),
    "Mish": (lambda xp, x: x * xp.tanh(xp.logaddexp(x, x.dtype.type(0))), (18,)),
}


def _sigmoid(xp, x):
    # exp(-|x|) never overflows; the two branches cover both signs.
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _make_unary(f):
    def kernel(ctx, x):
        return _same(ctx, x, f(ctx.xp, x))

    return kernel


for _op, (_f, _versions) in _UNARY.items():
    for _v in _versions:
        register(_op, _v, host_ok=_op in ("Neg", "Abs", "Sign"))(_make_unary(_f))


@register("IsNaN", 9)
def isnan(ctx, x):
    return ctx.xp.isnan(x)


register("IsNaN", 13)(isnan)
register("IsNaN", 20)(isnan)


@register("IsInf", 10)
def isinf(ctx, x, *, detect_negative=1, detect_positive=1):
    xp = ctx.xp
    out = xp.isinf(x)
    if not detect_negative:
        out = out & (x > 0)
    if not detect_positive:
        out = out & (x < 0)
    return out


register("IsInf", 20)(isinf)


# ---- activations with attributes ------------------------------------------------------------

@register("LeakyRelu", 6)
def leaky_relu(ctx, x, *, alpha=0.01):
    return _same(ctx, x, ctx.xp.where(x >= 0, x, x * alpha))


register("LeakyRelu", 16)(leaky_relu)


@register("Elu", 6)
def elu(ctx, x, *, alpha=1.0):
    xp = ctx.xp
    return _same(ctx, x, xp.where(x > 0, x, alpha * (xp.exp(xp.minimum(x, 0)) - 1)))


@register("Celu", 12)
def celu(ctx, x, *, alpha=1.0):
    xp = ctx.xp
    return _same(ctx, x, xp.maximum(x, 0) + xp.minimum(0, alpha * (xp.exp(x / alpha) - 1)))


@register("Selu", 6)
def selu(ctx, x, *, alpha=1.67326319217681884765625, gamma=1.05070102214813232421875):
    xp = ctx.xp
    return _same(ctx, x, gamma * xp.where(x > 0, x, alpha * (xp.exp(xp.minimum(x, 0)) - 1)))


@register("HardSigmoid", 6)
def hard_sigmoid(ctx, x, *, alpha=0.2, beta=0.5):
    return _same(ctx, x, ctx.xp.clip(x * alpha + beta, 0, 1))


@register("ThresholdedRelu", 10)
def thresholded_relu(ctx, x, *, alpha=1.0):
    return _same(ctx, x, ctx.xp.where(x > alpha, x, 0))


@register("PRelu", 7)
def prelu(ctx, x, slope):
    return _same(ctx, x, ctx.xp.where(x >= 0, x, x * slope))


register("PRelu", 9)(prelu)
register("PRelu", 16)(prelu)


@register("Gelu", 20)
def gelu(ctx, x, *, approximate="none"):
    xp = ctx.xp
    if approximate == "tanh":
        c = math.sqrt(2.0 / math.pi)
        y = 0.5 * x * (1 + xp.tanh(c * (x + 0.044715 * x * x * x)))
    else:
        y = 0.5 * x * (1 + _erf(xp, x / math.sqrt(2.0)))
    return _same(ctx, x, y)


@register("Clip", 6)
def clip6(ctx, x, *, min=-3.4028234663852886e38, max=3.4028234663852886e38):
    return _same(ctx, x, ctx.xp.clip(x, min, max))


@register("Clip", 11, shape_inputs=())
def clip11(ctx, x, lo=None, hi=None):
    xp = ctx.xp
    y = x
    if lo is not None:
        y = xp.maximum(y, lo.astype(x.dtype))
    if hi is not None:
        y = xp.minimum(y, hi.astype(x.dtype))
    return y if y is not x else x.copy()


register("Clip", 12)(clip11)
register("Clip", 13)(clip11)


# ---- casts -----------------------------------------------------------------------------

# Element types a CUDA array holds (CuPy has no string, bfloat16 or float8 arrays).
DEVICE_KINDS = "biuf"


def cast_check(node, graph):
    to = node.attrs.get("to")
    if to is None:
        return None
    try:
        dt = np_dtype(to)
    except Exception:
        return f"Cast to element type {to} is not supported on CUDA"
    if dt.kind not in DEVICE_KINDS or dt.itemsize > 8:
        return f"Cast to {dt} is not supported on CUDA (CuPy has no such arrays)"
    if dt.name == "bfloat16" or dt.name.startswith("float8") or dt.name in ("int4", "uint4"):
        return f"Cast to {dt.name} is not supported on CUDA"
    return None


@register("Cast", 6, host_ok=True, check=cast_check)
def cast(ctx, x, *, to=1, saturate=1):
    dt = np_dtype(to)
    if x.dtype == dt:
        return x.copy()
    if dt == np.bool_:
        return x != 0
    if dt.kind in "iu" and x.dtype.kind == "f":
        # C-style truncation toward zero; NaN/inf are undefined in ONNX (numpy: platform value)
        return ctx.xp.trunc(x).astype(dt)
    return x.astype(dt)


for _v in (9, 13, 19, 21):
    register("Cast", _v, host_ok=True, check=cast_check)(cast)


@register("CastLike", 15, host_ok=True)
def cast_like(ctx, x, like, *, saturate=1):
    if x.dtype == like.dtype:
        return x.copy()
    if like.dtype == np.bool_:
        return x != 0
    if like.dtype.kind in "iu" and x.dtype.kind == "f":
        return ctx.xp.trunc(x).astype(like.dtype)
    return x.astype(like.dtype)


register("CastLike", 19, host_ok=True)(cast_like)
