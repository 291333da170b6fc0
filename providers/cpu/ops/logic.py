"""Comparisons, boolean and bitwise logic, IsNaN/IsInf, and the trigonometric functions.

Comparison and logic ops of opset 1 broadcast only when ``broadcast=1`` (the second input
aligned to the first at ``axis``); from opset 7 they broadcast numpy-style. Comparisons and
the predicates return bool; bitwise ops and the trigonometric functions keep the input dtype.
"""

from __future__ import annotations

import numpy as np
from onnx import helper

from providers.cpu.opset import register
from providers.cpu.ops.elementwise import _legacy_rhs  # opset-1 broadcasting, shared

# float16 and bfloat16 are computed in float32 and rounded back, as the C++ kernels of
# onnxruntime do; numpy's half loops and ml_dtypes' ufuncs are not uniformly available.
_LOW_FLOATS = {np.dtype(np.float16), np.dtype(helper.tensor_dtype_to_np_dtype(16))}


def _as_compute(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float32) if x.dtype in _LOW_FLOATS else x


def _compare(fn, a, b) -> np.ndarray:
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype == object or b.dtype == object:  # strings: only Equal takes them
        return np.asarray(fn(a, b), dtype=bool)
    return np.asarray(fn(_as_compute(a), _as_compute(b)), dtype=bool)


def _register_binary(op: str, fn, first: int, numpy_since: int | None):
    """Registers ``op`` with the opset-1 legacy broadcast form when ``numpy_since`` is set
    (then ``first`` must be 1) and the numpy-broadcast form from ``numpy_since`` (or
    ``first``)."""
    if numpy_since is not None:
        @register(op, since=first)
        def legacy(a, b, *, broadcast=0, axis=None):
            a, b = np.asarray(a), np.asarray(b)
            return _compare(fn, a, _legacy_rhs(a, b, broadcast, axis))

        legacy.__name__ = f"{op.lower()}_legacy"

    @register(op, since=numpy_since or first)
    def modern(a, b):
        return _compare(fn, a, b)

    modern.__name__ = op.lower()


def _logical(fn):
    def run(a, b):
        return fn(np.asarray(a, dtype=bool), np.asarray(b, dtype=bool))
    return run


_register_binary("Equal", np.equal, 1, 7)
_register_binary("Less", np.less, 1, 7)
_register_binary("Greater", np.greater, 1, 7)
_register_binary("LessOrEqual", np.less_equal, 12, None)
_register_binary("GreaterOrEqual", np.greater_equal, 12, None)
_register_binary("And", _logical(np.logical_and), 1, 7)
_register_binary("Or", _logical(np.logical_or), 1, 7)
_register_binary("Xor", _logical(np.logical_xor), 1, 7)


@register("Not", since=1)
def not_(x):
    return np.logical_not(np.asarray(x, dtype=bool))


# --------------------------------------------------------------------------------------------
# Bitwise


@register("BitShift", since=11)
def bit_shift(x, y, *, direction=""):
    """Shifts integers (unsigned before opset 28; signed ones shift arithmetically). A shift
    by a negative amount or by the bit width or more leaves only the sign fill: -1 for a
    right shift of a negative value, else 0."""
    x, y = np.asarray(x), np.asarray(y)
    if x.dtype.kind not in "iu":
        raise TypeError(f"BitShift takes integers, got {x.dtype}")
    if direction not in ("LEFT", "RIGHT"):
        raise ValueError(f"BitShift direction must be LEFT or RIGHT, got '{direction}'")
    bits = x.dtype.itemsize * 8
    if y.dtype == np.uint64:  # amounts past int64's range are out of range anyway
        yy = np.minimum(y, np.uint64(bits)).astype(np.int64)
    else:
        yy = y.astype(np.int64)
    out_of_range = (yy < 0) | (yy >= bits)
    safe = np.clip(yy, 0, bits - 1).astype(x.dtype)
    with np.errstate(over="ignore"):
        shifted = np.left_shift(x, safe) if direction == "LEFT" else np.right_shift(x, safe)
    if direction == "RIGHT" and x.dtype.kind == "i":
        fill = np.where(x < 0, np.array(-1, x.dtype), np.array(0, x.dtype))
    else:
        fill = np.zeros((), x.dtype)
    return np.where(out_of_range, fill, shifted).astype(x.dtype, copy=False)


def _bitwise(fn):
    def run(a, b):
        a, b = np.asarray(a), np.asarray(b)
        return np.asarray(fn(a, b)).astype(a.dtype, copy=False)
    return run


register("BitwiseAnd", since=18)(_bitwise(np.bitwise_and))
register("BitwiseOr", since=18)(_bitwise(np.bitwise_or))
register("BitwiseXor", since=18)(_bitwise(np.bitwise_xor))


@register("BitwiseNot", since=18)
def bitwise_not(x):
    x = np.asarray(x)
    return np.asarray(np.invert(x)).astype(x.dtype, copy=False)


# --------------------------------------------------------------------------------------------
# Predicates


@register("IsNaN", since=9)
def is_nan(x):
    x = np.asarray(x)
    return np.asarray(np.isnan(_as_compute(x)), dtype=bool)


@register("IsInf", since=10)
def is_inf(x, *, detect_negative=1, detect_positive=1):
    x = _as_compute(np.asarray(x))
    out = np.zeros(x.shape, dtype=bool)
    if detect_positive:
        out |= np.isposinf(x)
    if detect_negative:
        out |= np.isneginf(x)
    return out


# --------------------------------------------------------------------------------------------
# Trigonometric and hyperbolic functions


def _unary_float(fn):
    def run(x):
        x = np.asarray(x)
        if x.dtype.kind != "f" and x.dtype not in _LOW_FLOATS:
            raise TypeError(f"expected a float tensor, got {x.dtype}")
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            out = fn(_as_compute(x))
        return np.asarray(out).astype(x.dtype, copy=False)
    return run


for _op, _fn, _since in [
    ("Sin", np.sin, 7), ("Cos", np.cos, 7), ("Tan", np.tan, 7),
    ("Asin", np.arcsin, 7), ("Acos", np.arccos, 7), ("Atan", np.arctan, 7),
    ("Sinh", np.sinh, 9), ("Cosh", np.cosh, 9), ("Asinh", np.arcsinh, 9),
    ("Acosh", np.arccosh, 9), ("Atanh", np.arctanh, 9),
]:
    register(_op, since=_since)(_unary_float(_fn))
del _op, _fn, _since
