"""Shared fixtures: small models built with onnx.helper, and the test-only provider."""

from __future__ import annotations

import os
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

# benchmarks/gpu_check.py sets FERRY_CUDA_REAL=1 to run the CUDA tests on a real GPU;
# otherwise they run the provider's kernels in numpy host emulation.
REAL_GPU = os.environ.get("FERRY_CUDA_REAL", "").strip() == "1"

ONNX_DATA = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data")


def make_model(nodes, inputs, outputs, initializers=(), opset=17, extra_opsets=(), ir_version=None,
               name="test"):
    """A ModelProto from helper-made pieces. ``inputs``/``outputs``: (name, elem_type, shape)."""
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
        [helper.make_tensor_value_info(n, t, s) for n, t, s in outputs],
        initializer=[onnx.numpy_helper.from_array(np.asarray(v), k) for k, v in initializers])
    opsets = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, v) for d, v in extra_opsets]
    model = helper.make_model(graph, opset_imports=opsets)
    if ir_version is not None:
        model.ir_version = ir_version
    return model


def ort_run(model: onnx.ModelProto, feeds: dict, outputs=None):
    """Expected values from onnxruntime (the oracle)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(outputs, feeds)


@pytest.fixture
def chain_model():
    """x -> Add(w) -> Relu -> Mul(x) : small, static shapes, float32."""
    nodes = [helper.make_node("Add", ["x", "w"], ["a"], name="add"),
             helper.make_node("Relu", ["a"], ["r"], name="relu"),
             helper.make_node("Mul", ["r", "x"], ["y"], name="mul")]
    w = np.linspace(-1, 1, 4, dtype=np.float32)
    return make_model(nodes, [("x", TensorProto.FLOAT, ["N", 4])], [("y", TensorProto.FLOAT, ["N", 4])],
                      [("w", w)])


@pytest.fixture
def cuda_emulation(monkeypatch):
    """FERRY_CUDA_EMULATION=1 for the test (unless FERRY_CUDA_REAL=1), with the provider's
    once-per-instance emulation notice kept out of the test output."""
    import logging

    if REAL_GPU:
        monkeypatch.delenv("FERRY_CUDA_EMULATION", raising=False)
    else:
        monkeypatch.setenv("FERRY_CUDA_EMULATION", "1")
    logger = logging.getLogger("ferry")
    old = logger.level
    logger.setLevel(logging.ERROR)
    yield
    logger.setLevel(old)
