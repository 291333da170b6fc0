"""Normalizations: onnx node cases, and the numpy implementations and (for float32) the C++
kernels against onnxruntime."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from providers.cpu import opset
from tests.kernels.op_kernel_cases import check_numpy_and_native
from tests.providers.cpu.node_case_runner import check_case, node_cases

OPS = {"BatchNormalization", "InstanceNormalization", "LayerNormalization",
       "GroupNormalization", "LRN", "MeanVarianceNormalization", "LpNormalization"}
CASES = node_cases(OPS)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_node_case(case):
    check_case(case, fallback=False)


# numpy vs onnxruntime, then the C++ kernel when the op lowers (shared helper)
both = functools.partial(check_numpy_and_native, rtol=1e-05, atol=1e-05)


rng = np.random.default_rng(0)
SHAPES = [(1, 1), (2, 3), (2, 3, 7), (1, 4, 5, 6), (3, 2, 3, 4, 5)]


def _params(c, dtype=np.float32):
    scale, bias, mean = (rng.standard_normal(c).astype(dtype) for _ in range(3))
    var = (np.abs(rng.standard_normal(c)) + 0.2).astype(dtype)
    return scale, bias, mean, var


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("version", [7, 9, 14, 15])
def test_batch_norm_inference(shape, version):
    x = (rng.standard_normal(shape) * 2 + 1).astype(np.float32)
    s, b, m, v = _params(shape[1])
    both("BatchNormalization", version, {"x": x, "s": s, "b": b, "m": m, "v": v}, epsilon=1e-3)


@pytest.mark.parametrize("dtype", [np.float64, np.float16])
def test_batch_norm_types(dtype):
    x = rng.standard_normal((2, 3, 4)).astype(dtype)
    s, b, m, v = _params(3, dtype)
    tol = 2e-3 if dtype == np.float16 else 1e-7
    both("BatchNormalization", 15, {"x": x, "s": s, "b": b, "m": m, "v": v}, rtol=tol, atol=tol)


@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 5), (3, 2, 4, 4)], ids=str)
def test_batch_norm_training_14(shape):
    x = rng.standard_normal(shape).astype(np.float32)
    s, b, m, v = _params(shape[1])
    # onnxruntime's CPU kernel computes the training outputs in its training build only;
    # the reference here is the spec's formula in float64.
    impl = opset.get("BatchNormalization", "", 15)
    y, rm, rv = impl.call([x, s, b, m, v], impl.attrs_with_defaults(
        {"training_mode": 1, "momentum": 0.8}), None)
    axes = (0,) + tuple(range(2, x.ndim))
    bm, bv = x.astype(np.float64).mean(axis=axes), x.astype(np.float64).var(axis=axes)
    shp = (-1,) + (1,) * (x.ndim - 2)
    want = (x - bm.reshape(shp)) / np.sqrt(bv.reshape(shp) + 1e-5) * s.reshape(shp) \
        + b.reshape(shp)
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(rm, m * 0.8 + bm * 0.2, rtol=1e-6)
    np.testing.assert_allclose(rv, v * 0.8 + bv * 0.2, rtol=1e-6)
    assert y.dtype == rm.dtype == rv.dtype == np.float32


def test_batch_norm_legacy_spatial_0():
    """Opset < 9 with spatial=0: parameters per location, shape [C, D1, ...]."""
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    s, b, m, v = (rng.standard_normal((3, 4)).astype(np.float32) for _ in range(4))
    v = np.abs(v) + 0.5
    impl = opset.get("BatchNormalization", "", 7)
    got = impl.call([x, s, b, m, v], impl.attrs_with_defaults({"spatial": 0}), None)[0]
    want = (x - m) / np.sqrt(v + 1e-5) * s + b
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape", [(1, 1, 1), (2, 3, 7), (1, 4, 5, 6), (2, 2, 3, 4, 5),
                                   (1, 3, 97)], ids=str)
def test_instance_norm(shape):
    x = (rng.standard_normal(shape) * 3 + 5).astype(np.float32)
    s, b, _, _ = _params(shape[1])
    both("InstanceNormalization", 22, {"x": x, "s": s, "b": b}, epsilon=1e-3, rtol=1e-4,
         atol=1e-4)


@pytest.mark.parametrize("shape", SHAPES + [(2, 7, 768)], ids=str)
def test_layer_norm(shape):
    x = (rng.standard_normal(shape) * 2 + 3).astype(np.float32)
    for axis in range(-len(shape), len(shape)):
        ns = shape[axis:]
        s = rng.standard_normal(ns).astype(np.float32)
        b = rng.standard_normal(ns).astype(np.float32)
        both("LayerNormalization", 17, {"x": x, "s": s, "b": b}, outputs=("y", "m", "i"),
             axis=axis, rtol=1e-4, atol=1e-4)
        both("LayerNormalization", 17, {"x": x, "s": s}, axis=axis, epsilon=1e-2, rtol=1e-4,
             atol=1e-4)


def test_layer_norm_broadcast_scale():
    """Scale/bias that broadcast inside the normalized block take the numpy path."""
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    s = rng.standard_normal((4,)).astype(np.float32)
    b = rng.standard_normal((1, 4)).astype(np.float32)
    both("LayerNormalization", 17, {"x": x, "s": s, "b": b}, axis=1, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", [np.float64, np.float16])
def test_layer_norm_types(dtype):
    """Mean and InvStdDev take the stash type (float32), whatever X's type."""
    x = rng.standard_normal((3, 5)).astype(dtype)
    s = rng.standard_normal((5,)).astype(dtype)
    tol = 2e-3 if dtype == np.float16 else 1e-6
    both("LayerNormalization", 17, {"x": x, "s": s}, outputs=("y", "m", "i"), rtol=tol,
         atol=tol)


@pytest.mark.parametrize("shape,groups", [((2, 4, 3), 2), ((1, 6, 2, 5), 3), ((3, 4, 7), 1),
                                          ((2, 4, 2, 2), 4)], ids=str)
def test_group_norm_21(shape, groups):
    x = (rng.standard_normal(shape) * 2 + 1).astype(np.float32)
    s, b, _, _ = _params(shape[1])
    # onnx shape inference gives no output type for this op: declare it.
    both("GroupNormalization", 21, {"x": x, "s": s, "b": b}, num_groups=groups, epsilon=1e-3,
         rtol=1e-4, atol=1e-4, output_types={"y": 1})


def test_group_norm_18_per_group_parameters():
    """Opset 18: one scale and bias per group (onnxruntime implements opset 21 only)."""
    x = rng.standard_normal((2, 6, 5)).astype(np.float32)
    s = rng.standard_normal(3).astype(np.float32)
    b = rng.standard_normal(3).astype(np.float32)
    impl = opset.get("GroupNormalization", "", 18)
    got = impl.call([x, s, b], impl.attrs_with_defaults({"num_groups": 3}), None)[0]
    g = x.astype(np.float64).reshape(2, 3, -1)
    norm = ((g - g.mean(-1, keepdims=True)) / np.sqrt(g.var(-1, keepdims=True) + 1e-5))
    want = norm * s[None, :, None] + b[None, :, None]
    np.testing.assert_allclose(got, want.reshape(x.shape), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("size", [1, 3, 5])
@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (2, 7, 3, 4), (1, 16, 5, 5)], ids=str)
def test_lrn(size, shape):
    x = rng.standard_normal(shape).astype(np.float32)
    both("LRN", 13, {"x": x}, size=size, alpha=0.01, beta=0.6, bias=1.5, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("axes", [None, [0, 2, 3], [1], [2, 3], [0, 1, 2, 3]])
def test_mean_variance_normalization(axes):
    x = (rng.standard_normal((2, 3, 4, 5)) * 2 + 1).astype(np.float32)
    attrs = {} if axes is None else {"axes": axes}
    both("MeanVarianceNormalization", 13, {"x": x}, rtol=1e-4, atol=1e-5, **attrs)


@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_lp_normalization(p, axis):
    x = rng.standard_normal((3, 4, 5)).astype(np.float32)
    x[0, 0] = 0  # a zero vector along the last axis
    both("LpNormalization", 22, {"x": x}, p=p, axis=axis)
