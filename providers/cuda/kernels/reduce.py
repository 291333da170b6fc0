"""Reductions (ReduceSum/Mean/Max/Min/Prod/L1/L2/LogSum/LogSumExp/SumSquare) and ArgMax/Min.

Axes are an attribute up to opset 12 (ReduceSum) / 17 (the others) and a host input after."""

from __future__ import annotations

import numpy as np

from providers.cuda.kernels import ints, norm_axis, register


def _axes(x, axes, noop_with_empty_axes):
    if axes is None or len(axes) == 0:
        return None if noop_with_empty_axes else tuple(range(x.ndim))
    return tuple(sorted({norm_axis(a, x.ndim) for a in axes}))


def _acc(x):
    """Accumulate low-precision floats in float32."""
    return x.astype(np.float32) if x.dtype == np.float16 else x


_FUNCS = {
    "ReduceSum": lambda xp, x, ax, k: _acc(x).sum(axis=ax, keepdims=k),
    "ReduceMean": lambda xp, x, ax, k: _acc(x).mean(axis=ax, keepdims=k),
    "ReduceMax": lambda xp, x, ax, k: x.max(axis=ax, keepdims=k),
    "ReduceMin": lambda xp, x, ax, k: x.min(axis=ax, keepdims=k),
    "ReduceProd": lambda xp, x, ax, k: _acc(x).prod(axis=ax, keepdims=k),
    "ReduceL1": lambda xp, x, ax, k: xp.abs(_acc(x)).sum(axis=ax, keepdims=k),
    "ReduceL2": lambda xp, x, ax, k: xp.sqrt((_acc(x) * _acc(x)).sum(axis=ax, keepdims=k)),
    "ReduceSumSquare": lambda xp, x, ax, k: (_acc(x) * _acc(x)).sum(axis=ax, keepdims=k),
    "ReduceLogSum": lambda xp, x, ax, k: xp.log(_acc(x).sum(axis=ax, keepdims=k)),
    "ReduceLogSumExp": lambda xp, x, ax, k: _logsumexp(xp, _acc(x), ax, k),
}


def _logsumexp(xp, x, ax, keep):
    m = x.max(axis=ax, keepdims=True)
    m = xp.where(xp.isfinite(m), m, 0)
    s = xp.log(xp.exp(x - m).sum(axis=ax, keepdims=True)) + m
    return s if keep else s.reshape([d for i, d in enumerate(x.shape) if i not in ax])


def _reduce(ctx, name, x, axes, keepdims, noop):
    ax = _axes(x, axes, noop)
    if ax is None:
        return x.copy()
    if x.size == 0 and name in ("ReduceMax", "ReduceMin", "ReduceLogSumExp"):
        return _empty_reduction(ctx.xp, name, x, ax, keepdims)
    y = _FUNCS[name](ctx.xp, x, ax, bool(keepdims))
    return ctx.xp.asarray(y).astype(x.dtype, copy=False)


def _empty_reduction(xp, name, x, ax, keepdims):
    """Reducing zero elements gives the operation's identity (-inf for max...)."""
    shape = [1 if i in ax else d for i, d in enumerate(x.shape)] if keepdims else \
        [d for i, d in enumerate(x.shape) if i not in ax]
    dt = x.dtype
    low = name in ("ReduceMax", "ReduceLogSumExp")
    if dt == np.bool_:
        fill = not low
    elif dt.kind == "f":
        fill = -np.inf if low else np.inf
    else:
        info = np.iinfo(dt)
        fill = info.min if low else info.max
    return xp.full(shape, fill, dtype=dt)


def _attr_kernel(name):
    def kernel(ctx, x, *, axes=None, keepdims=1):
        return _reduce(ctx, name, x, axes, keepdims, 0)

    return kernel


def _input_kernel(name):
    def kernel(ctx, x, axes=None, *, keepdims=1, noop_with_empty_axes=0):
        return _reduce(ctx, name, x, ints(axes) if axes is not None else None, keepdims,
                       noop_with_empty_axes)

    return kernel


for _name in _FUNCS:
    _since_input = 13 if _name == "ReduceSum" else 18
    for _v in (1, 11, 13):
        if _v < _since_input:
            register(_name, _v, host_ok=_name in ("ReduceProd", "ReduceSum"))(
                _attr_kernel(_name))
    _extra = (18,) if _name != "ReduceSum" else (13,)
    for _v in _extra:
        register(_name, _v, shape_inputs=(1,), host_ok=_name in ("ReduceProd", "ReduceSum"))(
            _input_kernel(_name))
    if _name in ("ReduceMax", "ReduceMin"):
        register(_name, 20, shape_inputs=(1,))(_input_kernel(_name))


def _arg(ctx, x, axis, keepdims, select_last_index, fn):
    xp = ctx.xp
    a = norm_axis(axis, x.ndim)
    if select_last_index:
        flipped = xp.flip(x, axis=a)
        idx = x.shape[a] - 1 - fn(flipped, axis=a)
    else:
        idx = fn(x, axis=a)
    idx = idx.astype(np.int64)
    return xp.expand_dims(idx, a) if keepdims else idx


@register("ArgMax", 1)
def argmax(ctx, x, *, axis=0, keepdims=1, select_last_index=0):
    return _arg(ctx, x, axis, keepdims, select_last_index, ctx.xp.argmax)


@register("ArgMin", 1)
def argmin(ctx, x, *, axis=0, keepdims=1, select_last_index=0):
    return _arg(ctx, x, axis, keepdims, select_last_index, ctx.xp.argmin)


for _v in (11, 12, 13):
    register("ArgMax", _v)(argmax)
    register("ArgMin", _v)(argmin)
