"""Shared pieces of the OpenVINO provider tests (imports nothing from OpenVINO itself)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper

from runtime import InferenceSession
from tests.conftest import make_model, ort_run  # noqa: F401  (re-exported for the tests)


def session(model, providers=("openvino",), options=None, **kwargs):
    """A ferry session over ``model`` (a ModelProto) with OpenVINO options."""
    data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else model
    provs = [(p, dict(options or {})) if p == "openvino" else p for p in providers]
    return InferenceSession(data, providers=provs, **kwargs)


def placement(sess) -> dict[str, str]:
    """node name -> provider that runs it."""
    return {n["node"]: n["provider"] for n in sess.explain()["nodes"]}


def ov_details(sess) -> list[dict]:
    return [p["details"] for p in sess.explain()["partitions"] if p["provider"] == "openvino"]


def mlp_model(batch="N", seed=0, hidden=16):
    """x[batch,8] -> MatMul -> Add -> Relu -> MatMul -> Softmax, float32 weights."""
    rng = np.random.default_rng(seed)
    w1 = rng.standard_normal((8, hidden)).astype(np.float32)
    b1 = rng.standard_normal(hidden).astype(np.float32)
    w2 = rng.standard_normal((hidden, 4)).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"], name="mm1"),
             helper.make_node("Add", ["h", "b1"], ["hb"], name="add1"),
             helper.make_node("Relu", ["hb"], ["r"], name="relu"),
             helper.make_node("MatMul", ["r", "w2"], ["z"], name="mm2"),
             helper.make_node("Softmax", ["z"], ["y"], axis=-1, name="softmax")]
    return make_model(nodes, [("x", TensorProto.FLOAT, [batch, 8])],
                      [("y", TensorProto.FLOAT, [batch, 4])],
                      [("w1", w1), ("b1", b1), ("w2", w2)])


def det_split_model():
    """Relu -> Det -> Mul around MatMul: OpenVINO has no Det, so the graph must split."""
    nodes = [helper.make_node("Add", ["x", "w"], ["a"], name="add"),
             helper.make_node("Relu", ["a"], ["r"], name="relu"),
             helper.make_node("Det", ["r"], ["d"], name="det"),
             helper.make_node("Mul", ["d", "d"], ["dd"], name="square"),
             helper.make_node("MatMul", ["r", "r"], ["m"], name="matmul"),
             helper.make_node("Mul", ["m", "dd"], ["y"], name="scale")]
    w = np.linspace(-1, 1, 16, dtype=np.float32).reshape(4, 4)
    return make_model(nodes, [("x", TensorProto.FLOAT, [4, 4])],
                      [("y", TensorProto.FLOAT, [4, 4]), ("d", TensorProto.FLOAT, [])],
                      [("w", w)])


def assert_close(got, expected, rtol=1e-5, atol=1e-5):
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        e = np.asarray(e)
        assert g.dtype == e.dtype, (g.dtype, e.dtype)
        assert g.shape == e.shape, (g.shape, e.shape)
        np.testing.assert_allclose(g, e, rtol=rtol, atol=atol)
