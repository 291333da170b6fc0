"""Cast and CastLike: every numeric type numpy and ml_dtypes hold, strings, saturation.

Float -> float8 with ``saturate=1`` (the default) follows the spec's table through
``onnx.numpy_helper.saturate_cast``: out-of-range values become the largest finite value
(infinities too, except E5M2 which keeps them); with ``saturate=0`` they become NaN/Inf.
Float -> FLOAT8E8M0 (powers of two only) rounds per ``round_mode`` (up/down/nearest).
BitCast reinterprets the bytes of each element as another type of the same width.
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from providers.cpu.opset import register
from runtime.ir import onnx_dtype_to_numpy

_FLOAT8 = {TensorProto.FLOAT8E4M3FN, TensorProto.FLOAT8E4M3FNUZ, TensorProto.FLOAT8E5M2,
           TensorProto.FLOAT8E5M2FNUZ}
_INT4 = {TensorProto.INT4: (-8, 7), TensorProto.UINT4: (0, 15)}
for _name, _rng in (("INT2", (-2, 1)), ("UINT2", (0, 3))):
    if hasattr(TensorProto, _name):
        _INT4[getattr(TensorProto, _name)] = _rng


def _elem_type(to) -> int:
    """``to`` as a TensorProto code (opset 1 spelled it as a string such as "FLOAT")."""
    if isinstance(to, str):
        try:
            return int(getattr(TensorProto, to.upper()))
        except AttributeError:
            raise ValueError(f"Cast: unknown type name '{to}'") from None
    return int(to)


def _to_string(x: np.ndarray) -> np.ndarray:
    if x.dtype == object:
        return x.copy()
    if x.dtype.kind == "f" or x.dtype.type.__module__ == "ml_dtypes":
        flat = []
        for v in x.astype(np.float32).ravel():
            if np.isnan(v):
                flat.append("NaN")
            elif np.isinf(v):
                flat.append("INF" if v > 0 else "-INF")
            else:
                f = np.float32(v)
                plain = v == 0 or 1e-4 <= abs(v) < 1e16
                flat.append(np.format_float_positional(f, trim="-") if plain
                            else np.format_float_scientific(f, trim="-"))
        return np.array(flat, dtype=object).reshape(x.shape)
    if x.dtype == np.bool_:
        return np.array(["1" if v else "0" for v in x.ravel()], dtype=object).reshape(x.shape)
    return np.array([str(v) for v in x.ravel()], dtype=object).reshape(x.shape)


def _from_string(x: np.ndarray, target: np.dtype) -> np.ndarray:
    def parse(s) -> float:
        t = str(s).strip()
        low = t.lower().lstrip("+")
        if low in ("inf", "infinity"):
            return np.inf
        if low in ("-inf", "-infinity"):
            return -np.inf
        if low == "nan":
            return np.nan
        return float(t)

    if target.kind in "iu":
        vals = [int(str(s).strip()) if str(s).strip().lstrip("+-").isdigit() else int(parse(s))
                for s in x.ravel()]
        return np.array(vals, dtype=target).reshape(x.shape)
    if target == np.bool_:
        return np.array([parse(s) != 0 for s in x.ravel()], dtype=np.bool_).reshape(x.shape)
    return np.array([parse(s) for s in x.ravel()], dtype=np.float64).astype(target).reshape(
        x.shape)


_FLOAT8E8M0 = getattr(TensorProto, "FLOAT8E8M0", None)


def _to_e8m0_bits(x: np.ndarray, saturate: int, round_mode: str) -> np.ndarray:
    """The uint8 codes of float8e8m0 (2**(code - 127), 255 = NaN) nearest to ``x``.

    A finite x > 0 lies in [2**e, 2**(e+1)): "down" picks 2**e, "up" picks 2**(e+1) unless x is
    exactly 2**e, "nearest" picks 2**(e+1) from 1.5 * 2**e on (ties up). Saturating, zero and
    values under the smallest code give code 0, infinities and values over the largest code
    give 254; not saturating, they give NaN. The type has no sign: negative values (left
    unspecified by the spec) are taken by magnitude.
    """
    if round_mode not in ("up", "down", "nearest"):
        raise ValueError(f"Cast: unknown round_mode '{round_mode}'")
    v = np.abs(x.astype(np.float64))
    frac, exp = np.frexp(v)          # v = frac * 2**exp, frac in [0.5, 1) for finite v > 0
    e = exp.astype(np.int64) - 1     # v = (2 * frac) * 2**e
    m = 2.0 * frac
    if round_mode == "up":
        e = e + (m > 1.0)
    elif round_mode == "nearest":
        e = e + (m >= 1.5)
    code = e + 127
    finite = np.isfinite(v) & (v > 0)
    if saturate:
        low, high = 0, 254
    else:
        low, high = 255, 255
    out = np.where(code < 0, low, np.where(code > 254, high, code))
    out = np.where(finite, out, np.where(np.isinf(v), high, np.where(v == 0, low, 255)))
    return out.astype(np.uint8)


def cast_array(x: np.ndarray, to: int, saturate: int = 1, round_mode: str = "up") -> np.ndarray:
    """Convert ``x`` to ONNX element type ``to`` with Cast's semantics."""
    x = np.asarray(x)
    to = _elem_type(to)
    if to == TensorProto.STRING:
        return _to_string(x)
    target = onnx_dtype_to_numpy(to)
    if x.dtype == object or x.dtype.kind in "US":
        if to == _FLOAT8E8M0:
            x = _from_string(x, np.dtype(np.float64))
        else:
            return _from_string(x, target)
    if to == _FLOAT8E8M0:
        if x.dtype == target:
            return x.copy()
        src = x.astype(np.float32) if x.dtype.type.__module__ == "ml_dtypes" else x
        return _to_e8m0_bits(src, saturate, round_mode).view(target)
    if to in _FLOAT8:
        src = x.astype(np.float32) if x.dtype.kind not in "f" else x
        if saturate:
            return numpy_helper.saturate_cast(src.astype(np.float32), target)
        return src.astype(np.float32).astype(target)
    if to in _INT4:
        lo, hi = _INT4[to]
        src = x.astype(np.float32) if x.dtype.type.__module__ == "ml_dtypes" else x
        if src.dtype.kind == "f":
            src = np.trunc(np.nan_to_num(src, nan=0.0, posinf=0.0, neginf=0.0))
        # Like every integer Cast, out-of-range values wrap around (modular arithmetic).
        v = src.astype(np.int64)
        return (((v - lo) % (hi - lo + 1)) + lo).astype(target)
    if x.dtype.type.__module__ == "ml_dtypes" and target.kind in "iub":
        x = x.astype(np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        return x.astype(target)


@register("Cast", since=1)
def cast(x, *, to=TensorProto.FLOAT, saturate=1, round_mode="up"):
    return cast_array(x, to, saturate, round_mode)


@register("CastLike", since=15)
def cast_like(x, target_type, *, saturate=1, round_mode="up"):
    return cast_array(x, helper.np_dtype_to_tensor_dtype(np.asarray(target_type).dtype)
                      if np.asarray(target_type).dtype != object else TensorProto.STRING,
                      saturate, round_mode)


_SUB_BYTE_BITS = {"int4": 4, "uint4": 4, "float4_e2m1fn": 4, "int2": 2, "uint2": 2}


@register("BitCast", since=26)
def bit_cast(x, *, to=None):
    """The same bits read as element type ``to``, which must have the input's bit width."""
    if to is None:
        raise ValueError("BitCast needs the 'to' attribute")
    x = np.asarray(x)
    to = _elem_type(to)
    if to == TensorProto.STRING or x.dtype == object or x.dtype.kind in "US":
        raise ValueError("BitCast does not take strings")
    target = onnx_dtype_to_numpy(to)
    src_bits = _SUB_BYTE_BITS.get(x.dtype.name, 8 * x.dtype.itemsize)
    dst_bits = _SUB_BYTE_BITS.get(target.name, 8 * target.itemsize)
    if src_bits != dst_bits:
        raise ValueError(f"BitCast: {x.dtype} and {target} do not have the same bit width")
    if dst_bits < 8:
        # ml_dtypes keeps a sub-byte element's code in the low bits of its byte.
        codes = np.ascontiguousarray(x).view(np.uint8) & np.uint8((1 << dst_bits) - 1)
        return codes.view(target)
    if target == np.bool_:
        # Only 0 and 1 are valid bool bytes: any other byte would make an invalid numpy bool.
        return np.ascontiguousarray(x).view(np.uint8) != 0
    return np.ascontiguousarray(x).view(target).reshape(x.shape)
