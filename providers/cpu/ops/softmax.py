"""Softmax, LogSoftmax, Hardmax.

Before opset 13 the input is coerced to 2-D at ``axis`` (default 1): the op runs over the
flattened block of all axes from ``axis`` on. From opset 13 it runs over the single ``axis``
(default -1). Float32 Softmax/LogSoftmax lower to the C++ kernels, whose parameters are the
(outer, n, inner) decomposition of the input around the reduced block.
"""

from __future__ import annotations

import math

import numpy as np

from providers.cpu.opset import NativeCall, register

_F32 = np.dtype(np.float32)


def _norm_axis(axis: int, rank: int) -> int:
    a = int(axis)
    if a < 0:
        a += rank
    if not 0 <= a < max(rank, 1):
        raise ValueError(f"axis {axis} out of range for rank {rank}")
    return a


def _blocks(shape, axis: int, coerce_2d: bool) -> tuple[int, int, int]:
    """(outer, n, inner): the op reduces over n, with ``inner`` contiguous elements apart."""
    shape = tuple(shape)
    if not shape:
        return 1, 1, 1
    a = _norm_axis(axis, len(shape))
    outer = math.prod(shape[:a])
    if coerce_2d:
        return outer, math.prod(shape[a:]), 1
    return outer, shape[a], math.prod(shape[a + 1:])


def _as3d(x: np.ndarray, axis: int, coerce_2d: bool) -> np.ndarray:
    return x.reshape(_blocks(x.shape, axis, coerce_2d))


def _work(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float64) if x.dtype != np.float64 else x


def _softmax(x, axis, coerce_2d, log):
    x = np.asarray(x)
    if x.size == 0:
        return x.copy()
    v = _work(_as3d(x, axis, coerce_2d))
    # An infinite maximum makes its row NaN (inf - inf), as in onnxruntime.
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        e = v - v.max(axis=1, keepdims=True)
        s = np.exp(e).sum(axis=1, keepdims=True)
        out = e - np.log(s) if log else np.exp(e) / s
    return out.reshape(x.shape).astype(x.dtype)


def _hardmax(x, axis, coerce_2d):
    x = np.asarray(x)
    if x.size == 0:
        return x.copy()
    v = _as3d(x, axis, coerce_2d)
    arg = np.argmax(v, axis=1)  # the first maximum wins
    out = np.zeros(v.shape, x.dtype)
    np.put_along_axis(out, arg[:, None, :], 1, axis=1)
    return out.reshape(x.shape)


def _native(kernel: str, coerce_2d: bool):
    def lower(ins, attrs):
        x = ins[0]
        if x is None or x.dtype != _F32 or x.ndim == 0 or x.size == 0:
            return None
        outer, n, inner = _blocks(x.shape, attrs["axis"], coerce_2d)
        return NativeCall(kernel, {"outer": outer, "n": n, "inner": inner},
                          [tuple(x.shape)], [_F32], inputs=[0])
    return lower


@register("Softmax", since=1, native=_native("Softmax", True))
def softmax_1(x, *, axis=1):
    """exp(x) / sum(exp(x)) over the block of axes [axis, rank) (input coerced to 2-D)."""
    return _softmax(x, axis, True, False)


@register("Softmax", since=13, native=_native("Softmax", False))
def softmax_13(x, *, axis=-1):
    """exp(x) / sum(exp(x)) along ``axis``."""
    return _softmax(x, axis, False, False)


@register("LogSoftmax", since=1, native=_native("LogSoftmax", True))
def log_softmax_1(x, *, axis=1):
    """x - log(sum(exp(x))) over the block of axes [axis, rank)."""
    return _softmax(x, axis, True, True)


@register("LogSoftmax", since=13, native=_native("LogSoftmax", False))
def log_softmax_13(x, *, axis=-1):
    """x - log(sum(exp(x))) along ``axis``."""
    return _softmax(x, axis, False, True)


@register("Hardmax", since=1)
def hardmax_1(x, *, axis=1):
    """1 at the first maximum of each block of axes [axis, rank), 0 elsewhere."""
    return _hardmax(x, axis, True)


@register("Hardmax", since=13)
def hardmax_13(x, *, axis=-1):
    """1 at the first maximum along ``axis``, 0 elsewhere."""
    return _hardmax(x, axis, False)
