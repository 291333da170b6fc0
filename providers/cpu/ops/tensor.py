"""Tensor manipulation: Concat, Reshape, Flatten, Squeeze, Unsqueeze, Identity, Dropout,
Transpose, Split, Slice, Gather.

Reshape, Flatten, Squeeze, Unsqueeze, Identity (and inference Dropout) lower to the C++
"Copy" kernel, which the plan turns into a view when it can. Concat, Transpose and Gather
have byte-moving C++ kernels that take any element type numpy stores flat (not strings).
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from providers.cpu.opset import NativeCall, register


def _movable(dtype: np.dtype) -> bool:
    """Element types the C++ byte-moving kernels can take (fixed width, no objects)."""
    dtype = np.dtype(dtype)
    return dtype.kind in "biuf" or dtype.type.__module__ == "ml_dtypes"


def _norm_axis(axis: int, rank: int) -> int:
    a = int(axis)
    if a < 0:
        a += rank
    if not 0 <= a < rank:
        raise ValueError(f"axis {axis} is out of range for rank {rank}")
    return a


def _copy_native(shape_fn):
    """Lowering to "Copy": ``shape_fn(ins, attrs)`` gives the output shape."""

    def lower(ins, attrs):
        x = ins[0]
        if not isinstance(x, np.ndarray) or not _movable(x.dtype):
            return None
        try:
            shape = tuple(int(d) for d in shape_fn(ins, attrs))
        except (ValueError, TypeError, IndexError):
            return None
        return NativeCall("Copy", {}, [shape], [x.dtype], inputs=[0])

    return lower


# --------------------------------------------------------------------------------------------
# Reshape, Flatten, Squeeze, Unsqueeze, Identity


def _reshape_shape(in_shape, shape, allowzero: int) -> tuple[int, ...]:
    shape = [int(d) for d in np.asarray(shape).reshape(-1)]
    out = []
    for i, d in enumerate(shape):
        if d == 0 and not allowzero:
            if i >= len(in_shape):
                raise ValueError(f"Reshape: 0 at position {i} but the input has rank "
                                 f"{len(in_shape)}")
            d = in_shape[i]
        out.append(d)
    if out.count(-1) > 1:
        raise ValueError("Reshape: more than one -1 in the shape")
    total = math.prod(in_shape)
    if -1 in out:
        known = math.prod(d for d in out if d != -1)
        if known == 0 or total % known:
            raise ValueError(f"Reshape: cannot infer -1 reshaping {tuple(in_shape)} to {shape}")
        out[out.index(-1)] = total // known
    if math.prod(out) != total or any(d < 0 for d in out):
        raise ValueError(f"Reshape: cannot reshape {tuple(in_shape)} to {shape}")
    return tuple(out)


@register("Reshape", since=1,
          native=_copy_native(lambda ins, a: _reshape_shape(ins[0].shape, a["shape"], 0)))
def reshape_1(data, *, shape=None):
    """Reshape with the target shape as an attribute (0 copies the input's dimension)."""
    data = np.asarray(data)
    return data.reshape(_reshape_shape(data.shape, shape, 0))


@register("Reshape", since=5, shape_inputs=(1,), native=_copy_native(
    lambda ins, a: _reshape_shape(ins[0].shape, ins[1], a["allowzero"])))
def reshape_5(data, shape, *, allowzero=0):
    """Reshape to the ``shape`` input; 0 copies the input's dimension unless allowzero=1."""
    data = np.asarray(data)
    return data.reshape(_reshape_shape(data.shape, shape, allowzero))


def _flatten_shape(in_shape, axis: int) -> tuple[int, int]:
    rank = len(in_shape)
    a = int(axis) + rank if axis < 0 else int(axis)
    if not 0 <= a <= rank:
        raise ValueError(f"Flatten: axis {axis} out of range for rank {rank}")
    return math.prod(in_shape[:a]), math.prod(in_shape[a:])


@register("Flatten", since=1,
          native=_copy_native(lambda ins, a: _flatten_shape(ins[0].shape, a["axis"])))
def flatten(x, *, axis=1):
    """2-D: the axes before ``axis`` times the axes from ``axis`` on."""
    x = np.asarray(x)
    return x.reshape(_flatten_shape(x.shape, axis))


def _squeeze_shape(in_shape, axes) -> tuple[int, ...]:
    rank = len(in_shape)
    if axes is None:
        return tuple(d for d in in_shape if d != 1)
    axes = {_norm_axis(a, rank) for a in np.asarray(axes).reshape(-1).tolist()}
    for a in axes:
        if in_shape[a] != 1:
            raise ValueError(f"Squeeze: dimension {a} has size {in_shape[a]}, not 1")
    return tuple(d for i, d in enumerate(in_shape) if i not in axes)


def _unsqueeze_shape(in_shape, axes) -> tuple[int, ...]:
    if axes is None:
        raise ValueError("Unsqueeze needs axes")
    axes = [int(a) for a in np.asarray(axes).reshape(-1).tolist()]
    rank = len(in_shape) + len(axes)
    norm = sorted(_norm_axis(a, rank) for a in axes)
    if len(set(norm)) != len(norm):
        raise ValueError("Unsqueeze: repeated axes")
    out, it = [], iter(in_shape)
    for i in range(rank):
        out.append(1 if i in norm else next(it))
    return tuple(out)


@register("Squeeze", since=1,
          native=_copy_native(lambda ins, a: _squeeze_shape(ins[0].shape, a["axes"])))
def squeeze_1(data, *, axes=None):
    """Remove the size-1 ``axes`` (all size-1 axes when absent)."""
    data = np.asarray(data)
    return data.reshape(_squeeze_shape(data.shape, axes))


@register("Squeeze", since=13, shape_inputs=(1,), native=_copy_native(
    lambda ins, a: _squeeze_shape(ins[0].shape, ins[1] if len(ins) > 1 else None)))
def squeeze_13(data, axes=None):
    """Remove the size-1 axes given by the optional ``axes`` input."""
    data = np.asarray(data)
    return data.reshape(_squeeze_shape(data.shape, axes))


@register("Unsqueeze", since=1,
          native=_copy_native(lambda ins, a: _unsqueeze_shape(ins[0].shape, a["axes"])))
def unsqueeze_1(data, *, axes=None):
    """Insert size-1 axes at ``axes`` (positions in the output)."""
    data = np.asarray(data)
    return data.reshape(_unsqueeze_shape(data.shape, axes))


@register("Unsqueeze", since=13, shape_inputs=(1,),
          native=_copy_native(lambda ins, a: _unsqueeze_shape(ins[0].shape, ins[1])))
def unsqueeze_13(data, axes):
    """Insert size-1 axes at the positions given by the ``axes`` input."""
    data = np.asarray(data)
    return data.reshape(_unsqueeze_shape(data.shape, axes))


@register("Identity", since=1, native=_copy_native(lambda ins, a: ins[0].shape))
def identity(x):
    """The input itself (tensors, sequences and optionals alike)."""
    if isinstance(x, np.ndarray):
        return x.copy()
    return (x,)  # a sequence (list) is one output: wrapped so it is not read as several


# --------------------------------------------------------------------------------------------
# Dropout


def _dropout_native(ins, attrs):
    # One output (no mask) and not training: a copy. The mask needs the node's output count.
    if attrs.get("_num_outputs") != 1:
        return None
    if len(ins) > 2 and ins[2] is not None and bool(np.asarray(ins[2]).reshape(-1)[0]):
        return None
    return _copy_native(lambda i, a: i[0].shape)(ins, attrs)


@register("Dropout", since=1, native=_dropout_native)
def dropout_1(data, *, ratio=0.5, is_test=0):
    """Inference: the input unchanged, and a mask of ones of the input's type (before
    opset 10). Like onnxruntime, the runtime is always in test mode."""
    data = np.asarray(data)
    return data.copy(), np.ones(data.shape, data.dtype)


@register("Dropout", since=10, native=_dropout_native)
def dropout_10(data, *, ratio=0.5):
    """Inference: the input unchanged and an all-true boolean mask (every element kept; the
    onnx reference agrees, onnxruntime returns all false for opset 10-11)."""
    data = np.asarray(data)
    return data.copy(), np.ones(data.shape, np.bool_)


@register("Dropout", since=12, native=_dropout_native)
def dropout_12(data, ratio=None, training_mode=None, *, seed=None, _ctx=None):
    """training_mode true: zero each element with probability ``ratio`` and scale the rest
    by 1 / (1 - ratio); the mask marks kept elements. Otherwise the input unchanged."""
    data = np.asarray(data)
    r = 0.5 if ratio is None else float(np.asarray(ratio).reshape(-1)[0])
    training = training_mode is not None and bool(np.asarray(training_mode).reshape(-1)[0])
    if not training or r == 0:
        return data.copy(), np.ones(data.shape, np.bool_)
    if not 0 <= r < 1:
        raise ValueError(f"Dropout: ratio must be in [0, 1), got {r}")
    if seed is not None:
        # The legacy MT19937 stream of the seed, as the onnx reference and its test cases.
        mask = np.random.RandomState(int(seed)).uniform(0.0, 1.0, data.shape) >= r
    else:
        rng = _ctx.rng if _ctx is not None and _ctx.rng is not None else np.random.default_rng()
        mask = rng.random(data.shape) >= r
    scale = np.asarray(1.0 / (1.0 - r), dtype=np.float64)
    out = (data.astype(np.float64) * mask * scale).astype(data.dtype)
    return out, mask


# --------------------------------------------------------------------------------------------
# Concat, Transpose


def _concat_native(ins, attrs):
    if not ins or any(v is None for v in ins):
        return None
    dtype = ins[0].dtype
    if not _movable(dtype) or any(v.dtype != dtype or v.ndim != ins[0].ndim for v in ins):
        return None
    try:
        axis = _norm_axis(attrs["axis"], ins[0].ndim)
    except (ValueError, TypeError):
        return None
    out = list(ins[0].shape)
    for v in ins[1:]:
        if any(v.shape[i] != out[i] for i in range(len(out)) if i != axis):
            return None
        out[axis] += v.shape[axis]
    return NativeCall("Concat", {"axis": axis}, [tuple(out)], [dtype])


def _concat(inputs, axis):
    arrays = [np.asarray(x) for x in inputs]
    if not arrays:
        raise ValueError("Concat needs at least one input")
    return np.concatenate(arrays, axis=_norm_axis(axis, arrays[0].ndim))


@register("Concat", since=1, native=_concat_native)
def concat_1(*inputs, axis=1):
    """Join along ``axis`` (default 1 in opset 1-3)."""
    return _concat(inputs, axis)


@register("Concat", since=4, native=_concat_native)
def concat_4(*inputs, axis=None):
    """Join along ``axis``."""
    if axis is None:
        raise ValueError("Concat needs the axis attribute")
    return _concat(inputs, axis)


def _transpose_native(ins, attrs):
    x = ins[0]
    if x is None or not _movable(x.dtype):
        return None
    perm = attrs.get("perm")
    perm = list(range(x.ndim))[::-1] if perm is None else [int(p) for p in perm]
    if sorted(perm) != list(range(x.ndim)):
        return None
    return NativeCall("Transpose", {"perm": perm},
                      [tuple(x.shape[p] for p in perm)], [x.dtype], inputs=[0])


@register("Transpose", since=1, native=_transpose_native)
def transpose(data, *, perm=None):
    """Permute the axes (reversed when ``perm`` is absent)."""
    data = np.asarray(data)
    if perm is not None and sorted(int(p) for p in perm) != list(range(data.ndim)):
        raise ValueError(f"Transpose: perm {list(perm)} is not a permutation of {data.ndim} axes")
    return np.ascontiguousarray(np.transpose(data, None if perm is None else list(perm)))


# --------------------------------------------------------------------------------------------
# Split


def _split(x, split, axis, count):
    x = np.asarray(x)
    axis = _norm_axis(axis, x.ndim)
    dim = x.shape[axis]
    if split is not None and np.asarray(split).size:
        sizes = [int(s) for s in np.asarray(split).reshape(-1)]
        if sum(sizes) != dim or any(s < 0 for s in sizes):
            raise ValueError(f"Split: sizes {sizes} do not add up to {dim}")
    else:
        if count <= 0 or dim % count:
            raise ValueError(f"Split: {dim} does not split into {count} equal parts")
        sizes = [dim // count] * count
    bounds = np.cumsum([0] + sizes)
    idx = [slice(None)] * x.ndim
    outs = []
    for a, b in itertools.pairwise(bounds):
        idx[axis] = slice(int(a), int(b))
        outs.append(x[tuple(idx)].copy())
    return outs


def _outputs(ctx) -> int:
    if ctx is None:
        raise ValueError("Split without sizes needs the node's number of outputs")
    return ctx.num_outputs


@register("Split", since=1, shape_inputs=(1,))
def split_1(x, split_in=None, *, axis=0, split=None, _ctx=None):
    """Sizes from the second input or the ``split`` attribute; else equal parts."""
    sizes = split_in if split_in is not None else split
    count = 0 if sizes is not None else _outputs(_ctx)
    return _split(x, sizes, axis, count)


@register("Split", since=2)
def split_2(x, *, axis=0, split=None, _ctx=None):
    """Sizes from the ``split`` attribute; else equal parts, one per output."""
    return _split(x, split, axis, 0 if split is not None else _outputs(_ctx))


@register("Split", since=13, shape_inputs=(1,))
def split_13(x, split=None, *, axis=0, _ctx=None):
    """Sizes from the optional ``split`` input; else equal parts, one per output."""
    return _split(x, split, axis, 0 if split is not None else _outputs(_ctx))


@register("Split", since=18, shape_inputs=(1,))
def split_18(x, split=None, *, axis=0, num_outputs=None, _ctx=None):
    """With ``num_outputs`` and no sizes: chunks of ceil(dim / num_outputs), the last
    smaller."""
    x = np.asarray(x)
    if split is not None and np.asarray(split).size:
        return _split(x, split, axis, 0)
    if num_outputs is None:
        return _split(x, None, axis, _outputs(_ctx))
    n = int(num_outputs)
    wanted = _ctx.num_outputs if _ctx is not None else n
    if n < 1 or n != wanted:
        raise ValueError(f"Split: num_outputs={n} but the node has {wanted} output(s)")
    dim = x.shape[_norm_axis(axis, x.ndim)]
    chunk = -(-dim // n)
    sizes = [min(chunk, max(0, dim - i * chunk)) for i in range(n)]
    return _split(x, sizes, axis, 0)


# --------------------------------------------------------------------------------------------
# Slice


def _slice(data, starts, ends, axes, steps):
    data = np.asarray(data)
    starts = [int(v) for v in np.asarray(starts).reshape(-1)]
    ends = [int(v) for v in np.asarray(ends).reshape(-1)]
    rank = data.ndim
    axes = list(range(len(starts))) if axes is None else [
        _norm_axis(a, rank) for a in np.asarray(axes).reshape(-1).tolist()]
    steps = [1] * len(starts) if steps is None else [
        int(v) for v in np.asarray(steps).reshape(-1)]
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise ValueError("Slice: starts, ends, axes and steps differ in length")
    if len(set(axes)) != len(axes):
        raise ValueError("Slice: repeated axes")
    index = [slice(None)] * rank
    for start, end, axis, step in zip(starts, ends, axes, steps):
        if step == 0:
            raise ValueError("Slice: step 0")
        dim = data.shape[axis]
        if start < 0:
            start += dim
        if end < 0:
            end += dim
        if step > 0:
            start = min(max(start, 0), dim)
            end = min(max(end, 0), dim)
            index[axis] = slice(start, end, step)
        else:
            start = min(max(start, 0), dim - 1)
            end = min(max(end, -1), dim - 1)
            # end == -1 means "through index 0", which a python slice spells None.
            index[axis] = slice(start, None if end < 0 else end, step)
    return data[tuple(index)].copy()


@register("Slice", since=1)
def slice_1(data, *, starts=None, ends=None, axes=None):
    """Slice with attributes (no steps)."""
    return _slice(data, starts, ends, axes, None)


@register("Slice", since=10, shape_inputs=(1, 2, 3, 4))
def slice_10(data, starts, ends, axes=None, steps=None):
    """Slice with inputs; negative steps walk backwards."""
    return _slice(data, starts, ends, axes, steps)


# --------------------------------------------------------------------------------------------
# Gather


def _gather_native(ins, attrs):
    data, indices = ins[0], ins[1]
    if data is None or indices is None or not _movable(data.dtype) or data.ndim == 0:
        return None
    if indices.dtype not in (np.int32, np.int64):
        return None
    try:
        axis = _norm_axis(attrs["axis"], data.ndim)
    except ValueError:
        return None
    shape = data.shape[:axis] + indices.shape + data.shape[axis + 1:]
    return NativeCall("Gather", {"axis": axis}, [tuple(shape)], [data.dtype],
                      inputs=[0, 1], constant_inputs=(1,))


@register("Gather", since=1, native=_gather_native)
def gather(data, indices, *, axis=0):
    """Take the slices at ``indices`` along ``axis``; negative indices count from the end."""
    data = np.asarray(data)
    indices = np.asarray(indices)
    axis = _norm_axis(axis, data.ndim)
    dim = data.shape[axis]
    idx = indices.astype(np.int64)
    if np.any((idx < -dim) | (idx >= dim)):
        raise IndexError(f"Gather: indices out of range [-{dim}, {dim})")
    return np.take(data, np.where(idx < 0, idx + dim, idx), axis=axis)
