"""Transformer ops (providers/cpu/ops/transformer.py): onnx node cases, and the numpy
implementations against onnxruntime over attribute/shape combinations the node cases miss."""

from __future__ import annotations

import numpy as np
import pytest

from tests.providers.cpu.node_case_runner import check_case, compare_with_ort, node_cases

OPS = {"Attention", "RMSNormalization", "RotaryEmbedding", "Swish", "SwiGLU",
       "LinearAttention", "CausalConvWithState"}
CASES = node_cases(OPS)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_node_case(case):
    check_case(case, fallback=False)


def _flex_cases():
    from tests.providers.cpu.node_case_runner import _all_cases

    return [c for c in _all_cases() if c.model is not None
            and any(n.op_type == "FlexAttention" for n in c.model.graph.node)]


FLEX_CASES = _flex_cases()


@pytest.mark.parametrize("case", FLEX_CASES, ids=[c.name for c in FLEX_CASES])
def test_flex_attention_node_case(case):
    check_case(case, fallback=True)  # modifier subgraph nodes may be other families' ops


def _rng(seed):
    return np.random.default_rng(seed)


# --------------------------------------------------------------------------------------------
# Attention against onnxruntime

# (name, q shape, k shape, v shape, attributes); 3D shapes carry q_num_heads/kv_num_heads.
ATTN_SHAPES = [
    ("4d_mha", (2, 3, 4, 8), (2, 3, 6, 8), (2, 3, 6, 8), {}),
    ("4d_gqa", (2, 6, 4, 8), (2, 2, 5, 8), (2, 2, 5, 8), {}),
    ("4d_mqa", (1, 4, 3, 8), (1, 1, 7, 8), (1, 1, 7, 8), {}),
    ("4d_vdim", (2, 2, 3, 8), (2, 2, 4, 8), (2, 2, 4, 5), {}),
    ("3d_mha", (2, 4, 12), (2, 6, 12), (2, 6, 12), {"q_num_heads": 3, "kv_num_heads": 3}),
    ("3d_gqa", (2, 4, 24), (2, 5, 8), (2, 5, 12), {"q_num_heads": 6, "kv_num_heads": 2}),
]


def _attn_inputs(seed, q_shape, k_shape, v_shape, dtype=np.float32):
    r = _rng(seed)
    return {"Q": r.standard_normal(q_shape).astype(dtype),
            "K": r.standard_normal(k_shape).astype(dtype),
            "V": r.standard_normal(v_shape).astype(dtype)}


def _dims(q_shape, k_shape, attrs):
    """(batch, q heads, q length, kv heads, kv length, head size)."""
    if len(q_shape) == 4:
        return q_shape[0], q_shape[1], q_shape[2], k_shape[1], k_shape[2], q_shape[3]
    hq, hkv = attrs["q_num_heads"], attrs["kv_num_heads"]
    return q_shape[0], hq, q_shape[1], hkv, k_shape[1], q_shape[2] // hq


@pytest.mark.parametrize("spec", ATTN_SHAPES, ids=[s[0] for s in ATTN_SHAPES])
@pytest.mark.parametrize("variant", ["plain", "causal", "scale", "softcap"])
def test_attention_basic_vs_ort(spec, variant):
    _, qs, ks, vs, attrs = spec
    attrs = dict(attrs)
    if variant == "causal":
        attrs["is_causal"] = 1
    elif variant == "scale":
        attrs["scale"] = 0.3
    elif variant == "softcap":
        attrs["softcap"] = 1.5
    compare_with_ort("Attention", _attn_inputs(1, qs, ks, vs), ["Y"], 23, rtol=1e-5,
                     atol=1e-5, **attrs)


@pytest.mark.parametrize("spec", ATTN_SHAPES, ids=[s[0] for s in ATTN_SHAPES])
@pytest.mark.parametrize("mask_kind", ["bool2d", "float2d", "float4d", "bool3d_heads"])
@pytest.mark.parametrize("causal", [0, 1])
def test_attention_masks_vs_ort(spec, mask_kind, causal):
    _, qs, ks, vs, attrs = spec
    b, hq, lq, _, lk, _ = _dims(qs, ks, attrs)
    r = _rng(2)
    if mask_kind == "bool2d":
        mask = r.random((lq, lk)) > 0.3
    elif mask_kind == "float2d":
        mask = r.standard_normal((lq, lk)).astype(np.float32)
    elif mask_kind == "float4d":
        mask = r.standard_normal((b, 1, lq, lk)).astype(np.float32)
    else:
        mask = r.random((hq, lq, lk)) > 0.3
    if mask.dtype == np.bool_:
        mask[..., 0] = True  # keep every query row attending something (no all-masked row)
    feeds = _attn_inputs(3, qs, ks, vs)
    feeds["attn_mask"] = mask
    compare_with_ort("Attention", feeds, ["Y"], 23, rtol=1e-5, atol=1e-5, is_causal=causal,
                     **attrs)


@pytest.mark.parametrize("spec", ATTN_SHAPES, ids=[s[0] for s in ATTN_SHAPES])
@pytest.mark.parametrize("mode", [0, 1, 2, 3])
def test_attention_past_and_qk_modes_vs_ort(spec, mode):
    _, qs, ks, vs, attrs = spec
    b, _, lq, hkv, lk, d = _dims(qs, ks, attrs)
    dv = vs[-1] if len(vs) == 4 else vs[-1] // hkv
    r = _rng(4)
    past = 3
    feeds = _attn_inputs(5, qs, ks, vs)
    feeds["attn_mask"] = r.standard_normal((lq, past + lk)).astype(np.float32)
    feeds["past_key"] = r.standard_normal((b, hkv, past, d)).astype(np.float32)
    feeds["past_value"] = r.standard_normal((b, hkv, past, dv)).astype(np.float32)
    # onnxruntime writes masked scores as the lowest finite float where the spec adds -inf,
    # so the mode that exposes masked scores (2) runs without the causal mask.
    compare_with_ort("Attention", feeds, ["Y", "present_key", "present_value", "qk"], 23,
                     rtol=1e-5, atol=1e-5, is_causal=int(mode != 2), softcap=2.0,
                     qk_matmul_output_mode=mode, **attrs)


@pytest.mark.parametrize("causal", [0, 1])
@pytest.mark.parametrize("with_mask", [False, True])
def test_attention_nonpad_kv_seqlen_vs_ort(causal, with_mask):
    qs, ks = (2, 4, 3, 8), (2, 2, 7, 8)
    feeds = _attn_inputs(6, qs, ks, ks)
    if with_mask:
        feeds["attn_mask"] = _rng(7).standard_normal((2, 1, 3, 7)).astype(np.float32)
    else:
        feeds["attn_mask"] = None
    feeds["past_key"] = None
    feeds["past_value"] = None
    feeds["nonpad_kv_seqlen"] = np.array([5, 7], np.int64)
    compare_with_ort("Attention", feeds, ["Y"], 24, rtol=1e-5, atol=1e-5, is_causal=causal)


@pytest.mark.parametrize("window", [(2, -1), (1, 2), (0, 0), (-1, 1)])
@pytest.mark.parametrize("causal", [0, 1])
def test_attention_sliding_window_vs_ort(window, causal):
    left, right = window
    if causal and right > 0:
        pytest.skip("a positive right window is for is_causal=0")
    feeds = _attn_inputs(8, (1, 2, 5, 8), (1, 2, 5, 8), (1, 2, 5, 8))
    compare_with_ort("Attention", feeds, ["Y"], 25, rtol=1e-5, atol=1e-5, is_causal=causal,
                     left_window_size=left, right_window_size=right)


def test_attention_float16_vs_ort():
    feeds = _attn_inputs(9, (2, 4, 3, 8), (2, 2, 6, 8), (2, 2, 6, 8), np.float16)
    feeds["attn_mask"] = _rng(10).random((3, 6)) > 0.3
    feeds["attn_mask"][:, 0] = True
    compare_with_ort("Attention", feeds, ["Y"], 23, rtol=5e-3, atol=5e-3, is_causal=1)


def test_attention_fully_masked_row_is_zero():
    from providers.cpu.ops.transformer import attention_23

    feeds = _attn_inputs(11, (1, 1, 2, 4), (1, 1, 3, 4), (1, 1, 3, 4))
    mask = np.array([[True, True, False], [False, False, False]])
    y = attention_23(feeds["Q"], feeds["K"], feeds["V"], mask)
    assert np.all(np.isfinite(y))
    assert np.all(y[0, 0, 1] == 0)


# --------------------------------------------------------------------------------------------
# RMSNormalization, RotaryEmbedding, Swish


@pytest.mark.parametrize("shape,axis,scale_shape", [
    ((2, 3, 4), -1, (4,)), ((2, 3, 4), 1, (3, 4)), ((2, 3, 4), 1, (1, 4)),
    ((5, 6), 0, (5, 6)), ((2, 3, 4, 5), -2, (4, 5)),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_rms_normalization_vs_ort(shape, axis, scale_shape, dtype):
    r = _rng(12)
    tol = 2e-3 if dtype == np.float16 else 1e-5
    compare_with_ort("RMSNormalization",
                     {"X": r.standard_normal(shape).astype(dtype),
                      "scale": r.standard_normal(scale_shape).astype(dtype)},
                     ["Y"], 23, rtol=tol, atol=tol, axis=axis, epsilon=1e-3)


@pytest.mark.parametrize("rank", [3, 4])
@pytest.mark.parametrize("interleaved", [0, 1])
@pytest.mark.parametrize("rot_dim", [0, 4])
@pytest.mark.parametrize("with_positions", [True, False])
def test_rotary_embedding_vs_ort(rank, interleaved, rot_dim, with_positions):
    b, h, s, d = 2, 3, 5, 8
    r = _rng(13)
    half = (rot_dim or d) // 2
    x = r.standard_normal((b, h, s, d) if rank == 4 else (b, s, h * d)).astype(np.float32)
    if with_positions:
        cos = r.standard_normal((16, half)).astype(np.float32)
        sin = r.standard_normal((16, half)).astype(np.float32)
        pos = r.integers(0, 16, (b, s)).astype(np.int64)
    else:
        cos = r.standard_normal((b, s, half)).astype(np.float32)
        sin = r.standard_normal((b, s, half)).astype(np.float32)
        pos = None
    attrs = {"interleaved": interleaved, "rotary_embedding_dim": rot_dim}
    if rank == 3:
        attrs["num_heads"] = h
    compare_with_ort("RotaryEmbedding", {"X": x, "cos": cos, "sin": sin, "pos": pos}, ["Y"],
                     23, rtol=1e-5, atol=1e-5, **attrs)


@pytest.mark.parametrize("alpha", [1.0, 0.5, 2.5])
def test_swish_vs_ort(alpha):
    x = (_rng(14).standard_normal((3, 17)) * 8).astype(np.float32)
    compare_with_ort("Swish", {"X": x}, ["Y"], 24, rtol=1e-5, atol=1e-6, alpha=alpha)


# --------------------------------------------------------------------------------------------
# LinearAttention, CausalConvWithState


@pytest.mark.parametrize("rule", ["linear", "gated", "delta", "gated_delta"])
@pytest.mark.parametrize("heads", [(2, 2), (4, 2), (3, 1)])
@pytest.mark.parametrize("with_past", [False, True])
@pytest.mark.parametrize("per_key_decay", [False, True])
def test_linear_attention_vs_ort(rule, heads, with_past, per_key_decay):
    hq, hkv = heads
    b, t, dk, dv = 2, 5, 4, 3
    r = _rng(15)
    k = r.standard_normal((b, t, hkv, dk))
    k /= np.linalg.norm(k, axis=-1, keepdims=True)  # delta rules expect normalized keys
    feeds = {
        "query": r.standard_normal((b, t, hq * dk)).astype(np.float32),
        "key": k.reshape(b, t, hkv * dk).astype(np.float32),
        "value": r.standard_normal((b, t, hkv * dv)).astype(np.float32),
        "past_state": (r.standard_normal((b, hkv, dk, dv)).astype(np.float32)
                       if with_past else None),
        "decay": None, "beta": None,
    }
    if rule in ("gated", "gated_delta"):
        width = hkv * dk if per_key_decay else hkv
        feeds["decay"] = -np.abs(r.standard_normal((b, t, width))).astype(np.float32)
    elif per_key_decay:
        pytest.skip("no decay input for this rule")
    if rule in ("delta", "gated_delta"):
        feeds["beta"] = r.random((b, t, hkv)).astype(np.float32)
    compare_with_ort("LinearAttention", feeds, ["output", "present_state"], 27, rtol=1e-4,
                     atol=1e-5, q_num_heads=hq, kv_num_heads=hkv, update_rule=rule)


@pytest.mark.parametrize("k", [1, 2, 4])
@pytest.mark.parametrize("length", [1, 3, 6])
@pytest.mark.parametrize("activation", ["none", "silu"])
@pytest.mark.parametrize("extras", ["", "bias", "past", "bias+past"])
def test_causal_conv_with_state_vs_ort(k, length, activation, extras):
    b, c = 2, 3
    r = _rng(16)
    feeds = {
        "input": r.standard_normal((b, c, length)).astype(np.float32),
        "weight": r.standard_normal((c, 1, k)).astype(np.float32),
        "bias": r.standard_normal(c).astype(np.float32) if "bias" in extras else None,
        "past_state": (r.standard_normal((b, c, k - 1)).astype(np.float32)
                       if "past" in extras else None),
    }
    compare_with_ort("CausalConvWithState", feeds, ["output", "present_state"], 27,
                     rtol=1e-5, atol=1e-5, activation=activation)
