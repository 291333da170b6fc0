"""Partitioning and the fallback chain, with a test-only provider.

``testprov`` claims the op types listed in its ``claim_ops`` option and fails to compile any
partition containing an op listed in ``fail_ops``. It runs what it compiled with the CPU op
registry's numpy implementations, so results can be compared with onnxruntime.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pytest
from onnx import TensorProto, helper

from providers import registry
from providers.base import Capability, CompiledPartition, ExecutionProvider, OptionSpec
from providers.cpu import opset
from runtime import InferenceSession, SessionOptions
from runtime.errors import InvalidArgument, NotImplemented, ProviderOptionError
from tests.conftest import make_model, ort_run


class _TestPartition(CompiledPartition):
    def __init__(self, provider, graph):
        self.provider = provider
        self.graph = graph
        self.inputs = graph.input_names
        self.outputs = graph.output_names

    def run(self, feeds, run_state):
        env = dict(self.graph.initializers)
        env.update(feeds)
        for node in self.graph.nodes:
            impl = opset.get(node.op_type, node.domain, self.graph.opset(node.domain))
            outs = impl.call([env[i] if i else None for i in node.inputs],
                             impl.attrs_with_defaults(node.attrs), None)
            env.update(zip(node.outputs, outs))
        self.provider.runs += 1
        return {o: env[o] for o in self.outputs}


class TestProvider(ExecutionProvider):
    name = "testprov"
    ort_name = "TestExecutionProvider"
    device = "test:0"
    option_specs = {"claim_ops": OptionSpec("list", []), "fail_ops": OptionSpec("list", []),
                    "mode": OptionSpec(str, "fast", choices=("fast", "slow"))}

    def __init__(self, options=None, session_options=None):
        super().__init__(options, session_options)
        self.runs = 0
        self.compiled = []
        self.transfers = 0

    def capability(self, graph, nodes):
        cap = Capability()
        for n in nodes:
            if n.op_type in self.options["claim_ops"]:
                cap.claimed.add(n)
            else:
                cap.reasons[n] = f"testprov does not run {n.op_type}"
        return cap

    def compile(self, subgraph, context):
        bad = [n.op_type for n in subgraph.nodes if n.op_type in self.options["fail_ops"]]
        if bad:
            raise RuntimeError(f"cannot compile {bad[0]}")
        self.compiled.append([n.op_type for n in subgraph.nodes])
        return _TestPartition(self, subgraph)

    def is_on_device(self, value):
        return isinstance(value, _DeviceArray)

    def to_device(self, value):
        self.transfers += 1
        return _DeviceArray(value)

    def to_host(self, value):
        return np.asarray(value)


class _DeviceArray(np.ndarray):
    """Marks arrays that 'live' on the test device."""

    def __new__(cls, a):
        return np.asarray(a).view(cls)


class UnavailableProvider(TestProvider):
    name = "nowhere"
    ort_name = "NowhereExecutionProvider"

    @classmethod
    def availability(cls):
        return False, "the nowhere device is not plugged in"


@pytest.fixture(autouse=True)
def _register():
    registry.register_provider(TestProvider)
    registry.register_provider(UnavailableProvider)
    yield
    registry.unregister_provider("testprov")
    registry.unregister_provider("nowhere")


def _mixed_model():
    # x -> Add -> Relu -> Mul -> Sigmoid -> Sub -> y ; plus a side branch Neg(x) added at the end
    nodes = [helper.make_node("Add", ["x", "w"], ["a"], name="add"),
             helper.make_node("Relu", ["a"], ["r"], name="relu"),
             helper.make_node("Mul", ["r", "x"], ["m"], name="mul"),
             helper.make_node("Sigmoid", ["m"], ["s"], name="sigmoid"),
             helper.make_node("Neg", ["x"], ["n"], name="neg"),
             helper.make_node("Sub", ["s", "n"], ["y"], name="sub")]
    w = np.linspace(-1, 1, 4, dtype=np.float32)
    return make_model(nodes, [("x", TensorProto.FLOAT, [2, 4])], [("y", TensorProto.FLOAT, [2, 4])],
                      [("w", w)])


def _x():
    return np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)


def _session(model, providers, **so_fields):
    so = SessionOptions()
    for k, v in so_fields.items():
        setattr(so, k, v)
    return InferenceSession(model.SerializeToString(), so, providers=providers)


def test_partitions_follow_claims_and_results_match_onnxruntime():
    model = _mixed_model()
    sess = _session(model, [("testprov", {"claim_ops": "Add,Relu,Sigmoid,Sub"}), "cpu"])
    info = sess.explain()
    where = {n["op"]: n["provider"] for n in info["nodes"]}
    assert where == {"Add": "testprov", "Relu": "testprov", "Mul": "cpu", "Sigmoid": "testprov",
                     "Neg": "cpu", "Sub": "testprov"}
    providers_in_order = [p["provider"] for p in info["partitions"]]
    # Neg is independent: it joins Mul's CPU partition, so there are only three partitions.
    assert providers_in_order == ["testprov", "cpu", "testprov"]
    assert info["boundary_copies"] >= 2
    mul = next(n for n in info["nodes"] if n["op"] == "Mul")
    assert "testprov does not run Mul" in mul["reason"]
    np.testing.assert_allclose(sess.run(None, {"x": _x()})[0],
                               ort_run(model, {"x": _x()})[0], rtol=1e-6, atol=1e-6)


def test_failed_compile_falls_back_to_cpu_with_one_log_line(caplog):
    model = _mixed_model()
    with caplog.at_level(logging.WARNING, logger="ferry"):
        sess = _session(model, [("testprov", {"claim_ops": "Add,Relu,Sigmoid,Sub",
                                              "fail_ops": "Sigmoid"}), "cpu"])
    where = {n["op"]: n["provider"] for n in sess.explain()["nodes"]}
    assert where["Sigmoid"] == "cpu" and where["Add"] == "testprov"
    sig = next(n for n in sess.explain()["nodes"] if n["op"] == "Sigmoid")
    assert "compile failed: cannot compile Sigmoid" in sig["not_taken_by"]["testprov"]
    assert any("failed to compile" in r.message for r in caplog.records)
    assert any("left the first provider" in r.message for r in caplog.records)
    np.testing.assert_allclose(sess.run(None, {"x": _x()})[0],
                               ort_run(model, {"x": _x()})[0], rtol=1e-6, atol=1e-6)


def test_strict_mode_names_every_unassigned_node():
    model = _mixed_model()
    with pytest.raises(NotImplemented) as exc:
        _session(model, [("testprov", {"claim_ops": "Add,Relu"})], strict_providers=True)
    msg = str(exc.value)
    for op in ("Mul", "Sigmoid", "Neg", "Sub"):
        assert op in msg
    assert "testprov does not run Mul" in msg
    assert "4 node(s)" in msg


def test_unsupported_op_error_names_node_op_and_types():
    node = helper.make_node("FancyOp", ["x"], ["y"], name="the_node", domain="my.domain")
    model = make_model([node], [("x", TensorProto.FLOAT, [2])], [("y", TensorProto.FLOAT, [2])],
                       extra_opsets=[("my.domain", 3)])
    with pytest.raises(NotImplemented) as exc:
        _session(model, ["cpu"])
    msg = str(exc.value)
    assert "the_node" in msg and "my.domain::FancyOp" in msg and "opset 3" in msg
    assert "x: tensor(float)" in msg and "cpu: no CPU implementation" in msg


def test_min_subgraph_size_sends_fragments_down_the_chain():
    model = _mixed_model()
    sess = _session(model, [("testprov", {"claim_ops": "Add,Relu,Sigmoid,Sub",
                                          "min_subgraph_size": 3}), "cpu"])
    where = {n["op"]: n["provider"] for n in sess.explain()["nodes"]}
    assert set(where.values()) == {"cpu"}
    reason = next(n for n in sess.explain()["nodes"] if n["op"] == "Add")["not_taken_by"]
    assert "min_subgraph_size" in reason["testprov"]


def test_exclude_ops():
    model = _mixed_model()
    sess = _session(model, [("testprov", {"claim_ops": "Add,Relu,Sigmoid,Sub",
                                          "exclude_ops": ["Relu"]}), "cpu"])
    where = {n["op"]: n["provider"] for n in sess.explain()["nodes"]}
    assert where["Relu"] == "cpu" and where["Add"] == "testprov"


def test_boundary_transfers_happen_only_at_partition_edges():
    model = _mixed_model()
    sess = _session(model, [("testprov", {"claim_ops": "Add,Relu"}), "cpu"])
    prov = next(p for p in sess._providers if p.name == "testprov")
    sess.run(None, {"x": _x()})
    assert prov.transfers == 1  # x goes to the device once; w is an initializer of the partition
    assert prov.runs == 1


def test_unavailable_provider_warns_once_and_runs_on_cpu(chain_model, recwarn):
    sess = InferenceSession(chain_model.SerializeToString(), providers=["nowhere", "cpu"])
    msgs = [str(w.message) for w in recwarn.list if "nowhere" in str(w.message)]
    assert len(msgs) == 1 and "not plugged in" in msgs[0]
    assert sess.get_providers() == ["CPUExecutionProvider"]
    x = np.ones((3, 4), np.float32)
    np.testing.assert_allclose(sess.run(None, {"x": x})[0], ort_run(chain_model, {"x": x})[0])


def test_cuda_on_a_gpu_less_machine_warns_once(chain_model):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sess = InferenceSession(chain_model.SerializeToString(), providers=["cuda", "cpu"])
    relevant = [w for w in caught if "cuda" in str(w.message)]
    assert len(relevant) == 1
    assert sess.get_providers() == ["CPUExecutionProvider"]
    x = np.ones((2, 4), np.float32)
    assert sess.run(None, {"x": x})[0].shape == (2, 4)


@pytest.mark.parametrize("providers,needle", [
    (["cdua"], "did you mean 'cuda'"),
    ([("testprov", {"claim_opz": "Add"})], "did you mean 'claim_ops'"),
    ([("testprov", {"mode": "medium"})], "choose one of fast, slow"),
    ([("testprov", {"min_subgraph_size": "lots"})], "expects int"),
])
def test_option_errors_are_errors_not_fallback(chain_model, providers, needle):
    with pytest.raises(ProviderOptionError) as exc:
        InferenceSession(chain_model.SerializeToString(), providers=providers + ["cpu"])
    assert needle in str(exc.value)


def test_ort_provider_names_and_tuples(chain_model):
    sess = InferenceSession(chain_model.SerializeToString(),
                            providers=[("CPUExecutionProvider", {"use_plan": "0"})])
    assert sess.get_providers() == ["CPUExecutionProvider"]
    assert sess.get_provider_options()["CPUExecutionProvider"]["use_plan"] == "False"
    sess = InferenceSession(chain_model.SerializeToString(), providers=["CPUExecutionProvider"],
                            provider_options=[{"plan_cache_size": 3}])
    assert sess.get_provider_options()["CPUExecutionProvider"]["plan_cache_size"] == "3"
    with pytest.raises(InvalidArgument):
        InferenceSession(chain_model.SerializeToString(), providers=["cpu"],
                         provider_options=[{}, {}])
    with pytest.raises(InvalidArgument):
        InferenceSession(chain_model.SerializeToString(), providers=["cpu", "CPU"])


def test_entry_point_plugins_are_discovered(monkeypatch):
    from importlib import metadata

    class FakeEP:
        name = "plugged"
        value = "tests.runtime.test_partition:TestProvider"
        group = registry.ENTRY_POINT_GROUP

        def load(self):
            return TestProvider

    monkeypatch.setattr(metadata, "entry_points", lambda group=None: [FakeEP()])
    monkeypatch.setattr(registry, "_entry_points_loaded", False)
    try:
        assert registry.canonical_name("plugged") == "plugged"
        assert registry.provider_class("plugged") is TestProvider
    finally:
        registry.unregister_provider("plugged")
