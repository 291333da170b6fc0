"""Softmax, LogSoftmax, Hardmax: onnx node cases, the opset < 13 (coerced to 2-D at axis) and
opset >= 13 (single axis) semantics against onnxruntime, numpy and C++ paths, and the C++
kernels' accuracy against float64."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from providers.cpu import native
from tests.kernels.op_kernel_cases import check_numpy_and_native
from tests.providers.cpu.node_case_runner import check_case, node_cases

OPS = {"Softmax", "LogSoftmax", "Hardmax"}
CASES = node_cases(OPS)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_node_case(case):
    check_case(case, fallback=False)


# numpy vs onnxruntime, then the C++ kernel when the op lowers (shared helper)
both = functools.partial(check_numpy_and_native, rtol=1e-05, atol=1e-06)


rng = np.random.default_rng(0)
SHAPES = [(1,), (7,), (3, 17), (2, 3, 4, 5), (2, 1, 33)]


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax", "Hardmax"])
@pytest.mark.parametrize("version", [1, 11, 13])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_axes(op, version, shape):
    x = (rng.standard_normal(shape) * 4).astype(np.float32)
    if op == "Hardmax":
        x[..., 0] = x.max()  # ties: the first maximum wins
    for axis in range(-len(shape), len(shape)):
        both(op, version, {"x": x}, axis=axis, atol=1e-5)
    if version >= 13 or len(shape) >= 2:  # the default axis (1 before opset 13)
        both(op, version, {"x": x}, atol=1e-5)


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax", "Hardmax"])
@pytest.mark.parametrize("dtype", [np.float64, np.float16])
def test_types(op, dtype):
    if op == "Hardmax" and dtype == np.float64:
        pytest.skip("onnxruntime has no float64 Hardmax")
    x = rng.standard_normal((3, 4, 5)).astype(dtype)
    tol = 2e-3 if dtype == np.float16 else 1e-7
    both(op, 13, {"x": x}, axis=1, rtol=tol, atol=tol)


def test_infinities():
    x = np.array([[-np.inf, -np.inf, 0], [0, -np.inf, 1], [np.inf, 1, 0]], np.float32)
    for op in ("Softmax", "LogSoftmax"):
        both(op, 13, {"x": x}, axis=-1, rtol=1e-6, atol=0)


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("shape,axis", [((4, 30001), -1), ((3, 700, 5), 1)])
def test_native_accuracy_long_rows(op, shape, axis):
    """The C++ kernels (compensated sums) stay within 1e-6 relative of float64."""
    if not native.available():
        pytest.skip(native.unavailable_reason())
    from tests.kernels.op_kernel_cases import native_outputs

    x = (rng.standard_normal(shape) * 5).astype(np.float32)
    got = native_outputs(op, 13, [x], {"axis": axis})[0].astype(np.float64)
    x64 = x.astype(np.float64)
    e = x64 - x64.max(axis=axis, keepdims=True)
    ls = np.log(np.exp(e).sum(axis=axis, keepdims=True))
    want = e - ls if op == "LogSoftmax" else np.exp(e - ls)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7 if op == "Softmax" else 2e-6)
