"""Data movement and shape ops: Transpose, Gather, Concat, Split, Slice, Reshape, Flatten,
Squeeze, Unsqueeze, Expand, Tile, Pad, Identity, Dropout, Shape, Size, Constant,
ConstantOfShape, Range. Shape-deciding inputs arrive on the host."""

from __future__ import annotations

import numpy as np

from providers.cuda.kernels import ints, norm_axis, register


@register("Identity", 1, host_ok=True)
def identity(ctx, x):
    return x


for _v in (13, 14, 16, 19, 21):
    register("Identity", _v, host_ok=True)(identity)


def _dropout_check(node, graph):
    if len(node.inputs) > 2 and node.inputs[2]:
        return "Dropout with a training_mode input is not implemented on CUDA"
    return None


@register("Dropout", 7, check=_dropout_check)
def dropout(ctx, x, ratio=None, training_mode=None, *, seed=0):
    # Inference: identity; the mask (when asked for) is all True.
    if ctx.num_outputs > 1:
        return [x, ctx.xp.ones(x.shape, dtype=bool)]
    return x


for _v in (10, 12, 13):
    register("Dropout", _v, check=_dropout_check)(dropout)


@register("Transpose", 1, host_ok=True)
def transpose(ctx, x, *, perm=None):
    axes = list(perm) if perm else list(range(x.ndim))[::-1]
    return ctx.xp.ascontiguousarray(x.transpose(axes))


register("Transpose", 13, host_ok=True)(transpose)
register("Transpose", 21, host_ok=True)(transpose)


@register("Gather", 1, host_ok=True)
def gather(ctx, data, indices, *, axis=0):
    xp = ctx.xp
    a = norm_axis(axis, data.ndim)
    idx = indices.astype(np.int64, copy=False)
    idx = xp.where(idx < 0, idx + data.shape[a], idx)
    return xp.take(data, idx, axis=a)


register("Gather", 11, host_ok=True)(gather)
register("Gather", 13, host_ok=True)(gather)


@register("GatherElements", 11)
def gather_elements(ctx, data, indices, *, axis=0):
    xp = ctx.xp
    a = norm_axis(axis, data.ndim)
    idx = indices.astype(np.int64, copy=False)
    idx = xp.where(idx < 0, idx + data.shape[a], idx)
    return xp.take_along_axis(data, idx, axis=a)


register("GatherElements", 13)(gather_elements)


@register("Concat", 4, host_ok=True)
def concat(ctx, *xs, axis=0):
    xs = [x for x in xs if x is not None]
    a = norm_axis(axis, xs[0].ndim)
    return ctx.xp.concatenate(xs, axis=a)


register("Concat", 11, host_ok=True)(concat)
register("Concat", 13, host_ok=True)(concat)


def _split_sizes(dim, split, n_out):
    if split:
        if sum(split) != dim:
            raise ValueError(f"Split sizes {split} do not add up to the axis length {dim}")
        return list(split)
    # Equal parts; the last one smaller when the axis does not divide (opset 18 rule).
    size = -(-dim // n_out)
    sizes = [size] * (n_out - 1)
    sizes.append(dim - size * (n_out - 1))
    return sizes


def _split(ctx, x, axis, split, n_out):
    a = norm_axis(axis, x.ndim)
    sizes = _split_sizes(x.shape[a], split, n_out)
    outs, start = [], 0
    for s in sizes:
        idx = [slice(None)] * x.ndim
        idx[a] = slice(start, start + s)
        outs.append(ctx.xp.ascontiguousarray(x[tuple(idx)]))
        start += s
    return outs


@register("Split", 2)
def split2(ctx, x, *, axis=0, split=None):
    return _split(ctx, x, axis, list(split) if split else None, ctx.num_outputs)


register("Split", 11)(split2)


@register("Split", 13, shape_inputs=(1,))
def split13(ctx, x, split=None, *, axis=0, num_outputs=None):
    n = int(num_outputs) if num_outputs else ctx.num_outputs
    return _split(ctx, x, axis, ints(split) if split is not None else None, n)


register("Split", 18, shape_inputs=(1,))(split13)


def _slice(ctx, x, starts, ends, axes, steps):
    rank = x.ndim
    axes = list(range(len(starts))) if not axes else [norm_axis(a, rank) for a in axes]
    steps = steps or [1] * len(starts)
    idx = [slice(None)] * rank
    for s, e, a, st in zip(starts, ends, axes, steps):
        if st == 0:
            raise ValueError("Slice step cannot be 0")
        dim = x.shape[a]
        # Clamp as the spec says (Python slicing alone mishandles huge sentinels on some dims).
        if s < 0:
            s += dim
        if e < 0:
            e += dim
        if st > 0:
            s = min(max(s, 0), dim)
            e = min(max(e, 0), dim)
        else:
            s = min(max(s, -1), dim - 1)
            e = min(max(e, -1), dim - 1)
            if e == -1:
                e = None
        idx[a] = slice(s, e, st)
    return ctx.xp.ascontiguousarray(x[tuple(idx)])


@register("Slice", 1, host_ok=True)
def slice1(ctx, x, *, starts=None, ends=None, axes=None):
    return _slice(ctx, x, list(starts), list(ends), list(axes) if axes else None, None)


@register("Slice", 10, shape_inputs=(1, 2, 3, 4), host_ok=True)
def slice10(ctx, x, starts, ends, axes=None, steps=None):
    return _slice(ctx, x, ints(starts), ints(ends), ints(axes) if axes is not None else None,
                  ints(steps) if steps is not None else None)


register("Slice", 11, shape_inputs=(1, 2, 3, 4), host_ok=True)(slice10)
register("Slice", 13, shape_inputs=(1, 2, 3, 4), host_ok=True)(slice10)


@register("Reshape", 5, shape_inputs=(1,), host_ok=True)
def reshape(ctx, x, shape, *, allowzero=0):
    target = ints(shape)
    if not allowzero:
        target = [x.shape[i] if d == 0 else d for i, d in enumerate(target)]
    return x.reshape(target)


for _v in (13, 14, 19, 21):
    register("Reshape", _v, shape_inputs=(1,), host_ok=True)(reshape)


@register("Flatten", 1, host_ok=True)
def flatten(ctx, x, *, axis=1):
    a = axis + x.ndim if axis < 0 else axis
    outer = int(np.prod(x.shape[:a])) if a else 1
    return x.reshape(outer, -1) if x.size or outer else x.reshape(outer, 0)


for _v in (9, 11, 13, 21):
    register("Flatten", _v, host_ok=True)(flatten)


def _squeeze(x, axes):
    if not axes:
        return x.reshape([d for d in x.shape if d != 1])
    ax = {norm_axis(a, x.ndim) for a in axes}
    for a in ax:
        if x.shape[a] != 1:
            raise ValueError(f"Squeeze: axis {a} has length {x.shape[a]}, not 1")
    return x.reshape([d for i, d in enumerate(x.shape) if i not in ax])


@register("Squeeze", 1, host_ok=True)
def squeeze1(ctx, x, *, axes=None):
    return _squeeze(x, list(axes) if axes else None)


register("Squeeze", 11, host_ok=True)(squeeze1)


@register("Squeeze", 13, shape_inputs=(1,), host_ok=True)
def squeeze13(ctx, x, axes=None):
    return _squeeze(x, ints(axes) if axes is not None else None)


register("Squeeze", 21, shape_inputs=(1,), host_ok=True)(squeeze13)


def _unsqueeze(x, axes):
    rank = x.ndim + len(axes)
    ax = sorted(norm_axis(a, rank) for a in axes)
    shape = list(x.shape)
    for a in ax:
        shape.insert(a, 1)
    return x.reshape(shape)


@register("Unsqueeze", 1, host_ok=True)
def unsqueeze1(ctx, x, *, axes=None):
    return _unsqueeze(x, list(axes))


register("Unsqueeze", 11, host_ok=True)(unsqueeze1)


@register("Unsqueeze", 13, shape_inputs=(1,), host_ok=True)
def unsqueeze13(ctx, x, axes):
    return _unsqueeze(x, ints(axes))


register("Unsqueeze", 21, shape_inputs=(1,), host_ok=True)(unsqueeze13)


@register("Expand", 8, shape_inputs=(1,), host_ok=True)
def expand(ctx, x, shape):
    target = np.broadcast_shapes(tuple(x.shape), tuple(ints(shape)))
    return ctx.xp.ascontiguousarray(ctx.xp.broadcast_to(x, target))


register("Expand", 13, shape_inputs=(1,), host_ok=True)(expand)


@register("Tile", 6, shape_inputs=(1,), host_ok=True)
def tile(ctx, x, repeats):
    return ctx.xp.tile(x, ints(repeats))


register("Tile", 13, shape_inputs=(1,), host_ok=True)(tile)


def _pad_check(node, graph):
    mode = node.attrs.get("mode", "constant")
    if mode not in ("constant", "reflect", "edge"):
        return f"Pad mode '{mode}' is not implemented on CUDA"
    return None


def _pad(ctx, x, pads, value, mode, axes=None):
    xp = ctx.xp
    rank = x.ndim
    axes = list(range(rank)) if not axes else [norm_axis(a, rank) for a in axes]
    n = len(axes)
    if len(pads) != 2 * n:
        raise ValueError(f"Pad: {len(pads)} pads for {n} axes")
    begin = [0] * rank
    end = [0] * rank
    for i, a in enumerate(axes):
        begin[a], end[a] = pads[i], pads[i + n]
    # Negative pads crop.
    idx = tuple(slice(max(-b, 0), x.shape[i] - max(-e, 0)) for i, (b, e)
                in enumerate(zip(begin, end)))
    x = x[idx]
    widths = [(max(b, 0), max(e, 0)) for b, e in zip(begin, end)]
    if mode == "constant":
        return xp.pad(x, widths, mode="constant", constant_values=value)
    return xp.pad(x, widths, mode=mode)


@register("Pad", 2, check=_pad_check)
def pad2(ctx, x, *, mode="constant", pads=None, value=0.0):
    return _pad(ctx, x, list(pads), value, mode)


@register("Pad", 11, shape_inputs=(1, 2, 3), check=_pad_check)
def pad11(ctx, x, pads, constant_value=None, axes=None, *, mode="constant"):
    value = constant_value.reshape(-1)[0].item() if constant_value is not None and \
        constant_value.size else 0
    return _pad(ctx, x, ints(pads), value, mode, ints(axes) if axes is not None else None)


for _v in (13, 18, 19, 21):
    register("Pad", _v, shape_inputs=(1, 2, 3), check=_pad_check)(pad11)


@register("Shape", 1, host_output=True, host_ok=True)
def shape(ctx, x, *, start=0, end=None):
    dims = list(x.shape)
    rank = len(dims)
    s = start + rank if start < 0 else start
    e = rank if end is None else (end + rank if end < 0 else end)
    s, e = min(max(s, 0), rank), min(max(e, 0), rank)
    return np.asarray(dims[s:e], dtype=np.int64)


for _v in (13, 15, 19, 21):
    register("Shape", _v, host_output=True, host_ok=True)(shape)


@register("Size", 1, host_output=True, host_ok=True)
def size(ctx, x):
    return np.asarray(int(np.prod(x.shape)), dtype=np.int64)


for _v in (13, 19, 21):
    register("Size", _v, host_output=True, host_ok=True)(size)


def _constant_check(node, graph):
    if "value" not in node.attrs and not any(k in node.attrs for k in (
            "value_float", "value_floats", "value_int", "value_ints")):
        return "Constant with a string or sparse value stays on the CPU"
    v = node.attrs.get("value")
    if v is not None and np.asarray(v).dtype.kind not in "biuf":
        return "Constant of a non-numeric type stays on the CPU"
    return None


@register("Constant", 1, host_output=True, host_ok=True, check=_constant_check)
def constant(ctx, *, value=None, value_float=None, value_floats=None, value_int=None,
             value_ints=None, value_string=None, value_strings=None, sparse_value=None):
    # Constants are produced on the host; consumers that need them on the device upload them
    # once per run (small) while shape consumers read them directly.
    if value is not None:
        return np.asarray(value)
    if value_float is not None:
        return np.asarray(value_float, dtype=np.float32)
    if value_floats is not None:
        return np.asarray(value_floats, dtype=np.float32)
    if value_int is not None:
        return np.asarray(value_int, dtype=np.int64)
    return np.asarray(value_ints, dtype=np.int64)


for _v in (9, 11, 12, 13, 19, 21):
    register("Constant", _v, host_output=True, host_ok=True, check=_constant_check)(constant)


@register("ConstantOfShape", 9, shape_inputs=(0,), host_ok=True)
def constant_of_shape(ctx, shape, *, value=None):
    v = np.zeros(1, dtype=np.float32) if value is None else np.asarray(value).reshape(-1)
    return ctx.xp.full(tuple(ints(shape)), v[0].item(), dtype=v.dtype)


for _v in (20, 21):
    register("ConstantOfShape", _v, shape_inputs=(0,), host_ok=True)(constant_of_shape)


@register("Range", 11, shape_inputs=(0, 1, 2), host_ok=True)
def range_(ctx, start, limit, delta):
    dt = start.dtype
    s, l_, d = start.reshape(-1)[0].item(), limit.reshape(-1)[0].item(), \
        delta.reshape(-1)[0].item()
    n = max(int(np.ceil((l_ - s) / d)), 0)
    return (ctx.xp.arange(n, dtype=np.float64) * d + s).astype(dt) if dt.kind == "f" else \
        ctx.xp.arange(s, s + n * d, d, dtype=dt)[:n]
