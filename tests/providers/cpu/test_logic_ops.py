"""Comparison, logic, bitwise, IsNaN/IsInf and trigonometric ops: onnx node cases and
onnxruntime comparisons on single-node models."""

from __future__ import annotations

import numpy as np
import pytest

from tests.providers.cpu.node_case_runner import (
    assert_value_close,
    check_case,
    compare_with_ort,
    node_cases,
    run_model,
    single_node_model,
)

OPS = {"Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual", "And", "Or", "Xor", "Not",
       "BitShift", "BitwiseAnd", "BitwiseOr", "BitwiseXor", "BitwiseNot", "IsNaN", "IsInf",
       "Sin", "Cos", "Tan", "Asin", "Acos", "Atan", "Sinh", "Cosh", "Asinh", "Acosh", "Atanh"}
# Only cases whose every node is one of these ops (many graphs use Equal/Not as helpers of
# other ops' function bodies; those run in the other families' tests).
CASES = [c for c in node_cases(OPS)
         if all(n.op_type in OPS for n in c.model.graph.node)]

rng = np.random.default_rng(0)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_node_case(case):
    check_case(case, fallback=False)


@pytest.mark.parametrize("op", ["Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"])
@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int32, np.int64, np.uint8])
def test_compare_broadcast(op, dtype):
    a = rng.integers(-3, 3, (2, 3, 4)).astype(dtype)
    b = rng.integers(-3, 3, (3, 1)).astype(dtype)
    compare_with_ort(op, {"a": a, "b": b}, ["y"], 13 if "Or" not in op else 16)


def test_compare_nan():
    a = np.array([np.nan, 1.0, np.inf, -np.inf], np.float32)
    b = np.array([np.nan, 1.0, np.inf, np.nan], np.float32)
    for op in ["Equal", "Less", "GreaterOrEqual"]:
        compare_with_ort(op, {"a": a, "b": b}, ["y"], 16)


def test_equal_strings():
    a = np.array(["a", "bc", ""], dtype=object)
    b = np.array(["a", "b", ""], dtype=object)
    compare_with_ort("Equal", {"a": a, "b": b}, ["y"], 19)


@pytest.mark.parametrize("op,dtype", [("Equal", np.int32), ("Less", np.float32),
                                      ("Greater", np.float32), ("And", bool), ("Xor", bool)])
def test_legacy_broadcast_axis(op, dtype):
    # onnxruntime has no opset-1 kernels: the legacy form with ``axis`` must equal the
    # opset-7 form on B reshaped by hand.
    a = rng.integers(0, 3, (2, 3, 4)).astype(dtype)
    b = rng.integers(0, 3, (3,)).astype(dtype)
    legacy = run_model(single_node_model(op, {"a": a, "b": b}, ["y"], 1, broadcast=1, axis=1),
                       [a, b], fallback=False)[0]
    modern = compare_with_ort(op, {"a": a, "b": b.reshape(3, 1)}, ["y"], 7)[0]
    assert_value_close(modern, legacy)
    suffix = run_model(single_node_model(op, {"a": a, "b": b[:1]}, ["y"], 1, broadcast=1),
                       [a, b[:1]], fallback=False)[0]
    assert_value_close(compare_with_ort(op, {"a": a, "b": b[:1]}, ["y"], 7)[0], suffix)
    with pytest.raises(ValueError):
        run_model(single_node_model(op, {"a": a, "b": b}, ["y"], 1), [a, b], fallback=False)


@pytest.mark.parametrize("op", ["And", "Or", "Xor"])
def test_logic(op):
    a = rng.random((3, 4)) > 0.5
    b = rng.random((4,)) > 0.5
    compare_with_ort(op, {"a": a, "b": b}, ["y"], 7)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32, np.uint64])
@pytest.mark.parametrize("direction", ["LEFT", "RIGHT"])
def test_bitshift(dtype, direction):
    bits = np.dtype(dtype).itemsize * 8
    x = rng.integers(0, 200, (10,)).astype(dtype)
    y = rng.integers(0, bits - 1, (10,)).astype(dtype)
    compare_with_ort("BitShift", {"x": x, "y": y}, ["z"], 11, direction=direction)


@pytest.mark.parametrize("op", ["BitwiseAnd", "BitwiseOr", "BitwiseXor"])
@pytest.mark.parametrize("dtype", [np.int8, np.uint16, np.int32, np.uint64])
def test_bitwise(op, dtype):
    info = np.iinfo(dtype)
    a = rng.integers(info.min, info.max, (3, 4), dtype=dtype)
    b = rng.integers(info.min, info.max, (4,), dtype=dtype)
    compare_with_ort(op, {"a": a, "b": b}, ["c"], 18)


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int64])
def test_bitwise_not(dtype):
    info = np.iinfo(dtype)
    compare_with_ort("BitwiseNot", {"a": rng.integers(info.min, info.max, (5,), dtype=dtype)},
                     ["c"], 18)


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.float64])
def test_isnan_isinf(dtype):
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -1.5, 3.0], dtype)
    compare_with_ort("IsNaN", {"x": x}, ["y"], 13)
    for pos in (0, 1):
        for neg in (0, 1):
            compare_with_ort("IsInf", {"x": x}, ["y"], 20, detect_positive=pos,
                             detect_negative=neg)


@pytest.mark.parametrize("op,low,high", [
    ("Sin", -5, 5), ("Cos", -5, 5), ("Tan", -1.5, 1.5), ("Asin", -1, 1), ("Acos", -1, 1),
    ("Atan", -5, 5), ("Sinh", -5, 5), ("Cosh", -5, 5), ("Asinh", -5, 5), ("Acosh", 1, 6),
    ("Atanh", -0.99, 0.99)])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])  # onnxruntime lacks double
def test_trig(op, low, high, dtype):
    x = rng.uniform(low, high, (4, 5)).astype(dtype)
    tol = 1e-3 if dtype == np.float16 else 1e-5
    compare_with_ort(op, {"x": x}, ["y"], 9, rtol=tol, atol=tol)
