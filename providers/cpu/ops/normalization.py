"""Normalization: BatchNormalization, InstanceNormalization, LayerNormalization,
GroupNormalization, LRN, MeanVarianceNormalization, LpNormalization.

Statistics are computed in float64 (two-pass variance) and results rounded to the input's
dtype. Float32 BatchNormalization (inference), LayerNormalization, InstanceNormalization and
LRN lower to C++ kernels.
"""

from __future__ import annotations

import numpy as np

from providers.cpu.opset import NativeCall, register

_F32 = np.dtype(np.float32)


def _channel(p, x: np.ndarray) -> np.ndarray:
    """A per-channel parameter [C] reshaped to broadcast against [N, C, ...]; a
    per-location one (spatial=0: [C, D1, ...]) to X.shape[1:]."""
    p = np.asarray(p, dtype=np.float64)
    if p.size == x.shape[1] and p.ndim <= 1:
        return p.reshape((-1,) + (1,) * (x.ndim - 2))
    return p.reshape(x.shape[1:])


# --------------------------------------------------------------------------------------------
# BatchNormalization


def _bn_inference(x, scale, b, mean, var, epsilon):
    x = np.asarray(x)
    xf = x.astype(np.float64)
    y = (xf - _channel(mean, x)) / np.sqrt(_channel(var, x) + epsilon) * _channel(scale, x) \
        + _channel(b, x)
    return y.astype(x.dtype)


def _bn_training(x, scale, b, mean, var, epsilon, momentum):
    """Y from the batch statistics; running statistics updated with ``momentum``."""
    x = np.asarray(x)
    axes = (0,) + tuple(range(2, x.ndim))
    xf = x.astype(np.float64)
    batch_mean = xf.mean(axis=axes)
    batch_var = xf.var(axis=axes)
    y = _bn_inference(x, scale, b, batch_mean, batch_var, epsilon)
    stat_dtype = np.asarray(mean).dtype
    run_mean = np.asarray(mean, np.float64) * momentum + batch_mean * (1 - momentum)
    run_var = np.asarray(var, np.float64) * momentum + batch_var * (1 - momentum)
    return (y, run_mean.astype(stat_dtype), run_var.astype(stat_dtype),
            batch_mean.astype(stat_dtype), batch_var.astype(stat_dtype))


def _bn_native(training_attr: bool):
    def lower(ins, attrs):
        x = ins[0]
        if x is None or x.dtype != _F32 or x.ndim < 2:
            return None
        if any(v is None or v.dtype != _F32 or v.size != x.shape[1] for v in ins[1:5]):
            return None
        if training_attr and attrs.get("training_mode", 0):
            return None
        # Before opset 14 more than one output means training statistics (numpy path). When
        # the partition does not say how many outputs the node has, one is assumed.
        if not training_attr and (attrs.get("_num_outputs") or 1) > 1:
            return None
        return NativeCall("BatchNormalization", {"epsilon": float(attrs["epsilon"])},
                          [tuple(x.shape)], [_F32], inputs=[0, 1, 2, 3, 4],
                          constant_inputs=(1, 2, 3, 4))
    return lower


@register("BatchNormalization", since=1, native=_bn_native(False))
def batch_norm_1(x, scale, b, mean, var, *, epsilon=1e-5, momentum=0.9, spatial=1,
                 is_test=0, _ctx=None):
    """Before opset 14: inference unless the node asks for the statistics outputs (mean, var,
    saved_mean, saved_var), which are training-mode results. spatial=0 gives parameters of
    shape [C, D1, ...] (per location)."""
    if _ctx is not None and _ctx.num_outputs > 1:
        outs = _bn_training(x, scale, b, mean, var, epsilon, momentum)
        return outs[:_ctx.num_outputs]
    return _bn_inference(x, scale, b, mean, var, epsilon)


@register("BatchNormalization", since=9, native=_bn_native(False))
def batch_norm_9(x, scale, b, mean, var, *, epsilon=1e-5, momentum=0.9, _ctx=None):
    """Opset 9-13: per-channel parameters; training outputs as in opset 7."""
    if _ctx is not None and _ctx.num_outputs > 1:
        outs = _bn_training(x, scale, b, mean, var, epsilon, momentum)
        return outs[:_ctx.num_outputs]
    return _bn_inference(x, scale, b, mean, var, epsilon)


@register("BatchNormalization", since=14, native=_bn_native(True))
def batch_norm_14(x, scale, b, mean, var, *, epsilon=1e-5, momentum=0.9, training_mode=0):
    """training_mode=1: Y from the batch statistics, plus running_mean and running_var."""
    if training_mode:
        y, run_mean, run_var, _, _ = _bn_training(x, scale, b, mean, var, epsilon, momentum)
        return y, run_mean, run_var
    return _bn_inference(x, scale, b, mean, var, epsilon)


# --------------------------------------------------------------------------------------------
# InstanceNormalization, GroupNormalization


def _standardize(xf: np.ndarray, axes, epsilon: float) -> np.ndarray:
    mean = xf.mean(axis=axes, keepdims=True)
    var = ((xf - mean) ** 2).mean(axis=axes, keepdims=True)
    return (xf - mean) / np.sqrt(var + epsilon)


@register("InstanceNormalization", since=1, native=lambda ins, attrs: _in_native(ins, attrs))
def instance_norm(x, scale, b, *, epsilon=1e-5):
    """Per (n, c): standardize over the spatial axes, then scale and shift per channel."""
    x = np.asarray(x)
    axes = tuple(range(2, x.ndim))
    y = _standardize(x.astype(np.float64), axes, epsilon) * _channel(scale, x) + _channel(b, x)
    return y.astype(x.dtype)


def _in_native(ins, attrs):
    x = ins[0]
    if x is None or x.dtype != _F32 or x.ndim < 3:
        return None
    if any(v is None or v.dtype != _F32 or v.size != x.shape[1] for v in ins[1:3]):
        return None
    return NativeCall("InstanceNormalization", {"epsilon": float(attrs["epsilon"])},
                      [tuple(x.shape)], [_F32], inputs=[0, 1, 2], constant_inputs=(1, 2))


def _group_norm(x, scale, b, epsilon, num_groups, per_group: bool):
    x = np.asarray(x)
    n, c = x.shape[0], x.shape[1]
    g = int(num_groups)
    if g <= 0 or c % g:
        raise ValueError(f"GroupNormalization: {c} channels do not split into {g} groups")
    xf = x.astype(np.float64).reshape((n, g, -1))
    y = _standardize(xf, (2,), epsilon).reshape(x.shape)
    scale = np.asarray(scale, np.float64)
    b = np.asarray(b, np.float64)
    if per_group:  # opset 18: one scale and bias per group
        scale = np.repeat(scale, c // g)
        b = np.repeat(b, c // g)
    y = y * _channel(scale, x) + _channel(b, x)
    return y.astype(x.dtype)


@register("GroupNormalization", since=18)
def group_norm_18(x, scale, b, *, epsilon=1e-5, num_groups=None):
    """Standardize over each group of channels; scale and bias have one value per group."""
    return _group_norm(x, scale, b, epsilon, num_groups, per_group=True)


@register("GroupNormalization", since=21)
def group_norm_21(x, scale, b, *, epsilon=1e-5, num_groups=None, stash_type=1):
    """Standardize over each group of channels; scale and bias have one value per channel."""
    return _group_norm(x, scale, b, epsilon, num_groups, per_group=False)


# --------------------------------------------------------------------------------------------
# LayerNormalization


def _stat_dtype(stash_type: int) -> np.dtype:
    """Mean/InvStdDev's type: the stash type (1 = float32), as onnxruntime."""
    from onnx import helper

    return np.dtype(helper.tensor_dtype_to_np_dtype(int(stash_type)))


def _ln_native(ins, attrs):
    x, scale = ins[0], ins[1]
    b = ins[2] if len(ins) > 2 else None
    if x is None or x.dtype != _F32 or scale is None or scale.dtype != _F32:
        return None
    if b is not None and b.dtype != _F32:
        return None
    if int(attrs.get("stash_type", 1)) != 1:
        return None
    axis = int(attrs["axis"])
    if axis < 0:
        axis += x.ndim
    if not 0 <= axis < x.ndim:
        return None
    norm_shape = x.shape[axis:]
    for p in (scale, b):
        # The kernel takes scale/bias covering the normalized block: full, or broadcast
        # along leading axes of it (e.g. [D] for [..., H, D] is not that: left to numpy).
        if p is not None and tuple(p.shape) != tuple(norm_shape) and p.size != 1 and not (
                p.size == int(np.prod(norm_shape)) and p.ndim <= len(norm_shape)):
            return None
    stat_shape = tuple(x.shape[:axis]) + (1,) * (x.ndim - axis)
    # Mean and InvStdDev only when the node asks for them (all three when it is not known).
    outs = min(3, max(1, int(attrs.get("_num_outputs") or 3)))
    return NativeCall("LayerNormalization", {"axis": axis, "epsilon": float(attrs["epsilon"])},
                      [tuple(x.shape), stat_shape, stat_shape][:outs], [_F32] * outs,
                      inputs=[0, 1, 2 if len(ins) > 2 else None], constant_inputs=(1, 2))


@register("LayerNormalization", since=17, native=_ln_native)
def layer_norm(x, scale, b=None, *, axis=-1, epsilon=1e-5, stash_type=1):
    """Standardize over axes [axis, rank); outputs Y, Mean and InvStdDev (reduced axes kept)."""
    x = np.asarray(x)
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"LayerNormalization: axis {axis} is out of range for rank {x.ndim}")
    if axis < 0:
        axis += x.ndim
    axes = tuple(range(axis, x.ndim))
    xf = x.astype(np.float64)
    mean = xf.mean(axis=axes, keepdims=True)
    var = ((xf - mean) ** 2).mean(axis=axes, keepdims=True)
    inv_std = 1.0 / np.sqrt(var + epsilon)
    y = (xf - mean) * inv_std * np.asarray(scale, np.float64)
    if b is not None:
        y = y + np.asarray(b, np.float64)
    sd = _stat_dtype(stash_type)
    return y.astype(x.dtype), mean.astype(sd), inv_std.astype(sd)


# --------------------------------------------------------------------------------------------
# LRN, MeanVarianceNormalization, LpNormalization


def _lrn_native(ins, attrs):
    x = ins[0]
    if x is None or x.dtype != _F32 or x.ndim < 2:
        return None
    return NativeCall("LRN", {"alpha": float(attrs["alpha"]), "beta": float(attrs["beta"]),
                              "bias": float(attrs["bias"]), "size": int(attrs["size"])},
                      [tuple(x.shape)], [_F32], inputs=[0])


@register("LRN", since=1, native=_lrn_native)
def lrn(x, *, alpha=0.0001, beta=0.75, bias=1.0, size=None):
    """x / (bias + alpha / size * sum of squares over ``size`` neighbouring channels)^beta."""
    x = np.asarray(x)
    size = int(size)
    c = x.shape[1]
    sq = x.astype(np.float64) ** 2
    lo_off, hi_off = (size - 1) // 2, -(-(size - 1) // 2)
    # Running sums over channels: window [c - lo_off, c + hi_off] clipped to [0, C).
    csum = np.concatenate([np.zeros_like(sq[:, :1]), np.cumsum(sq, axis=1)], axis=1)
    idx = np.arange(c)
    lo = np.clip(idx - lo_off, 0, c)
    hi = np.clip(idx + hi_off + 1, 0, c)
    square_sum = np.take(csum, hi, axis=1) - np.take(csum, lo, axis=1)
    y = x / np.power(bias + alpha / size * square_sum, beta)
    return y.astype(x.dtype)


@register("MeanVarianceNormalization", since=9)
def mean_variance_normalization(x, *, axes=(0, 2, 3)):
    """(X - mean) / (std + 1e-9) over ``axes`` (the function body's epsilon)."""
    x = np.asarray(x)
    axes = tuple(int(a) for a in axes)
    xf = x.astype(np.float64)
    mean = xf.mean(axis=axes, keepdims=True)
    var = np.maximum((xf ** 2).mean(axis=axes, keepdims=True) - mean ** 2, 0)
    return ((xf - mean) / (np.sqrt(var) + 1e-9)).astype(x.dtype)


@register("LpNormalization", since=1)
def lp_normalization(x, *, axis=-1, p=2):
    """x / ||x||_p along ``axis`` (p is 1 or 2); a zero norm gives zeros."""
    x = np.asarray(x)
    xf = x.astype(np.float64)
    if p == 1:
        norm = np.abs(xf).sum(axis=axis, keepdims=True)
    elif p == 2:
        norm = np.sqrt((xf * xf).sum(axis=axis, keepdims=True))
    else:
        raise ValueError(f"LpNormalization: p must be 1 or 2, got {p}")
    with np.errstate(invalid="ignore", divide="ignore"):
        y = np.where(norm == 0, 0.0, xf / norm)
    return y.astype(x.dtype)
