"""Reduce* and ArgMax/ArgMin: onnx node cases and onnxruntime comparisons (axes as attribute
and as input, keepdims, noop_with_empty_axes, empty reductions, dtypes)."""

from __future__ import annotations

import numpy as np
import pytest

from providers.cpu import opset
from tests.providers.cpu.node_case_runner import check_case, compare_with_ort, node_cases

KINDS = ["Sum", "Mean", "Max", "Min", "Prod", "L1", "L2", "LogSum", "LogSumExp", "SumSquare"]
OPS = {f"Reduce{k}" for k in KINDS} | {"ArgMax", "ArgMin"}
CASES = [c for c in node_cases(OPS) if all(n.op_type in OPS for n in c.model.graph.node)]

rng = np.random.default_rng(0)


def _input_since(kind):
    return 13 if kind == "Sum" else 18


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_node_case(case):
    check_case(case, fallback=False)


def test_versions():
    for k in KINDS:
        assert opset.versions_of(f"Reduce{k}", "") == [1, _input_since(k)]
        assert opset.get(f"Reduce{k}", "", 23).shape_inputs == (1,)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("axes,keepdims", [
    (None, 1), (None, 0), ([1], 1), ([-1], 0), ([0, 2], 1), ([2, 0], 0)])
def test_reduce_attr_and_input(kind, axes, keepdims):
    x = rng.uniform(0.5, 2.0, (3, 4, 5)).astype(np.float32)
    op = f"Reduce{kind}"
    kw = {} if axes is None else {"axes": axes}
    compare_with_ort(op, {"x": x}, ["y"], 11, rtol=1e-5, atol=1e-5, keepdims=keepdims, **kw)
    ax = None if axes is None else np.array(axes, np.int64)
    compare_with_ort(op, {"x": x, "axes": ax}, ["y"], _input_since(kind), rtol=1e-5, atol=1e-5,
                     keepdims=keepdims)


@pytest.mark.parametrize("kind", KINDS)
def test_noop_with_empty_axes(kind):
    # Signed values: "no reduction" still applies abs/square (log needs positive input).
    low = 0.5 if kind == "LogSum" else -2.0
    x = rng.uniform(low, 2.0, (3, 4)).astype(np.float32)
    op = f"Reduce{kind}"
    for noop in (0, 1):
        compare_with_ort(op, {"x": x, "axes": np.array([], np.int64)}, ["y"],
                         _input_since(kind), rtol=1e-5, atol=1e-5, noop_with_empty_axes=noop)
        compare_with_ort(op, {"x": x}, ["y"], _input_since(kind), rtol=1e-5, atol=1e-5,
                         noop_with_empty_axes=noop)


@pytest.mark.parametrize("kind", ["Sum", "Max", "Min", "Prod", "L1", "L2", "LogSum",
                                  "LogSumExp", "SumSquare"])
@pytest.mark.parametrize("keepdims", [0, 1])
def test_empty_set(kind, keepdims):
    x = np.zeros((2, 0, 3), np.float32)
    compare_with_ort(f"Reduce{kind}", {"x": x, "axes": np.array([1], np.int64)}, ["y"], 18,
                     keepdims=keepdims)


@pytest.mark.parametrize("kind", ["Sum", "Mean", "Max", "Min", "Prod", "L1", "SumSquare",
                                  "L2", "LogSumExp"])
@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.float64, np.float16])
def test_dtypes(kind, dtype):
    x = rng.integers(1, 5, (3, 4, 2)).astype(dtype)
    tol = 2e-3 if dtype == np.float16 else 1e-6
    compare_with_ort(f"Reduce{kind}", {"x": x, "axes": np.array([1], np.int64)}, ["y"], 18,
                     rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, bool])
def test_max_min_small_types(dtype):
    x = rng.integers(0, 2 if dtype is bool else 100, (3, 5)).astype(dtype)
    for op in ("ReduceMax", "ReduceMin"):
        compare_with_ort(op, {"x": x, "axes": np.array([0], np.int64)}, ["y"], 20)


def test_logsumexp_infinities():
    x = np.array([[-np.inf, -np.inf], [np.inf, 1.0], [1000.0, 1000.0]], np.float32)
    compare_with_ort("ReduceLogSumExp", {"x": x, "axes": np.array([1], np.int64)}, ["y"], 18)


@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("keepdims", [0, 1])
@pytest.mark.parametrize("last", [0, 1])
@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.float16])
def test_arg(op, axis, keepdims, last, dtype):
    x = rng.integers(0, 3, (3, 4, 5)).astype(dtype)  # many ties
    compare_with_ort(op, {"x": x}, ["y"], 13, axis=axis, keepdims=keepdims,
                     select_last_index=last)
