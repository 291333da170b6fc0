"""Quantization ops: onnx node cases and comparisons with onnxruntime."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from onnx import TensorProto as TP
from onnx import helper

from runtime import ir
from tests.providers.cpu.node_case_runner import (
    assert_value_close,
    check_case,
    compare_with_ort,
    node_cases,
    ort_run,
    run_model,
    single_node_model,
)

OPS = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QLinearConv",
       "QLinearMatMul", "MatMulInteger", "ConvInteger"}
CASES = node_cases(OPS)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_node_case(case):
    check_case(case, fallback=False)


rng = np.random.default_rng(0)


def u8(*shape):
    return rng.integers(0, 256, shape).astype(np.uint8)


def i8(*shape, bits=8):
    # onnxruntime's x86 u8*s8 kernels sum pairs of products in saturating int16
    # (vpmaddubsw); 7-bit signed weights keep them exact, which the spec requires.
    half = 1 << (bits - 1)
    return rng.integers(-half, half, shape).astype(np.int8)


X = (rng.standard_normal((2, 3, 4)) * 50).astype(np.float32)
X16 = (X / 7).astype(np.float16)
X.flat[:6] = [2.5, 3.5, -2.5, -0.5, 0.5, 1e9]  # ties round to even; saturation


@pytest.mark.parametrize("opset,inputs,attrs", [
    (13, dict(x=X, s=np.float32(1.0), z=np.uint8(128)), {}),
    (13, dict(x=X, s=np.array([1, 2, 0.5], np.float32), z=np.array([1, -2, 3], np.int8)), {}),
    (13, dict(x=X, s=np.array([1, 2, 0.5, 3], np.float32),
              z=np.array([1, 2, 3, 4], np.uint8)), {"axis": -1}),
    (10, dict(x=X, s=np.float32(0.3)), {}),
    (21, dict(x=X * 100, s=np.float32(0.3), z=np.int16(7)), {}),
    (21, dict(x=X * 100, s=np.float32(0.3), z=np.uint16(7)), {}),
    (21, dict(x=X, s=np.float32(0.3)), {"output_dtype": TP.INT8}),
    (21, dict(x=X, s=(np.abs(rng.standard_normal((2, 3, 2))) + 0.1).astype(np.float32),
              z=rng.integers(0, 5, (2, 3, 2)).astype(np.uint8)), {"axis": -1, "block_size": 3}),
    (21, dict(x=X, s=(np.abs(rng.standard_normal((2, 2, 4))) + 0.1).astype(np.float32)),
     {"axis": 1, "block_size": 2, "output_dtype": TP.INT8}),
    (19, dict(x=X16, s=np.float16(0.37), z=np.int8(1)), {}),
    (19, dict(x=X16, s=np.array([0.37, 0.11, 0.7], np.float16),
              z=np.array([1, 2, 3], np.int8)), {}),
], ids=["tensor", "axis", "axis_neg", "no_zp", "int16", "uint16", "output_dtype", "blocked",
        "blocked_axis1", "f16", "f16_axis"])
def test_quantize(opset, inputs, attrs):
    compare_with_ort("QuantizeLinear", inputs, ["y"], opset, **attrs)


F8_SPECIAL = np.array([0, -0.0, 1e9, -1e9, np.inf, -np.inf, np.nan, 300, 500, 0.001, -600, 449,
                       464, 0.0135], np.float32)


@pytest.mark.parametrize("saturate", [0, 1])
def test_quantize_float8_e4m3fn(saturate):
    compare_with_ort("QuantizeLinear", dict(x=F8_SPECIAL, s=np.float32(1.0),
                                            z=np.zeros((), ml_dtypes.float8_e4m3fn)),
                     ["y"], 19, saturate=saturate)


def _quant_dequant_model(zero_type: int, opset: int, saturate=None, output_dtype=None):
    """QuantizeLinear -> DequantizeLinear: checks types ORT's Python API cannot return."""
    q_attrs = {} if saturate is None else {"saturate": saturate}
    q_inputs = ["x", "s"]
    inits = []
    if output_dtype is None:
        q_inputs.append("z")
        inits.append(helper.make_tensor("z", zero_type, [], [0]))
    else:
        q_attrs["output_dtype"] = output_dtype
    nodes = [helper.make_node("QuantizeLinear", q_inputs, ["q"], **q_attrs),
             helper.make_node("DequantizeLinear", ["q", "s"], ["y"])]
    graph = helper.make_graph(
        nodes, "qdq", [helper.make_tensor_value_info("x", TP.FLOAT, None),
                       helper.make_tensor_value_info("s", TP.FLOAT, [])],
        [helper.make_tensor_value_info("y", TP.FLOAT, None)], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 10
    return model


@pytest.mark.parametrize("zero_type", [TP.FLOAT8E4M3FN, TP.FLOAT8E4M3FNUZ, TP.FLOAT8E5M2,
                                       TP.FLOAT8E5M2FNUZ])
@pytest.mark.parametrize("saturate", [0, 1])
def test_float8_round_trip(zero_type, saturate):
    model = _quant_dequant_model(zero_type, 19, saturate)
    feeds = {"x": F8_SPECIAL * 3, "s": np.array(2.0, np.float32)}
    assert_value_close(ort_run(model, feeds)[0], run_model(model, feeds, fallback=False)[0])


@pytest.mark.parametrize("output_dtype", [TP.INT4, TP.UINT4])
def test_int4_round_trip(output_dtype):
    model = _quant_dequant_model(0, 21, output_dtype=output_dtype)
    feeds = {"x": X, "s": np.array(5.0, np.float32)}
    assert_value_close(ort_run(model, feeds)[0], run_model(model, feeds, fallback=False)[0])


def test_quantize_int4_dtype_and_values():
    got = run_model(_quant_dequant_model(0, 21, output_dtype=TP.INT4),
                    {"x": np.array([-100, -8.5, -7.5, 2.5, 7.5, 100], np.float32),
                     "s": np.array(1.0, np.float32)})[0]
    np.testing.assert_array_equal(got, np.array([-8, -8, -8, 2, 7, 7], np.float32))


@pytest.mark.parametrize("dtype", [ml_dtypes.float8_e4m3fn, ml_dtypes.float8_e4m3fnuz,
                                   ml_dtypes.float8_e5m2, ml_dtypes.float8_e5m2fnuz])
def test_dequantize_float8(dtype):
    compare_with_ort("DequantizeLinear", dict(x=F8_SPECIAL.astype(dtype), s=np.float32(2.0)),
                     ["y"], 19)


@pytest.mark.parametrize("opset,inputs,attrs", [
    (13, dict(x=rng.integers(-2**31, 2**31 - 1, (5,), dtype=np.int32), s=np.float32(0.1)), {}),
    (13, dict(x=u8(2, 3, 4), s=np.array([0.1, 0.2, 0.3], np.float32),
              z=np.array([1, 2, 3], np.uint8)), {}),
    (19, dict(x=i8(2, 3, 4), s=np.float16(0.123), z=np.int8(3)), {}),
    (21, dict(x=rng.integers(-30000, 30000, (2, 3, 4), dtype=np.int16), s=np.float32(0.123),
              z=np.int16(3)), {}),
    (21, dict(x=rng.integers(0, 60000, (2, 3, 4), dtype=np.uint16), s=np.float16(0.123),
              z=np.uint16(3)), {}),
    (21, dict(x=i8(2, 3, 5), s=np.abs(rng.standard_normal((2, 3, 2))).astype(np.float32),
              z=rng.integers(-3, 3, (2, 3, 2)).astype(np.int8)), {"axis": 2, "block_size": 3}),
    (21, dict(x=rng.integers(-8, 7, (2, 3, 5)).astype(ml_dtypes.int4), s=np.float32(0.5),
              z=np.array(2).astype(ml_dtypes.int4)), {}),
    (23, dict(x=i8(2, 3, 5), s=np.float32(0.37)), {"output_dtype": TP.FLOAT16}),
], ids=["int32", "axis", "f16", "int16", "uint16_f16", "blocked", "int4", "output_dtype"])
def test_dequantize(opset, inputs, attrs):
    compare_with_ort("DequantizeLinear", inputs, ["y"], opset, **attrs)


@pytest.mark.parametrize("x", [np.zeros((3, 4), np.float32), np.abs(X), -np.abs(X), X,
                               np.array([1e-30, 2e-30], np.float32)],
                         ids=["zeros", "positive", "negative", "mixed", "tiny"])
def test_dynamic_quantize(x):
    compare_with_ort("DynamicQuantizeLinear", dict(x=x), ["y", "s", "z"], 11)


@pytest.mark.parametrize("inputs", [
    dict(A=u8(4, 5), B=u8(5, 3), az=np.uint8(3), bz=np.uint8(200)),
    dict(A=u8(2, 4, 5), B=i8(5, 3, bits=7), az=np.uint8(3), bz=np.int8(-2)),
    dict(A=i8(2, 4, 5), B=i8(2, 5, 3)),
], ids=["u8u8", "u8s8_batched", "s8s8_no_zp"])
def test_matmul_integer(inputs):
    compare_with_ort("MatMulInteger", inputs, ["Y"], 10)


def test_matmul_integer_per_row_zero_point():
    # onnxruntime only takes scalar zero points: check each row against it.
    inputs = dict(A=u8(4, 5), B=u8(5, 3), az=u8(4), bz=np.uint8(9))
    got = run_model(_single("MatMulInteger", inputs, 10), inputs, fallback=False)[0]
    for i in range(4):
        row = dict(A=inputs["A"][i:i + 1], B=inputs["B"], az=inputs["az"][i], bz=inputs["bz"])
        expected = ort_run(_single("MatMulInteger", row, 10), row)[0]
        assert_value_close(expected, got[i:i + 1])


def _single(op, inputs, opset, **attrs):
    return single_node_model(op, inputs, ["y"], opset, **attrs)


@pytest.mark.parametrize("a_type,b_type,y_type", [("u8", "u8", np.uint8), ("u8", "s8", np.uint8),
                                                  ("s8", "s8", np.int8)])
@pytest.mark.parametrize("opset", [10, 21])
def test_qlinear_matmul(a_type, b_type, y_type, opset):
    gen = {"u8": u8, "s8": lambda *s: i8(*s, bits=7)}
    a, b = gen[a_type](3, 4, 8), gen[b_type](8, 6)
    inputs = dict(a=a, a_s=np.float32(0.02), a_z=gen[a_type](1).reshape(()), b=b,
                  b_s=np.float32(0.03), b_z=gen[b_type](1).reshape(()), y_s=np.float32(0.5),
                  y_z=np.array(3, y_type))
    compare_with_ort("QLinearMatMul", inputs, ["y"], opset)


def test_qlinear_matmul_per_column():
    inputs = dict(a=u8(4, 8), a_s=np.float32(0.02), a_z=np.uint8(3), b=i8(8, 6, bits=7),
                  b_s=(np.abs(rng.standard_normal(6)) * 0.01).astype(np.float32),
                  b_z=np.zeros(6, np.int8), y_s=np.float32(0.5), y_z=np.uint8(3))
    compare_with_ort("QLinearMatMul", inputs, ["y"], 10)


CONV_ATTRS = [{}, {"group": 2}, {"pads": [1, 0, 2, 1]}, {"strides": [2, 1], "dilations": [1, 2]},
              {"auto_pad": "SAME_UPPER", "strides": [2, 2]},
              {"auto_pad": "SAME_LOWER", "strides": [2, 2]}, {"auto_pad": "VALID"}]


def _conv_weights(attrs, dtype=np.int8):
    w = i8(6, 2 if attrs.get("group") else 4, 3, 3, bits=7)
    return w if dtype == np.int8 else (w.astype(np.int16) + 64).astype(np.uint8)


@pytest.mark.parametrize("attrs", CONV_ATTRS, ids=str)
@pytest.mark.parametrize("w_type", [np.int8, np.uint8])
def test_conv_integer(attrs, w_type):
    w = _conv_weights(attrs, w_type)
    inputs = dict(x=u8(2, 4, 7, 6), w=w, xz=np.uint8(7), wz=np.array(3, w_type))
    compare_with_ort("ConvInteger", inputs, ["y"], 10, **attrs)


@pytest.mark.parametrize("attrs", CONV_ATTRS, ids=str)
def test_qlinear_conv(attrs):
    w = _conv_weights(attrs)
    base = dict(x=u8(2, 4, 7, 6), xs=np.float32(0.05), xz=np.uint8(7), w=w)
    compare_with_ort("QLinearConv", dict(base, ws=np.float32(0.01), wz=np.int8(0),
                                         ys=np.float32(0.3), yz=np.uint8(100)), ["y"], 10, **attrs)
    per_channel = dict(base, ws=(np.abs(rng.standard_normal(6)) * 0.01).astype(np.float32),
                       wz=np.zeros(6, np.int8), ys=np.float32(0.3), yz=np.uint8(100),
                       B=rng.integers(-1000, 1000, 6).astype(np.int32))
    compare_with_ort("QLinearConv", per_channel, ["y"], 10, **attrs)
    signed = dict(x=i8(2, 4, 7, 6), xs=np.float32(0.05), xz=np.int8(-7), w=w,
                  ws=np.float32(0.01), wz=np.int8(0), ys=np.float32(0.3), yz=np.int8(10))
    compare_with_ort("QLinearConv", signed, ["y"], 10, **attrs)


@pytest.mark.parametrize("x_shape,w_shape,attrs", [
    ((1, 3, 10), (4, 3, 3), {"pads": [1, 1]}),
    ((1, 2, 5, 4, 6), (4, 2, 3, 2, 3), {"pads": [1, 0, 1, 1, 1, 0]}),
    ((1, 4, 5, 5), (4, 1, 3, 3), {"group": 4}),
], ids=["1d", "3d", "depthwise"])
def test_qlinear_conv_ranks(x_shape, w_shape, attrs):
    inputs = dict(x=u8(*x_shape), xs=np.float32(0.05), xz=np.uint8(7), w=i8(*w_shape, bits=7),
                  ws=np.float32(0.01), wz=np.int8(0), ys=np.float32(0.3), yz=np.uint8(100))
    compare_with_ort("QLinearConv", inputs, ["y"], 10, **attrs)


def test_qlinear_conv_uint8_weights_with_zero_point():
    inputs = dict(x=u8(1, 4, 5, 5), xs=np.float32(0.05), xz=np.uint8(7), w=u8(4, 4, 3, 3),
                  ws=np.float32(0.01), wz=np.uint8(120), ys=np.float32(0.3), yz=np.uint8(100))
    compare_with_ort("QLinearConv", inputs, ["y"], 10)


def test_qlinear_matmul_float8_matches_qdq_in_onnxruntime():
    # ORT has no float8 QLinearMatMul; the same math spelled DQ -> MatMul -> Q runs there.
    a = rng.standard_normal((3, 4)).astype(ml_dtypes.float8_e4m3fn)
    b = rng.standard_normal((4, 5)).astype(ml_dtypes.float8_e4m3fn)
    zero = np.zeros((), ml_dtypes.float8_e4m3fn)
    scales = {"a_s": np.float32(0.5), "b_s": np.float32(2.0), "y_s": np.float32(0.25)}
    inits = [ir.numpy_to_tensor(v, k) for k, v in
             {"a": a, "b": b, "z": zero, **{k: np.asarray(v) for k, v in scales.items()}}.items()]
    nodes = [helper.make_node("DequantizeLinear", ["a", "a_s", "z"], ["af"]),
             helper.make_node("DequantizeLinear", ["b", "b_s", "z"], ["bf"]),
             helper.make_node("MatMul", ["af", "bf"], ["yf"]),
             helper.make_node("QuantizeLinear", ["yf", "y_s", "z"], ["y"])]
    graph = helper.make_graph(nodes, "qdq", [], [helper.make_tensor_value_info(
        "y", TP.FLOAT8E4M3FN, [3, 5])], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    expected = ort_run(model, {})[0].view(ml_dtypes.float8_e4m3fn)
    got = run_model(single_node_model(
        "QLinearMatMul", {"a": a, "a_s": scales["a_s"], "a_z": zero, "b": b,
                          "b_s": scales["b_s"], "b_z": zero, "y_s": scales["y_s"], "y_z": zero},
        ["y"], 21), {"a_s": scales["a_s"], "b_s": scales["b_s"], "y_s": scales["y_s"]},
        fallback=False)[0]
    assert_value_close(expected, got)
