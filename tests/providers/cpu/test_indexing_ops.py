"""Indexing ops (GatherElements, GatherND, Scatter*, OneHot, NonZero, Compress, Unique,
TopK, CumSum, Where): onnx node cases and onnxruntime comparisons."""

from __future__ import annotations

import numpy as np
import pytest

from tests.providers.cpu.node_case_runner import check_case, compare_with_ort, node_cases

OPS = {"GatherElements", "GatherND", "ScatterElements", "ScatterND", "Scatter", "OneHot",
       "NonZero", "Compress", "Unique", "TopK", "CumSum", "Where"}
CASES = [c for c in node_cases(OPS) if all(n.op_type in OPS for n in c.model.graph.node)]

rng = np.random.default_rng(0)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_node_case(case):
    check_case(case, fallback=False)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_gather_elements(axis):
    data = rng.standard_normal((3, 4, 5)).astype(np.float32)
    dim = data.shape[axis]
    shape = list(data.shape)
    shape[axis] = 2
    idx = rng.integers(-dim, dim, shape).astype(np.int64)
    compare_with_ort("GatherElements", {"d": data, "i": idx}, ["y"], 13, axis=axis)


@pytest.mark.parametrize("batch_dims,ishape", [(0, (2, 3, 2)), (0, (4, 1)), (1, (3, 2, 2)),
                                               (2, (3, 4, 1)), (1, (3, 1))])
def test_gather_nd(batch_dims, ishape):
    data = rng.standard_normal((3, 4, 5)).astype(np.float32)
    k = ishape[-1]
    dims = data.shape[batch_dims:batch_dims + k]
    idx = np.stack([rng.integers(-d, d, ishape[:-1]) for d in dims], axis=-1).astype(np.int64)
    compare_with_ort("GatherND", {"d": data, "i": idx}, ["y"], 13, batch_dims=batch_dims)


@pytest.mark.parametrize("reduction", ["none", "add", "mul", "max", "min"])
@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("dtype", [np.float32, np.int64])
def test_scatter_elements(reduction, axis, dtype):
    data = rng.integers(-5, 5, (3, 4, 5)).astype(dtype)
    shape = list(data.shape)
    shape[axis] = 2
    dim = data.shape[axis]
    if reduction == "none":
        # Distinct targets along the axis: duplicates are undefined without a reduction.
        idx = np.argsort(rng.random(data.shape), axis=axis)
        idx = np.take(idx, [0, 1], axis=axis) - dim * (idx.take([0], axis=axis) % 2)
    else:
        idx = rng.integers(-dim, dim, shape)
    upd = rng.integers(-5, 5, shape).astype(dtype)
    compare_with_ort("ScatterElements", {"d": data, "i": idx.astype(np.int64), "u": upd}, ["y"],
                     18, axis=axis, reduction=reduction)


def test_scatter_deprecated():
    data = np.zeros((3, 3), np.float32)
    idx = np.array([[1, 0, 2], [0, 2, 1]], np.int64)
    upd = rng.standard_normal((2, 3)).astype(np.float32)
    compare_with_ort("Scatter", {"d": data, "i": idx, "u": upd}, ["y"], 9, axis=0)
    compare_with_ort("Scatter", {"d": data, "i": idx - 3, "u": upd}, ["y"], 10, axis=1)


@pytest.mark.parametrize("reduction", ["none", "add", "mul", "max", "min"])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_scatter_nd(reduction, k):
    data = rng.integers(-5, 5, (4, 3, 5)).astype(np.float32)
    n = 3
    if reduction == "none":
        flat = rng.choice(int(np.prod(data.shape[:k])), n, replace=False)
        idx = np.stack(np.unravel_index(flat, data.shape[:k]), axis=-1)
    else:
        idx = np.stack([rng.integers(0, d, n) for d in data.shape[:k]], axis=-1)
    idx = idx - np.array(data.shape[:k]) * (rng.random(idx.shape) < 0.5)
    upd = rng.integers(-5, 5, (n,) + data.shape[k:]).astype(np.float32)
    compare_with_ort("ScatterND", {"d": data, "i": idx.astype(np.int64), "u": upd}, ["y"], 18,
                     reduction=reduction)


@pytest.mark.parametrize("axis", [-1, 0, 1, -2])
@pytest.mark.parametrize("itype,dtype,vtype", [  # combinations onnxruntime implements
    (np.int64, np.int64, np.float32), (np.int64, np.float32, np.int32),
    (np.int32, np.int32, np.float32), (np.float32, np.int64, np.int64),
    (np.float32, np.float32, np.float32)])
def test_one_hot(axis, itype, dtype, vtype):
    ind = rng.integers(-6, 6, (2, 3)).astype(itype)  # some out of [-depth, depth)
    compare_with_ort("OneHot", {"i": ind, "d": np.array(5, dtype),
                                "v": np.array([2, 7], vtype)}, ["y"], 11, axis=axis)


@pytest.mark.parametrize("shape", [(0,), (5,), (3, 4), (2, 3, 4)])
@pytest.mark.parametrize("dtype", [np.float32, np.int32, bool])
def test_nonzero(shape, dtype):
    x = (rng.integers(0, 3, shape) * (rng.random(shape) < 0.5)).astype(dtype)
    compare_with_ort("NonZero", {"x": x}, ["y"], 13)


def test_nonzero_scalar():
    for v in (0.0, 2.0):
        compare_with_ort("NonZero", {"x": np.array(v, np.float32)}, ["y"], 13)


@pytest.mark.parametrize("axis", [None, 0, 1, -1])
@pytest.mark.parametrize("clen", [2, 3, 5])
def test_compress(axis, clen):
    x = rng.standard_normal((3, 3)).astype(np.float32)
    cond = rng.random(clen) < 0.6
    kw = {} if axis is None else {"axis": axis}
    compare_with_ort("Compress", {"x": x, "c": cond}, ["y"], 11, **kw)


@pytest.mark.parametrize("sorted_", [0, 1])
@pytest.mark.parametrize("axis", [None, 0, 1, -1])
@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.int8])
def test_unique(sorted_, axis, dtype):
    x = rng.integers(0, 3, (4, 3)).astype(dtype)
    x[2] = x[0]  # a repeated row
    kw = {} if axis is None else {"axis": axis}
    compare_with_ort("Unique", {"x": x}, ["y", "i", "inv", "c"], 11, sorted=sorted_, **kw)


@pytest.mark.parametrize("sorted_", [0, 1])
def test_unique_strings(sorted_):
    x = np.array(["b", "a", "b", "c", "a"], dtype=object)
    compare_with_ort("Unique", {"x": x}, ["y", "i", "inv", "c"], 11, sorted=sorted_)


@pytest.mark.parametrize("largest", [0, 1])
@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("k", [0, 1, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.int32, np.float64])
def test_topk(largest, axis, k, dtype):
    x = rng.integers(-3, 3, (4, 5, 3)).astype(dtype)  # many ties
    compare_with_ort("TopK", {"x": x, "k": np.array([k], np.int64)}, ["v", "i"], 11,
                     axis=axis, largest=largest)


def test_topk_old_versions():
    x = rng.standard_normal((3, 6)).astype(np.float32)
    compare_with_ort("TopK", {"x": x}, ["v", "i"], 1, k=2, axis=1)
    compare_with_ort("TopK", {"x": x, "k": np.array([4], np.int64)}, ["v", "i"], 10, axis=0 - 1)


@pytest.mark.parametrize("exclusive", [0, 1])
@pytest.mark.parametrize("reverse", [0, 1])
@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.int64, np.float64])
def test_cumsum(exclusive, reverse, axis, dtype):
    x = rng.integers(-5, 5, (3, 4, 2)).astype(dtype)
    compare_with_ort("CumSum", {"x": x, "a": np.array(axis, np.int32)}, ["y"], 14,
                     exclusive=exclusive, reverse=reverse)


@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.uint8, object])
def test_where(dtype):
    cond = rng.random((3, 1, 4)) < 0.5
    x = rng.integers(0, 5, (2, 4)).astype(dtype)
    y = rng.integers(5, 9, (3, 2, 1)).astype(dtype)
    if dtype is object:
        x, y = x.astype(str).astype(object), y.astype(str).astype(object)
    compare_with_ort("Where", {"c": cond, "x": x, "y": y}, ["z"], 16)


def test_float16():
    x = rng.integers(-3, 3, (3, 5)).astype(np.float16)
    compare_with_ort("TopK", {"x": x, "k": np.array([2], np.int64)}, ["v", "i"], 11)
    compare_with_ort("TopK", {"x": x, "k": np.array([3], np.int64)}, ["v", "i"], 11,
                     largest=0, axis=0)
    compare_with_ort("CumSum", {"x": x, "a": np.array(1, np.int32)}, ["y"], 14, reverse=1)
    compare_with_ort("GatherND", {"d": x, "i": np.array([[1, 2], [0, -1]], np.int64)}, ["y"], 13)
