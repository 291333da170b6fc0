"""Sequence and optional ops: onnx node cases, and small graphs (sequences built from tensor
inputs, read back as tensors or sequences) compared with onnxruntime."""

from __future__ import annotations

import numpy as np
import onnx
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

OPS = {"SequenceEmpty", "SequenceConstruct", "SequenceInsert", "SequenceAt", "SequenceErase",
       "SequenceLength", "SplitToSequence", "ConcatFromSequence", "Optional",
       "OptionalHasElement", "OptionalGetElement"}
CASES = [c for c in node_cases(OPS) if all(n.op_type in OPS for n in c.model.graph.node)]

rng = np.random.default_rng(0)
A = rng.standard_normal((2, 3)).astype(np.float32)
B = rng.standard_normal((2, 3)).astype(np.float32)
C = rng.standard_normal((2, 3)).astype(np.float32)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_node_case(case):
    check_case(case, fallback=False)


def test_all_dynamic():
    for op in OPS:
        assert opset.get(op, "", 23).dynamic_shape


def _model(nodes, inputs: dict, outputs: list[str], opset_version=18):
    """A graph of ``nodes`` over float/int64 tensor inputs; outputs typed by inference."""
    g_in = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
            for n, v in inputs.items()]
    graph = helper.make_graph(nodes, "g", g_in, [onnx.ValueInfoProto(name=o) for o in outputs])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset_version)])
    model.ir_version = 8
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    types = {vi.name: vi for vi in list(inferred.graph.value_info) + list(inferred.graph.output)}
    for vi in model.graph.output:
        vi.type.CopyFrom(types[vi.name].type)
    return model


def _i64(v):
    return np.array(v, np.int64)


def _check(nodes, inputs, outputs, opset_version=18):
    model = _model(nodes, inputs, outputs, opset_version)
    return compare_model_with_ort(model, inputs, fallback=False)


N = helper.make_node


@pytest.mark.parametrize("pos", [None, 0, 1, 3, -1, -3])
def test_insert_at_length(pos):
    ins = {"a": A, "b": B, "c": C}
    nodes = [N("SequenceConstruct", ["a", "b", "c"], ["s"])]
    if pos is None:
        nodes.append(N("SequenceInsert", ["s", "a"], ["t"]))
    else:
        ins["p"] = _i64(pos)
        nodes.append(N("SequenceInsert", ["s", "a", "p"], ["t"]))
    nodes += [N("SequenceLength", ["t"], ["n"]),
              N("ConcatFromSequence", ["t"], ["y"], axis=0)]
    _check(nodes, ins, ["t", "n", "y"])


@pytest.mark.parametrize("pos", [0, 2, -1, -3])
def test_at(pos):
    nodes = [N("SequenceConstruct", ["a", "b", "c"], ["s"]), N("SequenceAt", ["s", "p"], ["y"])]
    _check(nodes, {"a": A, "b": B, "c": C, "p": _i64(pos)}, ["y"])


@pytest.mark.parametrize("pos", [None, 0, 1, -1, -3])
def test_erase(pos):
    ins = {"a": A, "b": B, "c": C}
    nodes = [N("SequenceConstruct", ["a", "b", "c"], ["s"])]
    if pos is None:
        nodes.append(N("SequenceErase", ["s"], ["t"]))
    else:
        ins["p"] = _i64(pos)
        nodes.append(N("SequenceErase", ["s", "p"], ["t"]))
    _check(nodes, ins, ["t"])


def test_out_of_range_position():
    model = _model([N("SequenceConstruct", ["a", "b"], ["s"]),
                    N("SequenceAt", ["s", "p"], ["y"])], {"a": A, "b": B, "p": _i64(2)}, ["y"])
    with pytest.raises(IndexError):
        run_model(model, {"a": A, "b": B, "p": _i64(2)}, fallback=False)


def test_empty_then_insert():
    nodes = [N("SequenceEmpty", [], ["s"], dtype=TP.FLOAT),
             N("SequenceLength", ["s"], ["n0"]),
             N("SequenceInsert", ["s", "a"], ["t"]),
             N("SequenceInsert", ["t", "b", "p"], ["u"]),
             N("SequenceLength", ["u"], ["n"])]
    _check(nodes, {"a": A, "b": B, "p": _i64(0)}, ["n0", "u", "n"])


@pytest.mark.parametrize("axis,new_axis", [(0, 0), (1, 0), (-1, 0), (0, 1), (2, 1), (-1, 1),
                                           (-3, 1)])
def test_concat_from_sequence(axis, new_axis):
    nodes = [N("SequenceConstruct", ["a", "b", "c"], ["s"]),
             N("ConcatFromSequence", ["s"], ["y"], axis=axis, new_axis=new_axis)]
    _check(nodes, {"a": A, "b": B, "c": C}, ["y"])


X = rng.standard_normal((5, 4, 3)).astype(np.float32)


@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("keepdims", [0, 1])
def test_split_to_sequence_default(axis, keepdims):
    _check([N("SplitToSequence", ["x"], ["s"], axis=axis, keepdims=keepdims)], {"x": X}, ["s"])


@pytest.mark.parametrize("split,axis", [(2, 0), (3, 0), (1, 1), (4, 1), ([1, 4], 0),
                                        ([2, 0, 2], 1), ([3], -1)])
def test_split_to_sequence_split(split, axis):
    _check([N("SplitToSequence", ["x", "sp"], ["s"], axis=axis)],
           {"x": X, "sp": _i64(split)}, ["s"])


def test_optional_of_tensor_and_sequence():
    nodes = [N("Optional", ["a"], ["o"]),
             N("OptionalHasElement", ["o"], ["h"]),
             N("OptionalGetElement", ["o"], ["y"]),
             N("SequenceConstruct", ["a", "b"], ["s"]),
             N("Optional", ["s"], ["os"]),
             N("OptionalHasElement", ["os"], ["hs"]),
             N("OptionalGetElement", ["os"], ["ys"])]
    _check(nodes, {"a": A, "b": B}, ["h", "y", "hs", "ys"])


def test_empty_optional():
    tp = helper.make_tensor_type_proto(TP.FLOAT, [2, 3])
    nodes = [N("Optional", [], ["o"], type=tp),
             N("OptionalHasElement", ["o"], ["h"])]
    _check(nodes, {"a": A}, ["h"])
    model = _model(nodes, {"a": A}, ["o"])
    assert run_model(model, {"a": A}, fallback=False) == [None]
    with pytest.raises(ValueError):
        opset.get("OptionalGetElement", "", 18).call([None], {}, None)
