"""The C++ pooling kernels (MaxPool with and without Indices, AveragePool, the Global pools)
against onnxruntime on every ISA this CPU supports and on 1 and 2 threads."""

from __future__ import annotations

import numpy as np
import pytest

from tests.kernels.op_kernel_cases import check_native, lower_isas, run_in_subprocess

fk = pytest.importorskip("ferry_kernels")

# Shapes: ones, primes, not multiples of the vector width, many planes (threads split planes).
# (1, 4, 7, 7) and (1, 3, 14, 15): rows shorter than one or two vectors take the separable
# (padded plane) form. Outputs narrower than 16 with 8 or more planes go eight planes at a
# time (the rest one by one): (2, 5, 8, 9) is one block and 2 planes, (1, 12, 13, 13) one and
# 4, (1, 9, 27, 27) at stride 2 one and 1, (1, 64, 28, 28) at stride 2 eight blocks.
SHAPES_2D = [(1, 1, 1, 1), (1, 3, 17, 13), (2, 5, 8, 9), (1, 2, 31, 33), (1, 64, 28, 28),
             (1, 4, 7, 7), (1, 3, 14, 15), (1, 12, 13, 13), (1, 9, 27, 27)]

CONFIGS_2D = [
    {"kernel_shape": [1, 1]},
    {"kernel_shape": [3, 3]},
    {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]},
    {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]},
    {"kernel_shape": [2, 2], "strides": [2, 2]},
    {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1},
    {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "ceil_mode": 1},
    {"kernel_shape": [3, 2], "dilations": [2, 3], "pads": [2, 1, 1, 0]},
    {"kernel_shape": [5, 5], "auto_pad": "SAME_UPPER", "strides": [3, 3]},
    {"kernel_shape": [4, 4], "auto_pad": "SAME_LOWER", "strides": [2, 2]},
    {"kernel_shape": [3, 3], "auto_pad": "VALID", "strides": [2, 1]},
    {"kernel_shape": [7, 7], "pads": [3, 3, 3, 3]},
    {"kernel_shape": [2, 5], "strides": [1, 3], "pads": [0, 2, 1, 2]},
]

CONFIGS_1D = [
    {"kernel_shape": [3], "strides": [2], "pads": [1, 1]},
    {"kernel_shape": [4], "dilations": [2], "ceil_mode": 1, "strides": [3]},
    {"kernel_shape": [2], "auto_pad": "SAME_UPPER"},
]


def _fits(shape, cfg) -> bool:
    """Whether the window fits (onnxruntime rejects empty outputs)."""
    from providers.cpu.ops.pool import _geometry

    out, _, _ = _geometry(shape[2:], cfg["kernel_shape"], cfg.get("strides"), cfg.get("pads"),
                          cfg.get("dilations"), cfg.get("auto_pad", "NOTSET"),
                          cfg.get("ceil_mode", 0))
    return min(out) > 0


def run_all_cases() -> None:
    rng = np.random.default_rng(21)
    for shape in SHAPES_2D:
        x = rng.standard_normal(shape).astype(np.float32)
        for cfg in CONFIGS_2D:
            if not _fits(shape, cfg):
                continue
            check_native("MaxPool", 12, {"x": x}, cfg, outputs=("y",), rtol=0, atol=0)
            check_native("MaxPool", 12, {"x": x}, cfg, outputs=("y", "i"), rtol=0, atol=0)
            for include in (0, 1):
                check_native("AveragePool", 19, {"x": x}, dict(cfg, count_include_pad=include),
                             rtol=1e-5, atol=1e-6)
        for op in ("GlobalAveragePool", "GlobalMaxPool"):
            check_native(op, 22, {"x": x}, rtol=1e-5, atol=1e-6)
    x = rng.standard_normal((2, 3, 5, 4)).astype(np.float32)
    check_native("MaxPool", 12, {"x": x}, {"kernel_shape": [2, 3], "storage_order": 1},
                 outputs=("y", "i"), rtol=0, atol=0)
    for shape in [(1, 1, 1), (2, 3, 17), (1, 4, 100), (2, 5, 17)]:
        x = rng.standard_normal(shape).astype(np.float32)
        for cfg in CONFIGS_1D:
            if not _fits(shape, cfg):
                continue
            check_native("MaxPool", 12, {"x": x}, cfg, outputs=("y", "i"), rtol=0, atol=0)
            check_native("AveragePool", 19, {"x": x}, cfg, rtol=1e-5, atol=1e-6)
        for op in ("GlobalAveragePool", "GlobalMaxPool"):
            check_native(op, 22, {"x": x}, rtol=1e-5, atol=1e-6)
    # A window covering the whole unpadded plane (Inception's last 7x7 AveragePool) runs as a
    # global pool; with padding or Indices it stays a window pool.
    for shape in [(1, 16, 7, 7), (2, 3, 5, 9), (1, 2, 1, 1), (2, 3, 17)]:
        x = rng.standard_normal(shape).astype(np.float32)
        whole = {"kernel_shape": list(shape[2:])}
        cfgs = [whole, dict(whole, strides=[2] * (len(shape) - 2))]
        if min(shape[2:]) > 1:  # (onnxruntime wants pads smaller than the window)
            cfgs.append(dict(whole, pads=[1] * (2 * (len(shape) - 2))))
        for cfg in cfgs:
            check_native("MaxPool", 12, {"x": x}, cfg, outputs=("y",), rtol=0, atol=0)
            check_native("MaxPool", 12, {"x": x}, cfg, outputs=("y", "i"), rtol=0, atol=0)
            for include in (0, 1):
                check_native("AveragePool", 19, {"x": x}, dict(cfg, count_include_pad=include),
                             rtol=1e-5, atol=1e-6)
    # Global pools over 3-D spatial axes, and big planes (vector accumulators).
    for shape in [(1, 3, 2, 3, 5), (2, 8, 57, 61)]:
        x = rng.standard_normal(shape).astype(np.float32)
        for op in ("GlobalAveragePool", "GlobalMaxPool"):
            check_native(op, 22, {"x": x}, rtol=1e-5, atol=1e-6)


def test_active_isa():
    run_all_cases()


@pytest.mark.parametrize("isa", lower_isas())
def test_lower_isa(isa):
    run_in_subprocess("tests.kernels.test_pool", isa)


def test_maxpool_without_output_count_hint_computes_indices():
    """When the partition does not say how many outputs the node has, the lowering declares
    Indices too (correct either way)."""
    from tests.kernels.op_kernel_cases import lower

    x = np.zeros((1, 1, 4, 4), np.float32)
    call = lower("MaxPool", 12, [x], {"kernel_shape": [2, 2]})
    assert len(call.output_shapes) == 2
    call = lower("MaxPool", 12, [x], {"kernel_shape": [2, 2]}, num_outputs=1)
    assert len(call.output_shapes) == 1
