"""If, Loop and Scan: onnx node cases and whole models compared with onnxruntime.

Bodies run in the test interpreter of node_case_runner, which executes the body's nodes with
ferry's registered ops and falls back to the onnx reference for ops of other families that
are not registered yet.
"""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto as TP
from onnx import helper

from providers.cpu import opset
from tests.providers.cpu.node_case_runner import (
    check_case,
    compare_model_with_ort,
    node_cases,
    run_model,
)

CASES = node_cases({"If", "Loop", "Scan"})


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_node_case(case):
    if case.name == "test_if_opt" and opset.get("Optional", "", 16) is None:
        pytest.xfail("needs ferry's Optional op: the onnx reference wraps optional values")
    check_case(case)


def _vi(name, elem, shape):
    return helper.make_tensor_value_info(name, elem, shape)


def _model(nodes, inputs, outputs, opset_version=17, initializers=()):
    graph = helper.make_graph(nodes, "m", inputs, outputs, initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset_version)])
    model.ir_version = 8
    return model


def _const(name, value):
    return helper.make_node("Constant", [], [name],
                            value=helper.make_tensor(name, TP.FLOAT if np.asarray(value).dtype
                                                     == np.float32 else TP.INT64,
                                                     np.shape(value),
                                                     np.asarray(value).reshape(-1).tolist()))


# -------------------------------------------------------------------------------------------
# Loop


def _loop_body(iter_shape=(), with_break=False):
    """(i, cond, acc) -> (cond', acc + x * i, acc * 2 as a scan output); reads outer 'x'."""
    nodes = [
        helper.make_node("Cast", ["i"], ["fi"], to=TP.FLOAT),
        helper.make_node("Mul", ["x", "fi"], ["xi"]),
        helper.make_node("Add", ["acc", "xi"], ["acc_out"]),
        helper.make_node("Add", ["acc", "acc"], ["scan"]),
    ]
    if with_break:
        nodes += [_const("limit", np.array(20.0, np.float32)),
                  helper.make_node("ReduceSum", ["acc_out"], ["total"], keepdims=0),
                  helper.make_node("Less", ["total", "limit"], ["cond_out"])]
    else:
        nodes.append(helper.make_node("Identity", ["cond"], ["cond_out"]))
    return helper.make_graph(
        nodes, "body",
        [_vi("i", TP.INT64, list(iter_shape)), _vi("cond", TP.BOOL, []),
         _vi("acc", TP.FLOAT, [3])],
        [_vi("cond_out", TP.BOOL, []), _vi("acc_out", TP.FLOAT, [3]),
         _vi("scan", TP.FLOAT, [3])])


@pytest.mark.parametrize("trip,cond,with_break", [
    (5, None, False),      # for loop
    (None, True, True),    # while loop
    (10, True, True),      # both
    (0, True, False),      # no iteration: empty scan output shaped from the body
    (4, False, False),     # cond false up front
], ids=["for", "while", "both", "zero_trips", "false_cond"])
@pytest.mark.parametrize("iter_shape", [(), (1,)], ids=["scalar_i", "rank1_i"])
def test_loop(trip, cond, with_break, iter_shape):
    inputs = [_vi("x", TP.FLOAT, [3]), _vi("acc0", TP.FLOAT, [3])]
    feeds = {"x": np.array([1, 2, 3], np.float32), "acc0": np.array([0.5, 0, -1], np.float32)}
    loop_in = ["", "", "acc0"]
    if trip is not None:
        inputs.append(_vi("M", TP.INT64, []))
        feeds["M"] = np.array(trip, np.int64)
        loop_in[0] = "M"
    if cond is not None:
        inputs.append(_vi("c", TP.BOOL, []))
        feeds["c"] = np.array(cond)
        loop_in[1] = "c"
    node = helper.make_node("Loop", loop_in, ["acc_final", "scans"],
                            body=_loop_body(iter_shape, with_break))
    model = _model([node], inputs, [_vi("acc_final", TP.FLOAT, [3]),
                                    _vi("scans", TP.FLOAT, None)])
    compare_model_with_ort(model, feeds)


def test_loop_carries_a_sequence():
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond"], ["cond_out"]),
         helper.make_node("Cast", ["i"], ["fi"], to=TP.FLOAT),
         helper.make_node("Mul", ["x", "fi"], ["xi"]),
         helper.make_node("SequenceInsert", ["seq", "xi"], ["seq_out"])],
        "body", [_vi("i", TP.INT64, []), _vi("cond", TP.BOOL, []),
                 helper.make_tensor_sequence_value_info("seq", TP.FLOAT, None)],
        [_vi("cond_out", TP.BOOL, []),
         helper.make_tensor_sequence_value_info("seq_out", TP.FLOAT, None)])
    nodes = [helper.make_node("SequenceEmpty", [], ["empty"], dtype=TP.FLOAT),
             helper.make_node("Loop", ["M", "", "empty"], ["seq_final"], body=body),
             helper.make_node("ConcatFromSequence", ["seq_final"], ["out"], axis=0,
                              new_axis=1)]
    model = _model(nodes, [_vi("x", TP.FLOAT, [2]), _vi("M", TP.INT64, [])],
                   [_vi("out", TP.FLOAT, None)], opset_version=13)
    compare_model_with_ort(model, {"x": np.array([1, 2], np.float32),
                                   "M": np.array(4, np.int64)})


def test_loop_rejects_sequence_scan_outputs():
    impl = opset.get("Loop", "", 16)
    body = _loop_body()
    ctx = opset.OpContext("n", "Loop", "", 16, 2,
                          run_subgraph=lambda g, f: [np.array(True), f["acc"], [f["acc"]]])
    with pytest.raises(ValueError, match="scan outputs must be tensors"):
        impl.call([np.array(2, np.int64), None, np.zeros(3, np.float32)], {"body": _ir(body)},
                  ctx)


def _ir(graph_proto):
    from runtime import ir

    return ir.graph_from_onnx(graph_proto, opsets={"": 17})


# -------------------------------------------------------------------------------------------
# If


def test_if_branches_with_outer_scope():
    then_g = helper.make_graph([helper.make_node("Add", ["a", "b"], ["r"])], "then", [],
                               [_vi("r", TP.FLOAT, None)])
    else_g = helper.make_graph([helper.make_node("Concat", ["a", "b", "a"], ["r2"], axis=0)],
                               "else", [], [_vi("r2", TP.FLOAT, None)])
    node = helper.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g)
    model = _model([node], [_vi("c", TP.BOOL, []), _vi("a", TP.FLOAT, [2]),
                            _vi("b", TP.FLOAT, [2])], [_vi("y", TP.FLOAT, None)])
    for c in (True, False):
        compare_model_with_ort(model, {"c": np.array(c), "a": np.array([1, 2], np.float32),
                                       "b": np.array([3, 5], np.float32)})


def test_if_inside_loop():
    then_g = helper.make_graph([helper.make_node("Add", ["acc", "x"], ["t"])], "then", [],
                               [_vi("t", TP.FLOAT, [3])])
    else_g = helper.make_graph([helper.make_node("Sub", ["acc", "x"], ["e"])], "else", [],
                               [_vi("e", TP.FLOAT, [3])])
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond"], ["cond_out"]),
         _const("two", np.array(2, np.int64)),
         helper.make_node("Mod", ["i", "two"], ["parity"]),
         _const("zero", np.array(0, np.int64)),
         helper.make_node("Equal", ["parity", "zero"], ["even"]),
         helper.make_node("If", ["even"], ["acc_out"], then_branch=then_g, else_branch=else_g),
         helper.make_node("Identity", ["acc_out"], ["scan"])],
        "body", [_vi("i", TP.INT64, []), _vi("cond", TP.BOOL, []), _vi("acc", TP.FLOAT, [3])],
        [_vi("cond_out", TP.BOOL, []), _vi("acc_out", TP.FLOAT, [3]),
         _vi("scan", TP.FLOAT, [3])])
    node = helper.make_node("Loop", ["M", "", "acc0"], ["final", "scans"], body=body)
    model = _model([node], [_vi("x", TP.FLOAT, [3]), _vi("acc0", TP.FLOAT, [3]),
                            _vi("M", TP.INT64, [])],
                   [_vi("final", TP.FLOAT, [3]), _vi("scans", TP.FLOAT, None)])
    compare_model_with_ort(model, {"x": np.array([1, 2, 3], np.float32),
                                   "acc0": np.zeros(3, np.float32), "M": np.array(5, np.int64)})


# -------------------------------------------------------------------------------------------
# Scan


def _scan_body():
    """(sum [2], x_t [2], w_t [2]) -> (sum + x_t * w_t, sum as output 1, x_t - w_t as output 2)"""
    return helper.make_graph(
        [helper.make_node("Mul", ["x_t", "w_t"], ["p"]),
         helper.make_node("Add", ["s", "p"], ["s_out"]),
         helper.make_node("Identity", ["s_out"], ["o1"]),
         helper.make_node("Sub", ["x_t", "w_t"], ["o2"])],
        "body", [_vi("s", TP.FLOAT, [2]), _vi("x_t", TP.FLOAT, [2]), _vi("w_t", TP.FLOAT, [2])],
        [_vi("s_out", TP.FLOAT, [2]), _vi("o1", TP.FLOAT, [2]), _vi("o2", TP.FLOAT, [2])])


@pytest.mark.parametrize("attrs", [
    {},
    {"scan_input_directions": [1, 0]},
    {"scan_input_axes": [1, 0], "scan_output_axes": [1, 0]},
    {"scan_input_axes": [-1, 0], "scan_output_axes": [0, -1]},
    {"scan_output_directions": [1, 0], "scan_input_directions": [0, 1]},
], ids=["plain", "reverse_input", "axes", "negative_axes", "reverse_output"])
@pytest.mark.parametrize("opset_version", [11, 16])
def test_scan(attrs, opset_version):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 2)).astype(np.float32)
    if attrs.get("scan_input_axes", [0])[0] != 0:
        x = np.ascontiguousarray(x.T)
    w = rng.standard_normal((4, 2)).astype(np.float32)
    node = helper.make_node("Scan", ["s0", "x", "w"], ["s", "y1", "y2"], body=_scan_body(),
                            num_scan_inputs=2, **attrs)
    model = _model([node], [_vi("s0", TP.FLOAT, [2]), _vi("x", TP.FLOAT, list(x.shape)),
                            _vi("w", TP.FLOAT, [4, 2])],
                   [_vi("s", TP.FLOAT, [2]), _vi("y1", TP.FLOAT, None),
                    _vi("y2", TP.FLOAT, None)], opset_version=opset_version)
    compare_model_with_ort(model, {"s0": np.zeros(2, np.float32), "x": x, "w": w})


def test_scan_zero_length():
    node = helper.make_node("Scan", ["s0", "x", "w"], ["s", "y1", "y2"], body=_scan_body(),
                            num_scan_inputs=2)
    model = _model([node], [_vi("s0", TP.FLOAT, [2]), _vi("x", TP.FLOAT, [0, 2]),
                            _vi("w", TP.FLOAT, [0, 2])],
                   [_vi("s", TP.FLOAT, [2]), _vi("y1", TP.FLOAT, None),
                    _vi("y2", TP.FLOAT, None)])
    feeds = {"s0": np.ones(2, np.float32), "x": np.zeros((0, 2), np.float32),
             "w": np.zeros((0, 2), np.float32)}
    got = run_model(model, feeds)
    np.testing.assert_array_equal(got[0], feeds["s0"])
    assert got[1].shape == (0, 2) and got[2].shape == (0, 2)


@pytest.mark.parametrize("lens", [None, [3, 1, 2]], ids=["full", "sequence_lens"])
@pytest.mark.parametrize("directions", [[0, 0], [1, 0]], ids=["forward", "reverse"])
def test_scan_8(lens, directions):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 3, 2)).astype(np.float32)
    w = rng.standard_normal((3, 3, 2)).astype(np.float32)
    node = helper.make_node("Scan", ["lens" if lens is not None else "", "s0", "x", "w"],
                            ["s", "y1", "y2"], body=_scan_body(), num_scan_inputs=2,
                            directions=directions)
    inputs = [_vi("s0", TP.FLOAT, [3, 2]), _vi("x", TP.FLOAT, [3, 3, 2]),
              _vi("w", TP.FLOAT, [3, 3, 2])]
    feeds = {"s0": rng.standard_normal((3, 2)).astype(np.float32), "x": x, "w": w}
    if lens is not None:
        inputs.append(_vi("lens", TP.INT64, [3]))
        feeds["lens"] = np.array(lens, np.int64)
    model = _model([node], inputs, [_vi("s", TP.FLOAT, [3, 2]), _vi("y1", TP.FLOAT, None),
                                    _vi("y2", TP.FLOAT, None)], opset_version=8)
    compare_model_with_ort(model, feeds)
