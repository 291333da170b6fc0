"""Nested graphs through the session: If and Loop bodies that read outer-scope values,
compared with onnxruntime. Bodies run as CPU partitions of their own (plans when static)."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper

from runtime import InferenceSession
from tests.conftest import make_model, ort_run


def _if_model():
    then_g = helper.make_graph([helper.make_node("Add", ["x", "w"], ["t"])], "then", [],
                               [helper.make_tensor_value_info("t", TensorProto.FLOAT, [3])])
    else_g = helper.make_graph([helper.make_node("Mul", ["x", "w"], ["e"])], "else", [],
                               [helper.make_tensor_value_info("e", TensorProto.FLOAT, [3])])
    nodes = [helper.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g)]
    return make_model(nodes, [("c", TensorProto.BOOL, []), ("x", TensorProto.FLOAT, [3])],
                      [("y", TensorProto.FLOAT, [3])], [("w", np.array([1, 2, 3], np.float32))])


def test_if_reads_outer_scope():
    model = _if_model()
    sess = InferenceSession(model.SerializeToString())
    x = np.array([0.5, -1, 2], np.float32)
    for c in (True, False, True):
        feeds = {"c": np.array(c), "x": x}
        np.testing.assert_allclose(sess.run(None, feeds)[0], ort_run(model, feeds)[0])


def _loop_model():
    # acc_{i+1} = relu(acc_i * x + i), for M iterations; scan output collects acc each step
    body = helper.make_graph(
        [helper.make_node("Cast", ["i"], ["fi"], to=TensorProto.FLOAT),
         helper.make_node("Mul", ["acc", "x"], ["m"]),
         helper.make_node("Add", ["m", "fi"], ["s"]),
         helper.make_node("Relu", ["s"], ["acc_out"]),
         helper.make_node("Identity", ["cond"], ["cond_out"]),
         helper.make_node("Identity", ["acc_out"], ["scan"])],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_out", TensorProto.FLOAT, [2]),
         helper.make_tensor_value_info("scan", TensorProto.FLOAT, [2])])
    nodes = [helper.make_node("Loop", ["M", "", "acc0"], ["acc", "scans"], body=body)]
    return make_model(nodes, [("M", TensorProto.INT64, []), ("acc0", TensorProto.FLOAT, [2]),
                              ("x", TensorProto.FLOAT, [2])],
                      [("acc", TensorProto.FLOAT, [2]), ("scans", TensorProto.FLOAT, None)])


def test_loop_with_outer_scope_and_scan_outputs():
    model = _loop_model()
    sess = InferenceSession(model.SerializeToString())
    for m in (0, 1, 5):
        feeds = {"M": np.array(m, np.int64), "acc0": np.array([1, -1], np.float32),
                 "x": np.array([0.5, 2], np.float32)}
        got = sess.run(None, feeds)
        want = ort_run(model, feeds)
        for g, w in zip(got, want):
            assert g.shape == w.shape
            np.testing.assert_allclose(g, w, rtol=1e-6)
