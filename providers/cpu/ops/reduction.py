"""Reductions: ReduceSum/Mean/Max/Min/Prod/L1/L2/LogSum/LogSumExp/SumSquare, ArgMax/ArgMin.

Reduce* ops take ``axes`` as an attribute in their early versions and as an optional second
input later (ReduceSum from opset 13, the others from 18, which also brings
``noop_with_empty_axes``). No axes means all axes, unless ``noop_with_empty_axes`` is set:
then the input passes through unchanged. Reductions over an empty set give the spec's
identity: 0 for the sums and norms, 1 for the product, -inf (or the type's minimum) for max,
log-sum and log-sum-exp, +inf (or the type's maximum) for min; the mean of nothing is NaN.
"""

from __future__ import annotations

import numpy as np
from onnx import helper

from providers.cpu.opset import register

# float16/bfloat16 accumulate in float32 and round once at the end.
_LOW_FLOATS = {np.dtype(np.float16), np.dtype(helper.tensor_dtype_to_np_dtype(16))}


def _norm_axes(axes, ndim: int) -> tuple[int, ...]:
    out = set()
    for a in np.asarray(axes, dtype=np.int64).reshape(-1).tolist():
        if not -ndim <= a < max(ndim, 1):
            raise ValueError(f"axis {a} is out of range for rank {ndim}")
        out.add(a + ndim if a < 0 else a)
    return tuple(sorted(out))


def _lowest(dtype: np.dtype):
    if dtype == np.bool_:
        return False
    if dtype.kind in "iu":
        return np.iinfo(dtype).min
    return -np.inf


def _highest(dtype: np.dtype):
    if dtype == np.bool_:
        return True
    if dtype.kind in "iu":
        return np.iinfo(dtype).max
    return np.inf


def _reduce_max_min(x, axes, keepdims, is_max):
    count = int(np.prod([x.shape[a] for a in axes], dtype=np.int64))
    if count == 0:
        shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape))
        fill = _lowest(x.dtype) if is_max else _highest(x.dtype)
        out = np.full(shape, fill, dtype=x.dtype)
        return out if keepdims else out.reshape(
            tuple(d for i, d in enumerate(x.shape) if i not in axes))
    fn = np.max if is_max else np.min
    return fn(x, axis=axes, keepdims=bool(keepdims))


def _log_sum_exp(x, axes, keepdims):
    count = int(np.prod([x.shape[a] for a in axes], dtype=np.int64))
    if count == 0:
        s = np.sum(x, axis=axes, keepdims=bool(keepdims))
        return np.full(s.shape, -np.inf, dtype=x.dtype)
    m = np.max(x, axis=axes, keepdims=True)
    # Infinite maxima (all -inf, or a +inf present) would make x - m NaN.
    m = np.where(np.isfinite(m), m, np.zeros((), m.dtype))
    with np.errstate(divide="ignore"):
        out = np.log(np.sum(np.exp(x - m), axis=axes, keepdims=True)) + m
    return out if keepdims else out.reshape(
        tuple(d for i, d in enumerate(x.shape) if i not in axes))


def _int_log_sum_exp(x, axes, keepdims):
    """Integer LogSumExp as onnxruntime computes it, in the integer type throughout:
    max + int(log(sum(int(exp(x - max))))), where each int() truncates."""
    if int(np.prod([x.shape[a] for a in axes], dtype=np.int64)) == 0:
        shape = np.sum(x, axis=axes, keepdims=keepdims).shape
        return np.zeros(shape, x.dtype)  # -inf has no integer form: the spec leaves it undefined
    m = np.max(x, axis=axes, keepdims=True)
    terms = np.trunc(np.exp(x.astype(np.float64) - m.astype(np.float64)))
    s = np.sum(terms, axis=axes, keepdims=True)
    out = (np.trunc(np.log(s)) + m.astype(np.float64)).astype(x.dtype)
    return out if keepdims else out.reshape(
        tuple(d for i, d in enumerate(x.shape) if i not in axes))


def _reduce(kind: str, data, axes, keepdims, noop_with_empty_axes) -> np.ndarray:
    x = np.asarray(data)
    dtype = x.dtype
    if axes is None or np.asarray(axes).size == 0:
        # "No reduction" still applies the per-element part (abs, square, log...), as
        # onnxruntime and the onnx reference do: it is a reduction over no axes.
        axes = () if noop_with_empty_axes else tuple(range(x.ndim))
    else:
        axes = _norm_axes(axes, x.ndim)
    kd = bool(keepdims)
    if kind in ("Max", "Min"):
        return np.asarray(_reduce_max_min(x, axes, kd, kind == "Max")).astype(dtype, copy=False)
    if dtype in _LOW_FLOATS:
        x = x.astype(np.float32)
    elif dtype.kind in "iu" and kind == "LogSumExp":
        return _int_log_sum_exp(x, axes, kd)
    elif dtype.kind in "iu" and kind in ("Mean", "L2", "LogSum"):
        x = x.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if kind == "Sum":
            out = np.sum(x, axis=axes, keepdims=kd, dtype=x.dtype)
        elif kind == "Mean":
            out = np.mean(x, axis=axes, keepdims=kd) if x.size else np.sum(
                x, axis=axes, keepdims=kd) * np.nan
        elif kind == "Prod":
            out = np.prod(x, axis=axes, keepdims=kd, dtype=x.dtype)
        elif kind == "L1":
            out = np.sum(np.abs(x), axis=axes, keepdims=kd, dtype=x.dtype)
        elif kind == "L2":
            out = np.sqrt(np.sum(x * x, axis=axes, keepdims=kd, dtype=x.dtype))
        elif kind == "SumSquare":
            out = np.sum(x * x, axis=axes, keepdims=kd, dtype=x.dtype)
        elif kind == "LogSum":
            out = np.log(np.sum(x, axis=axes, keepdims=kd, dtype=x.dtype))
        elif kind == "LogSumExp":
            out = _log_sum_exp(x, axes, kd)
        else:
            raise ValueError(kind)
    out = np.asarray(out)
    if dtype.kind in "iu" and out.dtype.kind == "f":
        # Non-finite values (mean of nothing) have no integer form; keep numpy's cast quiet.
        with np.errstate(invalid="ignore"):
            return out.astype(dtype)
    return out.astype(dtype, copy=False)


def _register_reduce(kind: str, input_since: int):
    op = f"Reduce{kind}"

    @register(op, since=1)
    def attr_form(data, *, axes=None, keepdims=1):
        return _reduce(kind, data, axes, keepdims, 0)

    @register(op, since=input_since, shape_inputs=(1,))
    def input_form(data, axes=None, *, keepdims=1, noop_with_empty_axes=0):
        return _reduce(kind, data, axes, keepdims, noop_with_empty_axes)

    attr_form.__name__ = f"reduce_{kind.lower()}_attr_axes"
    input_form.__name__ = f"reduce_{kind.lower()}"


_register_reduce("Sum", 13)
for _kind in ("Mean", "Max", "Min", "Prod", "L1", "L2", "LogSum", "LogSumExp", "SumSquare"):
    _register_reduce(_kind, 18)
del _kind


def _arg(data, axis, keepdims, select_last_index, is_max):
    x = np.asarray(data)
    if x.dtype in _LOW_FLOATS:
        x = x.astype(np.float32)
    axis = _norm_axes([axis], x.ndim)[0]
    fn = np.argmax if is_max else np.argmin
    if select_last_index:
        flipped = np.flip(x, axis=axis)
        idx = x.shape[axis] - 1 - fn(flipped, axis=axis, keepdims=True)
    else:
        idx = fn(x, axis=axis, keepdims=True)
    if not keepdims:
        idx = np.squeeze(idx, axis=axis)
    return np.asarray(idx, dtype=np.int64)


@register("ArgMax", since=1)
def arg_max(data, *, axis=0, keepdims=1, select_last_index=0):
    return _arg(data, axis, keepdims, select_last_index, True)


@register("ArgMin", since=1)
def arg_min(data, *, axis=0, keepdims=1, select_last_index=0):
    return _arg(data, axis, keepdims, select_last_index, False)
