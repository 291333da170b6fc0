"""Unary math and activations: onnx node cases, and the numpy implementations and (for
float32) the C++ kernels against onnxruntime, over values that include the edges (zeros,
halves for Round, large magnitudes) and several dtypes."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from providers.cpu import opset
from providers.cpu.ops.activation import _erf
from tests.kernels.op_kernel_cases import check_numpy_and_native
from tests.providers.cpu.node_case_runner import check_case, node_cases

OPS = {"Relu", "Clip", "Sigmoid", "Tanh", "Exp", "Log", "Sqrt", "Abs", "Neg", "Erf",
       "HardSigmoid", "HardSwish", "LeakyRelu", "Elu", "Selu", "Celu", "Softplus", "Softsign",
       "Gelu", "Mish", "ThresholdedRelu", "Reciprocal", "Floor", "Ceil", "Round", "Sign",
       "Shrink"}
CASES = node_cases(OPS)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_node_case(case):
    check_case(case, fallback=False)


# numpy vs onnxruntime, then the C++ kernel when the op lowers (shared helper)
both = functools.partial(check_numpy_and_native, rtol=1e-05, atol=1e-06)


rng = np.random.default_rng(0)
# 1, a prime, not a multiple of 16, and values at the edges.
EDGES = np.array([0.0, -0.0, 0.5, -0.5, 1.5, 2.5, -2.5, 3.0, -3.0, 1e-6, -1e-6, 20.0, -20.0,
                  80.0, -80.0], np.float32)


def _x(n=53, scale=3.0, dtype=np.float32):
    x = (rng.standard_normal(n) * scale).astype(np.float32)
    x[: min(n, EDGES.size)] = EDGES[: min(n, EDGES.size)]
    return x.astype(dtype)


# op -> (opset, attrs, domain transform)
FLOAT_OPS = {
    "Relu": (14, {}, None), "Sigmoid": (13, {}, None), "Tanh": (13, {}, None),
    "Exp": (13, {}, None), "Log": (13, {}, "pos"), "Sqrt": (13, {}, "pos"), "Abs": (13, {}, None),
    "Neg": (13, {}, None), "Erf": (13, {}, None), "HardSigmoid": (22, {"alpha": 0.3}, None),
    "HardSwish": (22, {}, None), "LeakyRelu": (16, {"alpha": 0.2}, None),
    "Elu": (22, {"alpha": 0.5}, None), "Selu": (22, {"alpha": 1.5, "gamma": 2.0}, None),
    "Celu": (12, {"alpha": 2.0}, None), "Softplus": (22, {}, None), "Softsign": (22, {}, None),
    "Mish": (22, {}, None), "ThresholdedRelu": (22, {"alpha": 0.7}, None),
    "Reciprocal": (13, {}, "nonzero"), "Floor": (13, {}, None), "Ceil": (13, {}, None),
    "Round": (22, {}, None), "Sign": (13, {}, None), "Shrink": (9, {"lambd": 0.6, "bias": 0.2},
                                                                 None),
}


def _domain(x, how):
    if how == "pos":
        return np.abs(x) + np.asarray(1e-3, x.dtype)
    if how == "nonzero":
        return np.where(x == 0, np.asarray(1, x.dtype), x)
    return x


@pytest.mark.parametrize("op", sorted(FLOAT_OPS))
@pytest.mark.parametrize("n", [1, 53, 1031])
def test_float32(op, n):
    version, attrs, how = FLOAT_OPS[op]
    both(op, version, {"x": _domain(_x(n), how)}, **attrs)


@pytest.mark.parametrize("op", sorted(FLOAT_OPS))
@pytest.mark.parametrize("dtype", [np.float64, np.float16])
def test_other_floats(op, dtype):
    """float64 / float16 against onnxruntime; where onnxruntime has no kernel for the type,
    against its float32 result (within the type's precision)."""
    from onnxruntime.capi.onnxruntime_pybind11_state import InvalidGraph, NotImplemented

    from tests.kernels.op_kernel_cases import ort_outputs

    version, attrs, how = FLOAT_OPS[op]
    x = _domain(_x(40, 2.0, dtype), how)
    tol = 2e-3 if dtype == np.float16 else 1e-7
    try:
        both(op, version, {"x": x}, rtol=tol, atol=tol, **attrs)
        return
    except (InvalidGraph, NotImplemented):
        pass
    want = ort_outputs(op, version, {"x": x.astype(np.float32)}, **attrs)[0]
    got = opset.get(op, "", version).call([x], opset.get(op, "", version).attrs_with_defaults(
        attrs), None)[0]
    assert got.dtype == dtype and got.shape == x.shape
    tol = 2e-3 if dtype == np.float16 else 2e-6
    np.testing.assert_allclose(got.astype(np.float64), want, rtol=tol, atol=tol)


@pytest.mark.parametrize("op,version,dtype", [
    ("Relu", 14, np.int32), ("Relu", 14, np.int8), ("Abs", 13, np.int32), ("Abs", 13, np.int64),
    ("Abs", 13, np.int8), ("Neg", 13, np.int32), ("Neg", 13, np.int64), ("Neg", 13, np.int8),
    ("Sign", 13, np.int32), ("Sign", 13, np.int64), ("Sign", 13, np.int8)])
def test_integers(op, version, dtype):
    x = rng.integers(-50, 50, (4, 7)).astype(dtype)
    both(op, version, {"x": x})


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu(approximate):
    x = (rng.standard_normal((7, 13)) * 3).astype(np.float32)
    # onnxruntime's tanh form cancels in 1 + tanh(u) for x < 0 (see tests/kernels).
    both("Gelu", 20, {"x": x}, rtol=2e-6, atol=1e-6, approximate=approximate)


def test_round_half_to_even():
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.49999997, 2.5000002, 1e7 + 0.5],
                 np.float32)
    both("Round", 22, {"x": x}, rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.int64, np.uint8])
def test_clip_inputs(dtype):
    x = (rng.standard_normal((3, 11)) * 10).astype(dtype)
    lo, hi = np.asarray(2 if dtype == np.uint8 else -2, dtype), np.asarray(5, dtype)
    both("Clip", 13, {"x": x, "lo": lo, "hi": hi}, rtol=0, atol=0)
    both("Clip", 13, {"x": x, "lo": lo}, rtol=0, atol=0)
    both("Clip", 13, {"x": x, "lo": None, "hi": hi}, rtol=0, atol=0)
    both("Clip", 13, {"x": x}, rtol=0, atol=0)
    both("Clip", 13, {"x": x, "lo": hi, "hi": lo}, rtol=0, atol=0)  # min > max: all max


@pytest.mark.parametrize("attrs", [{}, {"min": -0.5}, {"max": 0.25}, {"min": -1.0, "max": 1.0}])
def test_clip_attributes(attrs):
    x = (rng.standard_normal((5, 9)) * 3).astype(np.float32)
    both("Clip", 6, {"x": x}, rtol=0, atol=0, **attrs)


def test_erf_float64_reference():
    """The float64 erf of the numpy path (series + continued fraction) against math.erf."""
    import math

    x = np.concatenate([np.linspace(-7, 7, 20001), [0.0, -0.0, 1e-300, 2.9999999, 3.0, 30.0]])
    want = np.array([math.erf(v) for v in x])
    got = _erf(x)
    np.testing.assert_allclose(got, want, rtol=4e-15, atol=1e-300)
    assert np.isnan(_erf(np.array([np.nan])))[0]
    np.testing.assert_array_equal(_erf(np.array([np.inf, -np.inf])), [1.0, -1.0])
