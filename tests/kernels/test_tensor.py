"""The byte-moving C++ kernels (Concat, Transpose, Gather, and Copy through the view ops)
against onnxruntime for several element types, on 1 and 2 threads."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tests.kernels.op_kernel_cases import check_native, lower, native_outputs

fk = pytest.importorskip("ferry_kernels")

SHAPES = [(2, 3, 4), (1, 5, 1, 7), (17, 33), (3, 1, 40, 50), (2, 3, 4, 5, 6), (64, 64), (7,)]
DTYPES = [np.float32, np.int64, np.uint8, np.float16, np.bool_, np.int32]


def _array(shape, dtype, rng):
    return (rng.standard_normal(shape) * 10).astype(dtype)


@pytest.mark.parametrize("shape", SHAPES)
def test_transpose(shape):
    rng = np.random.default_rng(51)
    for dtype in DTYPES:
        x = _array(shape, dtype, rng)
        perms = list(itertools.permutations(range(len(shape))))
        if len(perms) > 24:
            perms = perms[:: len(perms) // 24]
        for perm in perms:
            check_native("Transpose", 21, {"x": x}, {"perm": list(perm)}, rtol=0, atol=0)
        check_native("Transpose", 21, {"x": x}, {}, rtol=0, atol=0)


def test_transpose_empty_and_large():
    rng = np.random.default_rng(52)
    x = np.zeros((0, 3, 2), np.float32)
    assert native_outputs("Transpose", 21, [x], {"perm": [2, 0, 1]})[0].shape == (2, 0, 3)
    x = rng.standard_normal((1, 384, 12, 64)).astype(np.float32)
    check_native("Transpose", 21, {"x": x}, {"perm": [0, 2, 1, 3]}, rtol=0, atol=0)
    check_native("Transpose", 21, {"x": x}, {"perm": [0, 2, 3, 1]}, rtol=0, atol=0)


@pytest.mark.parametrize("shape", SHAPES)
def test_concat(shape):
    rng = np.random.default_rng(53)
    for dtype in (np.float32, np.int64, np.float16):
        for axis in range(-len(shape), len(shape)):
            a = _array(shape, dtype, rng)
            one = list(shape)
            one[axis] = 1
            zero = list(shape)
            zero[axis] = 0
            b = _array(one, dtype, rng)
            c = _array(zero, dtype, rng)
            check_native("Concat", 13, {"a": a, "b": b, "c": c, "d": a}, {"axis": axis},
                         rtol=0, atol=0)
            check_native("Concat", 13, {"a": a}, {"axis": axis}, rtol=0, atol=0)


@pytest.mark.parametrize("shape", SHAPES)
def test_gather(shape):
    rng = np.random.default_rng(54)
    for dtype in (np.float32, np.int64, np.uint8, np.float16):
        x = _array(shape, dtype, rng)
        for axis in range(-len(shape), len(shape)):
            d = shape[axis]
            for idx in (np.array([0, d - 1, -1, -d]), np.array(d // 2),
                        rng.integers(-d, d, (3, 4)), np.zeros((0,), np.int64)):
                for it in (np.int64, np.int32):
                    check_native("Gather", 13, {"x": x, "i": idx.astype(it)}, {"axis": axis},
                                 rtol=0, atol=0)


def test_gather_out_of_range():
    x = np.arange(6, dtype=np.float32)
    with pytest.raises(IndexError, match="out of range"):
        native_outputs("Gather", 13, [x, np.array([6])], {}, pack_constants=False)
    with pytest.raises(ValueError, match="out of range"):  # constant indices: at make time
        native_outputs("Gather", 13, [x, np.array([-7])], {}, pack_constants=True)


@pytest.mark.parametrize("op,version,inputs,attrs", [
    ("Reshape", 14, lambda x: [x, np.array([0, -1], np.int64)], {}),
    ("Reshape", 5, lambda x: [x, np.array([-1], np.int64)], {}),
    ("Flatten", 13, lambda x: [x], {"axis": 2}),
    ("Squeeze", 13, lambda x: [x, np.array([1], np.int64)], {}),
    ("Squeeze", 11, lambda x: [x], {}),
    ("Unsqueeze", 13, lambda x: [x, np.array([0, -1], np.int64)], {}),
    ("Unsqueeze", 11, lambda x: [x], {"axes": [0]}),
    ("Identity", 16, lambda x: [x], {}),
])
def test_view_ops_lower_to_copy(op, version, inputs, attrs):
    rng = np.random.default_rng(55)
    x = rng.standard_normal((2, 1, 3, 4)).astype(np.float32)
    ins = inputs(x)
    call = lower(op, version, ins, attrs)
    assert call.kernel == "Copy"
    names = [f"in{i}" for i in range(len(ins))]
    check_native(op, version, dict(zip(names, ins)), attrs, rtol=0, atol=0)


def test_dropout_lowers_only_without_mask():
    x = np.ones((2, 3), np.float32)
    assert lower("Dropout", 13, [x], {}, num_outputs=1).kernel == "Copy"
    assert lower("Dropout", 13, [x], {}, num_outputs=2) is None
    assert lower("Dropout", 13, [x, np.float32(0.5), np.array(True)], {}, num_outputs=1) is None
    assert lower("Dropout", 13, [x], {}) is None


def test_strings_stay_on_numpy():
    x = np.array(["a", "b"], dtype=object)
    assert lower("Identity", 16, [x], {}) is None
    assert lower("Transpose", 13, [x], {}) is None
    assert lower("Concat", 13, [x, x], {"axis": 0}) is None
    assert lower("Gather", 13, [x, np.array([1])], {}) is None
