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

def _fused_matmul_native(inputs, attrs):
    a, b = inputs[0], inputs[1]
    bias = inputs[2] if len(inputs) > 2 else None
    act = _act_params(attrs)
    if act is None:
        return None
    call = gemm_ops._matmul_native([a, b], attrs)
    if call is None:
        return None
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
def fused_matmul(a, b, bias=None, *, activation="", activation_params=None):
    """act(MatMul(A, B) + bias), bias broadcast over the last axis."""
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
