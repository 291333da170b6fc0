"""The onnx package's node conformance cases for common op families, run with
providers=["openvino", "cpu"]: whatever OpenVINO claims must give the expected outputs."""

from __future__ import annotations

import os

import numpy as np
import pytest

pytest.importorskip("openvino")

from runtime import InferenceSession
from tests.providers.cpu.node_case_runner import node_cases

# Op families common in real models, where OpenVINO's conversion has the most to get right.
# FERRY_OV_NODE_OPS=Cast,Add,... runs other families instead (52 more families, the
# element-wise ones and Cast included, passed that way: 273 cases, about 90 s).
OPS = set(os.environ.get("FERRY_OV_NODE_OPS", "").split(",")) - {""} or {
    "AveragePool", "BatchNormalization", "Conv", "ConvTranspose", "CumSum", "Einsum", "Gather",
    "Gemm", "LayerNormalization", "MatMul", "MaxPool", "OneHot", "Pad", "Range", "ReduceMax",
    "ReduceSum", "Reshape", "ScatterElements", "Slice", "Softmax", "Tile", "TopK",
}

# Cases where OpenVINO differs from the expected outputs are refused by
# providers/openvino/known_issues.py (they then run on the CPU provider): none is skipped here.
# Checked with OpenVINO 2024.6, 2025.4 and 2026.4 (CPU).


def _plain_arrays(case) -> bool:
    return all(isinstance(v, np.ndarray) for inputs, expected in case.data_sets
               for v in list(inputs) + list(expected))


CASES = [c for c in node_cases(OPS) if _plain_arrays(c)]


def _close(got, expected, name):
    expected = np.asarray(expected)
    assert got.shape == expected.shape, (name, got.shape, expected.shape)
    assert got.dtype == expected.dtype, (name, got.dtype, expected.dtype)
    if expected.dtype.kind in "fc":
        # Some expected outputs are written with 4 decimals (e.g. the pooling cases).
        np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-4, err_msg=name)
    else:
        np.testing.assert_array_equal(got, expected, err_msg=name)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_node_case_on_openvino(case):
    sess = InferenceSession(case.model.SerializeToString(), providers=["openvino", "cpu"])
    names = [i.name for i in sess.get_inputs()]
    outs = [o.name for o in sess.get_outputs()]
    for entry in sess.explain()["nodes"]:
        if entry["provider"] != "openvino":  # every refusal says why
            assert entry["not_taken_by"]["openvino"] not in ("", "not claimed"), entry
    for inputs, expected in case.data_sets:
        got = sess.run(None, dict(zip(names, inputs)))
        for name, g, e in zip(outs, got, expected):
            _close(g, e, name)
