"""Image ops: Resize, Upsample, GridSample, RoiAlign, MaxRoiPool, NonMaxSuppression,
AffineGrid.

Resize is separable: each resized axis is resampled in turn with a small table of taps
(input indices) and weights per output position. Coordinates are computed in float32, the
precision onnxruntime uses, so that nearest-pixel choices at exact ties agree with it;
interpolation accumulates in float64.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from providers.cpu.opset import register

# --------------------------------------------------------------------------------------------
# Resize: coordinate transforms and per-axis taps

_F = np.float32


def _original_coords(mode: str, out_len: int, in_len: int, scale: float, roi_start: float,
                     roi_end: float) -> np.ndarray:
    """x_original for every x_resized in [0, out_len), per coordinate_transformation_mode."""
    x = np.arange(out_len, dtype=_F)
    s = _F(scale)
    if mode == "half_pixel":
        return (x + _F(0.5)) / s - _F(0.5)
    if mode == "half_pixel_symmetric":
        output_width = s * _F(in_len)
        adjustment = _F(out_len) / output_width
        center = _F(in_len) / _F(2)
        offset = center * (_F(1) - adjustment)
        return offset + (x + _F(0.5)) / s - _F(0.5)
    if mode == "pytorch_half_pixel":
        if out_len > 1:
            return (x + _F(0.5)) / s - _F(0.5)
        return np.zeros(out_len, _F)
    if mode == "align_corners":
        if out_len == 1:
            return np.zeros(out_len, _F)
        return x * _F(in_len - 1) / _F(out_len - 1)
    if mode == "asymmetric":
        return x / s
    if mode == "tf_half_pixel_for_nn":
        return (x + _F(0.5)) / s
    if mode == "tf_crop_and_resize":
        start, end = _F(roi_start), _F(roi_end)
        if out_len > 1:
            return (start * _F(in_len - 1)
                    + x * (end - start) * _F(in_len - 1) / _F(out_len - 1))
        return np.full(out_len, _F(0.5) * (start + end) * _F(in_len - 1), _F)
    raise ValueError(f"unknown coordinate_transformation_mode '{mode}'")


def _nearest_index(xo: np.ndarray, nearest_mode: str, in_len: int) -> np.ndarray:
    if nearest_mode == "round_prefer_floor":
        idx = np.ceil(xo - _F(0.5))
    elif nearest_mode == "round_prefer_ceil":
        idx = np.floor(xo + _F(0.5))
    elif nearest_mode == "floor":
        idx = np.floor(xo)
    elif nearest_mode == "ceil":
        idx = np.ceil(xo)
    elif nearest_mode == "simple":  # Resize-10 / Upsample: truncate up, ceil down
        raise AssertionError("handled by the caller")
    else:
        raise ValueError(f"unknown nearest_mode '{nearest_mode}'")
    return np.clip(idx, 0, in_len - 1).astype(np.int64)


def _cubic_kernel(t: np.ndarray, a: float) -> np.ndarray:
    """Keys' cubic convolution kernel with coefficient ``a``."""
    t = np.abs(t)
    t2, t3 = t * t, t * t * t
    near = (a + 2) * t3 - (a + 3) * t2 + 1
    far = a * t3 - 5 * a * t2 + 8 * a * t - 4 * a
    return np.where(t <= 1, near, np.where(t < 2, far, 0.0))


def _interp_taps(xo: np.ndarray, in_len: int, mode: str, scale: float, cubic_a: float,
                 exclude_outside: bool, antialias: bool):
    """Input indices [out, n] (clamped to the edge) and float64 weights [out, n]."""
    x = xo.astype(np.float64)
    if mode == "linear" and not antialias:
        x = np.clip(x, 0, in_len - 1)  # onnxruntime clamps before interpolating
    base = np.floor(x)
    if antialias and scale < 1:
        support = (1.0 if mode == "linear" else 2.0) / scale
    else:
        support = 1.0 if mode == "linear" else 2.0
        scale = 1.0
    # Taps: every integer position p with |p - x| < support.
    offsets = np.arange(int(math.floor(-support)) + 1, int(math.ceil(support)) + 1)
    pos = base[:, None] + offsets[None, :]
    dist = (pos - x[:, None]) * scale
    if mode == "linear":
        w = np.clip(1.0 - np.abs(dist), 0.0, None)
    else:
        w = _cubic_kernel(dist, cubic_a)
    outside = (pos < 0) | (pos > in_len - 1)
    if exclude_outside:
        w = np.where(outside, 0.0, w)
    if (antialias and scale < 1) or exclude_outside:
        total = w.sum(axis=1, keepdims=True)
        w = w / np.where(total == 0, 1.0, total)
    idx = np.clip(pos, 0, in_len - 1).astype(np.int64)
    return idx, w


def _apply_taps(data: np.ndarray, axis: int, idx: np.ndarray, w: np.ndarray) -> np.ndarray:
    out_len, n = idx.shape
    gathered = np.take(data, idx.reshape(-1), axis=axis)
    shape = data.shape[:axis] + (out_len, n) + data.shape[axis + 1:]
    gathered = gathered.reshape(shape)
    wshape = (1,) * axis + (out_len, n) + (1,) * (data.ndim - axis - 1)
    return (gathered * w.reshape(wshape)).sum(axis=axis + 1)


def _mask_axis(mask: np.ndarray, axis: int, ndim: int) -> np.ndarray:
    return mask.reshape((1,) * axis + (-1,) + (1,) * (ndim - axis - 1))


def _resize_nd(x: np.ndarray, out_sizes: list[int], scales: list[float], roi: list[tuple],
               mode: str, ctm: str, nearest_mode: str, cubic_a: float, exclude_outside: bool,
               extrapolation_value: float, antialias: bool) -> np.ndarray:
    """Resample every axis whose size, scale or roi asks for it."""
    if mode not in ("nearest", "linear", "cubic"):
        raise ValueError(f"unknown Resize mode '{mode}'")
    floating = x.dtype.kind == "f" and x.dtype.itemsize >= 4
    data = x if (mode == "nearest" or floating) else x.astype(np.float64)
    extrap = None  # output positions (per axis) that take extrapolation_value
    for axis in range(x.ndim):
        in_len, out_len, scale = x.shape[axis], out_sizes[axis], scales[axis]
        start, end = roi[axis]
        trivial_roi = ctm != "tf_crop_and_resize" or (start == 0 and end == 1)
        if out_len == in_len and scale == 1 and trivial_roi:
            continue
        if out_len == 0 or in_len == 0:
            shape = list(data.shape)
            shape[axis] = out_len
            data = np.zeros(shape, data.dtype)
            continue
        if nearest_mode == "simple":
            # Resize-10 and Upsample: asymmetric source coordinates, truncated when
            # upsampling and rounded up when downsampling (onnxruntime's rule).
            xo = np.arange(out_len, dtype=_F) / _F(scale)
            idx = np.ceil(xo) if scale < 1 else np.floor(xo)
            if mode == "nearest":
                data = np.take(data, np.clip(idx, 0, in_len - 1).astype(np.int64), axis=axis)
                continue
        xo = _original_coords(ctm, out_len, in_len, scale, start, end)
        if mode == "nearest":
            data = np.take(data, _nearest_index(xo, nearest_mode, in_len), axis=axis)
        else:
            idx, w = _interp_taps(xo, in_len, mode, float(_F(scale)), cubic_a,
                                  exclude_outside, antialias)
            data = _apply_taps(data.astype(np.float64, copy=False), axis, idx, w)
        if ctm == "tf_crop_and_resize":
            outside = (xo < 0) | (xo > in_len - 1)
            if outside.any():
                m = _mask_axis(outside, axis, x.ndim)
                extrap = m if extrap is None else (extrap | m)
    if extrap is not None:
        data = np.where(extrap, np.asarray(extrapolation_value).astype(data.dtype), data)
    return _cast_back(data, x.dtype)


def _cast_back(data: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Interpolated values back to the input type. Integers truncate toward zero (what
    onnxruntime's cast does) after clamping to the type's range (cubic may overshoot)."""
    if data.dtype == dtype:
        return data
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return np.trunc(np.clip(data, info.min, info.max)).astype(dtype)
    return data.astype(dtype)


def _sizes_from_scales(shape, scales) -> list[int]:
    # float32 product, truncated, as onnxruntime computes output dims.
    return [int(_F(s) * _F(d)) for s, d in zip(shape, scales)]


def _resize_common(x, roi, scales, sizes, *, antialias, axes, coordinate_transformation_mode,
                   cubic_coeff_a, exclude_outside, extrapolation_value,
                   keep_aspect_ratio_policy, mode, nearest_mode):
    x = np.asarray(x)
    rank = x.ndim
    axes = list(range(rank)) if axes is None or len(axes) == 0 else [
        int(a) + rank if int(a) < 0 else int(a) for a in axes]
    if scales is not None and np.asarray(scales).size == 0:
        scales = None
    if sizes is not None and np.asarray(sizes).size == 0:
        sizes = None
    if (scales is None) == (sizes is None):
        raise ValueError("Resize needs exactly one of 'scales' and 'sizes'")
    full_scales = [1.0] * rank
    out_sizes = list(x.shape)
    if scales is not None:
        s = np.asarray(scales, np.float32).reshape(-1)
        if s.size != len(axes):
            raise ValueError(f"scales has {s.size} values for {len(axes)} axes")
        for a, v in zip(axes, s):
            if v <= 0:
                raise ValueError("Resize scales must be positive")
            full_scales[a] = float(v)
            out_sizes[a] = int(_F(v) * _F(x.shape[a]))
    else:
        sz = np.asarray(sizes).astype(np.int64).reshape(-1)
        if sz.size != len(axes):
            raise ValueError(f"sizes has {sz.size} values for {len(axes)} axes")
        if keep_aspect_ratio_policy == "stretch":
            for a, v in zip(axes, sz):
                out_sizes[a] = int(v)
                full_scales[a] = float(_F(v) / _F(x.shape[a]))
        else:
            ratios = [_F(v) / _F(x.shape[a]) for a, v in zip(axes, sz)]
            if keep_aspect_ratio_policy == "not_larger":
                scale = min(ratios)
            elif keep_aspect_ratio_policy == "not_smaller":
                scale = max(ratios)
            else:
                raise ValueError(
                    f"unknown keep_aspect_ratio_policy '{keep_aspect_ratio_policy}'")
            for a in axes:
                full_scales[a] = float(scale)
                # round half up
                out_sizes[a] = int(math.floor(float(_F(scale) * _F(x.shape[a])) + 0.5))
    full_roi = [(0.0, 1.0)] * rank
    if roi is not None and np.asarray(roi).size and \
            coordinate_transformation_mode == "tf_crop_and_resize":
        r = np.asarray(roi, np.float32).reshape(-1)
        n = len(axes)
        if r.size != 2 * n:
            raise ValueError(f"roi has {r.size} values, expected {2 * n}")
        for i, a in enumerate(axes):
            full_roi[a] = (float(r[i]), float(r[n + i]))
    if antialias and mode == "nearest":
        antialias = 0  # antialiasing applies to linear and cubic only
    return _resize_nd(x, out_sizes, full_scales, full_roi, mode, coordinate_transformation_mode,
                      nearest_mode, float(cubic_coeff_a), bool(exclude_outside),
                      float(extrapolation_value), bool(antialias))


@register("Resize", since=10, shape_inputs=(1,))
def resize_10(x, scales, *, mode="nearest"):
    """Resize-10: scales only, asymmetric coordinates, nearest truncates (as Upsample)."""
    return _upsample(x, np.asarray(scales, np.float32), mode)


@register("Resize", since=11, shape_inputs=(1, 2, 3))
def resize(x, roi=None, scales=None, sizes=None, *, antialias=0, axes=None,
           coordinate_transformation_mode="half_pixel", cubic_coeff_a=-0.75, exclude_outside=0,
           extrapolation_value=0.0, keep_aspect_ratio_policy="stretch", mode="nearest",
           nearest_mode="round_prefer_floor"):
    """Resize 11/13/18/19 (antialias, axes and keep_aspect_ratio_policy came with 18 and
    half_pixel_symmetric with 19; earlier models cannot set them)."""
    return _resize_common(
        x, roi, scales, sizes, antialias=antialias, axes=axes,
        coordinate_transformation_mode=coordinate_transformation_mode,
        cubic_coeff_a=cubic_coeff_a, exclude_outside=exclude_outside,
        extrapolation_value=extrapolation_value,
        keep_aspect_ratio_policy=keep_aspect_ratio_policy, mode=mode,
        nearest_mode=nearest_mode)


def _upsample(x, scales: np.ndarray, mode: str):
    x = np.asarray(x)
    scales = np.asarray(scales, np.float32).reshape(-1)
    if scales.size != x.ndim:
        raise ValueError(f"Upsample needs {x.ndim} scales, got {scales.size}")
    mode = {"bilinear": "linear", "trilinear": "linear"}.get(mode, mode)
    if mode not in ("nearest", "linear"):
        raise ValueError(f"unknown Upsample mode '{mode}'")
    out_sizes = _sizes_from_scales(scales, x.shape)
    roi = [(0.0, 1.0)] * x.ndim
    return _resize_nd(x, out_sizes, [float(s) for s in scales], roi, mode, "asymmetric",
                      "simple", -0.75, False, 0.0, False)


@register("Upsample", since=1)
def upsample_1(x, *, height_scale=None, width_scale=None, mode="nearest"):
    """Upsample-1 (experimental): NCHW with height/width scales; modes nearest/bilinear."""
    scales = np.array([1, 1, height_scale, width_scale], np.float32)
    return _upsample(x, scales, mode)


@register("Upsample", since=7)
def upsample_7(x, *, mode="nearest", scales=None):
    return _upsample(x, np.asarray(scales, np.float32), mode)


@register("Upsample", since=9, shape_inputs=(1,))
def upsample_9(x, scales, *, mode="nearest"):
    return _upsample(x, scales, mode)


# --------------------------------------------------------------------------------------------
# GridSample


def _gs_reflect(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Reflect coordinates by the borders [lo, hi] until they fall inside."""
    rng = hi - lo
    if rng <= 0:
        return np.full_like(x, lo)
    below = x < lo
    above = x > hi
    d = np.where(below, lo - x, np.where(above, x - hi, 0.0))
    n = np.floor(d / rng)
    r = d - n * rng
    even = (n % 2) == 0
    from_lo = np.where(even, lo + r, hi - r)
    from_hi = np.where(even, hi - r, lo + r)
    return np.where(below, from_lo, np.where(above, from_hi, x))


def _gs_cubic_coeffs(t: np.ndarray) -> list[np.ndarray]:
    a = -0.75
    return [_cubic_kernel(t + 1, a), _cubic_kernel(t, a), _cubic_kernel(1 - t, a),
            _cubic_kernel(2 - t, a)]


@register("GridSample", since=16)
def grid_sample(x, grid, *, align_corners=0, mode="linear", padding_mode="zeros"):
    """GridSample-16 (4-D; bilinear/nearest/bicubic) and -20 (N-D; linear/nearest/cubic).
    Nearest rounds half to even; out-of-range coordinates follow ``padding_mode``."""
    x = np.asarray(x)
    grid = np.asarray(grid)
    mode = {"bilinear": "linear", "bicubic": "cubic"}.get(mode, mode)
    if mode not in ("linear", "nearest", "cubic"):
        raise ValueError(f"unknown GridSample mode '{mode}'")
    if padding_mode not in ("zeros", "border", "reflection"):
        raise ValueError(f"unknown GridSample padding_mode '{padding_mode}'")
    n, c = x.shape[:2]
    dims = x.shape[2:]
    r = len(dims)
    out_sp = grid.shape[1:-1]
    if grid.shape[-1] != r:
        raise ValueError(f"grid's last dimension must be {r}")
    if n == 0 or c == 0 or 0 in out_sp:
        return np.zeros((n, c) + out_sp, x.dtype)
    # Unnormalize in the grid's precision (float32 for float32/16 grids), in onnxruntime's
    # order of operations, so that nearest-neighbour ties resolve the same way.
    ct = np.float64 if grid.dtype == np.float64 else np.float32
    g = grid.astype(ct)
    one, two = ct(1), ct(2)
    coords, borders = [], []
    for i in range(r):
        size = dims[i]
        # grid's last axis lists coordinates innermost dimension first (x, y, z...).
        v = g[..., r - 1 - i]
        if align_corners:
            xi = (v + one) / two * ct(size - 1)
            lo, hi = 0.0, size - 1.0
        else:
            xi = ((v + one) * ct(size) - one) / two
            lo, hi = -0.5, size - 0.5
        xi = xi.astype(np.float64)
        if mode == "nearest":
            xi = np.rint(xi)
        # Padding applies to each tap's integer position (below), as onnxruntime does, not
        # to the sampling coordinate.
        coords.append(xi)
        borders.append((lo, hi))

    def tap_index(i, p):
        """Integer tap positions of dim i -> (index to read, validity)."""
        size = dims[i]
        if padding_mode == "zeros":
            valid = (p >= 0) & (p < size)
            return np.clip(p, 0, size - 1).astype(np.int64), valid
        if padding_mode == "border":
            return np.clip(p, 0, size - 1).astype(np.int64), None
        lo, hi = borders[i]
        q = _gs_reflect(p.astype(np.float64), lo, hi)
        return np.clip(q.astype(np.int64), 0, size - 1), None

    if mode == "nearest":
        taps = [[(c_.astype(np.int64), None)] for c_ in coords]
    elif mode == "linear":
        taps = []
        for xi in coords:
            x0 = np.floor(xi)
            t = xi - x0
            taps.append([(x0, 1 - t), (x0 + 1, t)])
    else:
        taps = []
        for xi in coords:
            x0 = np.floor(xi)
            cs = _gs_cubic_coeffs(xi - x0)
            taps.append([(x0 + k - 1, cs[k]) for k in range(4)])

    batch = np.arange(n).reshape((n,) + (1,) * len(out_sp))
    acc = None
    for combo in itertools.product(*taps):
        index, weight, valid = [], None, None
        for i, (p, w) in enumerate(combo):
            ix, ok = tap_index(i, p)
            index.append(ix)
            if w is not None:
                weight = w if weight is None else weight * w
            if ok is not None:
                valid = ok if valid is None else valid & ok
        vals = _gather(x, batch, index)  # [N, *out, C]
        if mode == "nearest":
            if valid is not None:
                vals = np.where(valid[..., None], vals, np.zeros((), x.dtype))
            acc = vals
            break
        term = vals.astype(np.float64) * weight[..., None]
        if valid is not None:
            term = np.where(valid[..., None], term, 0.0)
        acc = term if acc is None else acc + term
    out = np.ascontiguousarray(np.moveaxis(acc, -1, 1))
    return out if mode == "nearest" else _cast_back(out, x.dtype)


def _gather(x: np.ndarray, batch: np.ndarray, index: list[np.ndarray]) -> np.ndarray:
    """x[batch, :, i1, i2, ...] with broadcast index arrays -> [N, *out, C]."""
    xt = np.moveaxis(x, 1, -1)  # [N, *S, C]
    return xt[(batch,) + tuple(index)]


# --------------------------------------------------------------------------------------------
# AffineGrid


@register("AffineGrid", since=20, shape_inputs=(1,))
def affine_grid(theta, size, *, align_corners=0):
    """Sampling grid [N, (D,) H, W, 2|3] of the affine maps theta [N, 2, 3] or [N, 3, 4]."""
    theta = np.asarray(theta)
    size = [int(v) for v in np.asarray(size).reshape(-1)]
    n = size[0]
    spatial = size[2:]
    if len(spatial) not in (2, 3):
        raise ValueError("AffineGrid supports 2-D and 3-D grids")
    dt = theta.dtype if theta.dtype.kind == "f" else np.float32
    ct = np.float64

    def base(length):
        if align_corners:
            return np.linspace(-1, 1, length, dtype=ct) if length > 1 else np.zeros(length, ct)
        return (2 * np.arange(length, dtype=ct) + 1) / length - 1

    axes = [base(length) for length in spatial]  # [D,] H, W
    mesh = np.meshgrid(*axes, indexing="ij")
    # Homogeneous coordinates in (x, y[, z], 1) order: innermost dimension first.
    pts = np.stack([m for m in reversed(mesh)] + [np.ones_like(mesh[0])], axis=-1)
    out = np.einsum("...k,njk->n...j", pts, theta.astype(ct))
    assert out.shape[0] == n
    return out.astype(dt)


# --------------------------------------------------------------------------------------------
# RoiAlign


def _roi_axis_samples(start, bin_size, pooled: int, grid: int, size: int):
    """Sample coordinates along one axis: low/high indices, weights and validity
    ([pooled, grid] each), following the reference bilinear rules."""
    p = np.arange(pooled, dtype=np.float64)[:, None]
    g = np.arange(grid, dtype=np.float64)[None, :]
    v = start + p * bin_size + (g + 0.5) * bin_size / grid
    valid = (v >= -1.0) & (v <= size)
    v = np.maximum(v, 0.0)
    low = np.floor(v).astype(np.int64)
    at_edge = low >= size - 1
    low = np.where(at_edge, size - 1, low)
    high = np.where(at_edge, size - 1, low + 1)
    v = np.where(at_edge, low.astype(np.float64), v)
    frac = v - low
    return low, high, 1.0 - frac, frac, valid


def _roi_align(x, rois, batch_indices, mode, output_height, output_width, sampling_ratio,
               spatial_scale, half_pixel):
    x = np.asarray(x)
    rois = np.asarray(rois).astype(np.float64)
    batch_indices = np.asarray(batch_indices).astype(np.int64).reshape(-1)
    if mode not in ("avg", "max"):
        raise ValueError(f"unknown RoiAlign mode '{mode}'")
    num_rois = rois.shape[0]
    c, h, w = x.shape[1:]
    out = np.zeros((num_rois, c, output_height, output_width), np.float64)
    offset = 0.5 if half_pixel else 0.0
    for r in range(num_rois):
        data = x[batch_indices[r]].astype(np.float64)
        x1, y1, x2, y2 = rois[r] * spatial_scale - offset
        roi_w, roi_h = x2 - x1, y2 - y1
        if not half_pixel:
            roi_w, roi_h = max(roi_w, 1.0), max(roi_h, 1.0)
        bin_h, bin_w = roi_h / output_height, roi_w / output_width
        if sampling_ratio > 0:
            grid_h = grid_w = int(sampling_ratio)
        else:
            grid_h = int(math.ceil(roi_h / output_height))
            grid_w = int(math.ceil(roi_w / output_width))
        if grid_h <= 0 or grid_w <= 0:
            continue  # no sample: the bins stay 0
        yl, yh, wy_l, wy_h, vy = _roi_axis_samples(y1, bin_h, output_height, grid_h, h)
        xl, xh, wx_l, wx_h, vx = _roi_axis_samples(x1, bin_w, output_width, grid_w, w)
        # index grids [PH, GH, PW, GW]
        ylo, yhi = yl[:, :, None, None], yh[:, :, None, None]
        xlo, xhi = xl[None, None], xh[None, None]
        valid = vy[:, :, None, None] & vx[None, None]
        wy_l, wy_h = wy_l[:, :, None, None], wy_h[:, :, None, None]
        wx_l, wx_h = wx_l[None, None], wx_h[None, None]
        wts = [wy_l * wx_l, wy_l * wx_h, wy_h * wx_l, wy_h * wx_h]
        corners = [data[:, ylo, xlo], data[:, ylo, xhi], data[:, yhi, xlo], data[:, yhi, xhi]]
        terms = [np.where(valid, wt * v, 0.0) for wt, v in zip(wts, corners)]
        if mode == "avg":
            total = terms[0] + terms[1] + terms[2] + terms[3]  # [C, PH, GH, PW, GW]
            out[r] = total.sum(axis=(2, 4)) / max(grid_h * grid_w, 1)
        else:
            best = np.maximum(np.maximum(terms[0], terms[1]), np.maximum(terms[2], terms[3]))
            out[r] = best.max(axis=(2, 4))
    return out.astype(x.dtype)


@register("RoiAlign", since=10)
def roi_align_10(x, rois, batch_indices, *, mode="avg", output_height=1, output_width=1,
                 sampling_ratio=0, spatial_scale=1.0):
    """RoiAlign-10: no half-pixel offset (opset 16's output_half_pixel)."""
    return _roi_align(x, rois, batch_indices, mode, output_height, output_width,
                      sampling_ratio, spatial_scale, False)


@register("RoiAlign", since=16)
def roi_align(x, rois, batch_indices, *, coordinate_transformation_mode="half_pixel",
              mode="avg", output_height=1, output_width=1, sampling_ratio=0, spatial_scale=1.0):
    if coordinate_transformation_mode not in ("half_pixel", "output_half_pixel"):
        raise ValueError(
            f"unknown coordinate_transformation_mode '{coordinate_transformation_mode}'")
    return _roi_align(x, rois, batch_indices, mode, output_height, output_width,
                      sampling_ratio, spatial_scale,
                      coordinate_transformation_mode == "half_pixel")


# --------------------------------------------------------------------------------------------
# MaxRoiPool


def _round_half_away(v: float) -> int:
    return int(math.floor(v + 0.5)) if v >= 0 else int(math.ceil(v - 0.5))


@register("MaxRoiPool", since=1)
def max_roi_pool(x, rois, *, pooled_shape=None, spatial_scale=1.0):
    """Max pooling over ROIs [num_rois, 5] = (batch, x1, y1, x2, y2), Caffe's rounding."""
    x = np.asarray(x)
    rois = np.asarray(rois)
    if not pooled_shape or len(pooled_shape) != 2:
        raise ValueError("MaxRoiPool needs pooled_shape = [height, width]")
    ph_n, pw_n = int(pooled_shape[0]), int(pooled_shape[1])
    n_rois = rois.shape[0]
    c, h, w = x.shape[1:]
    out = np.zeros((n_rois, c, ph_n, pw_n), x.dtype)
    scale = _F(spatial_scale)
    for r in range(n_rois):
        b = int(rois[r, 0])
        sw, sh, ew, eh = (_round_half_away(float(_F(v) * scale)) for v in rois[r, 1:5])
        roi_h = max(eh - sh + 1, 1)
        roi_w = max(ew - sw + 1, 1)
        bin_h = _F(roi_h) / _F(ph_n)
        bin_w = _F(roi_w) / _F(pw_n)
        for ph in range(ph_n):
            hs = min(max(int(math.floor(_F(ph) * bin_h)) + sh, 0), h)
            he = min(max(int(math.ceil(_F(ph + 1) * bin_h)) + sh, 0), h)
            for pw in range(pw_n):
                ws = min(max(int(math.floor(_F(pw) * bin_w)) + sw, 0), w)
                we = min(max(int(math.ceil(_F(pw + 1) * bin_w)) + sw, 0), w)
                if he > hs and we > ws:
                    out[r, :, ph, pw] = x[b, :, hs:he, ws:we].max(axis=(1, 2))
    return out


# --------------------------------------------------------------------------------------------
# NonMaxSuppression


def _corners(boxes: np.ndarray, center_point_box: int):
    """(y_min, x_min, y_max, x_max) arrays from either box format."""
    b = boxes.astype(np.float64)
    if center_point_box:
        xc, yc, bw, bh = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
        return yc - bh / 2, xc - bw / 2, yc + bh / 2, xc + bw / 2
    y1, x1, y2, x2 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    return np.minimum(y1, y2), np.minimum(x1, x2), np.maximum(y1, y2), np.maximum(x1, x2)


@register("NonMaxSuppression", since=10, dynamic_shape=True)
def non_max_suppression(boxes, scores, max_output_boxes_per_class=None, iou_threshold=None,
                        score_threshold=None, *, center_point_box=0):
    """Greedy per-class NMS. A box is suppressed when its IoU with a selected box exceeds
    iou_threshold; with score_threshold only scores above it are candidates. Output
    [num_selected, 3] int64 rows (batch, class, box) in selection order."""
    boxes = np.asarray(boxes)
    scores = np.asarray(scores)
    max_out = 0 if max_output_boxes_per_class is None or \
        np.asarray(max_output_boxes_per_class).size == 0 else \
        int(np.asarray(max_output_boxes_per_class).reshape(-1)[0])
    iou_t = 0.0 if iou_threshold is None or np.asarray(iou_threshold).size == 0 else \
        float(np.asarray(iou_threshold, np.float32).reshape(-1)[0])
    has_score_t = score_threshold is not None and np.asarray(score_threshold).size > 0
    score_t = float(np.asarray(score_threshold, np.float32).reshape(-1)[0]) if has_score_t \
        else 0.0
    if not 0.0 <= iou_t <= 1.0:
        raise ValueError("iou_threshold must be in [0, 1]")
    selected: list[tuple[int, int, int]] = []
    if max_out <= 0:
        return np.zeros((0, 3), np.int64)
    num_batches, num_classes = scores.shape[0], scores.shape[1]
    for b in range(num_batches):
        ymin, xmin, ymax, xmax = _corners(boxes[b], center_point_box)
        areas = (ymax - ymin) * (xmax - xmin)
        for c in range(num_classes):
            s = scores[b, c]
            cand = np.arange(s.shape[0])
            if has_score_t:
                cand = cand[s[cand] > score_t]
            # highest score first; ties: lower index first
            remaining = cand[np.lexsort((cand, -s[cand].astype(np.float64)))]
            kept = 0
            # Greedy: keep the best remaining box, drop every box overlapping it too much.
            while remaining.size and kept < max_out:
                i, rest = remaining[0], remaining[1:]
                selected.append((b, c, int(i)))
                kept += 1
                iy1 = np.maximum(ymin[i], ymin[rest])
                ix1 = np.maximum(xmin[i], xmin[rest])
                iy2 = np.minimum(ymax[i], ymax[rest])
                ix2 = np.minimum(xmax[i], xmax[rest])
                inter = np.where((iy2 > iy1) & (ix2 > ix1), (iy2 - iy1) * (ix2 - ix1), 0.0)
                union = areas[i] + areas[rest] - inter
                ok = (inter > 0) & (areas[i] > 0) & (areas[rest] > 0) & (union > 0)
                iou = np.where(ok, inter / np.where(union > 0, union, 1.0), 0.0)
                remaining = rest[~(iou > iou_t)]
    return np.array(selected, np.int64).reshape(-1, 3)
