"""Conv and ConvTranspose: numpy references and the lowering of Conv to the C++ "Conv" kernel.

Everything the kernel needs is resolved here: ``auto_pad`` becomes explicit pads, the kernel
shape comes from W, the output shape is computed with ONNX's formulas. Conv-1 and Conv-11 mean
the same. ConvTranspose-1's text splits padding derived from ``output_shape`` / ``auto_pad`` the
other way round from ConvTranspose-11, but onnxruntime and the onnx reference both apply the
version-11 rule to every version, and so do we (one registration). ConvTranspose runs on numpy.
"""

from __future__ import annotations

import itertools

import numpy as np

from providers.cpu.opset import NativeCall, register

_F32 = np.dtype(np.float32)


def _compute_dtype(dt: np.dtype) -> np.dtype:
    if dt.kind == "f" and dt.itemsize < 4 or dt.kind == "V":
        return _F32
    return dt


def _ints(v, n: int, default: int) -> list[int]:
    return [default] * n if v is None or len(v) == 0 else [int(x) for x in v]


def conv_geometry(in_spatial, kernel, strides, dilations, pads, auto_pad):
    """Explicit (pads, output spatial shape) of a Conv, per ONNX's auto_pad rules.

    SAME_UPPER / SAME_LOWER: output = ceil(in / stride), total padding
    max(0, (out - 1) * stride + (k - 1) * dilation + 1 - in), the odd pixel at the end (UPPER)
    or the beginning (LOWER). VALID: no padding. NOTSET: the given pads.
    """
    nd = len(in_spatial)
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        begins, ends, out = [], [], []
        for i, k, s, d in zip(in_spatial, kernel, strides, dilations):
            o = -(-i // s)
            total = max(0, (o - 1) * s + (k - 1) * d + 1 - i)
            small, large = total // 2, total - total // 2
            begins.append(small if auto_pad == "SAME_UPPER" else large)
            ends.append(large if auto_pad == "SAME_UPPER" else small)
            out.append(o)
        return begins + ends, out
    if auto_pad == "VALID":
        pads = [0] * (2 * nd)
    elif auto_pad in ("NOTSET", "", None):
        pads = _ints(pads, 2 * nd, 0)
    else:
        raise ValueError(f"Conv: unknown auto_pad '{auto_pad}'")
    out = []
    for j, (i, k, s, d) in enumerate(zip(in_spatial, kernel, strides, dilations)):
        o = (i + pads[j] + pads[nd + j] - ((k - 1) * d + 1)) // s + 1
        if o < 0:
            raise ValueError("Conv: kernel larger than the padded input")
        out.append(o)
    return pads, out


def _resolve_conv(x_shape, w_shape, attrs):
    nd = len(x_shape) - 2
    if nd < 1 or len(w_shape) != len(x_shape):
        raise ValueError(f"Conv: X {tuple(x_shape)} and W {tuple(w_shape)} do not match")
    kernel = [int(k) for k in w_shape[2:]]
    if attrs.get("kernel_shape") and list(attrs["kernel_shape"]) != kernel:
        raise ValueError(f"Conv: kernel_shape {attrs['kernel_shape']} differs from W {kernel}")
    strides = _ints(attrs.get("strides"), nd, 1)
    dilations = _ints(attrs.get("dilations"), nd, 1)
    group = int(attrs.get("group", 1))
    if x_shape[1] != w_shape[1] * group or w_shape[0] % group:
        raise ValueError(f"Conv: channels of X {tuple(x_shape)} and W {tuple(w_shape)} do not "
                         f"match group={group}")
    pads, out = conv_geometry(list(x_shape[2:]), kernel, strides, dilations,
                              attrs.get("pads"), attrs.get("auto_pad", "NOTSET"))
    return kernel, strides, dilations, pads, out, group


def _conv_native(inputs, attrs):
    x, w = inputs[0], inputs[1]
    b = inputs[2] if len(inputs) > 2 else None
    if any(v is not None and v.dtype != _F32 for v in (x, w, b)):
        return None
    try:
        kernel, strides, dilations, pads, out, group = _resolve_conv(x.shape, w.shape, attrs)
    except ValueError:
        return None  # numpy raises the error
    if b is not None and b.shape != (w.shape[0],):
        return None
    params = {"group": group, "strides": strides, "dilations": dilations, "pads": pads,
              "kernel_shape": kernel}
    shape = (x.shape[0], w.shape[0], *out)
    return NativeCall("Conv", params, [shape], [_F32],
                      constant_inputs=tuple(j for j in (1, 2) if j < len(inputs)))


def _windows(xp, kernel, strides, dilations, out):
    """xp[n, c, *padded] -> [n, c, prod(kernel), *out]: each kernel tap's strided view."""
    taps = []
    for offs in itertools.product(*(range(k) for k in kernel)):
        idx = (slice(None), slice(None)) + tuple(
            slice(o * d, o * d + s * (n - 1) + 1, s) if n > 0 else slice(0, 0)
            for o, d, s, n in zip(offs, dilations, strides, out))
        taps.append(xp[idx])
    return np.stack(taps, axis=2)


@register("Conv", since=1, native=_conv_native)
def conv(x, w, b=None, *, auto_pad="NOTSET", dilations=None, group=1, kernel_shape=None,
         pads=None, strides=None):
    """N-D convolution (cross-correlation), NCHW layout, with groups, strides, dilations, pads."""
    attrs = {"auto_pad": auto_pad, "dilations": dilations, "group": group,
             "kernel_shape": kernel_shape, "pads": pads, "strides": strides}
    kernel, strides, dilations, pads, out, group = _resolve_conv(x.shape, w.shape, attrs)
    dt = x.dtype
    ct = _compute_dtype(dt)
    nd = len(kernel)
    n, c = x.shape[:2]
    m = w.shape[0]
    width = [(0, 0), (0, 0)] + [(pads[i], pads[nd + i]) for i in range(nd)]
    xp = np.pad(x.astype(ct, copy=False), width)
    cols = _windows(xp, kernel, strides, dilations, out)          # n, c, K, *out
    s = int(np.prod(out, dtype=np.int64))
    ks = int(np.prod(kernel, dtype=np.int64))
    cols = cols.reshape(n, group, (c // group) * ks, s)
    wg = w.astype(ct, copy=False).reshape(group, m // group, (c // group) * ks)
    y = np.matmul(wg[None], cols)                                  # n, group, m/g, s
    y = y.reshape(n, m, *out)
    if b is not None:
        y = y + b.astype(ct, copy=False).reshape((1, m) + (1,) * nd)
    return np.asarray(y).astype(dt, copy=False)


def convtranspose_geometry(in_spatial, kernel, strides, dilations, pads, output_padding,
                           output_shape, auto_pad):
    """(pads, output spatial shape) of a ConvTranspose.

    With ``output_shape`` (or SAME_*: output = in * stride) the total padding is
    stride * (in - 1) + output_padding + (k - 1) * dilation + 1 - output; the odd pixel goes to
    the end for SAME_UPPER and to the beginning otherwise (ConvTranspose-11's rule). A negative
    total (SAME with stride > kernel span) extends the output with zeros, as the spec's
    ``output = in * stride`` requires (onnxruntime clamps it to 0 and returns a smaller output).
    """
    nd = len(in_spatial)
    out_pad = _ints(output_padding, nd, 0)
    full = [s * (i - 1) + op + (k - 1) * d + 1
            for i, k, s, d, op in zip(in_spatial, kernel, strides, dilations, out_pad)]
    if output_shape is not None and len(output_shape) > 0:
        out = [int(v) for v in output_shape][-nd:]
    elif auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        out = [i * s for i, s in zip(in_spatial, strides)]
    else:
        out = None
    if out is not None:
        begins, ends = [], []
        for f, o in zip(full, out):
            total = f - o
            small, large = total // 2, total - total // 2
            end_heavy = auto_pad == "SAME_UPPER"
            begins.append(small if end_heavy else large)
            ends.append(large if end_heavy else small)
        return begins + ends, out
    if auto_pad == "VALID":
        return [0] * (2 * nd), full
    if auto_pad not in ("NOTSET", "", None):
        raise ValueError(f"ConvTranspose: unknown auto_pad '{auto_pad}'")
    pads = _ints(pads, 2 * nd, 0)
    return pads, [f - pads[j] - pads[nd + j] for j, f in enumerate(full)]


def _conv_transpose(x, w, b, attrs):
    nd = x.ndim - 2
    if nd < 1 or w.ndim != x.ndim:
        raise ValueError(f"ConvTranspose: X {x.shape} and W {w.shape} do not match")
    group = int(attrs["group"])
    kernel = [int(k) for k in w.shape[2:]]
    if attrs["kernel_shape"] and list(attrs["kernel_shape"]) != kernel:
        raise ValueError("ConvTranspose: kernel_shape differs from W")
    strides = _ints(attrs["strides"], nd, 1)
    dilations = _ints(attrs["dilations"], nd, 1)
    n, c = x.shape[:2]
    if c != w.shape[0] or c % group:
        raise ValueError(f"ConvTranspose: channels of X {x.shape} and W {w.shape} do not match")
    in_sp = list(x.shape[2:])
    pads, out = convtranspose_geometry(in_sp, kernel, strides, dilations, attrs["pads"],
                                       attrs["output_padding"], attrs["output_shape"],
                                       attrs["auto_pad"])
    dt = x.dtype
    ct = _compute_dtype(dt)
    mg = w.shape[1]
    m = mg * group
    cg = c // group
    s_in = int(np.prod(in_sp, dtype=np.int64))
    ks = int(np.prod(kernel, dtype=np.int64))
    # cols[n, g, mg * ks, s_in] = W_g^T @ X_g, then every tap is scattered (added) to its
    # strided place in the full (unpadded) output.
    xg = x.astype(ct, copy=False).reshape(n, group, cg, s_in)
    wg = w.astype(ct, copy=False).reshape(group, cg, mg * ks)
    cols = np.matmul(np.swapaxes(wg, 1, 2)[None], xg)
    cols = cols.reshape(n, m, ks, *in_sp)
    full = [s * (i - 1) + (k - 1) * d + 1 for i, k, s, d in zip(in_sp, kernel, strides, dilations)]
    yf = np.zeros((n, m, *full), dtype=ct)
    for t, offs in enumerate(itertools.product(*(range(k) for k in kernel))):
        idx = (slice(None), slice(None)) + tuple(
            slice(o * d, o * d + s * (i - 1) + 1, s)
            for o, d, s, i in zip(offs, dilations, strides, in_sp))
        yf[idx] += cols[:, :, t]
    # Output position o is full position o + pad_begin; outside the full range it is 0
    # (output_padding and negative pads extend the output with zeros).
    y = np.zeros((n, m, *out), dtype=ct)
    src, dst = [slice(None), slice(None)], [slice(None), slice(None)]
    for j in range(nd):
        lo = max(0, -pads[j])
        hi = min(out[j], full[j] - pads[j])
        if hi <= lo:
            src = dst = None
            break
        dst.append(slice(lo, hi))
        src.append(slice(lo + pads[j], hi + pads[j]))
    if src is not None:
        y[tuple(dst)] = yf[tuple(src)]
    if b is not None:
        y = y + b.astype(ct, copy=False).reshape((1, m) + (1,) * nd)
    return np.asarray(y).astype(dt, copy=False)


@register("ConvTranspose", since=1)
def conv_transpose(x, w, b=None, *, auto_pad="NOTSET", dilations=None, group=1,
                   kernel_shape=None, output_padding=None, output_shape=None, pads=None,
                   strides=None):
    """N-D transposed convolution (gradient of Conv), NCHW, groups, strides, dilations, pads."""
    return _conv_transpose(x, w, b, locals())


# --------------------------------------------------------------------------------------------
# DeformConv (numpy only)


def _sample_linear(xf, in_spatial, coords):
    """N-linear interpolation of xf [n, G, Cg, prod(in_spatial)] at ``coords`` (one array per
    spatial dim, each [n, G, L], in input pixel units); neighbours outside the input count as
    zero. Returns [n, G, Cg, L]."""
    nd = len(in_spatial)
    base = [np.floor(c) for c in coords]
    strides = [int(np.prod(in_spatial[j + 1:], dtype=np.int64)) for j in range(nd)]
    out = None
    for corner in itertools.product((0, 1), repeat=nd):
        weight = np.ones(coords[0].shape, dtype=np.float64)
        valid = np.ones(coords[0].shape, dtype=bool)
        flat = np.zeros(coords[0].shape, dtype=np.int64)
        for j in range(nd):
            pos = base[j] + corner[j]
            weight = weight * (1.0 - np.abs(coords[j] - pos))
            valid &= (pos >= 0) & (pos < in_spatial[j])
            flat += np.where(valid, pos, 0).astype(np.int64) * strides[j]
        flat = np.where(valid, flat, 0)
        weight = np.where(valid, weight, 0.0).astype(xf.dtype)
        vals = np.take_along_axis(xf, flat[:, :, None, :], axis=3) * weight[:, :, None, :]
        out = vals if out is None else out + vals
    return out


@register("DeformConv", since=19)
def deform_conv(x, w, offset, b=None, mask=None, *, dilations=None, group=1,
                kernel_shape=None, offset_group=1, pads=None, strides=None):
    """Conv whose kernel taps sample X at their regular position plus a learned offset
    (linear interpolation, zero outside X), each sample scaled by ``mask`` (default 1).

    offset: [N, offset_group * prod(kernel) * nd, *out], per tap the nd coordinate offsets;
    mask: [N, offset_group * prod(kernel), *out]. Input channels split into offset_group
    consecutive blocks, each with its own offsets and mask.
    """
    x, w, offset = np.asarray(x), np.asarray(w), np.asarray(offset)
    attrs = {"auto_pad": "NOTSET", "dilations": dilations, "group": group,
             "kernel_shape": kernel_shape, "pads": pads, "strides": strides}
    kernel, strides, dilations, pads, out, group = _resolve_conv(x.shape, w.shape, attrs)
    nd = len(kernel)
    n, c = x.shape[:2]
    m = w.shape[0]
    og = int(offset_group)
    if og < 1 or c % og:
        raise ValueError(f"DeformConv: {c} input channels do not split into "
                         f"offset_group={og}")
    ks = int(np.prod(kernel, dtype=np.int64))
    s = int(np.prod(out, dtype=np.int64))
    if offset.shape != (n, og * ks * nd, *out):
        raise ValueError(f"DeformConv: offset shape {offset.shape}, expected "
                         f"{(n, og * ks * nd, *out)}")
    if mask is not None and np.shape(mask) != (n, og * ks, *out):
        raise ValueError(f"DeformConv: mask shape {np.shape(mask)}, expected "
                         f"{(n, og * ks, *out)}")
    dt = x.dtype
    ct = _compute_dtype(dt)
    off = offset.astype(np.float64).reshape(n, og, ks, nd, s)
    # Regular sampling position of tap k at output position o along dim j:
    # o * stride - pad_begin + k * dilation.
    grid = np.stack(np.meshgrid(*(np.arange(o) for o in out), indexing="ij"), 0)
    grid = grid.reshape(nd, s)
    taps = np.array(list(itertools.product(*(range(k) for k in kernel))),
                    dtype=np.int64).reshape(ks, nd)
    coords = []
    for j in range(nd):
        regular = (grid[j][None, :] * strides[j] - pads[j]
                   + taps[:, j][:, None] * dilations[j]).astype(np.float64)   # ks, s
        coords.append((regular[None, None] + off[:, :, :, j]).reshape(n, og, ks * s))
    xf = x.astype(ct, copy=False).reshape(n, og, c // og, -1)
    cols = _sample_linear(xf, list(x.shape[2:]), coords)         # n, og, c/og, ks * s
    cols = cols.reshape(n, og, c // og, ks, s)
    if mask is not None:
        cols = cols * np.asarray(mask).astype(ct).reshape(n, og, 1, ks, s)
    cols = cols.reshape(n, group, (c // group) * ks, s)
    wg = w.astype(ct, copy=False).reshape(group, m // group, (c // group) * ks)
    y = np.matmul(wg[None], cols).reshape(n, m, *out)
    if b is not None:
        y = y + np.asarray(b).astype(ct).reshape((1, m) + (1,) * nd)
    return np.asarray(y).astype(dt, copy=False)
