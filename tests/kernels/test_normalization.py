"""The C++ normalization kernels (BatchNormalization inference, InstanceNormalization,
LayerNormalization, LRN) against onnxruntime on every ISA this CPU supports and on 1 and 2
threads, with parameters constant (packed at make time) and not."""

from __future__ import annotations

import numpy as np
import pytest

from providers.cpu.ops.normalization import lrn
from tests.kernels.op_kernel_cases import check_native, lower, lower_isas, run_in_subprocess

fk = pytest.importorskip("ferry_kernels")

SHAPES = [(1, 1, 1, 1), (2, 3, 5, 7), (1, 16, 1, 1), (3, 4), (1, 5, 17), (2, 64, 9, 9),
          (1, 3, 2, 3, 5)]


def run_all_cases() -> None:
    rng = np.random.default_rng(31)
    for shape in SHAPES:
        c = shape[1]
        # An offset mean: the two-pass statistics must not lose the spread.
        x = (rng.standard_normal(shape) * 3 + 10).astype(np.float32)
        scale, bias, mean = (rng.standard_normal(c).astype(np.float32) for _ in range(3))
        var = (np.abs(rng.standard_normal(c)) + 0.1).astype(np.float32)
        for version, attrs in ((9, {}), (15, {"epsilon": 1e-3})):
            check_native("BatchNormalization", version,
                         {"x": x, "s": scale, "b": bias, "m": mean, "v": var}, attrs,
                         rtol=1e-5, atol=1e-5)
        if len(shape) > 2:
            check_native("InstanceNormalization", 22, {"x": x, "s": scale, "b": bias},
                         {"epsilon": 1e-4}, rtol=1e-4, atol=1e-4)
        for size in (1, 2, 3, 4, 5):
            attrs = {"size": size, "alpha": 0.01, "beta": 0.75, "bias": 2.0}
            # onnxruntime takes odd sizes and 4-D inputs only: the other cases are checked
            # against the numpy op.
            expected = None if size % 2 and x.ndim == 4 else [lrn(x, **attrs)]
            check_native("LRN", 13, {"x": x}, attrs, rtol=1e-5, atol=1e-6, expected=expected)
        for axis in range(-len(shape), len(shape)):
            ns = shape[axis:]
            sc = rng.standard_normal(ns).astype(np.float32)
            b = rng.standard_normal(ns).astype(np.float32)
            out3 = ("y", "mean", "inv")
            check_native("LayerNormalization", 17, {"x": x, "s": sc, "b": b}, {"axis": axis},
                         outputs=out3, rtol=1e-4, atol=1e-4)
            check_native("LayerNormalization", 17, {"x": x, "s": sc}, {"axis": axis,
                                                                       "epsilon": 1e-3},
                         outputs=out3, rtol=1e-4, atol=1e-4)
            check_native("LayerNormalization", 17, {"x": x, "s": np.float32([2.0]),
                                                    "b": np.float32([0.5])}, {"axis": axis},
                         rtol=1e-4, atol=1e-4)
    # A long row (BERT-like hidden size) and many rows (split across threads).
    x = rng.standard_normal((300, 768)).astype(np.float32)
    sc, b = rng.standard_normal(768).astype(np.float32), rng.standard_normal(768).astype(
        np.float32)
    check_native("LayerNormalization", 17, {"x": x, "s": sc, "b": b}, {"epsilon": 1e-12},
                 rtol=1e-4, atol=1e-4)
    x = rng.standard_normal((2, 96, 55, 55)).astype(np.float32)
    check_native("LRN", 13, {"x": x}, {"size": 5, "alpha": 1e-4, "beta": 0.75, "bias": 1.0},
                 rtol=1e-5, atol=1e-6)


def test_active_isa():
    run_all_cases()


@pytest.mark.parametrize("isa", lower_isas())
def test_lower_isa(isa):
    run_in_subprocess("tests.kernels.test_normalization", isa)


def test_training_forms_stay_on_numpy():
    x = np.ones((2, 3, 4), np.float32)
    p = np.ones(3, np.float32)
    assert lower("BatchNormalization", 15, [x, p, p, p, p], {"training_mode": 1}) is None
    assert lower("BatchNormalization", 9, [x, p, p, p, p], {}, num_outputs=5) is None
    assert lower("BatchNormalization", 9, [x, p, p, p, p], {}, num_outputs=1) is not None
