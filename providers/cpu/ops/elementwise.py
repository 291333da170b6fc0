"""Elementwise arithmetic: Add, Sub, Mul, Div, Pow, Mod, Max, Min, Sum, Mean, PRelu.

From opset 7 on, binary ops broadcast numpy-style (multidirectionally). Before that, the
second input broadcasts to the first only when ``broadcast=1``, aligned at ``axis`` (suffix
matching when ``axis`` is absent). Outputs keep the inputs' dtype: numpy's promotions are
always cast back. Float32 Add/Sub/Mul/Div and PRelu lower to the C++ "Add"... kernels, which
handle any broadcast pattern (same shape, scalar, row and channel cases are the fast ones).
"""

from __future__ import annotations

import numpy as np

from providers.cpu.opset import NativeCall, register

_F32 = np.dtype(np.float32)


def _legacy_rhs(a: np.ndarray, b: np.ndarray, broadcast: int, axis) -> np.ndarray:
    """B reshaped for opset < 7 broadcasting (it broadcasts to A, aligned at ``axis``)."""
    a, b = np.asarray(a), np.asarray(b)
    if not broadcast:
        if a.shape != b.shape:
            raise ValueError(f"shapes {a.shape} and {b.shape} differ and broadcast=0")
        return b
    if b.size == 1:
        return b.reshape(())
    if axis is None:
        return b  # suffix matching is numpy's rule
    axis = int(axis)
    if axis < 0:
        axis += a.ndim
    if axis + b.ndim > a.ndim:
        raise ValueError(f"B of shape {b.shape} does not fit A of shape {a.shape} at axis {axis}")
    return b.reshape(b.shape + (1,) * (a.ndim - axis - b.ndim))


def _int_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Integer division truncating toward zero (C semantics, as onnxruntime)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        q = np.floor_divide(a, b)
        r = np.remainder(a, b)
    # floor and trunc differ when the remainder is nonzero and the signs differ.
    fix = (r != 0) & ((a < 0) != (b < 0))
    return np.where(fix, q + 1, q)


def _arith(op: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a), np.asarray(b)
    dtype = a.dtype
    if op == "Add":
        out = np.add(a, b)
    elif op == "Sub":
        out = np.subtract(a, b)
    elif op == "Mul":
        out = np.multiply(a, b)
    elif dtype.kind in "iu":
        out = _int_div(a, b)
    elif dtype == np.bool_:
        raise TypeError("Div does not take bool")
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.divide(a, b)
    return np.asarray(out).astype(dtype, copy=False)


def _binary_native(op: str, legacy: bool = False):
    def lower(ins, attrs):
        a, b = ins[0], ins[1]
        if a is None or b is None or a.dtype != _F32 or b.dtype != _F32:
            return None
        params = {}
        if legacy:
            try:
                b_view = _legacy_rhs(a, b, attrs.get("broadcast", 0), attrs.get("axis"))
            except ValueError:
                return None
            params["b_shape"] = list(b_view.shape)
            b_shape = b_view.shape
        else:
            b_shape = b.shape
        try:
            out_shape = np.broadcast_shapes(a.shape, b_shape)
        except ValueError:
            return None
        if legacy and out_shape != a.shape:
            return None
        return NativeCall(op, params, [tuple(out_shape)], [_F32])

    return lower


def _make_binary(op: str):
    def legacy(a, b, *, broadcast=0, axis=None):
        return _arith(op, a, _legacy_rhs(a, b, broadcast, axis))

    def modern(a, b):
        return _arith(op, a, b)

    legacy.__name__ = f"{op.lower()}_1"
    legacy.__doc__ = f"{op} before opset 7: B broadcasts to A only with broadcast=1, at axis."
    modern.__name__ = f"{op.lower()}_7"
    modern.__doc__ = f"{op} with multidirectional (numpy) broadcasting."
    register(op, since=1, native=_binary_native(op, legacy=True))(legacy)
    register(op, since=7, native=_binary_native(op))(modern)


for _op in ("Add", "Sub", "Mul", "Div"):
    _make_binary(_op)


# --------------------------------------------------------------------------------------------
# Pow, Mod


def _pow(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    x, y = np.asarray(x), np.asarray(y)
    dtype = x.dtype
    if dtype.kind in "iu" and y.dtype.kind in "iu" and not np.any(y < 0):
        with np.errstate(over="ignore"):
            out = np.power(x.astype(np.int64), y.astype(np.int64))
    elif dtype.kind in "iu":
        # A negative or fractional exponent: computed in double, truncated back (as C casts).
        with np.errstate(all="ignore"):
            out = np.trunc(np.power(x.astype(np.float64), y.astype(np.float64)))
    else:
        ct = dtype if dtype in (np.float32, np.float64) else np.dtype(np.float32)
        xc, yc = x.astype(ct), y.astype(ct)
        with np.errstate(all="ignore"):
            out = np.power(xc, yc)
            # C's pow (IEEE 754, what onnxruntime computes): (-inf)^y is +inf for y > 0 and +0
            # for y < 0 unless y is an odd integer; numpy gives NaN for non-integer y.
            neg_inf = np.isneginf(xc)
            if neg_inf.any():
                odd = (yc == np.floor(yc)) & (np.fmod(yc, 2) != 0)
                out = np.where(neg_inf & ~odd & ~np.isnan(yc),
                               np.where(yc > 0, np.inf, 0.0).astype(ct), out)
    return np.asarray(out).astype(dtype)


@register("Pow", since=1)
def pow_1(x, y, *, broadcast=0, axis=None):
    """Pow before opset 7: Y broadcasts to X only with broadcast=1, at axis."""
    return _pow(x, _legacy_rhs(x, y, broadcast, axis))


@register("Pow", since=7)
def pow_7(x, y):
    """X ** Y with multidirectional broadcasting; the output has X's dtype."""
    return _pow(x, y)


@register("Mod", since=10)
def mod(a, b, *, fmod=0):
    """fmod=0: the remainder takes the divisor's sign (integers); fmod=1: the dividend's."""
    a, b = np.asarray(a), np.asarray(b)
    with np.errstate(divide="ignore", invalid="ignore"):
        if fmod:
            out = np.fmod(a, b)
        else:
            out = np.mod(a, b)
    return np.asarray(out).astype(a.dtype, copy=False)


# --------------------------------------------------------------------------------------------
# Variadic: Max, Min, Sum, Mean (broadcasting from opset 8; earlier versions required equal
# shapes, which broadcasting covers)


def _variadic(fn, inputs):
    if not inputs:
        raise ValueError("needs at least one input")
    arrays = [np.asarray(x) for x in inputs]
    dtype = arrays[0].dtype
    low = dtype in (np.float16,) or dtype.name == "bfloat16"
    acc = arrays[0].astype(np.float32) if low else arrays[0]
    for x in arrays[1:]:
        acc = fn(acc, x.astype(np.float32) if low else x)
    return np.asarray(acc).astype(dtype, copy=False)


@register("Max", since=1)
def max_(*inputs):
    """Elementwise maximum of all inputs (NaN propagates)."""
    out = _variadic(np.maximum, inputs)
    return np.broadcast_to(out, np.broadcast_shapes(*(np.shape(x) for x in inputs))).copy()


@register("Min", since=1)
def min_(*inputs):
    """Elementwise minimum of all inputs (NaN propagates)."""
    out = _variadic(np.minimum, inputs)
    return np.broadcast_to(out, np.broadcast_shapes(*(np.shape(x) for x in inputs))).copy()


@register("Sum", since=1)
def sum_(*inputs):
    """Elementwise sum of all inputs."""
    out = _variadic(np.add, inputs)
    return np.broadcast_to(out, np.broadcast_shapes(*(np.shape(x) for x in inputs))).copy()


@register("Mean", since=1)
def mean(*inputs):
    """Elementwise mean of all inputs."""
    dtype = np.asarray(inputs[0]).dtype
    total = _variadic(np.add, [np.asarray(x).astype(np.float64) if dtype != np.float64 else x
                               for x in inputs])
    out = (total / len(inputs)).astype(dtype)
    return np.broadcast_to(out, np.broadcast_shapes(*(np.shape(x) for x in inputs))).copy()


# --------------------------------------------------------------------------------------------
# PRelu


def _prelu(x: np.ndarray, slope: np.ndarray) -> np.ndarray:
    x, slope = np.asarray(x), np.asarray(slope)
    return np.where(x < 0, x * slope, x).astype(x.dtype, copy=False)


def _prelu_slope(x: np.ndarray, slope: np.ndarray, legacy: bool) -> np.ndarray:
    """The slope as an array that broadcasts to X's shape (unidirectionally)."""
    slope = np.asarray(slope)
    try:
        if np.broadcast_shapes(x.shape, slope.shape) == x.shape:
            return slope
    except ValueError:
        pass
    # Opset < 7 models give one slope per channel as shape [C] (channel axis 1).
    if legacy and slope.ndim == 1 and x.ndim >= 2 and slope.shape[0] == x.shape[1]:
        return slope.reshape((-1,) + (1,) * (x.ndim - 2))
    raise ValueError(f"slope of shape {slope.shape} does not broadcast to X's {x.shape}")


def _prelu_native(legacy: bool):
    def lower(ins, attrs):
        x, slope = ins[0], ins[1]
        if x is None or slope is None or x.dtype != _F32 or slope.dtype != _F32:
            return None
        try:
            s = _prelu_slope(x, slope, legacy)
        except ValueError:
            return None
        params = {"b_shape": list(s.shape)} if s.shape != slope.shape else {}
        return NativeCall("PRelu", params, [tuple(x.shape)], [_F32], constant_inputs=())

    return lower


@register("PRelu", since=1, native=_prelu_native(True))
def prelu_1(x, slope):
    """x < 0 ? slope * x : x; a [C] slope before opset 7 applies per channel."""
    return _prelu(x, _prelu_slope(np.asarray(x), slope, True))


@register("PRelu", since=7, native=_prelu_native(False))
def prelu_7(x, slope):
    """x < 0 ? slope * x : x, slope unidirectionally broadcast to X."""
    return _prelu(x, _prelu_slope(np.asarray(x), slope, False))
