"""com.microsoft contrib ops (and onnxruntime's opset-1 LayerNormalization forms): single-node
models compared with onnxruntime."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP
from onnx import helper

from providers.cpu import opset
from runtime import ir
from tests.providers.cpu.node_case_runner import assert_value_close

MS = "com.microsoft"


def _ort(model, feeds):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), so,
                                providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def _model(op, inputs, outputs, domain, attrs):
    names = [n if v is not None else "" for n, v in inputs.items()]
    outs = [n if n.strip() else "" for n in outputs]
    node = helper.make_node(op, names, outs, domain=domain or None, **attrs)
    g_in = [helper.make_tensor_value_info(n, ir.numpy_dtype_to_onnx(np.asarray(v).dtype),
                                          np.asarray(v).shape)
            for n, v in inputs.items() if v is not None]
    g_out = [helper.make_tensor_value_info(n, t, None) for n, t in outputs.items()
             if n.strip()]
    graph = helper.make_graph([node], "contrib", g_in, g_out)
    opsets = [helper.make_opsetid("", 16)]
    if domain:
        opsets.append(helper.make_opsetid(domain, 1))
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 10
    return model


def ferry(op, inputs, attrs, n_out, domain=MS, version=1):
    impl = opset.get(op, domain, version)
    assert impl is not None, f"{domain}::{op} is not registered"
    conv = {k: ir.attribute_value(helper.make_attribute(k, v)) for k, v in attrs.items()}
    ctx = opset.OpContext(node_name="n", op_type=op, domain=domain, opset=version,
                          num_outputs=n_out)
    return impl.call([None if v is None else np.asarray(v) for v in inputs.values()],
                     impl.attrs_with_defaults(conv), ctx)


def check(op, inputs, outputs, rtol=1e-5, atol=1e-5, domain=MS, **attrs):
    """``outputs`` maps output names to elem types ('' skips an optional output)."""
    model = _model(op, inputs, outputs, domain, attrs)
    feeds = {n: np.asarray(v) for n, v in inputs.items() if v is not None}
    expected = _ort(model, feeds)
    got = ferry(op, inputs, attrs, len(outputs), domain)
    names = list(outputs)
    j = 0
    for i, name in enumerate(names):
        if not name.strip():
            continue
        assert_value_close(expected[j], got[i], rtol, atol, f"{op} {name}")
        j += 1
    return got


rng = np.random.default_rng(3)


def randn(*shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def u8(*shape):
    return rng.integers(0, 256, shape).astype(np.uint8)


def i8(*shape, low=-128, high=128):
    return rng.integers(low, high, shape).astype(np.int8)


F = TP.FLOAT

# --------------------------------------------------------------------------------------------
# GELU family and BiasAdd


def test_gelu():
    check("Gelu", {"X": randn(3, 7, scale=3)}, {"Y": F})


def test_bias_gelu():
    check("BiasGelu", {"A": randn(2, 3, 8, scale=2), "B": randn(8)}, {"C": F})


@pytest.mark.parametrize("with_bias", [False, True])
def test_fast_gelu(with_bias):
    check("FastGelu", {"X": randn(2, 5, 6, scale=3), "bias": randn(6) if with_bias else None},
          {"Y": F})


@pytest.mark.parametrize("alpha", [None, 1.0, 0.5])
def test_quick_gelu(alpha):
    attrs = {} if alpha is None else {"alpha": alpha}
    check("QuickGelu", {"X": randn(4, 9, scale=4)}, {"Y": F}, **attrs)


def test_bias_add():
    # No CPU kernel in onnxruntime: checked against two ONNX Adds run by onnxruntime.
    x, bias, skip = randn(2, 6, 4), randn(4), randn(2, 6, 4)
    nodes = [helper.make_node("Add", ["X", "bias"], ["t"]),
             helper.make_node("Add", ["t", "skip"], ["Y"])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info(n, F, v.shape)
                     for n, v in (("X", x), ("bias", bias), ("skip", skip))],
        [helper.make_tensor_value_info("Y", F, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 16)])
    model.ir_version = 10
    expected = _ort(model, {"X": x, "bias": bias, "skip": skip})[0]
    got = ferry("BiasAdd", {"X": x, "bias": bias, "skip": skip}, {}, 1)[0]
    assert_value_close(expected, got, 1e-6, 1e-6)


# --------------------------------------------------------------------------------------------
# Layer normalizations


@pytest.mark.parametrize("beta,bias", [(False, False), (True, False), (True, True),
                                       (False, True)])
@pytest.mark.parametrize("n_out", [1, 4])
def test_skip_layer_norm(beta, bias, n_out):
    h = 16
    inputs = {"input": randn(2, 3, h, scale=2), "skip": randn(2, 3, h), "gamma": randn(h),
              "beta": randn(h) if beta else None, "bias": randn(h) if bias else None}
    outs = {"out": F}
    if n_out == 4:
        outs.update({"mean": F, "inv_std": F, "sum": F})
    check("SkipLayerNormalization", inputs, outs, rtol=1e-4, atol=1e-5, epsilon=1e-5)


def test_skip_layer_norm_sum_only():
    h = 8
    inputs = {"input": randn(3, h), "skip": randn(3, h), "gamma": randn(h), "beta": randn(h),
              "bias": randn(h)}
    check("SkipLayerNormalization", inputs, {"out": F, "": 0, " ": 0, "sum": F}, rtol=1e-4)


@pytest.mark.parametrize("bias", [False, True])
def test_skip_simplified_layer_norm(bias):
    h = 12
    inputs = {"input": randn(2, 4, h), "skip": randn(2, 4, h), "gamma": randn(h),
              "bias": randn(h) if bias else None}
    check("SkipSimplifiedLayerNormalization", inputs, {"out": F, "": 0, "inv": F, "sum": F},
          rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("axis", [-1, 1])
@pytest.mark.parametrize("with_b", [False, True])
def test_layer_norm_opset1(axis, with_b):
    x = randn(2, 3, 8, scale=3)
    inputs = {"X": x, "scale": randn(*x.shape[axis:]),
              "B": randn(*x.shape[axis:]) if with_b else None}
    check("LayerNormalization", inputs, {"Y": F, "Mean": F, "InvStd": F}, domain="",
          rtol=1e-4, atol=1e-5, axis=axis)


def test_layer_norm_opset1_is_registered_below_17():
    impl = opset.get("LayerNormalization", "", 16)
    assert impl is not None and impl.since == 1


@pytest.mark.parametrize("axis", [-1, 1])
def test_simplified_layer_norm(axis):
    x = randn(2, 3, 8, scale=3)
    check("SimplifiedLayerNormalization", {"X": x, "scale": randn(*x.shape[axis:])},
          {"Y": F, "inv": F}, domain="", rtol=1e-4, atol=1e-5, axis=axis)


@pytest.mark.parametrize("segment", [False, True])
@pytest.mark.parametrize("mask", [False, True])
@pytest.mark.parametrize("position_ids", [False, True])
def test_embed_layer_norm(segment, mask, position_ids):
    b, s, h = 2, 5, 8
    inputs = {
        "input_ids": rng.integers(0, 20, (b, s)).astype(np.int32),
        "segment_ids": rng.integers(0, 2, (b, s)).astype(np.int32) if segment else None,
        "word_embedding": randn(20, h), "position_embedding": randn(16, h),
        "segment_embedding": randn(2, h) if segment else None,
        "gamma": randn(h), "beta": randn(h),
        "mask": (np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], np.int32) if mask else None),
        "position_ids": (rng.integers(0, 16, (b, s)).astype(np.int32) if position_ids
                         else None),
    }
    check("EmbedLayerNormalization", inputs,
          {"out": F, "mask_index": TP.INT32, "sum": F}, rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------------------------
# Fused matmul / gemm / conv


@pytest.mark.parametrize("shapes,attrs", [
    (((3, 4), (4, 5)), {}),
    (((4, 3), (4, 5)), {"transA": 1, "alpha": 0.5}),
    (((3, 4), (5, 4)), {"transB": 1}),
    (((2, 3, 4), (2, 4, 5)), {"alpha": 2.0}),
    (((2, 4, 3), (5, 4)), {"transA": 1, "transB": 1}),
    (((3, 2, 4), (2, 4, 5)), {"transBatchA": 1}),
    (((2, 3, 4), (4, 2, 5)), {"transBatchB": 1}),
    (((3, 2, 4), (5, 2, 4)), {"transBatchA": 1, "transBatchB": 1, "transB": 1}),
    (((4, 2, 3), (4, 2, 5)), {"transBatchA": 1, "transA": 1, "transBatchB": 1}),
    (((3, 2, 6, 4), (2, 6, 4, 5)), {"transBatchA": 1}),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_matmul(shapes, attrs, dtype):
    a = randn(*shapes[0]).astype(dtype)
    b = randn(*shapes[1]).astype(dtype)
    check("FusedMatMul", {"A": a, "B": b},
          {"Y": TP.FLOAT if dtype == np.float32 else TP.DOUBLE}, rtol=1e-5, **attrs)


ACTS = [("Relu", []), ("Tanh", []), ("Sigmoid", []), ("LeakyRelu", [0.2]),
        ("Clip", [-0.5, 0.7]), ("HardSigmoid", [0.3, 0.4]), ("", [])]


@pytest.mark.parametrize("act,params", ACTS)
@pytest.mark.parametrize("with_z", [False, True])
def test_fused_conv(act, params, with_z):
    x = randn(2, 4, 7, 6)
    w = randn(6, 2, 3, 3)
    attrs = dict(group=2, pads=[1, 0, 1, 2], strides=[2, 1], kernel_shape=[3, 3])
    if act:
        attrs["activation"] = act
    if params:
        attrs["activation_params"] = params
    z = randn(2, 6, 4, 6) if with_z else None
    check("FusedConv", {"X": x, "W": w, "B": randn(6), "Z": z}, {"Y": F}, rtol=1e-4,
          atol=1e-5, **attrs)


@pytest.mark.parametrize("act,a_alpha,a_beta", [
    ("Relu", None, None), ("LeakyRelu", 0.3, None),
    ("Tanh", None, None), ("Sigmoid", None, None), ("HardSigmoid", 0.25, 0.45)])
@pytest.mark.parametrize("trans", [(0, 0), (1, 1)])
def test_fused_gemm(act, a_alpha, a_beta, trans):
    a = randn(3, 4) if not trans[0] else randn(4, 3)
    b = randn(4, 5) if not trans[1] else randn(5, 4)
    attrs = dict(activation=act, alpha=0.7, beta=1.3, transA=trans[0], transB=trans[1])
    if a_alpha is not None:
        attrs["activation_alpha"] = a_alpha
    if a_beta is not None:
        attrs["activation_beta"] = a_beta
    check("FusedGemm", {"A": a, "B": b, "C": randn(5)}, {"Y": F}, rtol=1e-5, **attrs)


# --------------------------------------------------------------------------------------------
# Attention


def _mask_variants(b, s, total):
    lens = np.array([total - 1, 2][:b], np.int32)
    return {
        "none": None,
        "lengths": lens,
        "end_start": np.concatenate([lens, np.array([1, 0][:b], np.int32)]),
        "raw2d": _keep_first_key((rng.random((b, total)) > 0.3).astype(np.int32)),
        "raw3d": _keep_first_key((rng.random((b, s, total)) > 0.3).astype(np.int32)),
    }


def _keep_first_key(mask: np.ndarray) -> np.ndarray:
    """Every query keeps key 0, so no row is fully masked (even under a causal mask):
    onnxruntime's output for fully masked rows follows no documented rule."""
    mask[..., 0] = 1
    return mask


@pytest.mark.parametrize("mask", ["none", "lengths", "end_start", "raw2d", "raw3d"])
@pytest.mark.parametrize("unidirectional", [0, 1])
def test_attention(mask, unidirectional):
    if mask == "end_start" and unidirectional:
        # Batch 0's first query row has every key masked (start=1, causal allows key 0 only);
        # onnxruntime's output for such fully masked rows follows no documented rule.
        pytest.skip("fully masked rows under end/start + causal masks: behaviour unspecified")
    b, s, d_in, n, h = 2, 4, 6, 2, 3
    x = randn(b, s, d_in)
    w = randn(d_in, 3 * n * h, scale=0.5)
    m = _mask_variants(b, s, s)[mask]
    check("Attention", {"input": x, "weights": w, "bias": randn(3 * n * h), "mask": m},
          {"output": F}, rtol=1e-4, atol=1e-5, num_heads=n, unidirectional=unidirectional)


@pytest.mark.parametrize("mask", ["none", "lengths", "raw2d"])
def test_attention_past_present(mask):
    b, s, past, d_in, n, h = 2, 3, 2, 6, 2, 4
    x = randn(b, s, d_in)
    w = randn(d_in, 3 * n * h, scale=0.5)
    m = _mask_variants(b, s, s + past)[mask]
    check("Attention", {"input": x, "weights": w, "bias": randn(3 * n * h), "mask": m,
                        "past": randn(2, b, n, past, h)},
          {"output": F, "present": F}, rtol=1e-4, atol=1e-5, num_heads=n, unidirectional=1)


def test_attention_qkv_sizes_scale_bias():
    b, s, d_in, n = 2, 3, 5, 2
    sizes = [4, 4, 6]
    check("Attention", {"input": randn(b, s, d_in), "weights": randn(d_in, sum(sizes)),
                        "bias": None, "mask": None, "past": None,
                        "attention_bias": randn(1, n, s, s)},
          {"output": F}, rtol=1e-4, atol=1e-5, num_heads=n, qkv_hidden_sizes=sizes,
          scale=0.3, mask_filter_value=-1000.0)


def check_packed_mha(inputs, form, n, bias):
    q = inputs["query"]
    if form == "packed_qkv":
        b, s, _, _, h = q.shape
        unpacked = {"query": q[:, :, :, 0].reshape(b, s, -1),
                    "key": q[:, :, :, 1].reshape(b, s, -1),
                    "value": q[:, :, :, 2].reshape(b, s, -1)}
    else:
        kv = inputs["key"]
        b, lk = kv.shape[:2]
        unpacked = {"query": q, "key": kv[:, :, :, 0].reshape(b, lk, -1),
                    "value": kv[:, :, :, 1].reshape(b, lk, -1)}
    d = unpacked["query"].shape[-1]
    bias_v = randn(3 * d) if bias else None
    if bias_v is not None:
        inputs = dict(inputs, bias=bias_v)
        unpacked["bias"] = bias_v
    model = _model("MultiHeadAttention", unpacked, {"output": F}, MS, {"num_heads": n})
    expected = _ort(model, unpacked)[0]
    got = ferry("MultiHeadAttention", inputs, {"num_heads": n}, 1)[0]
    assert_value_close(expected, got, 1e-4, 1e-5)


@pytest.mark.parametrize("form", ["separate", "packed_qkv", "packed_kv", "bnsh_kv"])
@pytest.mark.parametrize("bias", [False, True])
def test_multi_head_attention_forms(form, bias):
    b, s, lk, n, h = 2, 3, 4, 2, 4
    d = n * h
    q = randn(b, s, d)
    inputs = {"query": q, "key": None, "value": None}
    if form == "separate":
        inputs.update(key=randn(b, lk, d), value=randn(b, lk, d))
    elif form == "packed_qkv":
        inputs["query"] = randn(b, s, n, 3, h)
    elif form == "packed_kv":
        inputs["key"] = randn(b, lk, n, 2, h)
    else:
        inputs.update(key=randn(b, n, lk, h), value=randn(b, n, lk, h))
    if form in ("packed_qkv", "packed_kv"):
        # onnxruntime's CPU kernel rejects packed inputs: checked against the same
        # attention on the unpacked tensors.
        check_packed_mha(inputs, form, n, bias)
        return
    if bias:
        if form == "bnsh_kv":
            pytest.skip("onnxruntime takes no bias with K/V already split in heads")
        inputs["bias"] = randn(3 * d)
    check("MultiHeadAttention", inputs, {"output": F}, rtol=1e-4, atol=1e-5, num_heads=n)


@pytest.mark.parametrize("mask", ["none", "lengths", "raw2d", "raw3d"])
def test_multi_head_attention_masks(mask):
    b, s, lk, n, h = 2, 3, 4, 2, 4
    d = n * h
    m = _mask_variants(b, s, lk)[mask]
    check("MultiHeadAttention", {"query": randn(b, s, d), "key": randn(b, lk, d),
                                 "value": randn(b, lk, d), "bias": randn(3 * d),
                                 "key_padding_mask": m, "attention_bias": randn(b, 1, s, lk)},
          {"output": F}, rtol=1e-4, atol=1e-5, num_heads=n)


@pytest.mark.parametrize("unidirectional", [0, 1])
def test_multi_head_attention_past(unidirectional):
    b, s, past, n, h = 2, 3, 2, 2, 4
    d = n * h
    check("MultiHeadAttention", {
        "query": randn(b, s, d), "key": randn(b, s, d), "value": randn(b, s, d),
        "bias": randn(3 * d), "key_padding_mask": None, "attention_bias": None,
        "past_key": randn(b, n, past, h), "past_value": randn(b, n, past, h)},
        {"output": F, "present_key": F, "present_value": F}, rtol=1e-4, atol=1e-5,
        num_heads=n, unidirectional=unidirectional, scale=0.2)


# --------------------------------------------------------------------------------------------
# Integer / dynamically quantized matmuls


def test_matmul_integer16():
    a = rng.integers(-300, 300, (2, 3, 4)).astype(np.int16)
    b = rng.integers(-300, 300, (4, 5)).astype(np.int16)
    check("MatMulInteger16", {"A": a, "B": b}, {"Y": TP.INT32})


@pytest.mark.parametrize("b_signed", [False, True])
@pytest.mark.parametrize("per_column", [False, True])
@pytest.mark.parametrize("with_bias", [False, True])
def test_dynamic_quantize_matmul(b_signed, per_column, with_bias):
    a = randn(2, 3, 16, scale=2)
    b = i8(16, 5, low=-64, high=64) if b_signed else u8(16, 5)
    n = 5 if per_column else 1
    bs = (rng.uniform(0.01, 0.05, n)).astype(np.float32).reshape(-1 if per_column else ())
    bz = (np.zeros(n, np.int8) if b_signed else rng.integers(100, 150, n).astype(np.uint8))
    bz = bz.reshape(-1 if per_column else ())
    check("DynamicQuantizeMatMul", {"A": a, "B": b, "b_scale": bs, "b_zero_point": bz,
                                    "bias": randn(5) if with_bias else None},
          {"Y": F}, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("a_signed", [False, True])
@pytest.mark.parametrize("per_column", [False, True])
def test_matmul_integer_to_float(a_signed, per_column):
    a = i8(3, 8) if a_signed else u8(3, 8)
    b = i8(8, 4, low=-64, high=64)
    n = 4 if per_column else 1
    check("MatMulIntegerToFloat", {
        "A": a, "B": b, "a_scale": np.float32(0.02),
        "b_scale": rng.uniform(0.01, 0.03, n).astype(np.float32).reshape(-1 if per_column
                                                                         else ()),
        "a_zero_point": (np.int8(3) if a_signed else np.uint8(120)),
        "b_zero_point": np.zeros(n, np.int8).reshape(-1 if per_column else ()),
        "bias": randn(4)}, {"Y": F}, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("quant_out", [False, True])
@pytest.mark.parametrize("with_c", [False, True])
@pytest.mark.parametrize("trans", [(0, 0), (1, 1)])
def test_qgemm(signed, quant_out, with_c, trans):
    m, k, n = 3, 8, 4
    a = (i8(m, k) if signed else u8(m, k))
    a = a.T.copy() if trans[0] else a
    b = i8(k, n, low=-64, high=64)
    b = b.T.copy() if trans[1] else b
    zp_t = np.int8 if signed else np.uint8
    inputs = {"A": a, "a_scale": np.float32(0.05), "a_zero_point": zp_t(2),
              "B": b, "b_scale": np.float32(0.03), "b_zero_point": np.int8(0),
              "C": rng.integers(-500, 500, (n,)).astype(np.int32) if with_c else None}
    if quant_out:
        inputs.update(y_scale=np.float32(0.2), y_zero_point=zp_t(5))
    check("QGemm", inputs, {"Y": (TP.INT8 if signed else TP.UINT8) if quant_out else F},
          rtol=1e-5, atol=1 if quant_out else 1e-5, alpha=0.8, transA=trans[0],
          transB=trans[1])


# --------------------------------------------------------------------------------------------
# QLinear ops


QT = [(np.uint8, TP.UINT8), (np.int8, TP.INT8)]


def qrand(dtype, *shape):
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max + 1, shape).astype(dtype)


@pytest.mark.parametrize("op", ["QLinearAdd", "QLinearMul"])
@pytest.mark.parametrize("dtype,elem", QT)
@pytest.mark.parametrize("shapes", [((2, 3, 4), (2, 3, 4)), ((2, 3, 4), (4,)), ((3, 1), (1, 5))])
def test_qlinear_binary(op, dtype, elem, shapes):
    a, b = qrand(dtype, *shapes[0]), qrand(dtype, *shapes[1])
    check(op, {"A": a, "A_scale": np.float32(0.05), "A_zero_point": dtype(3),
               "B": b, "B_scale": np.float32(0.07), "B_zero_point": dtype(-2 if dtype == np.int8
                                                                           else 130),
               "C_scale": np.float32(0.09 if op == "QLinearAdd" else 0.5),
               "C_zero_point": dtype(1)}, {"C": elem}, atol=1)


@pytest.mark.parametrize("op", ["QLinearSigmoid", "QLinearLeakyRelu"])
@pytest.mark.parametrize("dtype,elem", QT)
def test_qlinear_lookup(op, dtype, elem):
    x = np.arange(np.iinfo(dtype).min, np.iinfo(dtype).max + 1).astype(dtype)
    attrs = {"alpha": 0.15} if op == "QLinearLeakyRelu" else {}
    check(op, {"X": x, "X_scale": np.float32(0.06), "X_zero_point": dtype(5),
               "Y_scale": np.float32(1 / 256 if op == "QLinearSigmoid" else 0.05),
               "Y_zero_point": dtype(-128 if dtype == np.int8 else 0)},
          {"Y": elem}, atol=0, **attrs)


@pytest.mark.parametrize("dtype,elem", QT)
@pytest.mark.parametrize("channels_last", [0, 1])
def test_qlinear_global_average_pool(dtype, elem, channels_last):
    x = qrand(dtype, 2, 3, 5, 4)
    check("QLinearGlobalAveragePool",
          {"X": x, "x_scale": np.float32(0.1), "x_zero_point": dtype(4),
           "y_scale": np.float32(0.07), "y_zero_point": dtype(-3 if dtype == np.int8 else 9)},
          {"Y": elem}, atol=1, channels_last=channels_last)


@pytest.mark.parametrize("dtype,elem", QT)
@pytest.mark.parametrize("attrs", [
    dict(kernel_shape=[2, 2]),
    dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2]),
    dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1], count_include_pad=1),
    dict(kernel_shape=[2, 3], strides=[2, 2], ceil_mode=1),
    dict(kernel_shape=[3, 3], auto_pad="SAME_UPPER"),
])
@pytest.mark.parametrize("channels_last", [0, 1])
def test_qlinear_average_pool(dtype, elem, attrs, channels_last):
    shape = (2, 6, 7, 3) if channels_last else (2, 3, 6, 7)
    x = qrand(dtype, *shape)
    check("QLinearAveragePool",
          {"X": x, "x_scale": np.float32(0.1), "x_zero_point": dtype(4),
           "y_scale": np.float32(0.08), "y_zero_point": dtype(2)},
          {"Y": elem}, atol=1, channels_last=channels_last, **attrs)


@pytest.mark.parametrize("dtype,elem", QT)
def test_qlinear_concat(dtype, elem):
    a, b, c = qrand(dtype, 2, 3), qrand(dtype, 2, 4), qrand(dtype, 2, 1)
    check("QLinearConcat", {
        "Y_scale": np.float32(0.1), "Y_zero_point": dtype(3),
        "a": a, "as": np.float32(0.1), "az": dtype(3),      # same parameters: copied
        "b": b, "bs": np.float32(0.05), "bz": dtype(-1 if dtype == np.int8 else 100),
        "c": c, "cs": np.float32(0.3), "cz": dtype(0)}, {"Y": elem}, atol=1, axis=1)


@pytest.mark.parametrize("dtype,elem", QT)
@pytest.mark.parametrize("opset_attr,axis,shape", [
    (13, -1, (3, 10)), (13, 1, (2, 5, 3)), (12, 1, (2, 3, 4)), (11, -1, (4, 6))])
def test_qlinear_softmax(dtype, elem, opset_attr, axis, shape):
    x = qrand(dtype, *shape)
    check("QLinearSoftmax", {
        "X": x, "X_scale": np.float32(0.08), "x_zero_point": dtype(0),
        "y_scale": np.float32(1 / 256), "y_zero_point": dtype(-128 if dtype == np.int8 else 0)},
        {"Y": elem}, atol=0, opset=opset_attr, axis=axis)


@pytest.mark.parametrize("out", [(np.uint8, TP.UINT8), (np.int8, TP.INT8), (np.int16, TP.INT16),
                                 (np.uint16, TP.UINT16)])
@pytest.mark.parametrize("per_axis", [False, True])
def test_contrib_quantize_dequantize(out, per_axis):
    dtype, elem = out
    x = randn(2, 3, 4, scale=20)
    scale = (rng.uniform(0.1, 0.5, 3).astype(np.float32) if per_axis else np.float32(0.3))
    zp = (np.array([1, 2, 3], dtype) if per_axis else dtype(4))
    attrs = {"axis": 1} if per_axis else {}
    y = check("QuantizeLinear", {"x": x, "s": scale, "z": zp}, {"y": elem}, atol=0, **attrs)[0]
    check("DequantizeLinear", {"x": y, "s": scale, "z": zp}, {"y": F}, **attrs)


# --------------------------------------------------------------------------------------------
# DynamicQuantizeLSTM


def _lstm_inputs(direction, w_signed, per_channel, with_extras, seq=4, bsz=3, inp=5, hs=4):
    nd = 2 if direction == "bidirectional" else 1
    if w_signed:
        w, r = i8(nd, inp, 4 * hs, low=-64, high=64), i8(nd, hs, 4 * hs, low=-64, high=64)
    else:
        w, r = u8(nd, inp, 4 * hs), u8(nd, hs, 4 * hs)
    shape = (nd, 4 * hs) if per_channel else (nd,)
    zdt = np.int8 if w_signed else np.uint8

    def zps():
        if w_signed:
            return np.zeros(shape, zdt)
        return np.full(shape, 128, zdt)  # one zero point per direction (onnxruntime)

    inputs = {
        "X": randn(seq, bsz, inp), "W": w, "R": r,
        "B": randn(nd, 8 * hs, scale=0.1) if with_extras else None,
        "sequence_lens": None,
        "initial_h": randn(nd, bsz, hs, scale=0.5) if with_extras else None,
        "initial_c": randn(nd, bsz, hs, scale=0.5) if with_extras else None,
        "P": randn(nd, 3 * hs, scale=0.1) if with_extras else None,
        "W_scale": rng.uniform(0.005, 0.02, shape).astype(np.float32), "W_zero_point": zps(),
        "R_scale": rng.uniform(0.005, 0.02, shape).astype(np.float32), "R_zero_point": zps(),
    }
    return inputs


@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("w_signed", [False, True])
@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("with_extras", [False, True])
def test_dynamic_quantize_lstm(direction, w_signed, per_channel, with_extras):
    inputs = _lstm_inputs(direction, w_signed, per_channel, with_extras)
    check("DynamicQuantizeLSTM", inputs, {"Y": F, "Y_h": F, "Y_c": F}, rtol=1e-4, atol=1e-4,
          hidden_size=4, direction=direction)


@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
def test_dynamic_quantize_lstm_seq_lens_clip_input_forget(direction):
    inputs = _lstm_inputs(direction, True, False, True)
    inputs["sequence_lens"] = np.array([4, 2, 3], np.int32)
    check("DynamicQuantizeLSTM", inputs, {"Y": F, "Y_h": F, "Y_c": F}, rtol=1e-4, atol=1e-4,
          hidden_size=4, clip=0.8, input_forget=1, direction=direction)


def test_dynamic_quantize_lstm_activations():
    inputs = _lstm_inputs("forward", False, True, True)
    check("DynamicQuantizeLSTM", inputs, {"Y": F, "Y_h": F, "Y_c": F}, rtol=1e-4, atol=1e-4,
          hidden_size=4, activations=["HardSigmoid", "Tanh", "Softsign"],
          activation_alpha=[0.3], activation_beta=[0.6])


def test_registered_contrib_ops():
    names = {op for dom, op in opset.registered_ops() if dom == MS}
    expected = {"Gelu", "FastGelu", "BiasGelu", "QuickGelu", "SkipLayerNormalization",
                "FusedMatMul", "FusedConv", "FusedGemm", "Attention", "MultiHeadAttention",
                "EmbedLayerNormalization", "DynamicQuantizeMatMul", "MatMulInteger16",
                "MatMulIntegerToFloat", "DynamicQuantizeLSTM", "QLinearAdd", "QLinearMul",
                "QLinearSigmoid", "QLinearLeakyRelu", "QLinearGlobalAveragePool",
                "QLinearAveragePool", "QLinearConcat", "QLinearSoftmax", "QGemm",
                "QuantizeLinear", "DequantizeLinear", "BiasAdd"}
    assert expected <= names, expected - names
