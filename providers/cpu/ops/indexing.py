"""Indexing ops: GatherElements, GatherND, ScatterElements, ScatterND, Scatter, OneHot,
NonZero, Compress, Unique, TopK, CumSum, CumProd, Where, TensorScatter.

Negative indices count from the end of their axis wherever the spec allows them; an index
out of range raises IndexError (the spec leaves such models invalid).
"""

from __future__ import annotations

import numpy as np
from onnx import helper

from providers.cpu.opset import register

_BF16 = np.dtype(helper.tensor_dtype_to_np_dtype(16))
_LOW_FLOATS = {np.dtype(np.float16), _BF16}


def _axis(axis: int, ndim: int) -> int:
    axis = int(axis)
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis {axis} is out of range for rank {ndim}")
    return axis + ndim if axis < 0 else axis


def _norm_index(idx, dim) -> np.ndarray:
    """Indices as int64 with negative ones wrapped; ``dim`` broadcasts against ``idx``."""
    idx = np.asarray(idx).astype(np.int64)
    dim = np.asarray(dim, dtype=np.int64)
    if idx.size and (np.any(idx < -dim) or np.any(idx >= dim)):
        raise IndexError("index out of range")
    return np.where(idx < 0, idx + dim, idx)


# --------------------------------------------------------------------------------------------
# Gather / Scatter


@register("GatherElements", since=11)
def gather_elements(data, indices, *, axis=0):
    data = np.asarray(data)
    axis = _axis(axis, data.ndim)
    idx = _norm_index(indices, data.shape[axis])
    return np.take_along_axis(data, idx, axis=axis)


@register("GatherND", since=11)
def gather_nd(data, indices, *, batch_dims=0):
    """``batch_dims`` (opset 12) leading dimensions are shared by data and indices."""
    data = np.asarray(data)
    indices = np.asarray(indices)
    b = int(batch_dims)
    k = indices.shape[-1]
    if b + k > data.ndim:
        raise ValueError("GatherND: indices.shape[-1] + batch_dims exceeds the data rank")
    if indices.shape[:b] != data.shape[:b]:
        raise ValueError("GatherND: batch dimensions of data and indices differ")
    tail = data.shape[b + k:]
    out_shape = indices.shape[:-1] + tail
    batch = int(np.prod(data.shape[:b], dtype=np.int64))
    d = data.reshape((batch,) + data.shape[b:])
    ind = indices.reshape(batch, -1, k)
    ind = _norm_index(ind, np.asarray(data.shape[b:b + k], np.int64))
    rows = np.arange(batch)[:, None]
    picked = d[(rows,) + tuple(ind[..., j] for j in range(k))]
    return picked.reshape(out_shape)


_REDUCERS = {"add": np.add, "mul": np.multiply, "max": np.maximum, "min": np.minimum}


def _scatter_into(out: np.ndarray, index: tuple, updates: np.ndarray, reduction: str):
    """Writes ``updates`` at ``index`` (a numpy advanced index) in place."""
    if reduction == "none":
        out[index] = updates
        return out
    if reduction not in _REDUCERS:
        raise ValueError(f"unknown reduction '{reduction}'")
    ufunc = _REDUCERS[reduction]
    if out.dtype == np.bool_ and reduction in ("add", "mul"):
        ufunc = np.logical_or if reduction == "add" else np.logical_and
    ufunc.at(out, index, updates)
    return out


def _compute_copy(data: np.ndarray) -> np.ndarray:
    # ufunc.at is not defined for bfloat16: scatter in float32 and round back.
    return data.astype(np.float32) if data.dtype == _BF16 else data.copy()


@register("ScatterElements", since=11)
def scatter_elements(data, indices, updates, *, axis=0, reduction="none"):
    """Reductions add/mul (opset 16) and max/min (opset 18) combine duplicates in order."""
    data = np.asarray(data)
    updates = np.asarray(updates)
    axis = _axis(axis, data.ndim)
    idx = _norm_index(indices, data.shape[axis])
    if idx.shape != updates.shape:
        raise ValueError("ScatterElements: indices and updates shapes differ")
    grid = list(np.indices(idx.shape, sparse=True))
    grid[axis] = idx
    out = _compute_copy(data)
    _scatter_into(out, tuple(grid), updates.astype(out.dtype), reduction)
    return out.astype(data.dtype, copy=False)


@register("Scatter", since=9)
def scatter(data, indices, updates, *, axis=0):
    """The deprecated form of ScatterElements (no reduction)."""
    return scatter_elements(data, indices, updates, axis=axis)


@register("ScatterND", since=11)
def scatter_nd(data, indices, updates, *, reduction="none"):
    data = np.asarray(data)
    indices = np.asarray(indices)
    updates = np.asarray(updates)
    k = indices.shape[-1]
    if k > data.ndim:
        raise ValueError("ScatterND: indices.shape[-1] exceeds the data rank")
    if updates.shape != indices.shape[:-1] + data.shape[k:]:
        raise ValueError("ScatterND: updates shape does not match indices and data")
    idx = _norm_index(indices.reshape(-1, k), np.asarray(data.shape[:k], np.int64))
    upd = updates.reshape((-1,) + data.shape[k:])
    out = _compute_copy(data)
    _scatter_into(out, tuple(idx[:, j] for j in range(k)), upd.astype(out.dtype), reduction)
    return out.astype(data.dtype, copy=False)


# --------------------------------------------------------------------------------------------
# OneHot, NonZero, Compress, Where


def _scalar(x, what: str):
    x = np.asarray(x)
    if x.size != 1:
        raise ValueError(f"{what} must hold a single value, got shape {x.shape}")
    return x.reshape(-1)[0]


@register("OneHot", since=9, shape_inputs=(1,))
def one_hot(indices, depth, values, *, axis=-1):
    """``values`` = [off, on]; indices in [-depth, depth) (negatives wrap); others give an
    all-off row."""
    indices = np.asarray(indices)
    values = np.asarray(values)
    if values.size != 2:
        raise ValueError("OneHot values must hold [off_value, on_value]")
    depth = int(_scalar(depth, "OneHot depth"))
    rank = indices.ndim
    axis = int(axis)
    if not -rank - 1 <= axis <= rank:
        raise ValueError(f"OneHot axis {axis} out of range for rank {rank}")
    if axis < 0:
        axis += rank + 1
    ind = indices.astype(np.int64)
    ind = np.where(ind < 0, ind + depth, ind)
    hot = ind[..., None] == np.arange(depth, dtype=np.int64)
    off, on = values.reshape(-1)
    out = np.where(hot, on, off).astype(values.dtype, copy=False)
    return np.moveaxis(out, -1, axis)


@register("NonZero", since=9, dynamic_shape=True)
def non_zero(x):
    """[rank, count] int64 coordinates of the nonzero elements, in row-major order."""
    x = np.asarray(x)
    if x.ndim == 0:
        # A scalar is treated as a one-element vector: [1, count], as onnxruntime answers.
        return np.zeros((1, int(bool(x))), np.int64)
    return np.asarray(np.nonzero(x), dtype=np.int64).reshape(x.ndim, -1)


@register("Compress", since=9, dynamic_shape=True)
def compress(x, condition, *, axis=None):
    """Keeps the slices where ``condition`` is true; a shorter condition drops the rest, and
    entries of a longer one past the axis are ignored (as onnxruntime does)."""
    x = np.asarray(x)
    cond = np.asarray(condition).astype(bool).reshape(-1)
    if axis is None:
        x = x.reshape(-1)
        axis = 0
    axis = _axis(axis, x.ndim)
    cond = cond[:x.shape[axis]]
    return np.compress(cond, x, axis=axis)


@register("Where", since=9)
def where(condition, x, y):
    x, y = np.asarray(x), np.asarray(y)
    return np.where(np.asarray(condition, dtype=bool), x, y).astype(x.dtype, copy=False)


# --------------------------------------------------------------------------------------------
# Unique, TopK, CumSum


@register("Unique", since=11, dynamic_shape=True)
def unique(x, *, axis=None, sorted=1):
    """Y, indices of first occurrences, inverse indices and counts; ``sorted=0`` keeps the
    order of first occurrence."""
    x = np.asarray(x)
    if axis is None:
        flat = x.reshape(-1)
        _, first, inverse, counts = np.unique(flat, return_index=True, return_inverse=True,
                                              return_counts=True)
    else:
        axis = _axis(axis, x.ndim)
        # Rows are compared through integer codes of their elements, so that object (string)
        # tensors work with np.unique(axis=...): code order is the elements' order.
        _, codes = np.unique(x.reshape(-1), return_inverse=True)
        codes = np.moveaxis(codes.reshape(x.shape), axis, 0).reshape(x.shape[axis], -1)
        _, first, inverse, counts = np.unique(codes, axis=0, return_index=True,
                                              return_inverse=True, return_counts=True)
    first = np.asarray(first, np.int64).reshape(-1)
    inverse = np.asarray(inverse, np.int64).reshape(-1)
    counts = np.asarray(counts, np.int64).reshape(-1)
    if not sorted:
        order = np.argsort(first, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        first, counts, inverse = first[order], counts[order], rank[inverse]
    if axis is None:
        y = x.reshape(-1)[first]
    else:
        y = np.take(x, first, axis=axis)
    return y, first, inverse, counts


def _topk(x, k, axis, largest, sorted_):
    """Always sorted: with ``sorted=0`` the order is left free, and sorted is a valid one."""
    del sorted_
    x = np.asarray(x)
    axis = _axis(axis, x.ndim)
    k = int(k)
    n = x.shape[axis]
    if not 0 <= k <= n:
        raise ValueError(f"TopK k={k} is out of range for an axis of size {n}")
    keys = x.astype(np.float32) if x.dtype in _LOW_FLOATS else x
    if largest:
        # A stable ascending sort of the reversed axis, reversed back: descending values,
        # equal values in increasing index order (the spec's tie-break).
        order = np.argsort(np.flip(keys, axis=axis), axis=axis, kind="stable")
        order = np.flip(n - 1 - order, axis=axis)
    else:
        order = np.argsort(keys, axis=axis, kind="stable")
    idx = np.take(order, np.arange(k), axis=axis).astype(np.int64)
    return np.take_along_axis(x, idx, axis=axis), idx


@register("TopK", since=1)
def topk_1(x, *, axis=-1, k=None):
    if k is None:
        raise ValueError("TopK-1 needs the 'k' attribute")
    return _topk(x, k, axis, 1, 1)


@register("TopK", since=10, shape_inputs=(1,))
def topk_10(x, k, *, axis=-1):
    return _topk(x, _scalar(k, "TopK K"), axis, 1, 1)


@register("TopK", since=11, shape_inputs=(1,))
def topk_11(x, k, *, axis=-1, largest=1, sorted=1):
    return _topk(x, _scalar(k, "TopK K"), axis, largest, sorted)


def _cumulative(x, axis, exclusive, reverse, op: str):
    """Running sum/product along ``axis``; ``exclusive`` starts from the identity and leaves
    out the current element, ``reverse`` runs from the end."""
    x = np.asarray(x)
    ax = _axis(_scalar(axis, f"{op} axis"), x.ndim)
    # float16/bfloat16 accumulate in float32 (a half-precision running sum drifts fast) and
    # round once at the end.
    work = x.astype(np.float32) if x.dtype in _LOW_FLOATS else x
    if reverse:
        work = np.flip(work, axis=ax)
    scan, identity = (np.cumsum, np.zeros_like) if op == "CumSum" else (np.cumprod, np.ones_like)
    out = scan(work, axis=ax, dtype=work.dtype)
    if exclusive and out.shape[ax]:
        first = identity(np.take(out, [0], axis=ax))
        out = np.concatenate([first, np.take(out, np.arange(out.shape[ax] - 1), axis=ax)],
                             axis=ax)
    if reverse:
        out = np.flip(out, axis=ax)
    return np.ascontiguousarray(out).astype(x.dtype, copy=False)


@register("CumSum", since=11)
def cumsum(x, axis, *, exclusive=0, reverse=0):
    return _cumulative(x, axis, exclusive, reverse, "CumSum")


@register("CumProd", since=26)
def cumprod(x, axis, *, exclusive=0, reverse=0):
    return _cumulative(x, axis, exclusive, reverse, "CumProd")


# --------------------------------------------------------------------------------------------
# TensorScatter (KV-cache update)


@register("TensorScatter", since=24)
def tensor_scatter(past_cache, update, write_indices=None, *, axis=-2, mode="linear"):
    """A copy of ``past_cache`` [batch, ..., max_seq (at ``axis``), ...] where, for each batch
    entry b, ``update``'s ``seq`` slices along ``axis`` are written at positions
    write_indices[b] + 0..seq-1 (modulo max_seq in "circular" mode); absent write_indices
    means 0 for every batch entry."""
    cache = np.asarray(past_cache)
    update = np.asarray(update)
    if mode not in ("linear", "circular"):
        raise ValueError(f"TensorScatter: unknown mode '{mode}'")
    if cache.ndim < 2 or update.ndim != cache.ndim:
        raise ValueError(f"TensorScatter: past_cache {cache.shape} and update {update.shape} "
                         "must have the same rank >= 2")
    ax = _axis(axis, cache.ndim)
    if ax == 0:
        raise ValueError("TensorScatter: axis cannot be the batch axis 0")
    for d in range(cache.ndim):
        if d != ax and cache.shape[d] != update.shape[d] or d == ax and \
                update.shape[d] > cache.shape[d]:
            raise ValueError(f"TensorScatter: update {update.shape} does not fit past_cache "
                             f"{cache.shape} along axis {ax}")
    batch, max_seq, seq = cache.shape[0], cache.shape[ax], update.shape[ax]
    if write_indices is None:
        starts = np.zeros(batch, np.int64)
    else:
        starts = np.asarray(write_indices).astype(np.int64).reshape(-1)
        if starts.shape != (batch,):
            raise ValueError(f"TensorScatter: write_indices must have shape [{batch}], got "
                             f"{np.shape(write_indices)}")
    pos = starts[:, None] + np.arange(seq, dtype=np.int64)[None, :]     # [batch, seq]
    if mode == "circular":
        pos = pos % max_seq if max_seq else pos
    elif np.any(starts < 0) or np.any(pos >= max_seq):
        raise IndexError(f"TensorScatter: writes past the cache's {max_seq} positions "
                         "(linear mode)")
    out = cache.copy()
    # Move the sequence axis next to the batch axis: [batch, seq, rest...].
    out_v = np.moveaxis(out, ax, 1)
    upd_v = np.moveaxis(update, ax, 1)
    out_v[np.arange(batch)[:, None], pos] = upd_v
    return out
