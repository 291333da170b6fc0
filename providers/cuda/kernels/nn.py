"""GEMM-shaped and neural-network kernels: MatMul, Gemm, Conv, pooling, normalizations,
softmax. Matrix products go through ``xp.matmul`` (cuBLAS on CuPy)."""

from __future__ import annotations

import itertools
import math
import time

import numpy as np

from providers.cuda.kernels import norm_axis, register

# ---- matrix products ---------------------------------------------------------------------

@register("MatMul", 1)
def matmul(ctx, a, b):
    return ctx.xp.matmul(a, b)


register("MatMul", 9)(matmul)
register("MatMul", 13)(matmul)


@register("Gemm", 7)
def gemm(ctx, a, b, c=None, *, alpha=1.0, beta=1.0, transA=0, transB=0):
    xp = ctx.xp
    a2 = a.T if transA else a
    b2 = b.T if transB else b
    y = xp.matmul(a2, b2)
    if alpha != 1.0:
        y = y * y.dtype.type(alpha)
    if c is not None and beta != 0.0:
        y = y + (c * c.dtype.type(beta) if beta != 1.0 else c)
    return y.astype(a.dtype, copy=False)


for _v in (9, 11, 13):
    register("Gemm", _v)(gemm)


# ---- convolution ---------------------------------------------------------------------------

def _pads_for(in_shape, kernel, strides, dilations, pads, auto_pad, ceil_mode=False):
    """(begin pads, end pads, output spatial shape) for conv/pool attributes."""
    n = len(in_shape)
    pads = list(pads) if pads else [0] * (2 * n)
    begin, end, out = [], [], []
    for i in range(n):
        size, k, s, d = in_shape[i], kernel[i], strides[i], dilations[i]
        eff = (k - 1) * d + 1
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            o = -(-size // s)
            total = max(0, (o - 1) * s + eff - size)
            b = total // 2 if auto_pad == "SAME_UPPER" else total - total // 2
            begin.append(b)
            end.append(total - b)
            out.append(o)
            continue
        if auto_pad == "VALID":
            b, e = 0, 0
        else:
            b, e = pads[i], pads[i + n]
        span = size + b + e - eff
        if ceil_mode:
            o = -(-span // s) + 1
            # ONNX: the last window must start inside the input or its left padding
            if (o - 1) * s >= size + b:
                o -= 1
        else:
            o = span // s + 1
        begin.append(b)
        end.append(e)
        out.append(max(o, 0))
    return begin, end, out


def _windows(xp, xp_padded, kernel, strides, dilations, out_shape):
    """Yield the strided view of the padded input for each kernel offset."""
    n = len(kernel)
    for offs in itertools.product(*[range(k) for k in kernel]):
        idx = [slice(None), slice(None)]
        for i in range(n):
            start = offs[i] * dilations[i]
            idx.append(slice(start, start + strides[i] * (out_shape[i] - 1) + 1, strides[i]))
        yield xp_padded[tuple(idx)]


def _pad_spatial(xp, x, begin, end, value=0.0):
    if not any(begin) and not any(end):
        return x
    widths = [(0, 0), (0, 0)] + list(zip(begin, end))
    return xp.pad(x, widths, mode="constant", constant_values=value)


def _conv_im2col(xp, x, w, b, begin, end, out_shape, strides, dilations, group):
    n, c = x.shape[:2]
    m = w.shape[0]
    kernel = w.shape[2:]
    xpd = _pad_spatial(xp, x, begin, end)
    cols = xp.stack(list(_windows(xp, xpd, kernel, strides, dilations, out_shape)), axis=2)
    # cols: (N, C, K, *out) -> (N, G, C/G * K, P)
    k = cols.shape[2]
    p = int(np.prod(out_shape)) if out_shape else 1
    cols = cols.reshape(n, group, (c // group) * k, p)
    wr = w.reshape(1, group, m // group, (c // group) * k)
    y = xp.matmul(wr, cols).reshape((n, m) + tuple(out_shape))
    if b is not None:
        y = y + b.reshape((1, m) + (1,) * len(out_shape))
    return y.astype(x.dtype, copy=False)


def _conv_pointwise(xp, x, w, b, out_shape, strides, group):
    """1x1 kernels, no padding: strided input slice times the weight matrix."""
    n, c = x.shape[:2]
    m = w.shape[0]
    idx = (slice(None), slice(None)) + tuple(slice(None, None, s) for s in strides)
    xs = x[idx]
    p = int(np.prod(out_shape)) if out_shape else 1
    cols = xp.ascontiguousarray(xs).reshape(n, group, c // group, p)
    wr = w.reshape(1, group, m // group, c // group)
    y = xp.matmul(wr, cols).reshape((n, m) + tuple(out_shape))
    if b is not None:
        y = y + b.reshape((1, m) + (1,) * len(out_shape))
    return y.astype(x.dtype, copy=False)


def _conv_cudnn(ctx, x, w, b, begin, out_shape, strides, dilations, group, auto_tune):
    import cupyx.cudnn

    xp = ctx.xp
    y = xp.empty((x.shape[0], w.shape[0]) + tuple(out_shape), dtype=x.dtype)
    cupyx.cudnn.convolution_forward(
        xp.ascontiguousarray(x), xp.ascontiguousarray(w),
        None if b is None else xp.ascontiguousarray(b), y, tuple(begin), tuple(strides),
        tuple(dilations), group, auto_tune=auto_tune, tensor_core="auto")
    return y


def cudnn_available(ctx) -> bool:
    if not ctx.on_device or ctx.backend is None or ctx.backend.emulated:
        return False
    try:
        import cupy
        import cupyx.cudnn  # noqa: F401

        return bool(cupy.cuda.cudnn.available) if hasattr(cupy.cuda, "cudnn") else True
    except Exception:
        return False


def conv_algorithms(ctx, pointwise: bool, symmetric_pads: bool, ndim: int) -> list[str]:
    algos = []
    if symmetric_pads and ndim in (1, 2, 3) and cudnn_available(ctx):
        algos.append("cudnn")
    if pointwise:
        algos.append("pointwise_gemm")
    algos.append("im2col_gemm")
    return algos


@register("Conv", 1)
def conv(ctx, x, w, b=None, *, auto_pad="NOTSET", dilations=None, group=1, kernel_shape=None,
         pads=None, strides=None):
    xp = ctx.xp
    nsp = x.ndim - 2
    kernel = list(kernel_shape) if kernel_shape else list(w.shape[2:])
    strides = list(strides) if strides else [1] * nsp
    dilations = list(dilations) if dilations else [1] * nsp
    begin, end, out_shape = _pads_for(x.shape[2:], kernel, strides, dilations, pads, auto_pad)
    pointwise = all(k == 1 for k in kernel) and not any(begin) and not any(end)
    algos = conv_algorithms(ctx, pointwise, begin == end, nsp)

    def run(algo):
        if algo == "cudnn":
            return _conv_cudnn(ctx, x, w, b, begin, out_shape, strides, dilations, group,
                               ctx.options.get("cudnn_conv_algo_search") == "EXHAUSTIVE")
        if algo == "pointwise_gemm":
            return _conv_pointwise(xp, x, w, b, out_shape, strides, group)
        return _conv_im2col(xp, x, w, b, begin, end, out_shape, strides, dilations, group)

    # Algorithm choice, cached per node and shape signature (as cuDNN's algo cache).
    key = ("conv_algo", ctx.node_name, x.shape, x.dtype.str, w.shape, tuple(begin),
           tuple(end), tuple(strides), tuple(dilations), group)
    cache = ctx.cache
    algo = cache.get(key)
    if algo is not None:
        return run(algo)
    search = ctx.options.get("cudnn_conv_algo_search", "HEURISTIC")
    if search == "EXHAUSTIVE" and len(algos) > 1:
        best, best_t, result = None, math.inf, None
        for cand in algos:
            try:
                ctx.backend.synchronize() if ctx.backend is not None else None
                t0 = time.perf_counter()
                y = run(cand)
                ctx.backend.synchronize() if ctx.backend is not None else None
                dt = time.perf_counter() - t0
            except Exception:
                continue
            if dt < best_t:
                best, best_t, result = cand, dt, y
        if best is None:
            raise RuntimeError("no convolution algorithm succeeded")
        cache[key] = best
        return result
    for cand in algos:  # HEURISTIC / DEFAULT: the first that works, in preference order
        try:
            y = run(cand)
        except Exception:
            if cand == algos[-1]:
                raise
            continue
        cache[key] = cand
        return y
    raise RuntimeError("unreachable")


register("Conv", 11)(conv)


# ---- pooling ----------------------------------------------------------------------------

def _pool_check(node, graph):
    outs = [o for o in node.outputs if o]
    if len(outs) > 1:
        return "MaxPool's Indices output is not implemented on CUDA"
    return None


def _pool(ctx, x, kernel_shape, strides, pads, dilations, auto_pad, ceil_mode, kind,
          count_include_pad=0):
    xp = ctx.xp
    nsp = x.ndim - 2
    kernel = list(kernel_shape)
    strides = list(strides) if strides else [1] * nsp
    dilations = list(dilations) if dilations else [1] * nsp
    begin, end, out_shape = _pads_for(x.shape[2:], kernel, strides, dilations, pads, auto_pad,
                                      bool(ceil_mode))
    # Extra room so that the last (ceil-mode) window slices stay inside the padded array.
    extra = []
    for i in range(nsp):
        need = (out_shape[i] - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1
        have = x.shape[2 + i] + begin[i] + end[i]
        extra.append(max(0, need - have))
    end_all = [e + a for e, a in zip(end, extra)]
    if kind == "max":
        fill = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
        xpd = _pad_spatial(xp, x, begin, end_all, fill)
        out = None
        for win in _windows(xp, xpd, kernel, strides, dilations, out_shape):
            out = win.copy() if out is None else xp.maximum(out, win)
        return out
    xpd = _pad_spatial(xp, x, begin, end_all, 0)
    total = None
    for win in _windows(xp, xpd, kernel, strides, dilations, out_shape):
        total = win.astype(np.float64 if x.dtype == np.float64 else np.float32) if total is None \
            else total + win
    # The divisor: window elements inside the input (or inside input + pads).
    shape = [1, 1] + list(x.shape[2:])
    ones = xp.ones(shape, dtype=np.float32)
    if count_include_pad:
        mask = _pad_spatial(xp, ones, begin, end, 1.0)
        mask = _pad_spatial(xp, mask, [0] * nsp, extra, 0.0)
    else:
        mask = _pad_spatial(xp, ones, begin, end_all, 0.0)
    count = None
    for win in _windows(xp, mask, kernel, strides, dilations, out_shape):
        count = win.copy() if count is None else count + win
    return (total / xp.maximum(count, 1)).astype(x.dtype)


@register("MaxPool", 8, check=_pool_check)
def max_pool(ctx, x, *, auto_pad="NOTSET", ceil_mode=0, dilations=None, kernel_shape=None,
             pads=None, storage_order=0, strides=None):
    return _pool(ctx, x, kernel_shape, strides, pads, dilations, auto_pad, ceil_mode, "max")


register("MaxPool", 10, check=_pool_check)(max_pool)
register("MaxPool", 11, check=_pool_check)(max_pool)
register("MaxPool", 12, check=_pool_check)(max_pool)


@register("AveragePool", 7)
def average_pool(ctx, x, *, auto_pad="NOTSET", ceil_mode=0, count_include_pad=0,
                 kernel_shape=None, pads=None, strides=None, dilations=None):
    return _pool(ctx, x, kernel_shape, strides, pads, dilations, auto_pad, ceil_mode, "avg",
                 count_include_pad)


for _v in (10, 11, 19):
    register("AveragePool", _v)(average_pool)


@register("GlobalAveragePool", 1)
def global_average_pool(ctx, x):
    axes = tuple(range(2, x.ndim))
    return x.mean(axis=axes, keepdims=True, dtype=np.float64 if x.dtype == np.float64
                  else np.float32).astype(x.dtype)


@register("GlobalMaxPool", 1)
def global_max_pool(ctx, x):
    return x.max(axis=tuple(range(2, x.ndim)), keepdims=True)


# ---- normalization ----------------------------------------------------------------------

def _bn_check(node, graph):
    if node.attrs.get("training_mode", 0):
        return "BatchNormalization in training mode is not implemented on CUDA"
    if len([o for o in node.outputs if o]) > 1:
        return "BatchNormalization's training outputs are not implemented on CUDA"
    return None


def _channel(v, ndim):
    return v.reshape((1, -1) + (1,) * (ndim - 2))


@register("BatchNormalization", 6, check=_bn_check)
def batch_norm(ctx, x, scale, bias, mean, var, *, epsilon=1e-5, momentum=0.9, training_mode=0,
               spatial=1, is_test=0):
    xp = ctx.xp
    inv = 1.0 / xp.sqrt(var.astype(np.float32) + np.float32(epsilon))
    s = _channel(scale * inv, x.ndim)
    y = (x - _channel(mean, x.ndim)) * s + _channel(bias, x.ndim)
    return y.astype(x.dtype, copy=False)


for _v in (7, 9, 14, 15):
    register("BatchNormalization", _v, check=_bn_check)(batch_norm)


@register("InstanceNormalization", 6)
def instance_norm(ctx, x, scale, bias, *, epsilon=1e-5):
    xp = ctx.xp
    axes = tuple(range(2, x.ndim))
    xf = x.astype(np.float32) if x.dtype == np.float16 else x
    mean = xf.mean(axis=axes, keepdims=True)
    var = ((xf - mean) ** 2).mean(axis=axes, keepdims=True)
    y = (xf - mean) / xp.sqrt(var + epsilon)
    y = y * _channel(scale, x.ndim) + _channel(bias, x.ndim)
    return y.astype(x.dtype, copy=False)


@register("LayerNormalization", 17)
def layer_norm(ctx, x, scale, bias=None, *, axis=-1, epsilon=1e-5, stash_type=1):
    xp = ctx.xp
    a = norm_axis(axis, x.ndim)
    axes = tuple(range(a, x.ndim))
    xf = x.astype(np.float32) if x.dtype != np.float64 else x
    mean = xf.mean(axis=axes, keepdims=True)
    var = ((xf - mean) ** 2).mean(axis=axes, keepdims=True)
    inv = 1.0 / xp.sqrt(var + epsilon)
    y = (xf - mean) * inv * scale
    if bias is not None:
        y = y + bias
    outs = [y.astype(x.dtype, copy=False)]
    if ctx.num_outputs > 1:
        outs.append(mean.astype(np.float32) if stash_type == 1 else mean)
    if ctx.num_outputs > 2:
        outs.append(inv.astype(np.float32) if stash_type == 1 else inv)
    return outs


# ---- softmax ----------------------------------------------------------------------------

def _softmax_axis(xp, x, axis, log):
    m = x.max(axis=axis, keepdims=True)
    e = xp.exp(x - m)
    s = e.sum(axis=axis, keepdims=True)
    if log:
        return (x - m - xp.log(s)).astype(x.dtype, copy=False)
    return (e / s).astype(x.dtype, copy=False)


def _softmax_2d(xp, x, axis, log):
    a = norm_axis(axis, x.ndim)
    rows = int(np.prod(x.shape[:a])) if a else 1
    y = _softmax_axis(xp, x.reshape(rows, -1), 1, log)
    return y.reshape(x.shape)


@register("Softmax", 1)
def softmax1(ctx, x, *, axis=1):
    return _softmax_2d(ctx.xp, x, axis, False)


register("Softmax", 11)(softmax1)


@register("Softmax", 13)
def softmax13(ctx, x, *, axis=-1):
    return _softmax_axis(ctx.xp, x, norm_axis(axis, x.ndim), False)


@register("LogSoftmax", 1)
def log_softmax1(ctx, x, *, axis=1):
    return _softmax_2d(ctx.xp, x, axis, True)


register("LogSoftmax", 11)(log_softmax1)


@register("LogSoftmax", 13)
def log_softmax13(ctx, x, *, axis=-1):
    return _softmax_axis(ctx.xp, x, norm_axis(axis, x.ndim), True)


@register("LRN", 1)
def lrn(ctx, x, *, alpha=0.0001, beta=0.75, bias=1.0, size=1):
    """Local response normalization across channels (window ``size`` centred on each)."""
    xp = ctx.xp
    c = x.shape[1]
    sq = x.astype(np.float32) * x.astype(np.float32) if x.dtype == np.float16 else x * x
    lo = (size - 1) // 2
    hi = size - 1 - lo
    widths = [(0, 0), (lo, hi)] + [(0, 0)] * (x.ndim - 2)
    padded = xp.pad(sq, widths, mode="constant")
    total = None
    for k in range(size):
        win = padded[:, k:k + c]
        total = win.copy() if total is None else total + win
    y = x / (bias + (alpha / size) * total) ** beta
    return y.astype(x.dtype, copy=False)


register("LRN", 13)(lrn)
