"""Gemm and MatMul: numpy references and their lowerings to the C++ "Gemm" / "MatMul" kernels.

Versions with distinct semantics: Gemm-1 (``broadcast`` attribute, C required), Gemm-7 (C always
uni-directionally broadcast), Gemm-11 (C optional); MatMul has one meaning in every version
(numpy matmul). Later versions only add element types. float16/bfloat16 accumulate in float32;
integer products keep their type (wrapping like C). The lowerings take float32 only.
"""

from __future__ import annotations

import numpy as np

from providers.cpu.opset import NativeCall, register

_F32 = np.dtype(np.float32)


def _compute_dtype(dt: np.dtype) -> np.dtype:
    """float16, bfloat16 and other low-precision floats are computed in float32."""
    if dt.kind == "f" and dt.itemsize < 4 or dt.kind == "V":
        return _F32
    return dt


def _gemm(a, b, c, alpha, beta, trans_a, trans_b):
    dt = a.dtype
    ct = _compute_dtype(dt)
    a = a.astype(ct, copy=False)
    b = b.astype(ct, copy=False)
    if trans_a:
        a = a.T
    if trans_b:
        b = b.T
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"Gemm: cannot multiply {a.shape} by {b.shape}")
    y = np.matmul(a, b)
    if alpha != 1.0:
        y = y * np.asarray(alpha, ct) if ct.kind == "f" else y * alpha
    if c is not None and beta != 0.0:
        c = c.astype(ct, copy=False)
        # Uni-directional broadcast: C must broadcast to (M, N) without growing Y.
        if np.broadcast_shapes(c.shape, y.shape) != y.shape:
            raise ValueError(f"Gemm: C of shape {c.shape} does not broadcast to {y.shape}")
        y = y + (c * np.asarray(beta, ct) if ct.kind == "f" else c * beta)
    return np.asarray(y).astype(dt, copy=False)


def _gemm_native(inputs, attrs):
    a, b = inputs[0], inputs[1]
    c = inputs[2] if len(inputs) > 2 else None
    if any(x is not None and x.dtype != _F32 for x in (a, b, c)):
        return None
    if a.ndim != 2 or b.ndim != 2:
        return None
    m = a.shape[1] if attrs["transA"] else a.shape[0]
    n = b.shape[0] if attrs["transB"] else b.shape[1]
    if c is not None and (c.ndim > 2 or np.broadcast_shapes(c.shape, (m, n)) != (m, n)):
        return None  # numpy raises the error
    params = {"transA": int(attrs["transA"]), "transB": int(attrs["transB"]),
              "alpha": float(attrs["alpha"]), "beta": float(attrs["beta"])}
    return NativeCall("Gemm", params, [(m, n)], [_F32],
                      constant_inputs=tuple(j for j in (1, 2) if j < len(inputs)))


@register("Gemm", since=1, native=_gemm_native)
def gemm_1(a, b, c, *, alpha=1.0, beta=1.0, transA=0, transB=0, broadcast=0):
    """Gemm-1/6: C required; ``broadcast`` allowed C to broadcast (done either way)."""
    return _gemm(a, b, c, alpha, beta, transA, transB)


@register("Gemm", since=7, native=_gemm_native)
def gemm_7(a, b, c, *, alpha=1.0, beta=1.0, transA=0, transB=0):
    """Gemm-7/9: C is uni-directionally broadcast to (M, N)."""
    return _gemm(a, b, c, alpha, beta, transA, transB)


@register("Gemm", since=11, native=_gemm_native)
def gemm_11(a, b, c=None, *, alpha=1.0, beta=1.0, transA=0, transB=0):
    """Gemm-11/13: C optional."""
    return _gemm(a, b, c, alpha, beta, transA, transB)


def matmul_shape(a_shape, b_shape) -> tuple[int, ...]:
    """numpy matmul's output shape (1-D operands promoted, then their axis removed)."""
    if len(a_shape) == 0 or len(b_shape) == 0:
        raise ValueError("MatMul: scalar operands")
    a2 = (1,) + tuple(a_shape) if len(a_shape) == 1 else tuple(a_shape)
    b2 = tuple(b_shape) + (1,) if len(b_shape) == 1 else tuple(b_shape)
    if a2[-1] != b2[-2]:
        raise ValueError(f"MatMul: cannot multiply {tuple(a_shape)} by {tuple(b_shape)}")
    batch = np.broadcast_shapes(a2[:-2], b2[:-2])
    out = batch
    if len(a_shape) > 1:
        out += (a2[-2],)
    if len(b_shape) > 1:
        out += (b2[-1],)
    return tuple(int(d) for d in out)


def _matmul_native(inputs, attrs):
    a, b = inputs
    if a.dtype != _F32 or b.dtype != _F32 or a.ndim == 0 or b.ndim == 0:
        return None
    try:
        shape = matmul_shape(a.shape, b.shape)
    except ValueError:
        return None  # numpy raises the error
    return NativeCall("MatMul", {}, [shape], [_F32], constant_inputs=(1,))


@register("MatMul", since=1, native=_matmul_native)
def matmul(a, b):
    """numpy matmul semantics (1-D operands, broadcast batch dimensions)."""
    dt = a.dtype
    ct = _compute_dtype(dt)
    y = np.matmul(a.astype(ct, copy=False), b.astype(ct, copy=False))
    return np.asarray(y).astype(dt, copy=False)
