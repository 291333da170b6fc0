"""Transformer building blocks: Attention (23, 24, 25), RMSNormalization, RotaryEmbedding,
Swish, SwiGLU, LinearAttention, CausalConvWithState and ai.onnx.preview FlexAttention.

All of them run in numpy. Attention follows its spec graph step by step in the input type T1
(matmuls accumulate in float32 for float16/bfloat16; the softmax runs in softmax_precision when
given), so float16/bfloat16 results round where the spec's graph does. The other ops compute
float16/bfloat16 in float32 and round once at the end; float64 stays float64.
"""

from __future__ import annotations

import numpy as np

from providers.cpu.opset import register

PREVIEW_DOMAIN = "ai.onnx.preview"

# TensorProto element types that may name a softmax precision.
_PRECISION_DTYPES = {1: "float32", 10: "float16", 11: "float64", 16: "bfloat16"}


def _is_low_float(dtype: np.dtype) -> bool:
    return dtype == np.float16 or dtype.name == "bfloat16"


def _work_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype a computation on ``dtype`` values runs in."""
    return np.dtype(np.float64) if dtype == np.float64 else np.dtype(np.float32)


def _precision_dtype(code: int) -> np.dtype:
    if code not in _PRECISION_DTYPES:
        raise ValueError(f"unsupported softmax_precision {code}")
    name = _PRECISION_DTYPES[code]
    if name == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


def _round_to(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``x`` rounded to ``dtype``'s precision, kept in x's (wider) dtype."""
    if _is_low_float(dtype) or (dtype == np.float32 and x.dtype == np.float64):
        return x.astype(dtype).astype(x.dtype)
    return x


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # exp of a large negative argument overflows to inf, giving the right limit 0.
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-x))


def _safe_softmax(s: np.ndarray) -> np.ndarray:
    """Softmax over the last axis; a row that is entirely -inf gives zeros, not NaN."""
    m = s.max(axis=-1, keepdims=True)
    m = np.where(np.isneginf(m), np.zeros((), s.dtype), m)
    with np.errstate(invalid="ignore", over="ignore"):
        e = np.exp(s - m)
    total = e.sum(axis=-1, keepdims=True)
    total = np.where(total == 0, np.ones((), s.dtype), total)
    return e / total


# --------------------------------------------------------------------------------------------
# Attention


def _mm(a: np.ndarray, b: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """MatMul with a ``dtype`` result; float16/bfloat16 operands accumulate in float32."""
    if _is_low_float(dtype):
        return np.matmul(a.astype(np.float32), b.astype(np.float32)).astype(dtype)
    return np.matmul(a, b)


def _split_heads(x: np.ndarray, heads: int, what: str) -> np.ndarray:
    """[B, S, H*D] -> [B, H, S, D]."""
    b, s, hidden = x.shape
    if heads is None or heads <= 0 or hidden % heads:
        raise ValueError(f"Attention: {what} hidden size {hidden} is not a multiple of the "
                         f"number of heads {heads}")
    return x.reshape(b, s, heads, hidden // heads).transpose(0, 2, 1, 3)


def _allowed_bias(allowed: np.ndarray, dtype: np.dtype) -> np.ndarray:
    return np.where(allowed, np.zeros((), dtype), np.full((), -np.inf, dtype))


def _frontier(q_len: int, kv_len: int, offset) -> np.ndarray:
    """(p - j) for the query at absolute position p = offset + i and key j: shape (q, kv),
    or (B, 1, q, kv) for a per-batch offset."""
    i = np.arange(q_len).reshape(q_len, 1)
    j = np.arange(kv_len).reshape(1, kv_len)
    if np.ndim(offset) > 0:
        off = np.asarray(offset, np.int64).reshape(-1, 1, 1, 1)
        return (i + off) - j
    return (i + int(offset)) - j


def _attention(q, k, v, attn_mask, past_key, past_value, nonpad_kv_seqlen, *, is_causal,
               kv_num_heads, q_num_heads, qk_matmul_output_mode, scale, softcap,
               softmax_precision, left_window_size=-1, right_window_size=-1,
               num_outputs=1):
    q, k, v = np.asarray(q), np.asarray(k), np.asarray(v)
    if (past_key is None) != (past_value is None):
        raise ValueError("Attention: past_key and past_value must be given together")
    if nonpad_kv_seqlen is not None and past_key is not None:
        raise ValueError("Attention: nonpad_kv_seqlen cannot be combined with past_key")
    if not q.ndim == k.ndim == v.ndim or q.ndim not in (3, 4):
        raise ValueError(f"Attention: Q, K, V must all be 3D or 4D, got ranks "
                         f"{q.ndim}, {k.ndim}, {v.ndim}")
    if left_window_size < -1 or right_window_size < -1:
        raise ValueError("Attention: window sizes must be -1 or nonnegative")
    out_dtype = q.dtype
    # Every step of the spec's graph yields T1 values, so each is rounded to T1 (a no-op for
    # float32/float64); the matmuls accumulate in float32 or wider.
    wt = out_dtype
    is_3d = q.ndim == 3
    if is_3d:
        q4 = _split_heads(q, q_num_heads, "Q")
        k4 = _split_heads(k, kv_num_heads, "K")
        v4 = _split_heads(v, kv_num_heads, "V")
    else:
        q4, k4, v4 = q, k, v

    # KV cache: the present tensors keep K's and V's own types.
    if past_key is not None:
        present_key = np.concatenate([np.asarray(past_key), k4.astype(past_key.dtype)], axis=2)
        present_value = np.concatenate([np.asarray(past_value),
                                        v4.astype(past_value.dtype)], axis=2)
        past_len = past_key.shape[2]
    else:
        present_key, present_value, past_len = k4, v4, 0

    bsz, hq, q_len, head = q4.shape
    hkv = present_key.shape[1]
    kv_len = present_key.shape[2]
    if hq % hkv or present_value.shape[1] != hkv:
        raise ValueError(f"Attention: {hq} query heads cannot share {hkv} key/value heads")

    # Additive bias, broadcastable to (B, Hq, q_len, kv_len); None when nothing masks.
    bias = None
    if attn_mask is not None:
        mask = np.asarray(attn_mask)
        pad = kv_len - mask.shape[-1]
        if mask.dtype == np.bool_:
            if pad > 0:
                mask = np.concatenate(
                    [mask, np.zeros(mask.shape[:-1] + (pad,), np.bool_)], axis=-1)
            bias = _allowed_bias(mask, wt)
        else:
            bias = mask.astype(wt)
            if pad > 0:
                bias = np.concatenate(
                    [bias, np.full(bias.shape[:-1] + (pad,), -np.inf, wt)], axis=-1)
    # Causal and window frontiers are offset-aware (bottom-right aligned): the offset is the
    # number of valid keys before the query block.
    if nonpad_kv_seqlen is not None:
        nonpad = np.asarray(nonpad_kv_seqlen, np.int64).reshape(-1)
        offset = nonpad - q_len
    else:
        nonpad = None
        offset = past_len
    windowed = left_window_size >= 0 or right_window_size >= 0
    if is_causal or windowed:
        diff = _frontier(q_len, kv_len, offset)
        allowed = np.ones(diff.shape, np.bool_)
        if is_causal:
            allowed &= diff >= 0
        if left_window_size >= 0:
            allowed &= diff <= left_window_size
        if right_window_size >= 0:
            allowed &= -diff <= right_window_size
        term = _allowed_bias(allowed, wt)
        bias = term if bias is None else bias + term
    if nonpad is not None:
        valid = np.arange(kv_len).reshape(1, kv_len) < nonpad.reshape(-1, 1)
        term = _allowed_bias(valid, wt).reshape(bsz, 1, 1, kv_len)
        bias = term if bias is None else bias + term

    # Grouped-query attention: query head h reads key/value head h // group.
    group = hq // hkv
    kf = present_key.astype(wt)
    vf = present_value.astype(wt)
    if group > 1:
        kf = np.repeat(kf, group, axis=1)
        vf = np.repeat(vf, group, axis=1)

    sc = float(scale) if scale is not None else 1.0 / np.sqrt(head)
    # Q and K are each scaled by sqrt(scale), as the spec prescribes against overflow.
    root = np.asarray(np.sqrt(sc), wt)
    with np.errstate(invalid="ignore", over="ignore"):
        qk = _mm(q4.astype(wt) * root, np.swapaxes(kf * root, -1, -2), wt)
        raw_qk = qk
        if softcap and softcap > 0:
            cap = np.asarray(softcap, wt)
            qk = cap * np.tanh(qk / cap)
        scores = qk if bias is None else qk + bias

    # The softmax runs in softmax_precision when given, else in T1.
    sm_dtype = wt if softmax_precision is None else _precision_dtype(int(softmax_precision))
    probs = _safe_softmax(scores.astype(sm_dtype))
    if bias is not None:
        # A query row whose every key is disallowed gives zeros, decided on the bias (the
        # scores of such a row may be NaN when Q or K hold infinities).
        dead = np.isneginf(bias.max(axis=-1, keepdims=True))
        probs = np.where(dead, np.zeros((), probs.dtype), probs)
    # The probabilities meet V in T1, as the spec's graph casts them back before the MatMul.
    probs = probs.astype(wt)
    y = _mm(probs, vf, wt)
    if is_3d:
        y = y.transpose(0, 2, 1, 3).reshape(bsz, q_len, -1)
    outs = [y.astype(out_dtype), present_key, present_value]
    if num_outputs > 3:
        mode = int(qk_matmul_output_mode or 0)
        if mode == 0:
            qk_out = raw_qk
        elif mode == 1:
            qk_out = qk
        elif mode == 2:
            qk_out = np.broadcast_to(scores, (bsz, hq, q_len, kv_len))
        elif mode == 3:
            qk_out = probs
        else:
            raise ValueError(f"Attention: qk_matmul_output_mode {mode} is not 0..3")
        outs.append(np.ascontiguousarray(qk_out).astype(out_dtype))
    return outs[:max(num_outputs, 1)] if num_outputs > 1 else outs[0]


def _n_out(ctx) -> int:
    return ctx.num_outputs if ctx is not None else 1


@register("Attention", since=23)
def attention_23(q, k, v, attn_mask=None, past_key=None, past_value=None, *, is_causal=0,
                 kv_num_heads=None, q_num_heads=None, qk_matmul_output_mode=0, scale=None,
                 softcap=0.0, softmax_precision=None, _ctx=None):
    """Scaled dot-product attention (MHA/GQA/MQA), masks, causal, KV cache, softcap."""
    return _attention(q, k, v, attn_mask, past_key, past_value, None, is_causal=is_causal,
                      kv_num_heads=kv_num_heads, q_num_heads=q_num_heads,
                      qk_matmul_output_mode=qk_matmul_output_mode, scale=scale,
                      softcap=softcap, softmax_precision=softmax_precision,
                      num_outputs=_n_out(_ctx))


@register("Attention", since=24)
def attention_24(q, k, v, attn_mask=None, past_key=None, past_value=None,
                 nonpad_kv_seqlen=None, *, is_causal=0, kv_num_heads=None, q_num_heads=None,
                 qk_matmul_output_mode=0, scale=None, softcap=0.0, softmax_precision=None,
                 _ctx=None):
    """Attention-23 plus ``nonpad_kv_seqlen`` (external KV cache with per-batch lengths)."""
    return _attention(q, k, v, attn_mask, past_key, past_value, nonpad_kv_seqlen,
                      is_causal=is_causal, kv_num_heads=kv_num_heads, q_num_heads=q_num_heads,
                      qk_matmul_output_mode=qk_matmul_output_mode, scale=scale,
                      softcap=softcap, softmax_precision=softmax_precision,
                      num_outputs=_n_out(_ctx))


@register("Attention", since=25)
def attention_25(q, k, v, attn_mask=None, past_key=None, past_value=None,
                 nonpad_kv_seqlen=None, *, is_causal=0, kv_num_heads=None, q_num_heads=None,
                 qk_matmul_output_mode=0, scale=None, softcap=0.0, softmax_precision=None,
                 left_window_size=-1, right_window_size=-1, _ctx=None):
    """Attention-24 plus sliding windows (``left_window_size``, ``right_window_size``)."""
    if np.ndim(q) == 4 and (q_num_heads is not None or kv_num_heads is not None):
        raise ValueError("Attention: q_num_heads/kv_num_heads are only for 3D inputs")
    return _attention(q, k, v, attn_mask, past_key, past_value, nonpad_kv_seqlen,
                      is_causal=is_causal, kv_num_heads=kv_num_heads, q_num_heads=q_num_heads,
                      qk_matmul_output_mode=qk_matmul_output_mode, scale=scale,
                      softcap=softcap, softmax_precision=softmax_precision,
                      left_window_size=int(left_window_size),
                      right_window_size=int(right_window_size), num_outputs=_n_out(_ctx))


# --------------------------------------------------------------------------------------------
# FlexAttention (ai.onnx.preview)


def _run_mod(ctx, graph, x: np.ndarray, what: str) -> np.ndarray:
    if ctx is None or ctx.run_subgraph is None:
        raise RuntimeError("FlexAttention: modifier subgraphs need a context with run_subgraph")
    names = graph.input_names
    if len(names) != 1:
        raise ValueError(f"FlexAttention: {what} must take exactly one input")
    outs = ctx.run_subgraph(graph, {names[0]: x})
    if len(outs) != 1:
        raise ValueError(f"FlexAttention: {what} must produce exactly one output")
    out = np.asarray(outs[0])
    if out.shape != x.shape:
        raise ValueError(f"FlexAttention: {what} changed the shape {x.shape} -> {out.shape}")
    return out.astype(x.dtype, copy=False)


@register("FlexAttention", since=1, domain=PREVIEW_DOMAIN)
def flex_attention(q, k, v, *, scale=None, score_mod=None, prob_mod=None,
                   softmax_precision=None, _ctx=None):
    """Attention on rank-4 inputs with optional score_mod / prob_mod subgraphs."""
    q, k, v = np.asarray(q), np.asarray(k), np.asarray(v)
    if q.ndim != 4 or k.ndim != 4 or v.ndim != 4:
        raise ValueError("FlexAttention: Q, K and V must be rank 4")
    _, hq, _, e = q.shape
    hkv = k.shape[1]
    if v.shape[1] != hkv or v.shape[2] != k.shape[2] or k.shape[3] != e:
        raise ValueError("FlexAttention: Q, K, V shapes do not agree")
    if hq % hkv:
        raise ValueError(f"FlexAttention: {hq} query heads cannot share {hkv} K/V heads")
    if softmax_precision is None:
        sm = np.dtype(np.float64) if q.dtype == np.float64 else np.dtype(np.float32)
    else:
        sm = _precision_dtype(int(softmax_precision))
    # Narrow softmax types are rounded to but computed in float32.
    wt = np.dtype(np.float64) if sm == np.float64 or q.dtype == np.float64 else \
        np.dtype(np.float32)
    group = hq // hkv
    kf, vf = k.astype(wt), v.astype(wt)
    if group > 1:
        kf = np.repeat(kf, group, axis=1)
        vf = np.repeat(vf, group, axis=1)
    sc = float(scale) if scale is not None else 1.0 / np.sqrt(e)
    root = np.asarray(np.sqrt(sc), wt)
    with np.errstate(invalid="ignore", over="ignore"):
        scores = np.matmul(q.astype(wt) * root, np.swapaxes(kf * root, -1, -2))
    scores = scores.astype(sm)
    if score_mod is not None:
        scores = _run_mod(_ctx, score_mod, scores, "score_mod")
    with np.errstate(invalid="ignore", over="ignore"):
        s = scores.astype(wt)
        e_ = np.exp(s - s.max(axis=-1, keepdims=True))
        probs = (e_ / e_.sum(axis=-1, keepdims=True)).astype(sm)
    if prob_mod is not None:
        probs = _run_mod(_ctx, prob_mod, probs, "prob_mod")
    y = np.matmul(probs.astype(wt), _round_to(vf, sm) if _is_low_float(sm) else vf)
    return y.astype(v.dtype)


# --------------------------------------------------------------------------------------------
# RMSNormalization, RotaryEmbedding


@register("RMSNormalization", since=23)
def rms_normalization(x, scale, *, axis=-1, epsilon=1e-5, stash_type=1):
    """x / sqrt(mean(x^2 over axes [axis, rank)) + epsilon) * scale; statistics in the
    stash_type precision (1: float32)."""
    x = np.asarray(x)
    scale = np.asarray(scale)
    r = x.ndim
    a = axis + r if axis < 0 else axis
    if not 0 <= a < r:
        raise ValueError(f"RMSNormalization: axis {axis} out of range for rank {r}")
    st = _precision_dtype(int(stash_type))
    if _is_low_float(st):
        st = np.dtype(np.float32)
    xs = x.astype(st)
    ms = np.mean(xs * xs, axis=tuple(range(a, r)), keepdims=True)
    normalized = (xs / np.sqrt(ms + np.asarray(epsilon, st))).astype(x.dtype)
    wt = np.dtype(np.float64) if np.float64 in (x.dtype, scale.dtype) else np.dtype(np.float32)
    return (normalized.astype(wt) * scale.astype(wt)).astype(scale.dtype)


@register("RotaryEmbedding", since=23)
def rotary_embedding(x, cos_cache, sin_cache, position_ids=None, *, interleaved=0,
                     num_heads=0, rotary_embedding_dim=0):
    """Rotary position embedding of 4D [B, H, S, D] or 3D [B, S, H*D] input."""
    x = np.asarray(x)
    dtype = x.dtype
    wt = _work_dtype(dtype)
    if x.ndim == 4:
        xs = x.transpose(0, 2, 1, 3)  # [B, S, H, D]
    elif x.ndim == 3:
        if not num_heads:
            raise ValueError("RotaryEmbedding: num_heads is required for 3D input")
        b, s, hidden = x.shape
        if hidden % num_heads:
            raise ValueError("RotaryEmbedding: hidden size is not a multiple of num_heads")
        xs = x.reshape(b, s, num_heads, hidden // num_heads)
    else:
        raise ValueError(f"RotaryEmbedding: input must be 3D or 4D, got rank {x.ndim}")
    xs = xs.astype(wt)
    head = xs.shape[-1]
    rdim = int(rotary_embedding_dim) or head
    if rdim % 2 or rdim > head:
        raise ValueError(f"RotaryEmbedding: rotary dim {rdim} must be even and <= {head}")
    half = rdim // 2
    cos = np.asarray(cos_cache).astype(wt)
    sin = np.asarray(sin_cache).astype(wt)
    if position_ids is not None:
        pos = np.asarray(position_ids, np.int64)
        cos, sin = cos[pos], sin[pos]  # [B, S, half]
    if cos.ndim != 3 or sin.ndim != 3:
        raise ValueError("RotaryEmbedding: cos/sin caches must be 2D with position_ids, "
                         "else 3D (batch, sequence, dim / 2)")
    if cos.shape[-1] != half or sin.shape[-1] != half:
        raise ValueError(f"RotaryEmbedding: cos/sin caches must have {half} columns")
    cos = cos[:, :, None, :]
    sin = sin[:, :, None, :]
    rot = xs[..., :rdim]
    if interleaved:
        x1, x2 = rot[..., 0::2], rot[..., 1::2]
    else:
        x1, x2 = rot[..., :half], rot[..., half:]
    real = cos * x1 - sin * x2
    imag = sin * x1 + cos * x2
    out = xs.copy()
    if interleaved:
        out[..., 0:rdim:2] = real
        out[..., 1:rdim:2] = imag
    else:
        out[..., :half] = real
        out[..., half:rdim] = imag
    if x.ndim == 4:
        out = out.transpose(0, 2, 1, 3)
    else:
        out = out.reshape(x.shape)
    return out.astype(dtype)


# --------------------------------------------------------------------------------------------
# Swish, SwiGLU


@register("Swish", since=24)
def swish(x, *, alpha=1.0):
    """x * sigmoid(alpha * x)."""
    x = np.asarray(x)
    xf = x.astype(_work_dtype(x.dtype))
    return (xf * _sigmoid(np.asarray(alpha, xf.dtype) * xf)).astype(x.dtype)


@register("SwiGLU", since=28)
def swiglu(a, b, *, alpha=1.0):
    """Swish_alpha(A) * B; A and B of one shape (no broadcasting)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"SwiGLU: A {a.shape} and B {b.shape} must have the same shape")
    if a.dtype != b.dtype:
        raise ValueError(f"SwiGLU: A {a.dtype} and B {b.dtype} must have the same type")
    wt = _work_dtype(a.dtype)
    af = a.astype(wt)
    return (af * _sigmoid(np.asarray(alpha, wt) * af) * b.astype(wt)).astype(a.dtype)


# --------------------------------------------------------------------------------------------
# LinearAttention, CausalConvWithState


def _packed_heads(x: np.ndarray, heads: int, what: str) -> np.ndarray:
    """[B, T, H*D] -> [B, H, T, D]."""
    if x.ndim != 3:
        raise ValueError(f"LinearAttention: {what} must be rank 3, got shape {x.shape}")
    b, t, hd = x.shape
    if hd % heads:
        raise ValueError(f"LinearAttention: {what} last dim {hd} not divisible by {heads}")
    return x.reshape(b, t, heads, hd // heads).transpose(0, 2, 1, 3)


_UPDATE_RULES = ("linear", "gated", "delta", "gated_delta")


@register("LinearAttention", since=27)
def linear_attention(query, key, value, past_state=None, decay=None, beta=None, *,
                     chunk_size=64, kv_num_heads=None, q_num_heads=None, scale=0.0,
                     update_rule="gated_delta"):
    """Recurrent linear attention (linear / gated / delta / gated_delta rules), run token by
    token; chunk_size is a tuning hint with no effect on results."""
    if update_rule not in _UPDATE_RULES:
        raise ValueError(f"LinearAttention: unknown update_rule {update_rule!r}")
    if not q_num_heads or not kv_num_heads or q_num_heads % kv_num_heads:
        raise ValueError(f"LinearAttention: q_num_heads {q_num_heads} must be a positive "
                         f"multiple of kv_num_heads {kv_num_heads}")
    gated = update_rule in ("gated", "gated_delta")
    delta = update_rule in ("delta", "gated_delta")
    if gated != (decay is not None):
        raise ValueError(f"LinearAttention: update_rule {update_rule!r} "
                         f"{'requires' if gated else 'forbids'} the decay input")
    if delta != (beta is not None):
        raise ValueError(f"LinearAttention: update_rule {update_rule!r} "
                         f"{'requires' if delta else 'forbids'} the beta input")
    query, key, value = np.asarray(query), np.asarray(key), np.asarray(value)
    out_dtype = query.dtype
    wt = _work_dtype(out_dtype)
    b, t, _ = query.shape
    hq, hkv = int(q_num_heads), int(kv_num_heads)
    q4 = _packed_heads(query, hq, "query").astype(wt)
    k4 = _packed_heads(key, hkv, "key").astype(wt)
    v4 = _packed_heads(value, hkv, "value").astype(wt)
    dk, dv = q4.shape[-1], v4.shape[-1]
    if k4.shape[-1] != dk:
        raise ValueError("LinearAttention: query and key head sizes differ")
    if gated:
        decay = np.asarray(decay)
        if decay.ndim != 3 or decay.shape[-1] not in (hkv, hkv * dk):
            raise ValueError(f"LinearAttention: decay shape {decay.shape} must be "
                             f"(B, T, {hkv}) or (B, T, {hkv * dk})")
        g4 = _packed_heads(decay, hkv, "decay").astype(wt)  # [B, H, T, 1 or dk]
    if delta:
        beta = np.asarray(beta)
        if beta.ndim != 3 or beta.shape[-1] not in (hkv, 1):
            raise ValueError(f"LinearAttention: beta shape {beta.shape} must be "
                             f"(B, T, {hkv}) or (B, T, 1)")
        bt4 = beta.reshape(b, t, beta.shape[-1], 1).transpose(0, 2, 1, 3).astype(wt)
    if past_state is not None:
        past_state = np.asarray(past_state)
        if past_state.shape != (b, hkv, dk, dv):
            raise ValueError(f"LinearAttention: past_state shape {past_state.shape} is not "
                             f"{(b, hkv, dk, dv)}")
        state_dtype = past_state.dtype
        state = past_state.astype(wt)
    else:
        state_dtype = out_dtype
        state = np.zeros((b, hkv, dk, dv), wt)
    sc = float(scale) if scale else 1.0 / np.sqrt(dk)
    group = hq // hkv
    out = np.empty((b, hq, t, dv), wt)
    for i in range(t):
        kt = k4[:, :, i, :]  # [B, Hkv, dk]
        vt = v4[:, :, i, :]  # [B, Hkv, dv]
        if gated:
            state = state * np.exp(g4[:, :, i, :])[..., None]
        if delta:
            retrieved = np.einsum("bhkv,bhk->bhv", state, kt)
            vt = bt4[:, :, i, :] * (vt - retrieved)
        state = state + kt[..., :, None] * vt[..., None, :]
        # Query head h reads the state of KV head h // group.
        qt = q4[:, :, i, :].reshape(b, hkv, group, dk)
        out[:, :, i, :] = sc * np.einsum("bhgk,bhkv->bhgv", qt, state).reshape(b, hq, dv)
    y = out.transpose(0, 2, 1, 3).reshape(b, t, hq * dv).astype(out_dtype)
    return y, state.astype(state_dtype)


@register("CausalConvWithState", since=27)
def causal_conv_with_state(x, weight, bias=None, past_state=None, *, activation="none"):
    """Depthwise causal 1D convolution over [B, C, L] with a carried (k - 1)-long state and an
    optional fused SiLU."""
    if activation not in ("none", "silu", "swish"):
        raise ValueError(f"CausalConvWithState: unknown activation {activation!r}")
    x, weight = np.asarray(x), np.asarray(weight)
    if x.ndim != 3 or weight.ndim != 3 or weight.shape[1] != 1 \
            or weight.shape[0] != x.shape[1]:
        raise ValueError(f"CausalConvWithState: input {x.shape} / weight {weight.shape} are "
                         "not (B, C, L) / (C, 1, k)")
    dtype = x.dtype
    wt = _work_dtype(dtype)
    bsz, c, length = x.shape
    kk = weight.shape[2]
    if past_state is None:
        pad = np.zeros((bsz, c, kk - 1), dtype)
    else:
        pad = np.asarray(past_state).astype(dtype)
        if pad.shape != (bsz, c, kk - 1):
            raise ValueError(f"CausalConvWithState: past_state {pad.shape} is not "
                             f"{(bsz, c, kk - 1)}")
    padded = np.concatenate([pad, x], axis=2)
    pf = padded.astype(wt)
    w = weight[:, 0, :].astype(wt)  # [C, k]
    acc = np.zeros((bsz, c, length), wt)
    for j in range(kk):
        acc += pf[:, :, j:j + length] * w[None, :, j:j + 1]
    if bias is not None:
        acc += np.asarray(bias).astype(wt).reshape(1, c, 1)
    if activation != "none":
        # SiLU applies to the convolution's result in the output type.
        acc = _round_to(acc, dtype)
        acc = acc * _sigmoid(acc)
    present = padded[:, :, padded.shape[2] - (kk - 1):]
    return acc.astype(dtype), np.ascontiguousarray(present)
