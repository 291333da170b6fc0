"""Quantization ops: QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear, MatMulInteger,
ConvInteger, QLinearMatMul, QLinearConv.

Rounding is half to even and every integer result saturates to its type's range. Integer
accumulations run in float64 (exact for any realistic size: |acc| < 2**53) so that numpy can
use BLAS; requantization multiplies in float32 as onnxruntime does.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from onnx import helper

from providers.cpu.opset import register

# Integer output types and their ranges (int4/uint4/int2/uint2 come from ml_dtypes).
_INT_RANGES = {
    np.dtype(np.uint8): (0, 255),
    np.dtype(np.int8): (-128, 127),
    np.dtype(np.uint16): (0, 65535),
    np.dtype(np.int16): (-32768, 32767),
    np.dtype(ml_dtypes.uint4): (0, 15),
    np.dtype(ml_dtypes.int4): (-8, 7),
    np.dtype(ml_dtypes.uint2): (0, 3),
    np.dtype(ml_dtypes.int2): (-2, 1),
}
_FLOAT8 = {np.dtype(t) for t in (ml_dtypes.float8_e4m3fn, ml_dtypes.float8_e4m3fnuz,
                                 ml_dtypes.float8_e5m2, ml_dtypes.float8_e5m2fnuz)}
# Small float types without a saturate switch: values beyond the range clamp.
_SMALL_FLOATS = {np.dtype(t) for t in (ml_dtypes.float4_e2m1fn, ml_dtypes.float6_e2m3fn,
                                       ml_dtypes.float6_e3m2fn)}
_LOW_FLOATS = {np.dtype(np.float16), np.dtype(ml_dtypes.bfloat16)}


def _np_dtype(onnx_type: int) -> np.dtype:
    return np.dtype(helper.tensor_dtype_to_np_dtype(int(onnx_type)))


def round_half_even(x: np.ndarray) -> np.ndarray:
    """np.rint rounds half to even; spelled out for the reader."""
    return np.rint(x)


def saturate_int(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Round half to even and clamp to the range of the integer type ``dtype``."""
    lo, hi = _INT_RANGES[np.dtype(dtype)]
    return np.clip(round_half_even(x), lo, hi).astype(dtype)


def cast_to_float8(x: np.ndarray, dtype: np.dtype, saturate: bool) -> np.ndarray:
    """float -> float8, rounding to nearest even.

    With ``saturate`` out-of-range values and infinities clamp to the largest finite value
    (onnxruntime and the onnx reference do so for the *fnuz types too, where Cast's table
    says NaN); without it they become NaN or infinity, which ml_dtypes' cast does."""
    dtype = np.dtype(dtype)
    x = np.asarray(x, dtype=np.float32)
    if not saturate:
        return x.astype(dtype)
    big = float(ml_dtypes.finfo(dtype).max)
    return np.clip(x, -big, big).astype(dtype)


def _quant_shape(param: np.ndarray, x_shape: tuple, axis: int, block_size: int) -> np.ndarray:
    """Broadcastable scale/zero point: per tensor (scalar), per axis (1-D) or blocked."""
    param = np.asarray(param)
    rank = len(x_shape)
    if param.ndim == 0 or (param.size == 1 and param.ndim <= 1 and not block_size):
        return param.reshape(())
    axis = axis + rank if axis < 0 else axis
    if not 0 <= axis < rank:
        raise ValueError(f"axis {axis} out of range for a rank-{rank} input")
    if block_size:
        if param.ndim != rank:
            raise ValueError("blocked quantization needs a scale of the input's rank")
        expanded = np.repeat(param, block_size, axis=axis)
        return np.take(expanded, np.arange(x_shape[axis]), axis=axis)
    if param.ndim != 1 or param.shape[0] != x_shape[axis]:
        raise ValueError(
            f"per-axis scale must be 1-D of length {x_shape[axis]} (axis {axis}), "
            f"got shape {param.shape}")
    shape = [1] * rank
    shape[axis] = param.shape[0]
    return param.reshape(shape)


# --------------------------------------------------------------------------------------------
# QuantizeLinear / DequantizeLinear


@register("QuantizeLinear", since=10)
def quantize_linear(x, y_scale, y_zero_point=None, *, axis=1, saturate=1, block_size=0,
                    output_dtype=0):
    """y = saturate(round(x / y_scale) + y_zero_point). Opset 10 is per tensor, 13 adds
    ``axis``, 19 float8 and ``saturate``, 21 blocks, 16-bit and 4-bit types and
    ``output_dtype``. The division runs in float32 (as onnxruntime: a float16 quotient
    would round twice)."""
    return _quantize(x, y_scale, y_zero_point, axis, saturate, block_size, output_dtype,
                     np.dtype(np.float32))


@register("QuantizeLinear", since=23)
def quantize_linear_23(x, y_scale, y_zero_point=None, *, axis=1, saturate=1, block_size=0,
                       output_dtype=0, precision=0):
    """Opset 23: the division runs in ``precision``, by default y_scale's type."""
    if precision:
        div_dtype = _np_dtype(precision)
    else:
        div_dtype = np.asarray(y_scale).dtype
        if div_dtype not in _LOW_FLOATS and div_dtype != np.float64:
            div_dtype = np.dtype(np.float32)
    return _quantize(x, y_scale, y_zero_point, axis, saturate, block_size, output_dtype,
                     div_dtype)


def _quantize(x, y_scale, y_zero_point, axis, saturate, block_size, output_dtype, div_dtype):
    if y_zero_point is not None:
        out_dtype = np.asarray(y_zero_point).dtype
        if output_dtype and _np_dtype(output_dtype) != out_dtype:
            raise ValueError("output_dtype and y_zero_point's type differ")
    else:
        out_dtype = _np_dtype(output_dtype) if output_dtype else np.dtype(np.uint8)
    x = np.asarray(x)
    scale = _quant_shape(y_scale, x.shape, axis, block_size)
    q = (x.astype(div_dtype) / scale.astype(div_dtype)).astype(np.float32)
    zp = None
    if y_zero_point is not None:
        zp = _quant_shape(y_zero_point, x.shape, axis, block_size)
    if out_dtype in _INT_RANGES:
        q = round_half_even(q)
        if zp is not None:
            q = q + zp.astype(np.float32)
        return saturate_int(q, out_dtype)
    if zp is not None:
        q = q + zp.astype(np.float32)
    if out_dtype in _FLOAT8:
        return cast_to_float8(q, out_dtype, bool(saturate))
    if out_dtype in _SMALL_FLOATS:
        big = float(ml_dtypes.finfo(out_dtype).max)
        return np.clip(q, -big, big).astype(out_dtype)
    raise ValueError(f"QuantizeLinear cannot produce {out_dtype}")


@register("DequantizeLinear", since=10)
def dequantize_linear(x, x_scale, x_zero_point=None, *, axis=1, block_size=0, output_dtype=0):
    """y = (x - x_zero_point) * x_scale, computed in the output type (x_scale's type unless
    ``output_dtype``, opset 23, says otherwise)."""
    x = np.asarray(x)
    scale = _quant_shape(x_scale, x.shape, axis, block_size)
    if output_dtype:
        out_dtype = _np_dtype(output_dtype)
    elif scale.dtype == np.dtype(ml_dtypes.float8_e8m0fnu):
        raise ValueError("DequantizeLinear with a float8e8m0 scale needs output_dtype")
    else:
        out_dtype = scale.dtype
    # float16/bfloat16 outputs: (x - zero_point) * scale in float32, rounded once to the
    # output type, as onnxruntime does (|x - zp| may exceed float16's exact integers).
    ct = np.dtype(np.float64) if out_dtype == np.float64 else np.dtype(np.float32)
    if x.dtype.kind in "iu" or x.dtype in _INT_RANGES:
        diff = x.astype(np.int64)
        if x_zero_point is not None:
            diff = diff - _quant_shape(x_zero_point, x.shape, axis, block_size).astype(np.int64)
        diff = diff.astype(ct)
    else:
        diff = x.astype(ct)
        if x_zero_point is not None:
            diff = diff - _quant_shape(x_zero_point, x.shape, axis, block_size).astype(ct)
    return (diff * scale.astype(ct)).astype(out_dtype)


@register("DynamicQuantizeLinear", since=11)
def dynamic_quantize_linear(x):
    """uint8 quantization with a scale and zero point taken from x's range (including 0)."""
    x = np.asarray(x, dtype=np.float32)
    x_min = np.float32(min(0.0, float(x.min()))) if x.size else np.float32(0)
    x_max = np.float32(max(0.0, float(x.max()))) if x.size else np.float32(0)
    scale = np.float32((x_max - x_min) / np.float32(255))
    if scale == 0:
        # All zeros: any scale represents them; 1 keeps a later division finite (as ORT).
        scale = np.float32(1)
        zero_point = np.uint8(0)
        y = np.zeros(x.shape, np.uint8)
    else:
        zero_point = saturate_int(np.float32(0) - x_min / scale, np.uint8)
        y = saturate_int(round_half_even(x / scale) + np.float32(zero_point), np.uint8)
    return y, np.asarray(scale, np.float32), np.asarray(zero_point, np.uint8)


# --------------------------------------------------------------------------------------------
# Integer matmul and its quantized form


def _row_param(param, a: np.ndarray) -> np.ndarray:
    """A scalar or per-row (1-D, length M) parameter of a [..., M, K] operand, as
    a broadcastable array; N-D forms are used as given."""
    p = np.asarray(param)
    if p.ndim == 1:
        return p.reshape(-1, 1) if p.size > 1 else p.reshape(())
    return p


def _int_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact matmul of integer-valued arrays (float64 accumulation, |acc| < 2**53)."""
    return np.matmul(a.astype(np.float64), b.astype(np.float64))


@register("MatMulInteger", since=10)
def matmul_integer(a, b, a_zero_point=None, b_zero_point=None):
    """(A - a_zero_point) @ (B - b_zero_point) in int32; a_zero_point may be per row (M),
    b_zero_point per column (N)."""
    a_i = np.asarray(a).astype(np.int32)
    b_i = np.asarray(b).astype(np.int32)
    if a_zero_point is not None:
        a_i = a_i - _row_param(a_zero_point, a_i).astype(np.int32)
    if b_zero_point is not None:
        b_i = b_i - np.asarray(b_zero_point).astype(np.int32)
    return _int_matmul(a_i, b_i).astype(np.int32)


def _requantize(acc: np.ndarray, multiplier: np.ndarray, zero_point, out_dtype) -> np.ndarray:
    """round(acc * multiplier) + zero_point, saturated; float32 arithmetic as onnxruntime."""
    scaled = acc.astype(np.float32) * multiplier.astype(np.float32)
    return saturate_int(round_half_even(scaled) + np.asarray(zero_point, np.float32), out_dtype)


@register("QLinearMatMul", since=10)
def qlinear_matmul(a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point):
    """Quantized matmul. Scales/zero points: scalar, or per row of A / per column of B / per
    row of Y. Opset 21 adds float8 operands, which are dequantized and requantized."""
    a = np.asarray(a)
    b = np.asarray(b)
    out_dtype = np.asarray(y_zero_point).dtype
    if a.dtype in _FLOAT8 or b.dtype in _FLOAT8 or out_dtype in _FLOAT8:
        # float8 operands: dequantize, multiply in float32, quantize (saturating).
        a_f = ((a.astype(np.float32) - _row_param(a_zero_point, a).astype(np.float32))
               * _row_param(a_scale, a).astype(np.float32))
        b_f = ((b.astype(np.float32) - np.asarray(b_zero_point).astype(np.float32))
               * np.asarray(b_scale).astype(np.float32))
        real = np.matmul(a_f, b_f)
        q = real / _row_param(y_scale, real).astype(np.float32)
        if out_dtype in _FLOAT8:
            q = q + _row_param(y_zero_point, real).astype(np.float32)
            return cast_to_float8(q, out_dtype, True)
        return saturate_int(round_half_even(q)
                            + _row_param(y_zero_point, real).astype(np.float32), out_dtype)
    a_i = a.astype(np.int32) - _row_param(a_zero_point, a).astype(np.int32)
    b_i = b.astype(np.int32) - np.asarray(b_zero_point).astype(np.int32)
    acc = _int_matmul(a_i, b_i)
    multiplier = (_row_param(a_scale, a).astype(np.float32)
                  * np.asarray(b_scale).astype(np.float32)
                  / _row_param(y_scale, acc).astype(np.float32))
    return _requantize(acc, multiplier, _row_param(y_zero_point, acc), out_dtype)


# --------------------------------------------------------------------------------------------
# Integer convolution (a small N-d im2col of our own)


def conv_pads(in_shape, kernel, strides, dilations, pads, auto_pad):
    """Begin/end padding per spatial axis following Conv's auto_pad rules."""
    n = len(in_shape)
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        begins, ends = [], []
        for i in range(n):
            out = -(-in_shape[i] // strides[i])
            total = max(0, (out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1
                        - in_shape[i])
            small = total // 2
            if auto_pad == "SAME_UPPER":
                begins.append(small)
                ends.append(total - small)
            else:
                begins.append(total - small)
                ends.append(small)
        return begins, ends
    if auto_pad == "VALID":
        return [0] * n, [0] * n
    if auto_pad not in ("NOTSET", ""):
        raise ValueError(f"unknown auto_pad '{auto_pad}'")
    pads = list(pads) if pads else [0] * (2 * n)
    return pads[:n], pads[n:]


def int_conv(x: np.ndarray, w: np.ndarray, *, auto_pad="NOTSET", dilations=None, group=1,
             kernel_shape=None, pads=None, strides=None) -> np.ndarray:
    """Convolution of integer-valued (zero point already removed) float64 operands.

    x: [N, C, *S], w: [M, C/group, *K]; returns the exact float64 sums [N, M, *O]."""
    n_sp = x.ndim - 2
    kernel = list(kernel_shape) if kernel_shape else list(w.shape[2:])
    strides = list(strides) if strides else [1] * n_sp
    dilations = list(dilations) if dilations else [1] * n_sp
    begins, ends = conv_pads(x.shape[2:], kernel, strides, dilations, pads, auto_pad)
    xp = np.pad(x, [(0, 0), (0, 0)] + list(zip(begins, ends)))
    span = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
    if any(xp.shape[2 + i] < span[i] for i in range(n_sp)):
        out_sp = [0 if xp.shape[2 + i] < span[i] else
                  (xp.shape[2 + i] - span[i]) // strides[i] + 1 for i in range(n_sp)]
        return np.zeros((x.shape[0], w.shape[0], *out_sp), np.float64)
    win = sliding_window_view(xp, span, axis=tuple(range(2, 2 + n_sp)))
    # win: [N, C, *P, *span] -> keep strided positions and dilated taps.
    idx = (slice(None), slice(None)) + tuple(slice(None, None, s) for s in strides) + tuple(
        slice(None, None, d) for d in dilations)
    win = win[idx]
    c = x.shape[1]
    m = w.shape[0]
    cg, mg = c // group, m // group
    outs = []
    sp_axes = list(range(2 + n_sp, 2 + 2 * n_sp))
    for g in range(group):
        wg = w[g * mg:(g + 1) * mg]  # [mg, cg, *K]
        xg = win[:, g * cg:(g + 1) * cg]  # [N, cg, *O, *K]
        res = np.tensordot(xg, wg, axes=([1] + sp_axes, [1] + list(range(2, 2 + n_sp))))
        outs.append(np.moveaxis(res, -1, 1))  # [N, mg, *O]
    return np.concatenate(outs, axis=1) if group > 1 else outs[0]


def _channel_param(param, ndim: int) -> np.ndarray:
    """Per-output-channel parameter ([M]) shaped to broadcast over [N, M, *O]."""
    p = np.asarray(param)
    if p.ndim == 1 and p.size > 1:
        return p.reshape((1, -1) + (1,) * (ndim - 2))
    return p.reshape(())


@register("ConvInteger", since=10)
def conv_integer(x, w, x_zero_point=None, w_zero_point=None, *, auto_pad="NOTSET",
                 dilations=None, group=1, kernel_shape=None, pads=None, strides=None):
    """Conv of (x - x_zero_point) and (w - w_zero_point) accumulated in int32. Padding is
    with the zero point (zero after the subtraction)."""
    xf = np.asarray(x).astype(np.float64)
    wf = np.asarray(w).astype(np.float64)
    if x_zero_point is not None:
        xf = xf - float(np.asarray(x_zero_point).reshape(-1)[0])
    if w_zero_point is not None:
        wzp = np.asarray(w_zero_point).astype(np.float64)
        wf = wf - (wzp.reshape((-1,) + (1,) * (wf.ndim - 1)) if wzp.size > 1 else wzp.reshape(()))
    acc = int_conv(xf, wf, auto_pad=auto_pad, dilations=dilations, group=group,
                   kernel_shape=kernel_shape, pads=pads, strides=strides)
    return acc.astype(np.int32)


@register("QLinearConv", since=10)
def qlinear_conv(x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale, y_zero_point,
                 b=None, *, auto_pad="NOTSET", dilations=None, group=1, kernel_shape=None,
                 pads=None, strides=None):
    """Quantized Conv: requantize(conv(x - x_zp, w - w_zp) + B) with the multiplier
    x_scale * w_scale / y_scale (w_scale and w_zero_point may be per output channel)."""
    x = np.asarray(x)
    w = np.asarray(w)
    out_dtype = np.asarray(y_zero_point).dtype
    xf = x.astype(np.float64) - float(np.asarray(x_zero_point).reshape(-1)[0])
    wzp = np.asarray(w_zero_point).astype(np.float64)
    wf = w.astype(np.float64) - (wzp.reshape((-1,) + (1,) * (w.ndim - 1)) if wzp.size > 1
                                 else wzp.reshape(()))
    acc = int_conv(xf, wf, auto_pad=auto_pad, dilations=dilations, group=group,
                   kernel_shape=kernel_shape, pads=pads, strides=strides)
    if b is not None:
        acc = acc + np.asarray(b).astype(np.float64).reshape((1, -1) + (1,) * (acc.ndim - 2))
    multiplier = (np.asarray(x_scale, np.float32).reshape(())
                  * _channel_param(w_scale, acc.ndim).astype(np.float32)
                  / np.asarray(y_scale, np.float32).reshape(()))
    return _requantize(acc, multiplier, np.asarray(y_zero_point).reshape(()), out_dtype)
