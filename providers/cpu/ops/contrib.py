"""onnxruntime's contrib operators (domain com.microsoft) that its transformer optimizer and
quantization tools emit, plus the opset-1 LayerNormalization/SimplifiedLayerNormalization
that onnxruntime keeps in the default domain.

The specs are onnxruntime's (docs/ContribOperators.md); where they are silent the behaviour of
onnxruntime's CPU kernels is the reference: float32 arithmetic, round-half-to-even
requantization, additive attention masks of ``mask_filter_value``.
"""

from __future__ import annotations

import math

import numpy as np

from providers.cpu.opset import MS_DOMAIN, register
from providers.cpu.ops.activation import gelu as _onnx_gelu
from providers.cpu.ops.conv import conv as _onnx_conv
from providers.cpu.ops.normalization import layer_norm as _onnx_layer_norm
from providers.cpu.ops.pool import average_pool as _onnx_average_pool
from providers.cpu.ops.quantization import (
    dequantize_linear as _onnx_dequantize,
    dynamic_quantize_linear as _dynamic_quantize,
    quantize_linear as _onnx_quantize,
    round_half_even,
    saturate_int,
)

_F32 = np.float32


def _f32(x) -> np.ndarray:
    return np.asarray(x).astype(_F32, copy=False)


def _out(y, like: np.ndarray) -> np.ndarray:
    return np.asarray(y).astype(like.dtype, copy=False)


# --------------------------------------------------------------------------------------------
# GELU family


@register("Gelu", since=1, domain=MS_DOMAIN)
def gelu(x):
    """0.5 x (1 + erf(x / sqrt 2))."""
    return _onnx_gelu(np.asarray(x))


@register("BiasGelu", since=1, domain=MS_DOMAIN)
def bias_gelu(a, b):
    """Gelu(A + B), B broadcast over the last axis."""
    a = np.asarray(a)
    return _out(_onnx_gelu((a + np.asarray(b)).astype(a.dtype)), a)


@register("FastGelu", since=1, domain=MS_DOMAIN)
def fast_gelu(x, bias=None):
    """0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) of X (+ bias)."""
    x = np.asarray(x)
    if bias is not None:
        x = (x + np.asarray(bias)).astype(x.dtype)
    return _onnx_gelu(x, approximate="tanh")


@register("QuickGelu", since=1, domain=MS_DOMAIN)
def quick_gelu(x, *, alpha=1.702):
    """x * sigmoid(alpha x)."""
    x = np.asarray(x)
    v = x.astype(np.float64)
    return _out(v * (0.5 * (1.0 + np.tanh(0.5 * float(alpha) * v))), x)


@register("BiasAdd", since=1, domain=MS_DOMAIN)
def bias_add(x, bias, skip):
    """X + bias + skip (NHWC activations, bias over channels)."""
    x = np.asarray(x)
    return _out(x + np.asarray(bias) + np.asarray(skip), x)


# --------------------------------------------------------------------------------------------
# Layer normalizations


def _ln_stats(xf: np.ndarray, axes, epsilon: float, simplified: bool):
    if simplified:
        mean = None
        ms = (xf * xf).mean(axis=axes, keepdims=True)
        return mean, 1.0 / np.sqrt(ms + epsilon)
    mean = xf.mean(axis=axes, keepdims=True)
    var = ((xf - mean) ** 2).mean(axis=axes, keepdims=True)
    return mean, 1.0 / np.sqrt(var + epsilon)


@register("LayerNormalization", since=1)
def layer_norm_contrib(x, scale, b=None, *, axis=-1, epsilon=1e-5, stash_type=1):
    """onnxruntime's LayerNormalization before ONNX adopted it (opset 17): the same
    computation, outputs Y, Mean and InvStdDev."""
    return _onnx_layer_norm(np.asarray(x), scale, b, axis=axis, epsilon=epsilon,
                            stash_type=stash_type)


@register("SimplifiedLayerNormalization", since=1)
def simplified_layer_norm(x, scale, *, axis=-1, epsilon=1e-5, stash_type=1):
    """RMS normalization: x / sqrt(mean(x^2) + eps) * scale over axes [axis, rank);
    outputs Y and inv_std_var."""
    x = np.asarray(x)
    ax = axis + x.ndim if axis < 0 else axis
    axes = tuple(range(ax, x.ndim))
    xf = x.astype(np.float64)
    _, inv = _ln_stats(xf, axes, float(epsilon), True)
    y = xf * inv * np.asarray(scale, np.float64)
    return y.astype(np.asarray(scale).dtype), inv.astype(_F32)


def _skip_norm(x, skip, gamma, beta, bias, epsilon, simplified, n_out):
    x = np.asarray(x)
    s = x.astype(np.float64) + np.asarray(skip, np.float64)
    if bias is not None:
        s = s + np.asarray(bias, np.float64)
    # The sum is an output in X's type; the statistics use that rounded sum.
    s_out = s.astype(x.dtype)
    sf = s_out.astype(np.float64)
    mean, inv = _ln_stats(sf, (-1,), float(epsilon), simplified)
    y = (sf if simplified else sf - mean) * inv * np.asarray(gamma, np.float64)
    if beta is not None:
        y = y + np.asarray(beta, np.float64)
    stat_shape = x.shape[:-1] + (1,)
    mean_out = (np.zeros(stat_shape) if mean is None else mean).astype(_F32)
    outs = [y.astype(x.dtype), mean_out.reshape(stat_shape),
            inv.astype(_F32).reshape(stat_shape), s_out]
    return outs[:max(n_out, 1)]


@register("SkipLayerNormalization", since=1, domain=MS_DOMAIN)
def skip_layer_norm(x, skip, gamma, beta=None, bias=None, *, epsilon=1e-12, _ctx=None):
    """LayerNorm(input + skip (+ bias)) over the last axis, * gamma (+ beta). Optional
    outputs: mean, inv_std_var ([..., 1], float) and the sum input + skip + bias."""
    n_out = _ctx.num_outputs if _ctx is not None else 1
    return _skip_norm(x, skip, gamma, beta, bias, epsilon, False, n_out)


@register("SkipSimplifiedLayerNormalization", since=1, domain=MS_DOMAIN)
def skip_simplified_layer_norm(x, skip, gamma, bias=None, *, epsilon=1e-12, _ctx=None):
    """RMSNorm(input + skip (+ bias)) * gamma; optional outputs as SkipLayerNormalization
    (its mean output is not computed by this RMS form and reads 0)."""
    n_out = _ctx.num_outputs if _ctx is not None else 1
    return _skip_norm(x, skip, gamma, None, bias, epsilon, True, n_out)


@register("EmbedLayerNormalization", since=1, domain=MS_DOMAIN)
def embed_layer_norm(input_ids, segment_ids, word_embedding, position_embedding,
                     segment_embedding=None, gamma=None, beta=None, mask=None,
                     position_ids=None, *, epsilon=1e-12, mask_index_type=1, _ctx=None):
    """BERT embeddings: LayerNorm(word[ids] + position[pos] (+ segment[seg])). Outputs the
    normalized embeddings, mask_index (per batch, the number of non-zero mask entries; 0
    without a mask) and the sum before normalization."""
    ids = np.asarray(input_ids).astype(np.int64)
    b, s = ids.shape
    word = np.asarray(word_embedding)
    pos_table = np.asarray(position_embedding)
    for name, table, idx in (("input_ids", word, ids),):
        if ((idx < 0) | (idx >= table.shape[0])).any():
            raise ValueError(f"EmbedLayerNormalization: {name} out of range")
    if position_ids is not None:
        pos = np.broadcast_to(np.asarray(position_ids).astype(np.int64), (b, s))
    else:
        pos = np.broadcast_to(np.arange(s), (b, s))
    if ((pos < 0) | (pos >= pos_table.shape[0])).any():
        raise ValueError("EmbedLayerNormalization: position ids out of range")
    emb = word[ids].astype(_F32) + pos_table[pos].astype(_F32)
    if segment_ids is not None and segment_embedding is not None:
        seg = np.asarray(segment_ids).astype(np.int64)
        seg_table = np.asarray(segment_embedding)
        if ((seg < 0) | (seg >= seg_table.shape[0])).any():
            raise ValueError("EmbedLayerNormalization: segment_ids out of range")
        emb = emb + seg_table[seg].astype(_F32)
    emb = emb.astype(word.dtype)
    ef = emb.astype(np.float64)
    mean, inv = _ln_stats(ef, (-1,), float(epsilon), False)
    y = (ef - mean) * inv * np.asarray(gamma, np.float64) + np.asarray(beta, np.float64)
    if mask is not None:
        mask_index = (np.asarray(mask) != 0).sum(axis=1).astype(np.int32)
    else:
        mask_index = np.zeros(b, np.int32)
    n_out = _ctx.num_outputs if _ctx is not None else 3
    return [y.astype(word.dtype), mask_index, emb][:max(n_out, 1)]


# --------------------------------------------------------------------------------------------
# Fused matmul, gemm and conv


def _activation(name: str, params) -> callable:
    """The activations onnxruntime fuses into Conv/Gemm, with their parameters in order."""
    p = [float(v) for v in (params or [])]
    key = (name or "").lower()
    if key in ("", "identity"):
        return lambda v: v
    if key == "relu":
        return lambda v: np.maximum(v, 0)
    if key == "tanh":
        return np.tanh
    if key == "sigmoid":
        return lambda v: 0.5 * (1.0 + np.tanh(0.5 * v))
    if key == "leakyrelu":
        alpha = p[0] if p else 0.01
        return lambda v: np.where(v >= 0, v, v * alpha)
    if key == "clip":
        lo = p[0] if p else -np.inf
        hi = p[1] if len(p) > 1 else np.inf
        return lambda v: np.clip(v, lo, hi)
    if key == "hardsigmoid":
        alpha = p[0] if p else 0.2
        beta = p[1] if len(p) > 1 else 0.5
        return lambda v: np.clip(alpha * v + beta, 0, 1)
    raise ValueError(f"unsupported fused activation {name!r}")


@register("FusedConv", since=1, domain=MS_DOMAIN)
def fused_conv(x, w, b=None, z=None, *, activation="", activation_params=None,
               auto_pad="NOTSET", dilations=None, group=1, kernel_shape=None, pads=None,
               strides=None):
    """activation(Conv(X, W, B) + Z)."""
    x = np.asarray(x)
    y = _onnx_conv(x, np.asarray(w), None if b is None else np.asarray(b), auto_pad=auto_pad,
                   dilations=dilations, group=group, kernel_shape=kernel_shape, pads=pads,
                   strides=strides)
    yf = y.astype(np.float64)
    if z is not None:
        yf = yf + np.asarray(z, np.float64)
    return _out(_activation(activation, activation_params)(yf), x)


@register("FusedGemm", since=1, domain=MS_DOMAIN)
def fused_gemm(a, b, c=None, *, alpha=1.0, beta=1.0, transA=0, transB=0, activation="",
               activation_alpha=None, activation_beta=None, activation_gamma=None):
    """activation(alpha op(A) op(B) + beta C); LeakyRelu takes activation_alpha, HardSigmoid
    activation_alpha/beta, Clip activation_alpha/beta as its bounds."""
    a = np.asarray(a)
    am = a.T if transA else a
    bm = np.asarray(b).T if transB else np.asarray(b)
    y = _f32(am) @ _f32(bm)
    y = y * _F32(alpha)
    if c is not None and beta != 0:
        y = y + _f32(c) * _F32(beta)
    params = [v for v in (activation_alpha, activation_beta) if v is not None]
    if (activation or "").lower() == "leakyrelu" and activation_alpha is None:
        params = [0.01]
    return _out(_activation(activation, params)(y.astype(np.float64)), a)


def _move_batch(m: np.ndarray) -> np.ndarray:
    """[d0, b1..bk, ..., last] -> [b1..bk, d0, last]: the leading dim becomes the row dim."""
    if m.ndim < 3:
        return m
    perm = list(range(1, m.ndim - 1)) + [0, m.ndim - 1]
    return m.transpose(perm)


@register("FusedMatMul", since=1, domain=MS_DOMAIN)
def fused_matmul(a, b, *, alpha=1.0, transA=0, transB=0, transBatchA=0, transBatchB=0):
    """alpha * op(A) @ op(B). transBatch takes the first dim as the row dim of the matrix
    (dims 1..rank-2 are the batch); trans swaps the last two dims after that."""
    a = np.asarray(a)
    am, bm = a, np.asarray(b)
    if transBatchA:
        am = _move_batch(am)
    if transBatchB:
        bm = _move_batch(bm)
    if transA and am.ndim >= 2:
        am = np.swapaxes(am, -1, -2)
    if transB and bm.ndim >= 2:
        bm = np.swapaxes(bm, -1, -2)
    ct = np.float64 if a.dtype == np.float64 else _F32
    y = np.matmul(am.astype(ct), bm.astype(ct)) * ct(alpha)
    return _out(y, a)


# --------------------------------------------------------------------------------------------
# Attention


def _softmax_last(s: np.ndarray) -> np.ndarray:
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _key_mask(mask, b: int, s: int, total: int, past: int, unidirectional: bool,
              filter_value: float):
    """The additive [B, S, T] mask: ``filter_value`` for each key a mask_index or
    key_padding_mask (any of its CPU forms) excludes, plus ``filter_value`` again for the
    keys the causal mask excludes (onnxruntime adds both, which matters only in rows where
    every key is masked)."""
    masked = np.zeros((b, s, total), bool)
    keys = np.arange(total)
    if mask is not None:
        m = np.asarray(mask)
        if m.ndim == 1 and m.shape[0] == b:  # right padding: valid key lengths
            masked |= keys[None, None, :] >= m.astype(np.int64)[:, None, None]
        elif m.ndim == 1 and m.shape[0] == 2 * b:  # end (exclusive), then start (inclusive)
            end = m[:b].astype(np.int64)[:, None, None]
            start = m[b:].astype(np.int64)[:, None, None]
            masked |= (keys[None, None, :] >= end) | (keys[None, None, :] < start)
        elif m.ndim == 2 and m.shape == (b, total):
            masked |= (m == 0)[:, None, :]
        elif m.ndim == 3 and m.shape == (b, s, total):
            masked |= m == 0
        else:
            raise NotImplementedError(
                f"attention mask of shape {m.shape} (batch {b}, total length {total}) is not "
                "supported")
    add = np.where(masked, _F32(filter_value), _F32(0))
    if unidirectional:
        q = np.arange(s)[:, None] + past
        add = add + np.where(keys[None, :] > q, _F32(filter_value), _F32(0))[None]
    return add.astype(_F32)


def _attend(q, k, v, mask_add, attention_bias, scale):
    """q [B,N,S,h], k [B,N,T,h], v [B,N,T,hv] -> [B,S,N*hv] (float32, as onnxruntime)."""
    scores = (q @ np.swapaxes(k, -1, -2)) * _F32(scale)
    if mask_add is not None:
        scores = scores + mask_add[:, None]
    if attention_bias is not None:
        scores = scores + _f32(attention_bias)
    probs = _softmax_last(scores.astype(np.float64)).astype(_F32)
    out = probs @ v
    bsz, n, s, hv = out.shape
    return out.transpose(0, 2, 1, 3).reshape(bsz, s, n * hv).astype(_F32), probs


def _heads(x: np.ndarray, n: int) -> np.ndarray:
    """[B, S, N*h] -> [B, N, S, h]."""
    bsz, s, d = x.shape
    return x.reshape(bsz, s, n, d // n).transpose(0, 2, 1, 3)


@register("Attention", since=1, domain=MS_DOMAIN)
def attention(x, weights, bias=None, mask_index=None, past=None, attention_bias=None,
              past_sequence_length=None, *, num_heads=None, qkv_hidden_sizes=None,
              unidirectional=0, scale=0.0, mask_filter_value=-10000.0, do_rotary=0,
              past_present_share_buffer=0, rotary_embedding_dim=0, _ctx=None):
    """Self-attention with the Q/K/V projections packed in one weight: input [B, S, D_in],
    weights [D_in, Dq + Dk + Dv]. mask_index: key lengths [B], end/start [2B], raw
    [B, T] or [B, S, T] masks (0 = masked); past [2, B, N, P, h] is prepended to K and V and
    returned as present. Masked scores get mask_filter_value added."""
    if do_rotary or past_present_share_buffer:
        raise NotImplementedError("Attention: do_rotary and past_present_share_buffer are "
                                  "not supported")
    x = np.asarray(x)
    n = int(num_heads)
    w = _f32(weights)
    proj = _f32(x) @ w
    if bias is not None:
        proj = proj + _f32(bias)
    total_hidden = w.shape[1]
    sizes = list(qkv_hidden_sizes) if qkv_hidden_sizes else [total_hidden // 3] * 3
    if sum(sizes) != total_hidden or sizes[0] != sizes[1]:
        raise ValueError(f"Attention: qkv_hidden_sizes {sizes} do not match the weights")
    q = _heads(proj[..., :sizes[0]], n)
    k = _heads(proj[..., sizes[0]:sizes[0] + sizes[1]], n)
    v = _heads(proj[..., sizes[0] + sizes[1]:], n)
    past_len = 0
    if past is not None:
        p = _f32(past)
        past_len = p.shape[3]
        k = np.concatenate([p[0], k], axis=2)
        v = np.concatenate([p[1], v], axis=2)
    bsz, _, s, h = q.shape
    total = k.shape[2]
    mask_add = _key_mask(mask_index, bsz, s, total, past_len, bool(unidirectional),
                         mask_filter_value)
    sc = float(scale) if scale else 1.0 / math.sqrt(h)
    out, _ = _attend(q, k, v, mask_add, attention_bias, sc)
    n_out = _ctx.num_outputs if _ctx is not None else 1
    if n_out > 1:
        return out.astype(x.dtype), np.stack([k, v]).astype(x.dtype)
    return out.astype(x.dtype)


@register("MultiHeadAttention", since=1, domain=MS_DOMAIN)
def multi_head_attention(query, key=None, value=None, bias=None, key_padding_mask=None,
                         attention_bias=None, past_key=None, past_value=None,
                         past_sequence_length=None, cache_indirection=None, *,
                         num_heads=None, scale=0.0, unidirectional=0,
                         mask_filter_value=-10000.0, output_qk=0, _ctx=None):
    """Attention over projected inputs. Q/K/V come as [B, S, D] tensors (bias added), packed
    QKV [B, S, N, 3, h] in query, packed KV [B, L, N, 2, h] in key, or K/V already split in
    heads [B, N, L, h] (no bias). past_key/past_value [B, N, P, h] are prepended; outputs are
    output, present_key, present_value and the attention probabilities (qk)."""
    if cache_indirection is not None:
        raise NotImplementedError("MultiHeadAttention: beam-search cache_indirection is not "
                                  "supported")
    query = np.asarray(query)
    n = int(num_heads)
    qf = _f32(query)
    bias_f = None if bias is None else _f32(bias)
    kv_projected = False  # K/V given per head: no bias applies
    if qf.ndim == 5:  # packed QKV [B, S, N, 3, h]
        bsz, s, _, _, h = qf.shape
        d = n * h
        qkv = qf
        q3, k3, v3 = (qkv[:, :, :, i, :].reshape(bsz, s, d) for i in range(3))
        dv = d
    else:
        bsz, s, d = qf.shape
        q3 = qf
        kf = _f32(key)
        if kf.ndim == 5:  # packed KV [B, L, N, 2, h]
            lk = kf.shape[1]
            k3 = kf[:, :, :, 0, :].reshape(bsz, lk, -1)
            v3 = kf[:, :, :, 1, :].reshape(bsz, lk, -1)
            dv = k3.shape[-1]
        elif kf.ndim == 4:  # [B, N, L, h]: already split in heads
            kv_projected = True
            k4, v4 = kf, _f32(value)
            dv = v4.shape[1] * v4.shape[3]
        else:
            k3 = kf
            v3 = _f32(value)
            dv = v3.shape[-1]
    if bias_f is not None:
        q3 = q3 + bias_f[:d]
        if not kv_projected:
            k3 = k3 + bias_f[d:2 * d]
            v3 = v3 + bias_f[2 * d:2 * d + dv]
    q = _heads(q3, n)
    if not kv_projected:
        k4 = _heads(k3, n)
        v4 = _heads(v3, n)
    past_len = 0
    if past_key is not None and past_value is not None:
        pk, pv = _f32(past_key), _f32(past_value)
        past_len = pk.shape[2]
        k4 = np.concatenate([pk, k4], axis=2)
        v4 = np.concatenate([pv, v4], axis=2)
    h = q.shape[-1]
    total = k4.shape[2]
    mask_add = _key_mask(key_padding_mask, bsz, s, total, past_len, bool(unidirectional),
                         mask_filter_value)
    sc = float(scale) if scale else 1.0 / math.sqrt(h)
    out, probs = _attend(q, k4, v4, mask_add, attention_bias, sc)
    n_out = _ctx.num_outputs if _ctx is not None else 1
    outs = [out.astype(query.dtype), k4.astype(query.dtype), v4.astype(query.dtype),
            probs.astype(_F32)]
    return outs[:max(n_out, 1)] if n_out > 1 else outs[0]


# --------------------------------------------------------------------------------------------
# Integer and dynamically quantized matmuls


def _int_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact integer matmul (float64 accumulation: exact while |acc| < 2**53)."""
    return np.matmul(a.astype(np.float64), b.astype(np.float64))


@register("MatMulInteger16", since=1, domain=MS_DOMAIN)
def matmul_integer16(a, b):
    """int16 x int16 -> int32 matmul (numpy broadcasting)."""
    return _int_matmul(np.asarray(a), np.asarray(b)).astype(np.int64).astype(np.int32)


def _col_param(p) -> np.ndarray:
    """A scalar or per-column (last axis) quantization parameter."""
    p = np.asarray(p)
    return p.reshape(()) if p.size == 1 else p


def _to_float_matmul(a_q, a_zp, b, b_zp, multiplier, bias):
    acc = _int_matmul(np.asarray(a_q).astype(np.int32) - np.asarray(a_zp).astype(np.int32),
                      np.asarray(b).astype(np.int32) - _col_param(b_zp).astype(np.int32))
    y = acc.astype(_F32) * multiplier
    if bias is not None:
        y = y + _f32(bias)
    return y.astype(_F32)


@register("MatMulIntegerToFloat", since=1, domain=MS_DOMAIN)
def matmul_integer_to_float(a, b, a_scale, b_scale, a_zero_point=None, b_zero_point=None,
                            bias=None):
    """((A - a_zp) @ (B - b_zp)) * a_scale * b_scale (+ bias), float32; B's parameters may
    be per column."""
    a_zp = 0 if a_zero_point is None else _col_param(a_zero_point)
    b_zp = 0 if b_zero_point is None else b_zero_point
    mult = (_f32(_col_param(a_scale)) * _f32(_col_param(b_scale))).astype(_F32)
    return _to_float_matmul(a, a_zp, b, b_zp, mult, bias)


@register("DynamicQuantizeMatMul", since=1, domain=MS_DOMAIN)
def dynamic_quantize_matmul(a, b, b_scale, b_zero_point=None, bias=None):
    """A is quantized to uint8 over its whole range (DynamicQuantizeLinear), multiplied in
    integers with B and scaled back to float (+ bias)."""
    a_q, a_scale, a_zp = _dynamic_quantize(_f32(a))
    b_zp = 0 if b_zero_point is None else b_zero_point
    mult = (_F32(a_scale) * _f32(_col_param(b_scale))).astype(_F32)
    return _to_float_matmul(a_q, a_zp, b, b_zp, mult, bias)


@register("QGemm", since=1, domain=MS_DOMAIN)
def qgemm(a, a_scale, a_zero_point, b, b_scale, b_zero_point, c=None, y_scale=None,
          y_zero_point=None, *, alpha=1.0, transA=0, transB=0):
    """Quantized Gemm: acc = (A - a_zp) @ (B - b_zp) + C (int32); the output is
    acc * alpha * a_scale * b_scale in float, or requantized with y_scale/y_zero_point."""
    am = np.asarray(a)
    bm = np.asarray(b)
    am = am.T if transA else am
    bm = bm.T if transB else bm
    bzp = np.asarray(b_zero_point)
    bzp = bzp.reshape(()) if bzp.size == 1 else bzp.reshape(-1)
    acc = _int_matmul(am.astype(np.int32) - np.asarray(a_zero_point).astype(np.int32),
                      bm.astype(np.int32) - bzp.astype(np.int32))
    if c is not None:
        acc = acc + np.asarray(c).astype(np.float64)
    bs = _f32(b_scale)
    bs = bs.reshape(()) if bs.size == 1 else bs.reshape(-1)
    mult = (_F32(alpha) * _f32(a_scale).reshape(()) * bs).astype(_F32)
    if y_scale is None:
        return (acc.astype(_F32) * mult).astype(_F32)
    mult = (mult / _f32(y_scale).reshape(())).astype(_F32)
    out_dtype = np.asarray(y_zero_point).dtype if y_zero_point is not None else np.uint8
    zp = 0 if y_zero_point is None else np.asarray(y_zero_point).astype(_F32)
    return saturate_int(round_half_even(acc.astype(_F32) * mult) + zp, out_dtype)


# --------------------------------------------------------------------------------------------
# QLinear element-wise ops, pools, concat, softmax


def _zp(zp, like: np.ndarray):
    return np.zeros((), like.dtype) if zp is None else np.asarray(zp).reshape(())


def _requant(v: np.ndarray, zero_point, dtype) -> np.ndarray:
    """round_half_even(v) + zero_point, saturated to ``dtype``."""
    return saturate_int(round_half_even(v.astype(_F32)) + np.asarray(zero_point, _F32), dtype)


@register("QLinearAdd", since=1, domain=MS_DOMAIN)
def qlinear_add(a, a_scale, a_zero_point, b, b_scale, b_zero_point, c_scale,
                c_zero_point=None):
    """C = (A_scale (A - A_zp) + B_scale (B - B_zp)) / C_scale + C_zp (broadcasting)."""
    a, b = np.asarray(a), np.asarray(b)
    cs = _f32(c_scale).reshape(())
    ra = (_f32(a_scale).reshape(()) / cs).astype(_F32)
    rb = (_f32(b_scale).reshape(()) / cs).astype(_F32)
    va = (a.astype(np.int32) - _zp(a_zero_point, a).astype(np.int32)).astype(_F32) * ra
    vb = (b.astype(np.int32) - _zp(b_zero_point, b).astype(np.int32)).astype(_F32) * rb
    return _requant(va + vb, _zp(c_zero_point, a), a.dtype)


@register("QLinearMul", since=1, domain=MS_DOMAIN)
def qlinear_mul(a, a_scale, a_zero_point, b, b_scale, b_zero_point, c_scale,
                c_zero_point=None):
    """C = (A - A_zp)(B - B_zp) A_scale B_scale / C_scale + C_zp (broadcasting)."""
    a, b = np.asarray(a), np.asarray(b)
    mult = (_f32(a_scale).reshape(()) * _f32(b_scale).reshape(())
            / _f32(c_scale).reshape(())).astype(_F32)
    prod = ((a.astype(np.int32) - _zp(a_zero_point, a).astype(np.int32))
            * (b.astype(np.int32) - _zp(b_zero_point, b).astype(np.int32)))
    return _requant(prod.astype(_F32) * mult, _zp(c_zero_point, a), a.dtype)


def _lookup(x, x_scale, x_zero_point, y_scale, y_zero_point, fn) -> np.ndarray:
    """Element-wise quantized function through a 256-entry table: dequantize, apply, quantize
    (float32), as onnxruntime builds it."""
    x = np.asarray(x)
    info = np.iinfo(x.dtype)
    q = np.arange(info.min, info.max + 1)
    real = ((q - _zp(x_zero_point, x).astype(np.int32)).astype(_F32)
            * _f32(x_scale).reshape(()))
    y = fn(real.astype(_F32)).astype(_F32)
    table = _requant(y / _f32(y_scale).reshape(()), _zp(y_zero_point, x), x.dtype)
    return table[x.astype(np.int32) - info.min]


@register("QLinearSigmoid", since=1, domain=MS_DOMAIN)
def qlinear_sigmoid(x, x_scale, x_zero_point=None, y_scale=None, y_zero_point=None):
    return _lookup(x, x_scale, x_zero_point, y_scale, y_zero_point,
                   lambda v: (1.0 / (1.0 + np.exp(-v.astype(np.float64)))))


@register("QLinearLeakyRelu", since=1, domain=MS_DOMAIN)
def qlinear_leaky_relu(x, x_scale, x_zero_point=None, y_scale=None, y_zero_point=None, *,
                       alpha=0.01):
    return _lookup(x, x_scale, x_zero_point, y_scale, y_zero_point,
                   lambda v: np.where(v >= 0, v, v * _F32(alpha)))


@register("QLinearGlobalAveragePool", since=1, domain=MS_DOMAIN)
def qlinear_global_average_pool(x, x_scale, x_zero_point, y_scale, y_zero_point, *,
                                channels_last=0):
    """Mean over the spatial axes of quantized input, requantized: round((sum - N x_zp)
    x_scale / (y_scale N)) + y_zp."""
    x = np.asarray(x)
    axes = tuple(range(1, x.ndim - 1)) if channels_last else tuple(range(2, x.ndim))
    count = int(np.prod([x.shape[a] for a in axes], dtype=np.int64))
    total = x.astype(np.int64).sum(axis=axes, keepdims=True)
    total = total - count * _zp(x_zero_point, x).astype(np.int64)
    mult = (_f32(x_scale).reshape(()) / (_f32(y_scale).reshape(()) * _F32(count))).astype(_F32)
    return _requant(total.astype(_F32) * mult, _zp(y_zero_point, x), x.dtype)


@register("QLinearAveragePool", since=1, domain=MS_DOMAIN)
def qlinear_average_pool(x, x_scale, x_zero_point=None, y_scale=None, y_zero_point=None, *,
                         auto_pad="NOTSET", ceil_mode=0, channels_last=0,
                         count_include_pad=0, kernel_shape=None, pads=None, strides=None):
    """Dequantize -> AveragePool in float -> quantize."""
    x = np.asarray(x)
    xf = ((x.astype(np.int32) - _zp(x_zero_point, x).astype(np.int32)).astype(_F32)
          * _f32(x_scale).reshape(()))
    if channels_last:
        xf = np.moveaxis(xf, -1, 1)
    y = _onnx_average_pool(xf, kernel_shape=kernel_shape, strides=strides, pads=pads,
                           auto_pad=auto_pad, ceil_mode=ceil_mode,
                           count_include_pad=count_include_pad)
    if channels_last:
        y = np.moveaxis(y, 1, -1)
    return _requant(y / _f32(y_scale).reshape(()), _zp(y_zero_point, x), x.dtype)


@register("QLinearConcat", since=1, domain=MS_DOMAIN)
def qlinear_concat(y_scale, y_zero_point, *inputs, axis=None):
    """Concat of (tensor, scale, zero point) triples, each requantized to Y's parameters."""
    if len(inputs) % 3:
        raise ValueError("QLinearConcat takes (X, X_scale, X_zero_point) triples")
    ys = _f32(y_scale).reshape(())
    yzp = np.asarray(y_zero_point).reshape(())
    parts = []
    for i in range(0, len(inputs), 3):
        xq, xs, xzp = np.asarray(inputs[i]), inputs[i + 1], inputs[i + 2]
        same = (_f32(xs).reshape(()) == ys and np.asarray(xzp).reshape(()) == yzp)
        if same:
            parts.append(xq.astype(yzp.dtype))
            continue
        real = ((xq.astype(np.int32) - np.asarray(xzp).astype(np.int32)).astype(_F32)
                * _f32(xs).reshape(()))
        parts.append(_requant(real / ys, yzp, yzp.dtype))
    return np.concatenate(parts, axis=int(axis))


def _qsoftmax_rows(xr: np.ndarray, x_scale: float, y_scale: float, yzp, signed: bool):
    """onnxruntime's QLinearSoftmax on [N, D] rows: exp from a 256-entry table aligned on the
    row maximum, sums and quotients in float32."""
    d = xr.shape[-1]
    shift = max(0.0, math.log(float(np.finfo(_F32).max) / d) - 5.0) / x_scale
    i = np.arange(256, dtype=np.float64)
    table = np.exp((i - 255.0 + shift) * x_scale).astype(_F32)  # index 255 = the row max
    xi = xr.astype(np.int32)
    idx = 255 - (xi.max(axis=-1, keepdims=True) - xi)
    vals = table[idx]
    total = np.zeros(xr.shape[:-1] + (1,), _F32)
    for j in range(d):  # sequential float32 sum
        total = (total + vals[..., j:j + 1]).astype(_F32)
    q = np.rint((vals * _F32(y_scale)).astype(_F32) / total).astype(np.int64)
    q = q + int(yzp)
    if signed:
        return np.clip(q, -128, 127).astype(np.int8)
    return np.minimum(q, 255).astype(np.uint8)


@register("QLinearSoftmax", since=1, domain=MS_DOMAIN)
def qlinear_softmax(x, x_scale, x_zero_point=None, y_scale=None, y_zero_point=None, *,
                    axis=-1, opset=13):
    """Softmax of quantized input (the zero point cancels out). opset < 13 coerces to 2-D at
    ``axis`` (default 1); from 13 it runs over ``axis`` alone. The output scale is taken as
    1 / floor(1 / y_scale), as onnxruntime does."""
    x = np.asarray(x)
    signed = x.dtype == np.int8
    ys = float(np.floor(_F32(1) / _f32(y_scale).reshape(())))
    yzp = 0 if y_zero_point is None else int(np.asarray(y_zero_point).reshape(()))
    xs = float(_f32(x_scale).reshape(()))
    ax = axis + x.ndim if axis < 0 else axis
    if opset < 13:
        rows = x.reshape(int(np.prod(x.shape[:ax], dtype=np.int64)), -1)
        return _qsoftmax_rows(rows, xs, ys, yzp, signed).reshape(x.shape)
    moved = np.moveaxis(x, ax, -1)
    y = _qsoftmax_rows(moved, xs, ys, yzp, signed)
    return np.moveaxis(y, -1, ax)


@register("QuantizeLinear", since=1, domain=MS_DOMAIN)
def quantize_linear(x, y_scale, y_zero_point=None, *, axis=1):
    """The ONNX QuantizeLinear (per tensor, or per ``axis`` with 1-D parameters)."""
    return _onnx_quantize(np.asarray(x), y_scale, y_zero_point, axis=axis)


@register("DequantizeLinear", since=1, domain=MS_DOMAIN)
def dequantize_linear(x, x_scale, x_zero_point=None, *, axis=1):
    """The ONNX DequantizeLinear (per tensor, or per ``axis`` with 1-D parameters)."""
    return _onnx_dequantize(np.asarray(x), x_scale, x_zero_point, axis=axis)


# --------------------------------------------------------------------------------------------
# DynamicQuantizeLSTM


def _sigmoid(v):
    return 0.5 * (1.0 + np.tanh(0.5 * v))


_LSTM_ACT = {
    "sigmoid": lambda a, b: _sigmoid,
    "tanh": lambda a, b: np.tanh,
    "relu": lambda a, b: (lambda v: np.maximum(v, 0)),
    "affine": lambda a, b: (lambda v: a * v + b),
    "leakyrelu": lambda a, b: (lambda v: np.where(v >= 0, v, a * v)),
    "thresholdedrelu": lambda a, b: (lambda v: np.where(v > a, v, 0)),
    "scaledtanh": lambda a, b: (lambda v: a * np.tanh(b * v)),
    "hardsigmoid": lambda a, b: (lambda v: np.clip(a * v + b, 0, 1)),
    "elu": lambda a, b: (lambda v: np.where(v >= 0, v, a * (np.exp(np.minimum(v, 0)) - 1))),
    "softsign": lambda a, b: (lambda v: v / (1 + np.abs(v))),
    "softplus": lambda a, b: (lambda v: np.logaddexp(0, v)),
}
# (uses alpha, uses beta, default alpha, default beta), as onnxruntime's RNN helpers
_LSTM_ACT_ARGS = {"affine": (1, 1, 0.0, 0.0), "leakyrelu": (1, 0, 0.01, 0.0),
                  "thresholdedrelu": (1, 0, 0.0, 0.0), "scaledtanh": (1, 1, 0.0, 0.0),
                  "hardsigmoid": (1, 1, 0.2, 0.5), "elu": (1, 0, 1.0, 0.0)}


def _lstm_activations(names, alphas, betas, n_dir):
    names = list(names or ["Sigmoid", "Tanh", "Tanh"] * n_dir)
    if len(names) == 3 and n_dir == 2:
        names = names * 2
    alphas, betas = list(alphas or []), list(betas or [])
    out = []
    for name in names:
        key = name.lower()
        if key not in _LSTM_ACT:
            raise ValueError(f"unsupported LSTM activation {name!r}")
        ua, ub, da, db = _LSTM_ACT_ARGS.get(key, (0, 0, 0.0, 0.0))
        a = alphas.pop(0) if ua and alphas else da
        b = betas.pop(0) if ub and betas else db
        out.append(_LSTM_ACT[key](a, b))
    return [out[3 * d:3 * d + 3] for d in range(n_dir)]


def _quant_gemm(a: np.ndarray, w_q: np.ndarray, w_zp: int, w_scale: np.ndarray) -> np.ndarray:
    """a (float) quantized to uint8 over its whole range, times the quantized weight."""
    a_q, a_scale, a_zp = _dynamic_quantize(a.astype(_F32))
    acc = _int_matmul(a_q.astype(np.int32) - int(a_zp), w_q.astype(np.int32) - w_zp)
    return acc.astype(_F32) * (_F32(a_scale) * w_scale).astype(_F32)


@register("DynamicQuantizeLSTM", since=1, domain=MS_DOMAIN)
def dynamic_quantize_lstm(x, w, r, b=None, sequence_lens=None, initial_h=None,
                          initial_c=None, p=None, w_scale=None, w_zero_point=None,
                          r_scale=None, r_zero_point=None, *, activation_alpha=None,
                          activation_beta=None, activations=None, clip=None,
                          direction="forward", hidden_size=None, input_forget=0):
    """LSTM whose W [dirs, input, 4H] and R [dirs, H, 4H] are 8-bit quantized (per tensor or
    per output column). As in onnxruntime, the input of each gemm (all of X at once, then
    each step's hidden state) is quantized to uint8 over its own range. Gates in i, o, f, c
    order."""
    x = _f32(x)
    seq, bsz, _ = x.shape
    hs = int(hidden_size) if hidden_size else np.asarray(r).shape[1]
    n_dir = 2 if direction == "bidirectional" else 1
    acts = _lstm_activations(activations, activation_alpha, activation_beta, n_dir)
    lens = (np.full(bsz, seq, np.int64) if sequence_lens is None
            else np.asarray(sequence_lens).astype(np.int64))
    w, r = np.asarray(w), np.asarray(r)
    ws = _f32(w_scale).reshape(n_dir, -1)
    rs = _f32(r_scale).reshape(n_dir, -1)
    wz = np.asarray(w_zero_point).reshape(n_dir, -1)
    rz = np.asarray(r_zero_point).reshape(n_dir, -1)
    y = np.zeros((seq, n_dir, bsz, hs), _F32)
    y_h = np.zeros((n_dir, bsz, hs), _F32)
    y_c = np.zeros((n_dir, bsz, hs), _F32)
    for d in range(n_dir):
        reverse = direction == "reverse" or d == 1
        f_act, g_act, h_act = acts[d]
        bias = (np.zeros(8 * hs, _F32) if b is None else _f32(b)[d])
        bias = bias[:4 * hs] + bias[4 * hs:]
        peep = np.zeros(3 * hs, _F32) if p is None else _f32(p)[d]
        pi, po, pf = peep[:hs], peep[hs:2 * hs], peep[2 * hs:]
        h = np.zeros((bsz, hs), _F32) if initial_h is None else _f32(initial_h)[d].copy()
        c = np.zeros((bsz, hs), _F32) if initial_c is None else _f32(initial_c)[d].copy()
        # The input of each direction in its processing order (reversed within each length).
        xs = x.copy()
        if reverse:
            for bi in range(bsz):
                xs[:lens[bi], bi] = x[:lens[bi], bi][::-1]
        xw = _quant_gemm(xs.reshape(seq * bsz, -1), w[d], int(wz[d, 0]), ws[d])
        xw = xw.reshape(seq, bsz, 4 * hs)
        h_last, c_last = h.copy(), c.copy()
        for t in range(seq):
            # A finished row's hidden state reads 0 in later steps' recurrent gemm (as in
            # onnxruntime: it enters that gemm's quantization range as 0).
            active = t < lens
            gates = (xw[t] + _quant_gemm(h, r[d], int(rz[d, 0]), rs[d])).astype(np.float64)
            gi, go, gf, gc = (gates[:, k * hs:(k + 1) * hs] for k in range(4))
            bi_, bo_, bf_, bc_ = (bias[k * hs:(k + 1) * hs] for k in range(4))

            def pre(g, b_):
                # peephole (added by the caller), then bias, then clip
                g = g + b_
                return np.clip(g, -clip, clip) if clip else g

            i_t = f_act(pre(gi + pi * c, bi_))
            f_t = 1.0 - i_t if input_forget else f_act(pre(gf + pf * c, bf_))
            c_new = f_t * c + i_t * g_act(pre(gc, bc_))
            o_t = f_act(pre(go + po * c_new, bo_))
            h_new = (o_t * h_act(c_new)).astype(_F32)
            c = c_new.astype(_F32)
            h = np.where(active[:, None], h_new, 0).astype(_F32)
            h_last = np.where(active[:, None], h, h_last)
            c_last = np.where(active[:, None], c, c_last)
            row = np.where(active[:, None], h, 0).astype(_F32)
            if reverse:
                for bi in range(bsz):
                    if active[bi]:
                        y[lens[bi] - 1 - t, d, bi] = row[bi]
            else:
                y[t, d] = row
        h, c = h_last, c_last
        y_h[d], y_c[d] = h, c
    return y, y_h, y_c
