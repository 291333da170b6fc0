"""Tensor manipulation: onnx node cases, and the numpy implementations (every version with
distinct semantics) and the C++ paths against onnxruntime."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from providers.cpu import opset
from tests.kernels.op_kernel_cases import check_numpy_and_native
from tests.providers.cpu.node_case_runner import (
    check_case,
    node_cases,
    run_model,
    single_node_model,
)

OPS = {"Concat", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dropout",
       "Transpose", "Split", "Slice", "Gather"}
CASES = node_cases(OPS)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_node_case(case):
    check_case(case, fallback=False)


# numpy vs onnxruntime, then the C++ kernel when the op lowers (shared helper)
both = functools.partial(check_numpy_and_native, rtol=0, atol=0)


rng = np.random.default_rng(0)
X = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)


@pytest.mark.parametrize("axis", [0, 1, 2, 3, -1, -4])
@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.bool_, np.float16])
def test_concat(axis, dtype):
    a = X.astype(dtype)
    shape = list(a.shape)
    shape[axis] = 2
    b = rng.standard_normal(shape).astype(dtype)
    shape[axis] = 0
    c = np.zeros(shape, dtype)
    both("Concat", 13, {"a": a, "b": b, "c": c}, axis=axis)


def test_concat_strings():
    a = np.array([["a", "b"]], dtype=object)
    both("Concat", 13, {"a": a, "b": a}, axis=0)


@pytest.mark.parametrize("shape,allowzero", [
    ([4, -1], 0), ([0, 3, -1], 0), ([2, 3, 20], 0), ([-1], 0), ([2, 0, 4, 5], 0),
    ([1, 2, 3, 4, 5], 0), ([2, 3, 4, 5], 1)])
def test_reshape(shape, allowzero):
    both("Reshape", 14, {"x": X, "shape": np.array(shape, np.int64)}, allowzero=allowzero)


def test_reshape_allowzero_empty():
    x = np.zeros((0, 3), np.float32)
    both("Reshape", 14, {"x": x, "shape": np.array([3, 0], np.int64)}, allowzero=1)


def test_reshape_opset1_attribute():
    impl = opset.get("Reshape", "", 1)
    got = impl.call([X], impl.attrs_with_defaults({"shape": [0, -1]}), None)[0]
    np.testing.assert_array_equal(got, X.reshape(2, -1))


@pytest.mark.parametrize("axis", [0, 1, 2, 3, 4, -1, -4])
def test_flatten(axis):
    both("Flatten", 13, {"x": X}, axis=axis)


@pytest.mark.parametrize("axes", [None, [1], [-1], [0, 3]])
def test_squeeze(axes):
    x = rng.standard_normal((1, 3, 4, 1)).astype(np.float32)
    axes = None if axes is None else [0 if a == 1 else a for a in axes]
    inputs = {"x": x}
    if axes is not None:
        inputs["axes"] = np.array(axes, np.int64)
    both("Squeeze", 13, inputs)
    both("Squeeze", 11, {"x": x}, **({} if axes is None else {"axes": axes}))


@pytest.mark.parametrize("axes", [[0], [-1], [1, 3], [0, 5], [-6, 2]])
def test_unsqueeze(axes):
    both("Unsqueeze", 13, {"x": X, "axes": np.array(axes, np.int64)})
    both("Unsqueeze", 11, {"x": X}, axes=axes)


def test_unsqueeze_scalar():
    both("Unsqueeze", 13, {"x": np.array(3.0, np.float32), "axes": np.array([0], np.int64)})


@pytest.mark.parametrize("dtype", [np.float32, np.int8, np.bool_, object])
def test_identity(dtype):
    x = np.array([["a", "bc"]], dtype=object) if dtype is object else X.astype(dtype)
    both("Identity", 16, {"x": x})


def test_identity_sequence_is_one_output():
    impl = opset.get("Identity", "", 16)
    seq = [X, X[0]]
    out = impl.call([seq], {}, None)
    assert len(out) == 1 and out[0] is seq


@pytest.mark.parametrize("perm", [None, [0, 1, 2, 3], [3, 2, 1, 0], [0, 2, 3, 1], [1, 0, 3, 2]])
@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.uint8, np.float16])
def test_transpose(perm, dtype):
    both("Transpose", 13, {"x": X.astype(dtype)}, **({} if perm is None else {"perm": perm}))


@pytest.mark.parametrize("axis,split", [(0, None), (1, [1, 2]), (2, [2, 2]), (-1, [1, 1, 3]),
                                        (3, [5, 0]), (1, None)])
def test_split_13(axis, split):
    n = len(split) if split is not None else X.shape[axis]
    outputs = tuple(f"y{i}" for i in range(n))
    inputs = {"x": X}
    if split is not None:
        inputs["split"] = np.array(split, np.int64)
    both("Split", 13, inputs, outputs=outputs, axis=axis)


@pytest.mark.parametrize("version", [2, 11])
def test_split_attribute(version):
    both("Split", version, {"x": X}, outputs=("a", "b"), axis=2, split=[1, 3])
    both("Split", version, {"x": X}, outputs=("a", "b"), axis=2)


@pytest.mark.parametrize("num_outputs,axis", [(2, 3), (3, 3), (5, 3), (3, 2), (2, 1), (3, 1)])
def test_split_num_outputs_18(num_outputs, axis):
    """Chunks of ceil(dim / num_outputs), the last smaller (5 into 3: 2, 2, 1)."""
    outputs = tuple(f"y{i}" for i in range(num_outputs))
    both("Split", 18, {"x": X}, outputs=outputs, axis=axis, num_outputs=num_outputs)


@pytest.mark.parametrize("starts,ends,axes,steps", [
    ([0], [1], [0], None), ([1, 0], [3, 2], [1, 2], None), ([-1], [-4], [3], [-1]),
    ([4], [0], [3], [-2]), ([0, 0], [100, 100], [2, 3], [2, 3]), ([-100], [100], [-1], None),
    ([3], [-100], [2], [-1]), ([10], [0], [3], [-1]), ([0], [-1], [-2], None),
    ([1, 1, 1, 1], [2, 3, 4, 5], None, None), ([2], [1], [1], None),
    ([-1], [-9223372036854775807], [1], [-1]), ([0], [9223372036854775807], [3], [2]),
])
def test_slice(starts, ends, axes, steps):
    inputs = {"x": X, "starts": np.array(starts, np.int64), "ends": np.array(ends, np.int64)}
    if axes is not None or steps is not None:
        inputs["axes"] = np.array(axes if axes is not None else range(len(starts)), np.int64)
    if steps is not None:
        inputs["steps"] = np.array(steps, np.int64)
    both("Slice", 13, inputs)


def test_slice_int32_inputs():
    inputs = {"x": X, "starts": np.array([1], np.int32), "ends": np.array([-1], np.int32),
              "axes": np.array([2], np.int32)}
    both("Slice", 13, inputs)


def test_slice_opset1_attributes():
    impl = opset.get("Slice", "", 1)
    got = impl.call([X], impl.attrs_with_defaults({"starts": [1, -3], "ends": [100, -1],
                                                   "axes": [1, 3]}), None)[0]
    np.testing.assert_array_equal(got, X[:, 1:, :, -3:-1])
    got = impl.call([X], impl.attrs_with_defaults({"starts": [0, 1], "ends": [1, 2]}), None)[0]
    np.testing.assert_array_equal(got, X[0:1, 1:2])


@pytest.mark.parametrize("axis", [0, 1, -1, 3])
@pytest.mark.parametrize("itype", [np.int64, np.int32])
@pytest.mark.parametrize("indices", [[0], [1, -1], [[0, 1], [1, 0]], 0, []])
def test_gather(axis, itype, indices):
    idx = np.array(indices, itype)
    if idx.size:
        idx = np.where(idx >= X.shape[axis], X.shape[axis] - 1, idx).astype(itype)
    both("Gather", 13, {"x": X, "i": idx}, axis=axis)


def test_gather_types():
    for dtype in (np.int64, np.float16, np.bool_, np.uint8):
        both("Gather", 13, {"x": X.astype(dtype), "i": np.array([[1, 0]], np.int64)}, axis=1)
    strings = np.array(["a", "b", "c"], dtype=object)
    both("Gather", 13, {"x": strings, "i": np.array([2, -3], np.int64)})


def test_gather_out_of_range_raises():
    impl = opset.get("Gather", "", 13)
    with pytest.raises(IndexError):
        impl.call([X, np.array([2])], {"axis": 0}, None)


# --------------------------------------------------------------------------------------------
# Dropout


@pytest.mark.parametrize("version", [7, 10, 12, 13])
def test_dropout_inference(version):
    outputs = ("y", "mask") if version >= 12 else ("y",)
    both("Dropout", version, {"x": X}, outputs=outputs)


def test_dropout_10_mask_all_kept():
    """onnxruntime returns an all-false mask for opset 10-11 in inference; ferry (like the onnx
    reference) marks every element as kept."""
    impl = opset.get("Dropout", "", 10)
    y, mask = impl.call([X], impl.attrs_with_defaults({}), None)
    np.testing.assert_array_equal(y, X)
    assert mask.dtype == np.bool_ and mask.all()


def test_dropout_inference_with_ratio_and_training_false():
    both("Dropout", 13, {"x": X, "r": np.array(0.3, np.float32),
                         "t": np.array(False)}, outputs=("y", "mask"))


def test_dropout_legacy_mask_type():
    impl = opset.get("Dropout", "", 7)
    y, mask = impl.call([X], impl.attrs_with_defaults({}), None)
    np.testing.assert_array_equal(y, X)
    assert mask.dtype == X.dtype and np.all(mask == 1)


def _training_dropout(x, ratio, seed=None, rng=None):
    model = single_node_model("Dropout", {"x": x, "r": np.array(ratio, np.float32),
                                          "t": np.array(True)}, ["y", "m"], 13,
                              **({} if seed is None else {"seed": seed}))
    return run_model(model, [x, np.array(ratio, np.float32), np.array(True)], rng=rng,
                     fallback=False)


def test_dropout_training_statistics():
    x = np.ones((200, 500), np.float32)
    y, mask = _training_dropout(x, 0.3, rng=np.random.default_rng(5))
    assert mask.dtype == np.bool_ and y.dtype == np.float32
    np.testing.assert_allclose(y[mask], 1 / 0.7, rtol=1e-6)
    assert np.all(y[~mask] == 0)
    assert abs(mask.mean() - 0.7) < 0.01


def test_dropout_training_seed_reproducible():
    x = rng.standard_normal((30, 40)).astype(np.float32)
    a = _training_dropout(x, 0.5, seed=3)
    b = _training_dropout(x, 0.5, seed=3)
    c = _training_dropout(x, 0.5, seed=4)
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])


def test_dropout_training_ratio_zero_is_identity():
    y, mask = _training_dropout(X, 0.0)
    np.testing.assert_array_equal(y, X)
    assert mask.all()
