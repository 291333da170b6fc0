"""Shape computation and tensor construction: Shape, Size, Constant, ConstantOfShape, Expand,
Tile, Pad, Range, EyeLike, Trilu, DepthToSpace, SpaceToDepth, CenterCropPad, Col2Im,
ReverseSequence."""

from __future__ import annotations

import math

import numpy as np
from providers.cpu.opset import register
from runtime.ir import onnx_dtype_to_numpy


def _ints(v) -> list[int]:
    return [int(x) for x in np.asarray(v).reshape(-1)]


# --------------------------------------------------------------------------------------------
# Shape, Size


@register("Shape", since=1, value_from_shape=True)
def shape(data, *, start=0, end=None):
    dims = np.asarray(data).shape
    rank = len(dims)

    def clamp(i):
        i = int(i) + rank if int(i) < 0 else int(i)
        return min(max(i, 0), rank)

    s = clamp(start)
    e = rank if end is None else clamp(end)
    return np.array(dims[s:e], dtype=np.int64)


@register("Size", since=1, value_from_shape=True)
def size(data):
    return np.array(np.asarray(data).size, dtype=np.int64)


# --------------------------------------------------------------------------------------------
# Constant, ConstantOfShape


@register("Constant", since=1)
def constant(*, value=None, sparse_value=None, value_float=None, value_floats=None,
             value_int=None, value_ints=None, value_string=None, value_strings=None):
    given = [(k, v) for k, v in (("value", value), ("sparse_value", sparse_value),
                                 ("value_float", value_float), ("value_floats", value_floats),
                                 ("value_int", value_int), ("value_ints", value_ints),
                                 ("value_string", value_string),
                                 ("value_strings", value_strings)) if v is not None]
    if len(given) != 1:
        raise ValueError(f"Constant needs exactly one value attribute, got {len(given)}")
    key, v = given[0]
    if key in ("value", "sparse_value"):
        return np.array(v, copy=True)
    if key == "value_float":
        return np.array(v, dtype=np.float32)
    if key == "value_floats":
        return np.array(v, dtype=np.float32).reshape(-1)
    if key == "value_int":
        return np.array(v, dtype=np.int64)
    if key == "value_ints":
        return np.array(v, dtype=np.int64).reshape(-1)
    if key == "value_string":
        return np.array(v, dtype=object)
    return np.array(list(v), dtype=object).reshape(-1)


@register("ConstantOfShape", since=9, shape_inputs=(0,))
def constant_of_shape(input, *, value=None):
    dims = _ints(input)
    if any(d < 0 for d in dims):
        raise ValueError(f"ConstantOfShape: negative dimension in {dims}")
    if value is None:
        return np.zeros(dims, dtype=np.float32)
    v = np.asarray(value).reshape(-1)
    if v.size != 1:
        raise ValueError("ConstantOfShape: value must hold one element")
    return np.full(dims, v[0], dtype=v.dtype)


# --------------------------------------------------------------------------------------------
# Expand, Tile


@register("Expand", since=8, shape_inputs=(1,))
def expand(input, shape):
    x = np.asarray(input)
    dims = _ints(shape)
    out_shape = np.broadcast_shapes(x.shape, tuple(dims))
    return np.array(np.broadcast_to(x, out_shape), copy=True)


@register("Tile", since=6, shape_inputs=(1,))
def tile(input, repeats):
    x = np.asarray(input)
    reps = _ints(repeats)
    if len(reps) != x.ndim:
        raise ValueError(f"Tile: {len(reps)} repeats for a rank-{x.ndim} input")
    if any(r < 0 for r in reps):
        raise ValueError("Tile: repeats must be non-negative")
    return np.tile(x, reps)


# --------------------------------------------------------------------------------------------
# Pad

_NP_PAD_MODE = {"constant": "constant", "reflect": "reflect", "edge": "edge", "wrap": "wrap"}


def _pad(x: np.ndarray, pads: list[int], mode: str, value, axes=None) -> np.ndarray:
    rank = x.ndim
    if axes is None:
        axes = list(range(rank))
    axes = [a + rank if a < 0 else a for a in axes]
    if len(pads) != 2 * len(axes):
        raise ValueError(f"Pad: {len(pads)} pads for {len(axes)} axes")
    begin = [0] * rank
    end = [0] * rank
    for i, a in enumerate(axes):
        begin[a] = pads[i]
        end[a] = pads[i + len(axes)]
    # Negative pads crop first.
    slices = tuple(slice(-b if b < 0 else 0, x.shape[d] + e if e < 0 else None)
                   for d, (b, e) in enumerate(zip(begin, end)))
    x = x[slices]
    widths = [(max(b, 0), max(e, 0)) for b, e in zip(begin, end)]
    if mode not in _NP_PAD_MODE:
        raise ValueError(f"Pad: unknown mode '{mode}'")
    if mode == "constant":
        cval = np.zeros((), x.dtype) if value is None else np.asarray(value).reshape(-1)
        cval = cval[0] if np.ndim(cval) else cval
        if x.dtype == object:
            cval = "" if value is None else cval
        return np.pad(x, widths, mode="constant", constant_values=cval)
    if x.size == 0:
        raise ValueError(f"Pad: mode '{mode}' cannot pad an empty tensor")
    return np.pad(x, widths, mode=_NP_PAD_MODE[mode])


@register("Pad", since=2)
def pad_2(data, *, mode="constant", pads=None, value=0.0):
    x = np.asarray(data)
    return _pad(x, _ints(pads), mode, np.asarray(value, dtype=x.dtype) if x.dtype != object
                else value)


@register("Pad", since=11, shape_inputs=(1, 3))
def pad_11(data, pads, constant_value=None, axes=None, *, mode="constant"):
    x = np.asarray(data)
    ax = None if axes is None else _ints(axes)
    return _pad(x, _ints(pads), mode, constant_value, ax)


# --------------------------------------------------------------------------------------------
# Range, EyeLike, Trilu


@register("Range", since=11, shape_inputs=(0, 1, 2))
def range_(start, limit, delta):
    start, limit, delta = (np.asarray(v) for v in (start, limit, delta))
    dtype = start.dtype
    d = delta.item()
    if d == 0:
        raise ValueError("Range: delta must not be 0")
    n = max(int(math.ceil((limit.item() - start.item()) / d)), 0)
    return (start + np.arange(n, dtype=dtype) * delta).astype(dtype)


@register("EyeLike", since=9)
def eye_like(input, *, dtype=None, k=0):
    x = np.asarray(input)
    if x.ndim != 2:
        raise ValueError("EyeLike: input must be 2-D")
    out_dtype = x.dtype if dtype is None else onnx_dtype_to_numpy(int(dtype))
    return np.eye(x.shape[0], x.shape[1], k=int(k), dtype=out_dtype)


@register("Trilu", since=14)
def trilu(input, k=None, *, upper=1):
    x = np.asarray(input)
    kk = 0 if k is None else int(np.asarray(k).reshape(-1)[0])
    return np.triu(x, kk) if upper else np.tril(x, kk)


# --------------------------------------------------------------------------------------------
# DepthToSpace, SpaceToDepth


@register("DepthToSpace", since=1)
def depth_to_space(input, *, blocksize=None, mode="DCR"):
    x = np.asarray(input)
    b = int(blocksize)
    n, c, h, w = x.shape
    if c % (b * b):
        raise ValueError("DepthToSpace: channels not divisible by blocksize^2")
    if mode == "DCR":
        t = x.reshape(n, b, b, c // (b * b), h, w).transpose(0, 3, 4, 1, 5, 2)
    elif mode == "CRD":
        t = x.reshape(n, c // (b * b), b, b, h, w).transpose(0, 1, 4, 2, 5, 3)
    else:
        raise ValueError(f"DepthToSpace: unknown mode '{mode}'")
    return np.ascontiguousarray(t.reshape(n, c // (b * b), h * b, w * b))


@register("SpaceToDepth", since=1)
def space_to_depth(input, *, blocksize=None, mode="DCR"):
    x = np.asarray(input)
    b = int(blocksize)
    n, c, h, w = x.shape
    if h % b or w % b:
        raise ValueError("SpaceToDepth: spatial dims not divisible by blocksize")
    t = x.reshape(n, c, h // b, b, w // b, b)
    if mode == "DCR":
        t = t.transpose(0, 3, 5, 1, 2, 4)
    elif mode == "CRD":
        t = t.transpose(0, 1, 3, 5, 2, 4)
    else:
        raise ValueError(f"SpaceToDepth: unknown mode '{mode}'")
    return np.ascontiguousarray(t.reshape(n, c * b * b, h // b, w // b))


# --------------------------------------------------------------------------------------------
# CenterCropPad, Col2Im, ReverseSequence


@register("CenterCropPad", since=18, shape_inputs=(1,))
def center_crop_pad(input_data, shape, *, axes=None):
    x = np.asarray(input_data)
    target = _ints(shape)
    ax = list(range(x.ndim)) if axes is None else [a + x.ndim if a < 0 else a for a in axes]
    out_shape = list(x.shape)
    for a, t in zip(ax, target):
        out_shape[a] = t
    out = np.zeros(out_shape, dtype=x.dtype)
    src, dst = [slice(None)] * x.ndim, [slice(None)] * x.ndim
    for a, t in zip(ax, target):
        d = x.shape[a]
        if d >= t:  # crop
            s = (d - t) // 2
            src[a], dst[a] = slice(s, s + t), slice(0, t)
        else:  # pad
            s = (t - d) // 2
            src[a], dst[a] = slice(0, d), slice(s, s + d)
    out[tuple(dst)] = x[tuple(src)]
    return out


@register("Col2Im", since=18, shape_inputs=(1, 2))
def col2im(input, image_shape, block_shape, *, dilations=None, pads=None, strides=None):
    x = np.asarray(input)
    img = _ints(image_shape)
    blk = _ints(block_shape)
    nd = len(img)
    dil = list(dilations) if dilations else [1] * nd
    pad = list(pads) if pads else [0] * (2 * nd)
    st = list(strides) if strides else [1] * nd
    n, ckk, L = x.shape
    kprod = math.prod(blk)
    c = ckk // kprod
    out_sp = [(img[i] + pad[i] + pad[i + nd] - dil[i] * (blk[i] - 1) - 1) // st[i] + 1
              for i in range(nd)]
    if math.prod(out_sp) != L:
        raise ValueError("Col2Im: block count does not match the image shape")
    padded = np.zeros([n, c] + [img[i] + pad[i] + pad[i + nd] for i in range(nd)], x.dtype)
    cols = x.reshape(n, c, *blk, *out_sp)
    for kidx in np.ndindex(*blk):
        for oidx in np.ndindex(*out_sp):
            pos = tuple(oidx[i] * st[i] + kidx[i] * dil[i] for i in range(nd))
            padded[(slice(None), slice(None)) + pos] += cols[(slice(None), slice(None))
                                                             + kidx + oidx]
    crop = tuple(slice(pad[i], pad[i] + img[i]) for i in range(nd))
    return np.ascontiguousarray(padded[(slice(None), slice(None)) + crop])


@register("ReverseSequence", since=10)
def reverse_sequence(input, sequence_lens, *, batch_axis=1, time_axis=0):
    x = np.asarray(input)
    out = x.copy()
    lens = _ints(sequence_lens)
    for b, n in enumerate(lens):
        src = [slice(None)] * x.ndim
        src[batch_axis] = b
        src[time_axis] = slice(0, n)
        out[tuple(src)] = np.flip(x[tuple(src)], axis=time_axis - (batch_axis < time_axis))
    return out

