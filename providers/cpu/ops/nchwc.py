"""The NCHWc layout ops (domain ``ferry``), produced by the layout pass at ORT_ENABLE_ALL
(runtime/optimizer/nchwc_layout.py) for the CPU provider's blocked kernels.

An NCHWc value holds a logical [N, C, H, W] float32 tensor (C a multiple of 8) as
[N, C/8, H, W, 8]: the 8 channels of a block are contiguous for each pixel, so a convolution
broadcasts input pixels straight from memory against weights packed once, and never packs
its activations. Element-wise ops and Concat on axis 1 work on it unchanged.

- ``ReorderInput(X)``: [N, C, H, W] -> [N, C/8, H, W, 8]
- ``ReorderOutput(X)``: [N, C/8, H, W, 8] -> [N, C, H, W]
- ``NchwcConv(X, W, B?, Z?)``: FusedConv's attributes plus ``input_layout`` ("nchwc", or
  "nchw" for a first layer with fewer than 8 input channels); group 1 or depthwise
  (group = C = M); Z and Y NCHWc. Lowered to the direct "NchwcConv" kernel, to
  "NchwcDepthwiseConv", or (3x3 stride 1 where :func:`winograd_pays`) to the Winograd "Conv"
  kernel with ``layout="nchwc"``.
- ``NchwcMaxPool`` / ``NchwcAveragePool``: MaxPool / AveragePool (one output) on NCHWc.
- ``NchwcGlobalAveragePool`` / ``NchwcGlobalMaxPool``: NCHWc in, plain [N, C, 1, 1] out (the
  same bytes as [N, C/8, 1, 1, 8]).

Each numpy reference converts to NCHW, runs the standard op, and converts back.
"""

from __future__ import annotations

import os

import numpy as np

from providers.cpu.ops import conv as conv_ops
from providers.cpu.ops import fused as fused_ops
from providers.cpu.ops import pool as pool_ops
from providers.cpu.opset import FERRY_DOMAIN, NativeCall, register

BLOCK = 8
_F32 = np.dtype(np.float32)


def to_nchwc(x: np.ndarray) -> np.ndarray:
    """[N, C, H, W] -> [N, C/8, H, W, 8] (C a multiple of 8)."""
    n, c, h, w = x.shape
    if c % BLOCK:
        raise ValueError(f"NCHWc needs a multiple of {BLOCK} channels, got {c}")
    return np.ascontiguousarray(x.reshape(n, c // BLOCK, BLOCK, h, w).transpose(0, 1, 3, 4, 2))


def from_nchwc(x: np.ndarray) -> np.ndarray:
    """[N, C/8, H, W, 8] -> [N, C, H, W]."""
    if x.ndim != 5 or x.shape[4] != BLOCK:
        raise ValueError(f"an NCHWc value is [N, C/{BLOCK}, H, W, {BLOCK}], got {x.shape}")
    n, cb, h, w, _ = x.shape
    return np.ascontiguousarray(x.transpose(0, 1, 4, 2, 3).reshape(n, cb * BLOCK, h, w))


def _logical_shape(x: np.ndarray) -> tuple[int, ...]:
    n, cb, h, w, _ = x.shape
    return (n, cb * BLOCK, h, w)


def _is_nchwc_f32(x) -> bool:
    return x is not None and x.dtype == _F32 and x.ndim == 5 and x.shape[4] == BLOCK


# ---- reorders ------------------------------------------------------------------------------

def _reorder_input_native(inputs, attrs):
    x = inputs[0]
    if x is None or x.dtype != _F32 or x.ndim != 4 or x.shape[1] % BLOCK:
        return None
    n, c, h, w = x.shape
    return NativeCall("NchwcReorderInput", {}, [(n, c // BLOCK, h, w, BLOCK)], [_F32])


@register("ReorderInput", since=1, domain=FERRY_DOMAIN, native=_reorder_input_native)
def reorder_input(x):
    """NCHW -> NCHWc."""
    return to_nchwc(np.asarray(x))


def _reorder_output_native(inputs, attrs):
    x = inputs[0]
    if not _is_nchwc_f32(x):
        return None
    return NativeCall("NchwcReorderOutput", {}, [_logical_shape(x)], [_F32])


@register("ReorderOutput", since=1, domain=FERRY_DOMAIN, native=_reorder_output_native)
def reorder_output(x):
    """NCHWc -> NCHW."""
    return from_nchwc(np.asarray(x))


# ---- convolution ---------------------------------------------------------------------------

def winograd_pays(c: int, m: int, kernel, strides, dilations, group: int, out_hw) -> bool:
    """Whether a blocked 3x3 stride-1 conv runs on the Winograd kernel (the NCHW Conv kernel
    with layout "nchwc": its transforms unblock and reblock in cache) rather than the direct
    NchwcConv. See the measurements in the body."""
    if os.environ.get("FERRY_CONV_WINOGRAD", "") == "0":
        return False
    if not (group == 1 and list(kernel) == [3, 3] and list(strides) == [1, 1]
            and list(dilations) == [1, 1] and c >= 64 and m >= 32 and m % BLOCK == 0):
        return False  # (the Winograd kernel's own conditions, conv.cpp setup_winograd)
    # Direct time over Winograd time, one conv, 1 thread: 64->64 at 56 1.40, 128->128 at 28
    # 1.68, 96->96 / 64->96 / 64->64 at 28 1.33 / 1.18 / 1.01, 256->256 at 14 1.38, 160->160
    # at 14 1.09, 512->512 at 7 1.18; but 128->128 at 14 0.98, 96->128 at 14 0.84, 64->64 at
    # 14 0.71, 64->256 at 13 0.80, 192->192 at 7 1.01, DenseNet's 128->32 0.46-0.95.
    small = min(out_hw)
    return ((small >= 24 and m >= 64) or (small >= 14 and c >= 160 and m >= 160)
            or (c >= 256 and m >= 256))


def _nchwc_conv_native(inputs, attrs):
    x, w = inputs[0], inputs[1]
    b = inputs[2] if len(inputs) > 2 else None
    z = inputs[3] if len(inputs) > 3 else None
    layout = attrs.get("input_layout") or "nchwc"
    if x is None or w is None or x.dtype != _F32 or w.dtype != _F32 or w.ndim != 4:
        return None
    if layout == "nchwc":
        if not _is_nchwc_f32(x):
            return None
        x_shape = _logical_shape(x)
    elif layout == "nchw" and x.ndim == 4:
        x_shape = tuple(x.shape)
    else:
        return None
    if b is not None and (b.dtype != _F32 or b.shape != (w.shape[0],)):
        return None
    act = fused_ops._act_params(attrs)
    if act is None:
        return None
    try:
        kernel, strides, dilations, pads, out, group = conv_ops._resolve_conv(x_shape, w.shape,
                                                                              attrs)
    except ValueError:
        return None  # numpy raises the error
    m = w.shape[0]
    depthwise = group > 1 and group == x_shape[1] == m and w.shape[1] == 1
    if m % BLOCK or not (group == 1 or depthwise) or (depthwise and layout != "nchwc"):
        return None
    shape = (x_shape[0], m // BLOCK, *out, BLOCK)
    if z is not None and (z.dtype != _F32 or tuple(z.shape) != shape):
        return None
    params = {"group": group, "strides": strides, "dilations": dilations, "pads": pads,
              "kernel_shape": kernel, **act}
    if layout == "nchwc" and winograd_pays(x_shape[1], m, kernel, strides, dilations, group,
                                           out):
        return NativeCall("Conv", dict(params, layout="nchwc"), [shape], [_F32],
                          inputs=[0, 1, 2, 3] if z is not None else None,
                          constant_inputs=tuple(j for j in (1, 2) if j < len(inputs)))
    if not depthwise:
        params["input_layout"] = layout
    return NativeCall("NchwcDepthwiseConv" if depthwise else "NchwcConv", params, [shape],
                      [_F32], inputs=[0, 1, 2, 3] if z is not None else None,
                      constant_inputs=tuple(j for j in (1, 2) if j < len(inputs)))


@register("NchwcConv", since=1, domain=FERRY_DOMAIN, native=_nchwc_conv_native)
def nchwc_conv(x, w, b=None, z=None, *, auto_pad="NOTSET", dilations=None, group=1,
               kernel_shape=None, pads=None, strides=None, activation="",
               activation_params=None, input_layout="nchwc"):
    """FusedConv on NCHWc values (X plain NCHW with input_layout="nchw")."""
    x = np.asarray(x)
    xn = x if input_layout == "nchw" else from_nchwc(x)
    zn = None if z is None else from_nchwc(np.asarray(z))
    y = fused_ops.fused_conv(xn, w, b, zn, auto_pad=auto_pad, dilations=dilations, group=group,
                             kernel_shape=kernel_shape, pads=pads, strides=strides,
                             activation=activation, activation_params=activation_params)
    return to_nchwc(y)


# ---- pools ---------------------------------------------------------------------------------

def _nchwc_pool_native(kernel_name):
    def lower(inputs, attrs):
        x = inputs[0]
        kernel_shape = list(attrs.get("kernel_shape") or [])
        if not _is_nchwc_f32(x) or len(kernel_shape) != 2:
            return None
        nd = 2
        strides = list(attrs.get("strides") or [1] * nd)
        dilations = list(attrs.get("dilations") or [1] * nd)
        try:
            out, pb, pe = pool_ops._geometry(x.shape[2:4], kernel_shape, strides,
                                             attrs.get("pads"), dilations,
                                             attrs.get("auto_pad", "NOTSET"),
                                             attrs.get("ceil_mode", 0))
        except ValueError:
            return None
        params = {"kernel_shape": [int(k) for k in kernel_shape], "strides": strides,
                  "dilations": dilations, "pads_begin": pb, "pads_end": pe}
        if kernel_name == "NchwcAveragePool":
            params["count_include_pad"] = int(attrs.get("count_include_pad") or 0)
        return NativeCall(kernel_name, params, [(x.shape[0], x.shape[1], *out, BLOCK)], [_F32])
    return lower


@register("NchwcMaxPool", since=1, domain=FERRY_DOMAIN,
          native=_nchwc_pool_native("NchwcMaxPool"))
def nchwc_max_pool(x, *, kernel_shape=None, strides=None, pads=None, dilations=None,
                   auto_pad="NOTSET", ceil_mode=0, storage_order=0):
    """MaxPool (values only) on an NCHWc value."""
    y = pool_ops.max_pool(from_nchwc(np.asarray(x)), kernel_shape=kernel_shape,
                          strides=strides, pads=pads, dilations=dilations, auto_pad=auto_pad,
                          ceil_mode=ceil_mode)
    return to_nchwc(y[0] if isinstance(y, tuple) else y)


@register("NchwcAveragePool", since=1, domain=FERRY_DOMAIN,
          native=_nchwc_pool_native("NchwcAveragePool"))
def nchwc_average_pool(x, *, kernel_shape=None, strides=None, pads=None, dilations=None,
                       auto_pad="NOTSET", ceil_mode=0, count_include_pad=0):
    """AveragePool on an NCHWc value."""
    y = pool_ops.average_pool(from_nchwc(np.asarray(x)), kernel_shape=kernel_shape,
                              strides=strides, pads=pads, dilations=dilations,
                              auto_pad=auto_pad, ceil_mode=ceil_mode,
                              count_include_pad=count_include_pad)
    return to_nchwc(y)


def _nchwc_global_native(kernel_name):
    def lower(inputs, attrs):
        x = inputs[0]
        if not _is_nchwc_f32(x):
            return None
        return NativeCall(kernel_name, {}, [(x.shape[0], x.shape[1] * BLOCK, 1, 1)], [_F32])
    return lower


@register("NchwcGlobalAveragePool", since=1, domain=FERRY_DOMAIN,
          native=_nchwc_global_native("NchwcGlobalAveragePool"))
def nchwc_global_average_pool(x):
    """GlobalAveragePool of an NCHWc value, as a plain [N, C, 1, 1] tensor."""
    return pool_ops.global_average_pool(from_nchwc(np.asarray(x)))


@register("NchwcGlobalMaxPool", since=1, domain=FERRY_DOMAIN,
          native=_nchwc_global_native("NchwcGlobalMaxPool"))
def nchwc_global_max_pool(x):
    """GlobalMaxPool of an NCHWc value, as a plain [N, C, 1, 1] tensor."""
    return pool_ops.global_max_pool(from_nchwc(np.asarray(x)))
