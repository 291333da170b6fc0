"""Resize (and Upsample) in nearest and linear modes, applied one axis at a time (a product
of 1-D interpolations is exactly the multilinear one). Cubic, antialias and
tf_crop_and_resize are left to the next provider."""

from __future__ import annotations

import numpy as np

from providers.cuda.kernels import ints, register

_COORD_MODES = ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric",
                "tf_half_pixel_for_nn", "half_pixel_symmetric")


def resize_check(node, graph):
    a = node.attrs
    mode = a.get("mode", "nearest")
    if mode not in ("nearest", "linear", "bilinear", "trilinear"):
        return f"Resize mode '{mode}' is not implemented on CUDA"
    ctm = a.get("coordinate_transformation_mode", "half_pixel")
    if ctm not in _COORD_MODES:
        return f"Resize coordinate_transformation_mode '{ctm}' is not implemented on CUDA"
    if a.get("antialias", 0):
        return "Resize with antialias is not implemented on CUDA"
    if a.get("exclude_outside", 0):
        return "Resize with exclude_outside is not implemented on CUDA"
    return None


def _source_coords(xp, out_len, in_len, scale, ctm):
    x = xp.arange(out_len, dtype=np.float64)
    if ctm == "asymmetric":
        return x / scale
    if ctm == "align_corners":
        if out_len == 1:
            return xp.zeros(1, dtype=np.float64)
        return x * (in_len - 1) / (out_len - 1)
    if ctm == "pytorch_half_pixel":
        return (x + 0.5) / scale - 0.5 if out_len > 1 else xp.zeros(out_len, dtype=np.float64)
    if ctm == "tf_half_pixel_for_nn":
        return (x + 0.5) / scale
    if ctm == "half_pixel_symmetric":
        adjustment = out_len / (scale * in_len)
        center = in_len / 2
        offset = center * (1 - adjustment)
        return offset + (x + 0.5) / scale - 0.5
    return (x + 0.5) / scale - 0.5  # half_pixel


def _nearest_index(xp, src, in_len, nearest_mode):
    if nearest_mode == "floor":
        idx = xp.floor(src)
    elif nearest_mode == "ceil":
        idx = xp.ceil(src)
    elif nearest_mode == "round_prefer_ceil":
        idx = xp.floor(src + 0.5)
    else:  # round_prefer_floor
        idx = xp.ceil(src - 0.5)
    return xp.clip(idx, 0, in_len - 1).astype(np.int64)


def _resize_axis(xp, x, axis, out_len, scale, mode, ctm, nearest_mode):
    in_len = x.shape[axis]
    src = _source_coords(xp, out_len, in_len, scale, ctm)
    if mode == "nearest":
        return xp.take(x, _nearest_index(xp, src, in_len, nearest_mode), axis=axis)
    src = xp.clip(src, 0, in_len - 1)
    lo = xp.floor(src).astype(np.int64)
    hi = xp.minimum(lo + 1, in_len - 1)
    frac = (src - lo).astype(np.float32 if x.dtype != np.float64 else np.float64)
    shape = [1] * x.ndim
    shape[axis] = out_len
    frac = frac.reshape(shape)
    a = xp.take(x, lo, axis=axis)
    b = xp.take(x, hi, axis=axis)
    return a + (b - a) * frac


def _resize(ctx, x, scales, sizes, axes, mode, ctm, nearest_mode, policy="stretch"):
    xp = ctx.xp
    rank = x.ndim
    axes = list(range(rank)) if not axes else [a + rank if a < 0 else a for a in axes]
    in_shape = [x.shape[a] for a in axes]
    if sizes is not None and len(sizes):
        out = [int(s) for s in sizes]
        sc = [o / i if i else 1.0 for o, i in zip(out, in_shape)]
        if policy in ("not_larger", "not_smaller"):
            pick = min if policy == "not_larger" else max
            s = pick(sc)
            sc = [s] * len(sc)
            out = [int(np.floor(s * i + 0.5)) for i in in_shape]
    else:
        sc = [float(s) for s in scales]
        out = [int(np.floor(i * s)) for i, s in zip(in_shape, sc)]
    if mode in ("bilinear", "trilinear"):
        mode = "linear"
    y = x if x.dtype.kind == "f" else x.astype(np.float32)
    for a, o, s, i in zip(axes, out, sc, in_shape):
        if o == i and s == 1.0:
            continue
        y = _resize_axis(xp, y, a, o, s, mode, ctm, nearest_mode)
    if y.dtype != x.dtype:
        y = xp.rint(y).astype(x.dtype) if x.dtype.kind in "iu" else y.astype(x.dtype)
    return xp.ascontiguousarray(y) if y is not x else x.copy()


@register("Resize", 10, shape_inputs=(1,), check=resize_check)
def resize10(ctx, x, scales, *, mode="nearest"):
    return _resize(ctx, x, ints_f(scales), None, None, mode, "asymmetric", "floor")


def ints_f(v):
    return [float(f) for f in np.asarray(v).reshape(-1)]


@register("Resize", 11, shape_inputs=(1, 2, 3), check=resize_check)
def resize11(ctx, x, roi=None, scales=None, sizes=None, *, coordinate_transformation_mode=
             "half_pixel", cubic_coeff_a=-0.75, exclude_outside=0, extrapolation_value=0.0,
             mode="nearest", nearest_mode="round_prefer_floor", antialias=0, axes=None,
             keep_aspect_ratio_policy="stretch"):
    sc = ints_f(scales) if scales is not None and np.asarray(scales).size else None
    sz = ints(sizes) if sizes is not None and np.asarray(sizes).size else None
    return _resize(ctx, x, sc, sz, list(axes) if axes else None, mode,
                   coordinate_transformation_mode, nearest_mode, keep_aspect_ratio_policy)


for _v in (13, 18, 19):
    register("Resize", _v, shape_inputs=(1, 2, 3), check=resize_check)(resize11)
