"""Pooling: onnx node cases, and the numpy implementations (1-D, 2-D, 3-D; pads, auto_pad,
ceil_mode, dilations, count_include_pad, Indices and storage_order) and the C++ kernels
against onnxruntime."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from providers.cpu import opset
from providers.cpu.ops.pool import _geometry
from tests.kernels.op_kernel_cases import check_numpy_and_native
from tests.providers.cpu.node_case_runner import check_case, node_cases

OPS = {"MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "LpPool",
       "GlobalLpPool", "MaxUnpool"}
CASES = node_cases(OPS)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_node_case(case):
    check_case(case, fallback=False)


# numpy vs onnxruntime, then the C++ kernel when the op lowers (shared helper)
both = functools.partial(check_numpy_and_native, rtol=1e-05, atol=1e-06)


rng = np.random.default_rng(0)

CONFIGS = [
    {},
    {"strides": 2},
    {"pads": 1},
    {"strides": 2, "pads": 1, "ceil_mode": 1},
    {"strides": 3, "ceil_mode": 1},
    {"auto_pad": "SAME_UPPER", "strides": 2},
    {"auto_pad": "SAME_LOWER", "strides": 3},
    {"auto_pad": "VALID", "strides": 2},
    {"dilations": 2, "pads": 1},
    {"dilations": 2, "strides": 2, "ceil_mode": 1},
]


def _attrs(cfg, nd, k):
    out = {"kernel_shape": [k - (i % 2) for i in range(nd)]}
    for key, v in cfg.items():
        if key in ("strides", "dilations"):
            out[key] = [v] * nd
        elif key == "pads":
            out[key] = [v] * nd + [max(0, v - 1)] * nd  # asymmetric
        else:
            out[key] = v
    return out


def _fits(shape, a) -> bool:
    """Whether onnxruntime takes the case: a non-empty output and, for SAME padding, a
    window that covers the input (it rejects the negative padding otherwise; ferry pads 0)."""
    out, _, _ = _geometry(shape[2:], a["kernel_shape"], a.get("strides"), a.get("pads"),
                          a.get("dilations"), a.get("auto_pad", "NOTSET"), a.get("ceil_mode", 0))
    if a.get("auto_pad", "").startswith("SAME"):
        nd = len(out)
        s = a.get("strides") or [1] * nd
        d = a.get("dilations") or [1] * nd
        for i in range(nd):
            if (out[i] - 1) * s[i] + (a["kernel_shape"][i] - 1) * d[i] + 1 < shape[2 + i]:
                return False
    return min(out) > 0


SHAPES = [(1, 2, 11), (2, 3, 9, 8), (1, 2, 5, 6, 7), (1, 1, 1, 1)]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items())
                         or "plain")
def test_max_pool(shape, cfg):
    x = rng.standard_normal(shape).astype(np.float32)
    a = _attrs(cfg, len(shape) - 2, 3)
    if not _fits(shape, a):
        pytest.skip("window does not fit")
    both("MaxPool", 12, {"x": x}, rtol=0, atol=0, **a)
    both("MaxPool", 12, {"x": x}, outputs=("y", "i"), rtol=0, atol=0, **a)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items())
                         or "plain")
@pytest.mark.parametrize("include_pad", [0, 1])
def test_average_pool(shape, cfg, include_pad):
    x = rng.standard_normal(shape).astype(np.float32)
    a = _attrs(cfg, len(shape) - 2, 3)
    if not _fits(shape, a):
        pytest.skip("window does not fit")
    both("AveragePool", 19, {"x": x}, count_include_pad=include_pad, **a)


@pytest.mark.parametrize("shape", SHAPES[:3], ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("cfg", CONFIGS[:6], ids=lambda c: ",".join(
    f"{k}={v}" for k, v in c.items()) or "plain")
@pytest.mark.parametrize("p", [1, 2, 3])
def test_lp_pool(shape, cfg, p):
    x = rng.standard_normal(shape).astype(np.float32)
    a = _attrs(cfg, len(shape) - 2, 3)
    if not _fits(shape, a):
        pytest.skip("window does not fit")
    both("LpPool", 18, {"x": x}, p=p, **a)


@pytest.mark.parametrize("storage_order", [0, 1])
@pytest.mark.parametrize("shape", [(2, 3, 5, 4), (1, 2, 7, 7)])
def test_max_pool_indices_storage_order(storage_order, shape):
    x = rng.standard_normal(shape).astype(np.float32)
    both("MaxPool", 12, {"x": x}, outputs=("y", "i"), rtol=0, atol=0, kernel_shape=[2, 3],
         strides=[1, 2], pads=[1, 0, 0, 1], storage_order=storage_order)


def test_max_pool_ties_take_the_first():
    x = np.zeros((1, 1, 4, 4), np.float32)
    both("MaxPool", 12, {"x": x}, outputs=("y", "i"), rtol=0, atol=0, kernel_shape=[2, 2])


@pytest.mark.parametrize("dtype", [np.float64, np.float16, np.int8, np.uint8])
def test_max_pool_types(dtype):
    x = (rng.standard_normal((1, 2, 6, 7)) * 20).astype(dtype)
    both("MaxPool", 12, {"x": x}, rtol=0, atol=0, kernel_shape=[3, 3], strides=[2, 2],
         pads=[1, 1, 1, 1])


@pytest.mark.parametrize("dtype", [np.float64, np.float16])
def test_average_pool_types(dtype):
    x = rng.standard_normal((1, 2, 6, 7)).astype(dtype)
    attrs = {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}
    if dtype == np.float16:
        both("AveragePool", 11, {"x": x}, rtol=1e-3, atol=1e-3, **attrs)
        return
    # onnxruntime has no float64 AveragePool: its float32 result is the reference.
    from tests.kernels.op_kernel_cases import ort_outputs

    want = ort_outputs("AveragePool", 19, {"x": x.astype(np.float32)}, **attrs)[0]
    impl = opset.get("AveragePool", "", 19)
    got = impl.call([x], impl.attrs_with_defaults(attrs), None)[0]
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("version", [7, 10, 11])
def test_average_pool_old_versions(version):
    x = rng.standard_normal((1, 2, 6, 7)).astype(np.float32)
    attrs = {"kernel_shape": [3, 2], "pads": [1, 0, 1, 1], "count_include_pad": 1}
    if version >= 10:
        attrs["ceil_mode"] = 1
        attrs["strides"] = [2, 2]
    both("AveragePool", version, {"x": x}, **attrs)


@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool"])
@pytest.mark.parametrize("shape", [(1, 1, 1), (2, 3, 17), (1, 5, 7, 9), (2, 2, 3, 4, 5)])
def test_global_pools(op, shape):
    x = rng.standard_normal(shape).astype(np.float32)
    both(op, 22 if op != "GlobalLpPool" else 2, {"x": x})


def test_global_lp_pool_p():
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    both("GlobalLpPool", 2, {"x": x}, p=3)


@pytest.mark.parametrize("shape,kernel,strides,pads", [
    ((1, 2, 6, 6), [2, 2], [2, 2], None),
    ((2, 3, 7, 5), [3, 3], [2, 2], [1, 1, 1, 1]),
    ((1, 1, 9), [3], [3], None),
])
def test_max_unpool_roundtrip(shape, kernel, strides, pads):
    x = rng.standard_normal(shape).astype(np.float32)
    attrs = {"kernel_shape": kernel, "strides": strides}
    if pads:
        attrs["pads"] = pads
    impl = opset.get("MaxPool", "", 12)

    class Ctx:
        num_outputs = 2

    y, ind = impl.call([x], impl.attrs_with_defaults(attrs), Ctx())
    both("MaxUnpool", 11, {"x": y, "ind": ind}, **attrs)
    both("MaxUnpool", 11, {"x": y, "ind": ind, "shape": np.array(shape, np.int64)}, **attrs)


def test_max_unpool_larger_output_shape():
    """Indices address the pooled input's layout; a larger output_shape keeps coordinates."""
    x = rng.standard_normal((1, 1, 4, 4)).astype(np.float32)
    impl = opset.get("MaxPool", "", 12)

    class Ctx:
        num_outputs = 2

    y, ind = impl.call([x], impl.attrs_with_defaults({"kernel_shape": [2, 2],
                                                      "strides": [2, 2]}), Ctx())
    unpool = opset.get("MaxUnpool", "", 11)
    got = unpool.call([y, ind, np.array([1, 1, 5, 5])], unpool.attrs_with_defaults(
        {"kernel_shape": [2, 2], "strides": [2, 2]}), None)[0]
    assert got.shape == (1, 1, 5, 5)
    rows, cols = np.unravel_index(ind.reshape(-1), (4, 4))
    np.testing.assert_array_equal(got[0, 0, rows, cols], y.reshape(-1))
    assert np.count_nonzero(got) == np.count_nonzero(y)
