"""The C++ Softmax / LogSoftmax kernels (rows, and strided when the axis is not the last)
against onnxruntime on every ISA this CPU supports and on 1 and 2 threads."""

from __future__ import annotations

import numpy as np
import pytest

from tests.kernels.op_kernel_cases import check_native, lower_isas, run_in_subprocess

fk = pytest.importorskip("ferry_kernels")

CASES = [((1,), 0), ((3, 17), -1), ((3, 17), 0), ((2, 5, 300), 1), ((4, 1000), -1),
         ((2, 3, 4, 5), 2), ((2, 3, 4, 5), 0), ((7, 600, 3), 1), ((2, 3, 517), 1),
         ((1, 12, 128, 128), -1), ((2, 1, 7), 1), ((5, 30001), -1)]


def run_all_cases() -> None:
    rng = np.random.default_rng(41)
    for shape, axis in CASES:
        x = (rng.standard_normal(shape) * 5).astype(np.float32)
        for op in ("Softmax", "LogSoftmax"):
            # onnxruntime's own LogSoftmax is off by up to ~7e-6 absolute on long rows (ferry
            # is closer to float64, which tests/providers/cpu/test_softmax_ops.py checks).
            atol = 2e-5 if op == "LogSoftmax" else 1e-6
            for version in (11, 13):
                check_native(op, version, {"x": x}, {"axis": axis}, rtol=1e-5, atol=atol)
    # Infinite maxima make their rows NaN; -inf entries vanish.
    x = np.array([[-np.inf, -np.inf, 0], [0, -np.inf, 1], [np.inf, 1, 0]], np.float32)
    for op in ("Softmax", "LogSoftmax"):
        check_native(op, 13, {"x": x}, {"axis": -1}, rtol=1e-6, atol=0)
        check_native(op, 13, {"x": x}, {"axis": 0}, rtol=1e-6, atol=0)


def test_active_isa():
    run_all_cases()


@pytest.mark.parametrize("isa", lower_isas())
def test_lower_isa(isa):
    run_in_subprocess("tests.kernels.test_softmax", isa)
