"""Pooling: MaxPool (with Indices), AveragePool, LpPool, their Global forms, MaxUnpool.

All pools share one geometry (``_geometry``): per spatial axis the output length and the
begin/end padding, from explicit ``pads`` or ``auto_pad``, with ``ceil_mode`` dropping a last
window that would start inside the end padding. The numpy path pads the input and takes
strided windows. Float32 1-D/2-D MaxPool, AveragePool and the Global pools lower to C++.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import as_strided

from providers.cpu.opset import NativeCall, register

_F32 = np.dtype(np.float32)


def _geometry(in_shape, kernel_shape, strides, pads, dilations, auto_pad, ceil_mode):
    """(out_shape, pads_begin, pads_end) for the spatial axes."""
    nd = len(kernel_shape)
    if len(in_shape) != nd:
        raise ValueError(f"kernel_shape has {nd} dims, input has {len(in_shape)} spatial dims")
    strides = list(strides) if strides else [1] * nd
    dilations = list(dilations) if dilations else [1] * nd
    pads = list(pads) if pads else [0] * (2 * nd)
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else (auto_pad or "NOTSET")
    out, pb, pe = [], [], []
    for i in range(nd):
        n, k, s, d = int(in_shape[i]), int(kernel_shape[i]), int(strides[i]), int(dilations[i])
        ek = (k - 1) * d + 1
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            o = -(-n // s)
            total = max(0, (o - 1) * s + ek - n)
            b = total // 2 if auto_pad == "SAME_UPPER" else total - total // 2
            out.append(o)
            pb.append(b)
            pe.append(total - b)
        elif auto_pad == "VALID":
            out.append(max(0, (n - ek) // s + 1))
            pb.append(0)
            pe.append(0)
        elif auto_pad == "NOTSET":
            b, e = int(pads[i]), int(pads[i + nd])
            span = n + b + e - ek
            if ceil_mode:
                o = -(-span // s) + 1
                # A last window starting inside the end padding is dropped.
                if (o - 1) * s >= n + b:
                    o -= 1
            else:
                o = span // s + 1
            out.append(max(0, o))
            pb.append(b)
            pe.append(e)
        else:
            raise ValueError(f"unknown auto_pad '{auto_pad}'")
    return out, pb, pe


def _windows(x: np.ndarray, kernel_shape, strides, dilations, out, pb, fill):
    """Strided windows of x padded with ``fill``: shape (N, C, *out, *kernel)."""
    nd = len(kernel_shape)
    strides = list(strides) if strides else [1] * nd
    dilations = list(dilations) if dilations else [1] * nd
    pad_width = [(0, 0), (0, 0)]
    for i in range(nd):
        # Enough end padding for the last window, whatever the declared padding is.
        need = (out[i] - 1) * strides[i] - pb[i] + (kernel_shape[i] - 1) * dilations[i] + 1
        pad_width.append((pb[i], max(0, need - x.shape[2 + i])))
    xp = np.pad(x, pad_width, constant_values=fill) if any(p != (0, 0) for p in pad_width) else x
    xp = np.ascontiguousarray(xp)
    st = xp.strides
    shape = x.shape[:2] + tuple(out) + tuple(kernel_shape)
    wstrides = st[:2] + tuple(st[2 + i] * strides[i] for i in range(nd)) + tuple(
        st[2 + i] * dilations[i] for i in range(nd))
    return as_strided(xp, shape, wstrides, writeable=False)


def _lowest(dtype: np.dtype):
    return -np.inf if dtype.kind == "f" else np.iinfo(dtype).min


def _kernel_axes(nd: int) -> tuple[int, ...]:
    return tuple(range(2 + nd, 2 + 2 * nd))


def _work_dtype(dtype: np.dtype) -> np.dtype:
    return np.dtype(np.float32) if dtype == np.float16 or dtype.name == "bfloat16" else dtype


# --------------------------------------------------------------------------------------------
# MaxPool


def _maxpool(x, kernel_shape, strides, pads, dilations, auto_pad, ceil_mode, storage_order,
             want_indices):
    x = np.asarray(x)
    dtype = x.dtype
    xw = x.astype(_work_dtype(dtype), copy=False)
    nd = len(kernel_shape)
    out, pb, _ = _geometry(x.shape[2:], kernel_shape, strides, pads, dilations, auto_pad,
                           ceil_mode)
    win = _windows(xw, kernel_shape, strides, dilations, out, pb, _lowest(xw.dtype))
    y = win.max(axis=_kernel_axes(nd)) if win.size else np.empty(win.shape[:2 + nd], xw.dtype)
    y = y.astype(dtype, copy=False)
    if not want_indices:
        return y
    strides = list(strides) if strides else [1] * nd
    dilations = list(dilations) if dilations else [1] * nd
    flat = win.reshape(win.shape[:2 + nd] + (math.prod(kernel_shape),))
    if flat.size == 0:
        return y, np.zeros(y.shape, np.int64)
    tap = np.argmax(flat, axis=-1)  # the first maximum in window order, as onnxruntime
    taps = np.unravel_index(tap, tuple(kernel_shape))
    spatial = x.shape[2:]
    index = np.zeros(tap.shape, np.int64)
    # Row-major (storage_order 0) or column-major (1) flat index over the spatial axes.
    order = range(nd) if storage_order == 0 else range(nd - 1, -1, -1)
    for i in order:
        o = np.arange(out[i]).reshape((-1,) + (1,) * (nd - 1 - i))
        coord = o * strides[i] - pb[i] + taps[i] * dilations[i]
        index = index * spatial[i] + coord
    plane = int(np.prod(spatial))
    nc = np.arange(x.shape[0] * x.shape[1]).reshape(x.shape[:2] + (1,) * nd)
    return y, (index + nc * plane).astype(np.int64)


def _maxpool_native(ins, attrs):
    x = ins[0]
    if x is None or x.dtype != _F32 or x.ndim not in (3, 4):
        return None
    kernel_shape = list(attrs.get("kernel_shape") or [])
    if len(kernel_shape) != x.ndim - 2:
        return None
    call = _pool_call("MaxPool", x, attrs, kernel_shape)
    num_outputs = attrs.get("_num_outputs")
    if num_outputs is None or num_outputs > 1:
        call.params["indices"] = 1
        call.params["storage_order"] = int(attrs.get("storage_order") or 0)
        call.output_shapes.append(call.output_shapes[0])
        call.output_dtypes.append(np.dtype(np.int64))
    return call


def _pool_call(kernel, x, attrs, kernel_shape, extra=None):
    nd = len(kernel_shape)
    strides = list(attrs.get("strides") or [1] * nd)
    dilations = list(attrs.get("dilations") or [1] * nd)
    out, pb, pe = _geometry(x.shape[2:], kernel_shape, strides, attrs.get("pads"), dilations,
                            attrs.get("auto_pad", "NOTSET"), attrs.get("ceil_mode", 0))
    params = {"kernel_shape": [int(k) for k in kernel_shape], "strides": strides,
              "dilations": dilations, "pads_begin": pb, "pads_end": pe}
    params.update(extra or {})
    return NativeCall(kernel, params, [tuple(x.shape[:2]) + tuple(out)], [_F32], inputs=[0])


@register("MaxPool", since=1, native=_maxpool_native)
def max_pool(x, *, kernel_shape=None, strides=None, pads=None, dilations=None,
             auto_pad="NOTSET", ceil_mode=0, storage_order=0, _ctx=None):
    """Max over each window; the optional second output holds flat input indices."""
    want = _ctx is not None and _ctx.num_outputs > 1
    return _maxpool(x, kernel_shape, strides, pads, dilations, auto_pad, ceil_mode,
                    storage_order, want)


# --------------------------------------------------------------------------------------------
# AveragePool, LpPool


def _counts(spatial, kernel_shape, strides, dilations, out, pb, pe, include_pad):
    """Divisors per output position: taps inside the input, or inside the padded extent."""
    nd = len(kernel_shape)
    total = np.ones((), np.int64)
    for i in range(nd):
        o = np.arange(out[i])[:, None]
        idx = o * strides[i] - pb[i] + np.arange(kernel_shape[i])[None, :] * dilations[i]
        hi = spatial[i] + pe[i] if include_pad else spatial[i]
        lo = -pb[i] if include_pad else 0
        c = ((idx >= lo) & (idx < hi)).sum(axis=1)
        total = np.multiply.outer(total, c)
    return total


def _avgpool(x, kernel_shape, strides, pads, dilations, auto_pad, ceil_mode,
             count_include_pad):
    x = np.asarray(x)
    dtype = x.dtype
    nd = len(kernel_shape)
    strides = list(strides) if strides else [1] * nd
    dilations = list(dilations) if dilations else [1] * nd
    out, pb, pe = _geometry(x.shape[2:], kernel_shape, strides, pads, dilations, auto_pad,
                            ceil_mode)
    xw = x.astype(np.float64 if dtype == np.float64 else np.float32)
    win = _windows(xw, kernel_shape, strides, dilations, out, pb, 0)
    total = win.sum(axis=_kernel_axes(nd), dtype=np.float64)
    cnt = _counts(x.shape[2:], kernel_shape, strides, dilations, out, pb, pe,
                  bool(count_include_pad))
    with np.errstate(invalid="ignore", divide="ignore"):
        y = total / np.maximum(cnt, 1)
    return y.astype(dtype)


def _avgpool_native(ins, attrs):
    x = ins[0]
    if x is None or x.dtype != _F32 or x.ndim not in (3, 4):
        return None
    kernel_shape = list(attrs.get("kernel_shape") or [])
    if len(kernel_shape) != x.ndim - 2:
        return None
    return _pool_call("AveragePool", x, attrs, kernel_shape,
                      {"count_include_pad": int(attrs.get("count_include_pad") or 0)})


@register("AveragePool", since=1, native=_avgpool_native)
def average_pool(x, *, kernel_shape=None, strides=None, pads=None, dilations=None,
                 auto_pad="NOTSET", ceil_mode=0, count_include_pad=0):
    """Mean over each window; padding counts in the divisor only with count_include_pad."""
    return _avgpool(x, kernel_shape, strides, pads, dilations, auto_pad, ceil_mode,
                    count_include_pad)


@register("LpPool", since=1)
def lp_pool(x, *, kernel_shape=None, strides=None, pads=None, dilations=None,
            auto_pad="NOTSET", ceil_mode=0, p=2):
    """(sum over the window of |x|^p)^(1/p); padding contributes zeros."""
    x = np.asarray(x)
    dtype = x.dtype
    nd = len(kernel_shape)
    out, pb, _ = _geometry(x.shape[2:], kernel_shape, strides, pads, dilations, auto_pad,
                           ceil_mode)
    xw = np.abs(x.astype(np.float64))
    win = _windows(xw, kernel_shape, strides, dilations, out, pb, 0)
    p = float(p)
    y = np.power(np.power(win, p).sum(axis=_kernel_axes(nd)), 1.0 / p)
    return y.astype(dtype)


# --------------------------------------------------------------------------------------------
# Global pools


def _global_native(kernel):
    def lower(ins, attrs):
        x = ins[0]
        if x is None or x.dtype != _F32 or x.ndim < 3:
            return None
        return NativeCall(kernel, {}, [tuple(x.shape[:2]) + (1,) * (x.ndim - 2)], [_F32],
                          inputs=[0])
    return lower


@register("GlobalAveragePool", since=1, native=_global_native("GlobalAveragePool"))
def global_average_pool(x):
    x = np.asarray(x)
    axes = tuple(range(2, x.ndim))
    return x.mean(axis=axes, keepdims=True, dtype=np.float64).astype(x.dtype)


@register("GlobalMaxPool", since=1, native=_global_native("GlobalMaxPool"))
def global_max_pool(x):
    x = np.asarray(x)
    axes = tuple(range(2, x.ndim))
    return x.max(axis=axes, keepdims=True)


@register("GlobalLpPool", since=1)
def global_lp_pool(x, *, p=2):
    """(sum over the spatial axes of |x|^p)^(1/p)."""
    x = np.asarray(x)
    axes = tuple(range(2, x.ndim))
    p = float(p)
    s = np.power(np.abs(x.astype(np.float64)), p).sum(axis=axes, keepdims=True)
    return np.power(s, 1.0 / p).astype(x.dtype)


# --------------------------------------------------------------------------------------------
# MaxUnpool


@register("MaxUnpool", since=9, shape_inputs=(2,))
def max_unpool(x, indices, output_shape=None, *, kernel_shape=None, pads=None, strides=None):
    """Scatter X into zeros at the flat positions ``indices`` (MaxPool's second output)."""
    x = np.asarray(x)
    indices = np.asarray(indices)
    nd = len(kernel_shape)
    strides = list(strides) if strides else [1] * nd
    pads = list(pads) if pads else [0] * (2 * nd)
    spatial = [(x.shape[2 + i] - 1) * strides[i] - pads[i] - pads[i + nd] + kernel_shape[i]
               for i in range(nd)]
    default = tuple(x.shape[:2]) + tuple(spatial)
    flat = indices.reshape(-1).astype(np.int64)
    shape = default
    if output_shape is not None:
        shape = tuple(int(d) for d in np.asarray(output_shape).reshape(-1))
        if shape != default:
            # Indices address the pooled input's layout (the default shape): re-address them
            # in the requested one, each element keeping its coordinates.
            if len(shape) != len(default) or any(s < d for s, d in zip(shape, default)):
                raise ValueError(f"MaxUnpool: output_shape {shape} is smaller than {default}")
            flat = np.ravel_multi_index(np.unravel_index(flat, default), shape)
    y = np.zeros(math.prod(shape), x.dtype)
    y[flat] = x.reshape(-1)
    return y.reshape(shape)
