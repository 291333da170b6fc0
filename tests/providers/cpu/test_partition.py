"""The CPU partition's plan: Concats written in place (each input produced straight into its
slice of the output), checked against onnxruntime and against the plan's own account."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from runtime import InferenceSession, SessionOptions
from tests.conftest import make_model, ort_run

F = TensorProto.FLOAT


def _conv(name, x, y, cin, cout, rng, inits):
    w = rng.standard_normal((cout, cin, 3, 3)).astype(np.float32) * 0.3
    inits.append((f"{name}_w", w))
    return helper.make_node("Conv", [x, f"{name}_w"], [y], name=name, pads=[1, 1, 1, 1])


def _run(model, feeds, **opts):
    so = SessionOptions()
    for k, v in opts.items():
        setattr(so, k, v)
    sess = InferenceSession(model.SerializeToString(), so, providers=["cpu"])
    first = sess.run(None, feeds)
    again = sess.run(None, feeds)  # the plan (the first run traces node by node)
    for a, b in zip(first, again):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    plans = [p for part in sess.explain()["partitions"] for p in part["details"].get("plans", [])]
    assert len(plans) == 1
    return again, plans[0]


def _check(model, feeds, in_place, **opts):
    got, plan = _run(model, feeds, **opts)
    for g, e in zip(got, ort_run(model, feeds)):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-4)
    assert plan["in_place_concats"] == in_place
    assert plan["kernels"].get("Concat", 0) == plan_concats(model) - in_place


def plan_concats(model):
    return sum(n.op_type == "Concat" for n in model.graph.node)


def test_dense_block_concats_are_written_in_place():
    """DenseNet's pattern: each layer concatenates the growing map with its new channels; the
    whole block becomes one buffer that every layer writes its channels into."""
    rng, inits = np.random.default_rng(0), []
    nodes = [_conv("c0", "x", "f0", 3, 4, rng, inits),
             _conv("c1", "f0", "f1", 4, 2, rng, inits),
             helper.make_node("Concat", ["f0", "f1"], ["k1"], axis=1),
             helper.make_node("Relu", ["k1"], ["r1"]),
             _conv("c2", "r1", "f2", 6, 2, rng, inits),
             helper.make_node("Concat", ["k1", "f2"], ["k2"], axis=1),
             _conv("c3", "k2", "f3", 8, 3, rng, inits),
             helper.make_node("Concat", ["k2", "f3"], ["k3"], axis=-3),
             helper.make_node("Sigmoid", ["k3"], ["y"])]
    model = make_model(nodes, [("x", F, [1, 3, 9, 7])], [("y", F, [1, 11, 9, 7])], inits)
    x = rng.standard_normal((1, 3, 9, 7)).astype(np.float32)
    _check(model, {"x": x}, in_place=3)


def test_concat_output_as_graph_output_is_written_in_place():
    rng, inits = np.random.default_rng(1), []
    nodes = [_conv("a", "x", "fa", 2, 3, rng, inits), _conv("b", "x", "fb", 2, 5, rng, inits),
             helper.make_node("Concat", ["fa", "fb"], ["y"], axis=1)]
    model = make_model(nodes, [("x", F, [1, 2, 5, 6])], [("y", F, [1, 8, 5, 6])], inits)
    _check(model, {"x": rng.standard_normal((1, 2, 5, 6)).astype(np.float32)}, in_place=1)


@pytest.mark.parametrize("case", ["graph_input", "twice", "axis_after_channels", "batch2",
                                  "input_is_output", "view_input"])
def test_concats_that_stay_copies(case):
    """Inputs that cannot be produced into the output (a graph input, the same value twice,
    a value that is itself a graph output or a view) and axes with more than one block per
    input (batch > 1, an axis after the channels) keep the Concat step, with right results."""
    rng, inits = np.random.default_rng(2), []
    n = 2 if case == "batch2" else 1
    axis = 2 if case == "axis_after_channels" else 1
    conv = _conv("a", "x", "fa", 2, 2, rng, inits)
    relu = helper.make_node("Relu", ["x"], ["fb"])
    ins = {"graph_input": ["x", "fa"], "twice": ["fa", "fa"]}.get(case, ["fa", "fb"])
    nodes = [conv, relu]
    out_shape = [n, 4, 5, 6] if axis == 1 else [n, 2, 10, 6]
    if case == "view_input":  # Concat(Relu(Reshape(fa)), Reshape(fb)): the second is a view
        inits.append(("shape", np.array([n, 2, 30], np.int64)))
        nodes += [helper.make_node("Reshape", ["fa", "shape"], ["va"]),
                  helper.make_node("Relu", ["va"], ["ga"]),
                  helper.make_node("Reshape", ["fb", "shape"], ["vb"])]
        ins, out_shape = ["ga", "vb"], [n, 4, 30]
    nodes += [helper.make_node("Concat", ins, ["k"], axis=axis),
              helper.make_node("Relu", ["k"], ["y"])]
    outputs = [("y", F, out_shape)]
    if case == "input_is_output":
        outputs.append(("fa", F, [n, 2, 5, 6]))
    model = make_model(nodes, [("x", F, [n, 2, 5, 6])], outputs, inits)
    x = rng.standard_normal((n, 2, 5, 6)).astype(np.float32)
    _check(model, {"x": x}, in_place=0)


def test_value_in_two_concats_is_sliced_into_one():
    rng, inits = np.random.default_rng(3), []
    nodes = [_conv("a", "x", "fa", 2, 3, rng, inits), _conv("b", "x", "fb", 2, 2, rng, inits),
             _conv("c", "x", "fc", 2, 4, rng, inits),
             helper.make_node("Concat", ["fa", "fb"], ["k1"], axis=1),
             helper.make_node("Concat", ["fc", "fa"], ["k2"], axis=1),
             helper.make_node("ReduceSum", ["k1"], ["y1"], keepdims=1),
             helper.make_node("ReduceSum", ["k2"], ["y2"], keepdims=1)]
    model = make_model(nodes, [("x", F, [1, 2, 4, 4])],
                       [("y1", F, [1, 1, 1, 1]), ("y2", F, [1, 1, 1, 1]), ("k2", F, [1, 7, 4, 4])],
                       inits, opset=13)
    _check(model, {"x": rng.standard_normal((1, 2, 4, 4)).astype(np.float32)}, in_place=1)


def test_parallel_plans_keep_the_concat():
    """Under ORT_PARALLEL the steps run in waves that want one writer per memory: no slices."""
    from runtime.options import ExecutionMode

    rng, inits = np.random.default_rng(4), []
    nodes = [_conv("a", "x", "fa", 2, 3, rng, inits), _conv("b", "x", "fb", 2, 5, rng, inits),
             helper.make_node("Concat", ["fa", "fb"], ["k"], axis=1),
             helper.make_node("Relu", ["k"], ["y"])]
    model = make_model(nodes, [("x", F, [1, 2, 5, 6])], [("y", F, [1, 8, 5, 6])], inits)
    x = rng.standard_normal((1, 2, 5, 6)).astype(np.float32)
    _check(model, {"x": x}, in_place=0, execution_mode=ExecutionMode.ORT_PARALLEL,
           inter_op_num_threads=2)
