"""runtime.compare: every intermediate compared, the first divergence found and explained.

A test-only provider ``skewprov`` runs the ops it claims with the CPU registry's numpy code but
adds a planted error to the outputs of one op type, so that the divergence has a known origin.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from providers import registry
from providers.base import Capability, CompiledPartition, ExecutionProvider, OptionSpec
from providers.cpu import opset
from runtime import cli
from runtime.compare import compare_model, compare_values, expose_intermediates, random_feeds
from tests.conftest import make_model


class _SkewPartition(CompiledPartition):
    def __init__(self, provider, graph):
        self.provider = provider
        self.graph = graph
        self.inputs = graph.input_names
        self.outputs = graph.output_names

    def run(self, feeds, run_state):
        env = dict(self.graph.initializers)
        env.update(feeds)
        skew = float(self.provider.options["skew"])
        for node in self.graph.nodes:
            impl = opset.get(node.op_type, node.domain, self.graph.opset(node.domain))
            outs = impl.call([env[i] if i else None for i in node.inputs],
                             impl.attrs_with_defaults(node.attrs), None)
            internal_only = self.provider.options["internal_only"]
            if node.op_type in self.provider.options["skew_ops"] and not (
                    internal_only and set(node.outputs) & set(self.outputs)):
                outs = [(o + np.asarray(skew, o.dtype)).astype(o.dtype) for o in outs]
            env.update(zip(node.outputs, outs))
        return {o: env[o] for o in self.outputs}


class SkewProvider(ExecutionProvider):
    name = "skewprov"
    ort_name = "SkewExecutionProvider"
    device = "cpu"
    option_specs = {"claim_ops": OptionSpec("list", []), "skew_ops": OptionSpec("list", []),
                    "skew": OptionSpec(float, 0.5),
                    # like a fused kernel's bug: wrong only where the value stays inside
                    "internal_only": OptionSpec(bool, False)}

    def capability(self, graph, nodes):
        cap = Capability()
        for n in nodes:
            if n.op_type in self.options["claim_ops"]:
                cap.claimed.add(n)
            else:
                cap.reasons[n] = f"skewprov does not run {n.op_type}"
        return cap

    def compile(self, subgraph, context):
        return _SkewPartition(self, subgraph)


@pytest.fixture(autouse=True)
def _register():
    registry.register_provider(SkewProvider)
    yield
    registry.unregister_provider("skewprov")


def _model():
    # x -> Add(w) -> Relu -> Mul(x) -> Sigmoid -> Sub(Neg(x)) -> y
    nodes = [helper.make_node("Add", ["x", "w"], ["a"], name="add"),
             helper.make_node("Relu", ["a"], ["r"], name="relu"),
             helper.make_node("Mul", ["r", "x"], ["m"], name="mul"),
             helper.make_node("Sigmoid", ["m"], ["s"], name="sigmoid"),
             helper.make_node("Neg", ["x"], ["n"], name="neg"),
             helper.make_node("Sub", ["s", "n"], ["y"], name="sub")]
    w = np.linspace(-1, 1, 4, dtype=np.float32)
    return make_model(nodes, [("x", TensorProto.FLOAT, ["N", 4])],
                      [("y", TensorProto.FLOAT, ["N", 4])], [("w", w)])


def test_expose_intermediates_lists_every_node_output():
    exposed, added = expose_intermediates(_model())
    assert added == ["a", "r", "m", "s", "n"]
    assert [o.name for o in exposed.graph.output] == ["y", "a", "r", "m", "s", "n"]
    assert all(o.type.tensor_type.elem_type == TensorProto.FLOAT for o in exposed.graph.output)
    onnx.checker.check_model(exposed)


def test_agreeing_runtimes_report_no_divergence():
    report = compare_model(_model(), ["cpu"], "onnxruntime", dims={"N": 3})
    assert report.ok and report.first_divergence is None
    assert [n.node for n in report.nodes] == ["add", "relu", "mul", "sigmoid", "neg", "sub"]
    assert report.feeds["x"].shape == (3, 4)
    assert all(n.provider_a == "cpu" for n in report.nodes)
    assert "agrees" in report.summary()


def test_planted_divergence_is_found_at_its_node_against_onnxruntime():
    providers = [("skewprov", {"claim_ops": "Relu,Sigmoid,Sub", "skew_ops": "Sigmoid",
                               "skew": 0.25}), "cpu"]
    report = compare_model(_model(), providers, "onnxruntime", dims={"N": 2})
    d = report.first_divergence
    assert d is not None and d.node == "sigmoid" and d.op == "Sigmoid"
    assert d.provider_a == "skewprov"
    assert d.inputs_agreed  # Mul's output agreed: the divergence starts at Sigmoid
    assert d.max_abs_error == pytest.approx(0.25, rel=1e-5)
    assert d.outputs[0].mismatched == d.outputs[0].size == 8
    # Downstream nodes diverge too, but only Sigmoid's inputs agreed.
    assert [n.node for n in report.divergent_nodes] == ["sigmoid", "sub"]
    sub = report.divergent_nodes[1]
    assert not sub.inputs_agreed
    assert not report.ok
    text = report.summary()
    assert "'sigmoid'" in text and "starts at this node" in text


def test_planted_divergence_between_two_ferry_provider_chains():
    providers = [("skewprov", {"claim_ops": "Add,Relu", "skew_ops": "Add", "skew": 1.0}), "cpu"]
    report = compare_model(_model(), providers, ["cpu"])
    assert report.first_divergence.node == "add"
    assert report.side_b == "cpu"


def test_tolerance_hides_a_small_error():
    providers = [("skewprov", {"claim_ops": "Sigmoid", "skew_ops": "Sigmoid", "skew": 1e-3}),
                 "cpu"]
    assert not compare_model(_model(), providers, "onnxruntime", rtol=0, atol=1e-5).ok
    assert compare_model(_model(), providers, "onnxruntime", atol=1e-2).ok


def test_error_hidden_inside_a_partition_shows_in_the_whole_model_outputs():
    providers = [("skewprov", {"claim_ops": "Add,Relu,Mul,Sigmoid", "skew_ops": "Relu",
                               "skew": 0.5, "internal_only": True}), "cpu"]
    report = compare_model(_model(), providers, "onnxruntime")
    assert report.first_divergence is None  # every exposed intermediate agrees...
    assert not report.ok and not report.graph_outputs[0].ok  # ...the real model does not
    assert "optimized (fused) kernel" in report.summary()
    assert compare_model(_model(), providers, "onnxruntime", whole=False).ok


def test_scalar_values():
    assert compare_values("v", np.float32(1.0), np.float32(1.0), 0, 0).ok
    d = compare_values("v", np.array(2.0), np.array(1.0), 0, 0)
    assert not d.ok and d.max_abs_error == 1.0 and d.max_rel_error == 1.0


def test_random_feeds_follow_types_and_dims():
    nodes = [helper.make_node("Cast", ["i"], ["c"], to=TensorProto.FLOAT),
             helper.make_node("Add", ["c", "x"], ["y"])]
    m = make_model(nodes, [("i", TensorProto.INT64, ["B", 2]), ("x", TensorProto.FLOAT, ["B", 2])],
                   [("y", TensorProto.FLOAT, ["B", 2])])
    feeds = random_feeds(m, {"B": 5}, seed=1)
    assert feeds["i"].dtype == np.int64 and feeds["i"].shape == (5, 2)
    assert feeds["x"].dtype == np.float32
    assert compare_model(m, "cpu", "onnxruntime", feeds=feeds).ok


def test_compare_values_edge_cases():
    a = np.array([1.0, np.nan, np.inf], np.float32)
    assert compare_values("v", a, a.copy(), 1e-4, 1e-5).ok
    d = compare_values("v", a, np.array([1.0, 0.0, np.inf], np.float32), 1e-4, 1e-5)
    assert not d.ok and "NaN" in d.note
    assert not compare_values("v", np.zeros(2), np.zeros(3), 0, 0).ok
    assert "dtype" in compare_values("v", np.zeros(2, np.float32), np.zeros(2), 0, 0).note
    assert compare_values("v", [np.ones(2)], [np.ones(2)], 0, 0).ok
    assert compare_values("v", None, None, 0, 0).ok
    assert not compare_values("v", np.array(["a"], object), np.array(["b"], object), 0, 0).ok


def test_cli_compare_reports_the_node_and_exits_1(tmp_path, capsys):
    path = tmp_path / "m.onnx"
    onnx.save(_model(), path)
    # cli's --providers takes names only: use the provider's defaults through a planted
    # registration whose default options claim and skew Relu.
    class Defaults(SkewProvider):
        name = "skewdefault"
        option_specs = {"claim_ops": OptionSpec("list", ["Relu"]),
                        "skew_ops": OptionSpec("list", ["Relu"]), "skew": OptionSpec(float, 2.0),
                        "internal_only": OptionSpec(bool, False)}

    registry.register_provider(Defaults)
    try:
        assert cli.main(["compare", str(path), "--providers", "skewdefault,cpu",
                         "--dim", "N=2"]) == 1
        out = capsys.readouterr().out
        assert "'relu'" in out and "max abs error 2" in out
        assert cli.main(["compare", str(path), "--providers", "skewdefault,cpu",
                         "--against", "cpu", "--json"]) == 1
        info = json.loads(capsys.readouterr().out)
        assert info["first_divergence"]["node"] == "relu"
        assert info["first_divergence"]["inputs_agreed"] is True
        assert info["nodes_compared"] == 6 and not info["ok"]
        assert cli.main(["compare", str(path)]) == 0
        assert "agrees" in capsys.readouterr().out
    finally:
        registry.unregister_provider("skewdefault")
