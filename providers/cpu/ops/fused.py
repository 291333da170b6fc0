"""ferry's own fused ops (domain ``ferry``, version 1), produced by the graph optimizer's
extended passes for the CPU provider's kernels (see runtime/optimizer/README.md for the
contract of each op). Each has a numpy reference built from the standard ops it replaces, so a
saved optimized model computes exactly what the original did.

activation / activation_params (FusedConv, FusedGemm, FusedMatMul):
  ""/"none", "relu", "clip" [min, max], "leaky_relu" [alpha], "sigmoid", "tanh",
  "hard_sigmoid" [alpha, beta], "hard_swish", "gelu", "gelu_tanh", "silu".
"""

from __future__ import annotations

import numpy as np

from providers.cpu.opset import FERRY_DOMAIN, NativeCall, register
from providers.cpu.ops import activation as act_ops
from providers.cpu.ops import conv as conv_ops
from providers.cpu.ops import gemm as gemm_ops
from providers.cpu.ops import normalization as norm_ops

_F32 = np.dtype(np.float32)

ACTIVATIONS = ("", "none", "relu", "clip", "leaky_relu", "sigmoid", "tanh", "hard_sigmoid",
               "hard_swish", "gelu", "gelu_tanh", "silu")


def apply_activation(y: np.ndarray, name: str, params) -> np.ndarray:
    """The numpy meaning of each epilogue activation (computed in y's dtype or float64)."""
    p = list(params or [])
    dt = y.dtype
    if name in ("", "none"):
        return y
    if name == "relu":
        return np.maximum(y, np.asarray(0, dt))
    if name == "clip":
        lo, hi = (p + [-np.inf, np.inf][len(p):])[:2]
        return np.clip(y, np.asarray(lo, dt), np.asarray(hi, dt))
    if name == "leaky_relu":
        alpha = p[0] if p else 0.01
        return np.where(y >= 0, y, y * np.asarray(alpha, dt)).astype(dt)
    if name == "sigmoid":
        return act_ops.sigmoid(y)
    if name == "tanh":
        return np.tanh(y)
    if name == "hard_sigmoid":
        alpha, beta = (p + [0.2, 0.5][len(p):])[:2]
        return np.clip(y * np.asarray(alpha, dt) + np.asarray(beta, dt), 0, 1).astype(dt)
    if name == "hard_swish":
        return act_ops.hard_swish(y)
    if name == "gelu":
        return act_ops.gelu(y, approximate="none")
    if name == "gelu_tanh":
        return act_ops.gelu(y, approximate="tanh")
    if name == "silu":
        return (y * act_ops.sigmoid(y)).astype(dt)
    raise ValueError(f"unknown fused activation '{name}' (valid: {', '.join(ACTIVATIONS[1:])})")


def _act_params(attrs) -> dict:
    name = attrs.get("activation", "") or ""
    if name not in ACTIVATIONS:
        return None
    p = [float(v) for v in (attrs.get("activation_params") or [])]
    out = {"activation": name or "none"}
    if name == "clip":
        lo, hi = (p + [-np.inf, np.inf][len(p):])[:2]
        out.update(activation_alpha=float(max(lo, -3.4e38)), activation_beta=float(min(hi, 3.4e38)))
    elif name == "leaky_relu":
        out["activation_alpha"] = p[0] if p else 0.01
    elif name == "hard_sigmoid":
        a, b = (p + [0.2, 0.5][len(p):])[:2]
        out.update(activation_alpha=a, activation_beta=b)
    return out


# ---- FusedConv: act(Conv(X, W, B) + Z) ---------------------------------------------------

def _fused_conv_native(inputs, attrs):
    x, w = inputs[0], inputs[1]
    b = inputs[2] if len(inputs) > 2 else None
    z = inputs[3] if len(inputs) > 3 else None
    act = _act_params(attrs)
    if act is None or (z is not None and z.dtype != _F32):
        return None
    call = conv_ops._conv_native([x, w, b], attrs)
    if call is None:
        return None
    if z is not None and tuple(z.shape) != tuple(call.output_shapes[0]):
        return None  # numpy broadcasts (or raises)
    call.params.update(act)
    call.inputs = [0, 1, 2, 3] if z is not None else None
    return call


@register("FusedConv", since=1, domain=FERRY_DOMAIN, native=_fused_conv_native)
def fused_conv(x, w, b=None, z=None, *, auto_pad="NOTSET", dilations=None, group=1,
               kernel_shape=None, pads=None, strides=None, activation="",
               activation_params=None):
    """act(Conv(X, W, B) + Z): Conv's attributes, plus the residual Z and the activation."""
    y = conv_ops.conv(x, w, b, auto_pad=auto_pad, dilations=dilations, group=group,
                      kernel_shape=kernel_shape, pads=pads, strides=strides)
    if z is not None:
        y = (y + z).astype(y.dtype)
    return apply_activation(y, activation, activation_params)


# ---- FusedGemm: act(Gemm(A, B, C)) ---------------------------------------------------------

# ---- FusedBatchNormalization: act(BatchNormalization(X)) (inference) -----------------------

def _fused_bn_native(inputs, attrs):
    act = _act_params(attrs)
    if act is None:
        return None
    call = norm_ops._bn_native(False)(inputs, dict(attrs, _num_outputs=1))
    if call is None:
        return None
    call.params.update(act)
    return call


@register("FusedBatchNormalization", since=1, domain=FERRY_DOMAIN, native=_fused_bn_native)
def fused_batch_norm(x, scale, b, mean, var, *, epsilon=1e-5, activation="",
                     activation_params=None):
    """act(BatchNormalization(x)) in inference: the optimizer's BN + activation fusion."""
    y = norm_ops._bn_inference(x, scale, b, mean, var, epsilon)
    return apply_activation(y, activation, activation_params)


def _fused_gemm_native(inputs, attrs):
    act = _act_params(attrs)
    if act is None:
        return None
    call = gemm_ops._gemm_native(inputs, attrs)
    if call is not None:
        call.params.update(act)
    return call


@register("FusedGemm", since=1, domain=FERRY_DOMAIN, native=_fused_gemm_native)
def fused_gemm(a, b, c=None, *, alpha=1.0, beta=1.0, transA=0, transB=0, activation="",
               activation_params=None):
    """act(Gemm(A, B, C)) with Gemm-11's semantics."""
    y = gemm_ops._gemm(a, b, c, alpha, beta, transA, transB)
    return apply_activation(y, activation, activation_params)


# ---- FusedMatMul: act(MatMul(A, B) + bias) -------------------------------------------------

class _Swapped:
    """Shape/dtype stand-in for B read as its last two axes swapped (transB)."""

    def __init__(self, b):
        self.dtype, self.ndim = b.dtype, b.ndim
        self.shape = tuple(b.shape[:-2]) + (b.shape[-1], b.shape[-2])


def _fused_matmul_native(inputs, attrs):
    a, b = inputs[0], inputs[1]
    bias = inputs[2] if len(inputs) > 2 else None
    act = _act_params(attrs)
    if act is None:
        return None
    trans_b = int(attrs.get("transB", 0))
    if trans_b and b.ndim < 2:
        return None
    call = gemm_ops._matmul_native([a, _Swapped(b) if trans_b else b], attrs)
    if call is None:
        return None
    if trans_b:
        call.params["transB"] = 1
        b = _Swapped(b)
    if bias is not None:
        if bias.dtype != _F32 or b.ndim < 2 or bias.size != b.shape[-1] or \
                np.broadcast_shapes(bias.shape, call.output_shapes[0]) != \
                tuple(call.output_shapes[0]):
            return None
        call.inputs = [0, 1, 2]
        call.constant_inputs = (1, 2)
    call.params.update(act)
    return call


@register("FusedMatMul", since=1, domain=FERRY_DOMAIN, native=_fused_matmul_native)
def fused_matmul(a, b, bias=None, *, activation="", activation_params=None, transB=0):
    """act(MatMul(A, B) + bias), bias broadcast over the last axis; transB: B's last two axes
    swapped first (a folded Transpose)."""
    if transB:
        if np.ndim(b) < 2:
            raise ValueError("FusedMatMul: transB needs B of rank >= 2")
        b = np.swapaxes(b, -1, -2)
    y = gemm_ops.matmul(a, b)
    if bias is not None:
        y = (y + bias).astype(y.dtype)
    return apply_activation(y, activation, activation_params)


# ---- Element-wise patterns recognised by the optimizer -------------------------------------

def _silu_native(inputs, attrs):
    x = inputs[0]
    if x.dtype != _F32:
        return None
    return NativeCall("Silu", {}, [x.shape], [_F32])


@register("Silu", since=1, domain=FERRY_DOMAIN, native=_silu_native)
def silu(x):
    """x * sigmoid(x) (PyTorch's SiLU / Swish)."""
    return apply_activation(x, "silu", None)


@register("Gelu", since=1, domain=FERRY_DOMAIN,
          native=act_ops._native("Gelu", lambda a: {"approximate": str(a["approximate"])}))
def gelu(x, *, approximate="none"):
    """Gelu-20's meaning, for models whose opset predates it."""
    return act_ops.gelu(x, approximate=approximate)


@register("LayerNormalization", since=1, domain=FERRY_DOMAIN, native=norm_ops._ln_native)
def layer_norm(x, scale, b=None, *, axis=-1, epsilon=1e-5, stash_type=1):
    """LayerNormalization-17's meaning, for models whose opset predates it (recognised from
    the ReduceMean/Sub/Pow/Sqrt/Div pattern exporters emit)."""
    return norm_ops.layer_norm(x, scale, b, axis=axis, epsilon=epsilon, stash_type=stash_type)


# ---- MultiHeadAttention: softmax(scale * Q K^T + mask) V per head ---------------------------

def _attention_operands(q, k, v, num_heads, qkv_hidden_sizes):
    """(Q, K, V) as [batch, seq, heads * size] arrays (views into the packed input when K and V
    are absent) and the head sizes (D, Dv)."""
    if num_heads <= 0:
        raise ValueError(f"MultiHeadAttention: num_heads must be positive, got {num_heads}")
    if q.ndim != 3:
        raise ValueError(f"MultiHeadAttention: input must be [batch, seq, hidden], got "
                         f"shape {q.shape}")
    if k is None and v is None:
        sizes = [int(s) for s in (qkv_hidden_sizes or [])]
        if len(sizes) != 3 or sum(sizes) != q.shape[2] or min(sizes) <= 0:
            raise ValueError(f"MultiHeadAttention: qkv_hidden_sizes {sizes} do not split the "
                             f"packed input's last dimension {q.shape[2]}")
        hq, hk, _ = sizes
        q, k, v = q[..., :hq], q[..., hq:hq + hk], q[..., hq + hk:]
    elif k is None or v is None:
        raise ValueError("MultiHeadAttention: K and V are both given or both absent (packed)")
    if k.ndim != 3 or v.ndim != 3 or k.shape[:2] != v.shape[:2] or k.shape[0] != q.shape[0]:
        raise ValueError(f"MultiHeadAttention: Q {q.shape}, K {k.shape}, V {v.shape} are not "
                         "[batch, seq, hidden] with shared batch and key length")
    if q.shape[2] != k.shape[2] or q.shape[2] % num_heads or v.shape[2] % num_heads:
        raise ValueError(f"MultiHeadAttention: hidden sizes Q {q.shape[2]}, K {k.shape[2]}, "
                         f"V {v.shape[2]} do not split into {num_heads} heads")
    return q, k, v, q.shape[2] // num_heads, v.shape[2] // num_heads


def _mha_native(inputs, attrs):
    inputs = list(inputs) + [None] * (4 - len(inputs))
    q, k, v, mask = inputs[:4]
    if any(t is not None and t.dtype != _F32 for t in (q, k, v, mask)):
        return None
    try:
        qv, kv, vv, d, dv = _attention_operands(q, k, v, int(attrs["num_heads"]),
                                                 attrs.get("qkv_hidden_sizes"))
    except ValueError:
        return None  # the numpy reference raises the error
    b, s, _ = q.shape
    t = kv.shape[1]
    h = int(attrs["num_heads"])
    packed = k is None
    params = {"batch": b, "q_len": s, "kv_len": t, "num_heads": h, "head_size": d,
              "v_head_size": dv, "scale": float(attrs["scale"]),
              "q_ld": q.shape[2], "q_col": 0,
              "k_input": 0 if packed else 1, "k_ld": q.shape[2] if packed else k.shape[2],
              "k_col": h * d if packed else 0,
              "v_input": 0 if packed else 2, "v_ld": q.shape[2] if packed else v.shape[2],
              "v_col": 2 * h * d if packed else 0}
    if mask is not None:
        if mask.ndim > 4:
            return None
        mshape = (1,) * (4 - mask.ndim) + tuple(mask.shape)
        full = (b, h, s, t)
        if any(m not in (1, f) for m, f in zip(mshape, full)):
            return None
        strides, acc = [0] * 4, 1
        for ax in range(3, -1, -1):
            strides[ax] = 0 if mshape[ax] == 1 else acc
            acc *= mshape[ax]
        params["mask_strides"] = strides
    return NativeCall("MultiHeadAttention", params, [(b, s, h * dv)], [_F32],
                      inputs=[0, 1, 2, 3])


@register("MultiHeadAttention", since=1, domain=FERRY_DOMAIN, native=_mha_native)
def multi_head_attention(q, k=None, v=None, mask=None, *, num_heads=0, scale=1.0,
                         qkv_hidden_sizes=None):
    """Self/cross attention on [batch, seq, heads * size] projections: per head
    softmax(scale * Q K^T + mask) V, heads merged back to [batch, q_len, heads * v_size].
    With K and V absent, input 0 packs [Q | K | V] along its last axis (qkv_hidden_sizes)."""
    h = int(num_heads)
    qv, kv, vv, d, dv = _attention_operands(q, k, v, h, qkv_hidden_sizes)
    b, s, _ = qv.shape
    t = kv.shape[1]
    qh = qv.reshape(b, s, h, d).transpose(0, 2, 1, 3)
    kt = kv.reshape(b, t, h, d).transpose(0, 2, 3, 1)
    vh = vv.reshape(b, t, h, dv).transpose(0, 2, 1, 3)
    scores = gemm_ops.matmul(qh, kt) * np.asarray(scale, qv.dtype)
    if mask is not None:
        scores = (scores + mask).astype(qv.dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        e = np.exp(scores - scores.max(axis=-1, keepdims=True))
        p = (e / e.sum(axis=-1, keepdims=True)).astype(qv.dtype)
    out = gemm_ops.matmul(p, vh)
    return out.transpose(0, 2, 1, 3).reshape(b, s, h * dv)
