"""Each optimizer pass fires on a crafted graph, and the optimized session computes what the
unoptimized one and onnxruntime compute."""

from __future__ import annotations

import collections
import math

import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP
from onnx import helper

from runtime import GraphOptimizationLevel, InferenceSession, SessionOptions
from runtime.model import load_model
from runtime.optimizer import constant_folding, optimize
from tests.conftest import make_model, ort_run

F = TP.FLOAT
rng = np.random.default_rng(7)


def randn(*shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def session(model, level=GraphOptimizationLevel.ORT_ENABLE_ALL, **opts):
    so = SessionOptions()
    so.graph_optimization_level = level
    for k, v in opts.items():
        setattr(so, k, v)
    return InferenceSession(model.SerializeToString(), so, providers=["cpu"])


def ops_after(model, level=GraphOptimizationLevel.ORT_ENABLE_EXTENDED) -> collections.Counter:
    """Op counts after optimizing at ``level`` (extended: the fusions; the NCHWc layout pass
    of ORT_ENABLE_ALL has its own tests in test_nchwc_layout.py)."""
    sess = session(model, level)
    return collections.Counter(
        (n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}::{n.op_type}")
        for n in sess._graph.nodes)


def check_equal(model, feeds, rtol=1e-5, atol=1e-5):
    """ALL == DISABLE_ALL == onnxruntime."""
    opt = session(model).run(None, feeds)
    plain = session(model, GraphOptimizationLevel.ORT_DISABLE_ALL).run(None, feeds)
    ref = ort_run(model, feeds)
    for a, b, r in zip(opt, plain, ref):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)
        np.testing.assert_allclose(a, r, rtol=rtol, atol=atol)


def test_disable_all_leaves_the_graph_alone():
    nodes = [helper.make_node("Identity", ["x"], ["i"]), helper.make_node("Relu", ["i"], ["y"])]
    model = make_model(nodes, [("x", F, [2])], [("y", F, [2])])
    assert ops_after(model, GraphOptimizationLevel.ORT_DISABLE_ALL) == {"Identity": 1, "Relu": 1}
    assert ops_after(model, GraphOptimizationLevel.ORT_ENABLE_BASIC) == {"Relu": 1}


def test_dropout_with_an_unread_mask_is_removed():
    """Opset-9 exports (SqueezeNet) name Dropout's mask output though nothing reads it: the
    Dropout is still an identity in inference. A mask that is read keeps the node."""
    nodes = [helper.make_node("Dropout", ["x"], ["d", "mask"], ratio=0.5),
             helper.make_node("Relu", ["d"], ["y"])]
    model = make_model(nodes, [("x", F, [2, 3])], [("y", F, [2, 3])], opset=9)
    assert ops_after(model, GraphOptimizationLevel.ORT_ENABLE_BASIC) == {"Relu": 1}
    check_equal(model, {"x": randn(2, 3)})
    nodes = [helper.make_node("Dropout", ["x"], ["d", "mask"], ratio=0.5),
             helper.make_node("Cast", ["mask"], ["y"], to=F)]
    model = make_model(nodes, [("x", F, [2, 3])], [("y", F, [2, 3])], opset=9)
    assert ops_after(model, GraphOptimizationLevel.ORT_ENABLE_BASIC)["Dropout"] == 1


def test_constant_folding_and_constant_nodes():
    nodes = [helper.make_node("Constant", [], ["c"], value=onnx.numpy_helper.from_array(
                 np.arange(4, dtype=np.float32))),
             helper.make_node("Mul", ["c", "w"], ["cw"]),
             helper.make_node("Add", ["x", "cw"], ["y"])]
    model = make_model(nodes, [("x", F, [4])], [("y", F, [4])], [("w", randn(4))])
    assert ops_after(model, GraphOptimizationLevel.ORT_ENABLE_BASIC) == {"Add": 1}
    check_equal(model, {"x": randn(4)})


def test_constant_folding_refuses_huge_outputs_before_allocating():
    # 2^40 floats: folding must not even try (the node stays; run time reports the size).
    nodes = [helper.make_node("ConstantOfShape", ["shape"], ["big"]),
             helper.make_node("ReduceSum", ["big"], ["y"], keepdims=0)]
    model = make_model(nodes, [], [("y", F, [])], [("shape", np.array([1 << 20, 1 << 20]))],
                       opset=13)
    graph = load_model(model.SerializeToString()).graph
    assert not constant_folding.fold_constants(graph)
    assert [n.op_type for n in graph.nodes] == ["ConstantOfShape", "ReduceSum"]


def test_overridable_initializers_are_not_folded():
    nodes = [helper.make_node("Mul", ["w", "w"], ["w2"]), helper.make_node("Add", ["x", "w2"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", F, [2]),
                                           helper.make_tensor_value_info("w", F, [2])],
                              [helper.make_tensor_value_info("y", F, [2])],
                              [onnx.numpy_helper.from_array(np.ones(2, np.float32), "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    sess = session(model)
    x = randn(2)
    np.testing.assert_allclose(sess.run(None, {"x": x, "w": np.full(2, 3, np.float32)})[0], x + 9)


def test_static_shape_folding():
    nodes = [helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Cast", ["s"], ["f"], to=F),
             helper.make_node("Mul", ["x", "f"], ["y"])]
    model = make_model(nodes, [("x", F, [3, 2])], [("y", F, [3, 2])])
    assert ops_after(model, GraphOptimizationLevel.ORT_ENABLE_BASIC) == {"Mul": 1}
    check_equal(model, {"x": randn(3, 2)})


def test_symbolic_reshape_chain_collapses():
    # The exporters' x.view(x.size(0), -1) on a dynamic batch.
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Gather", ["s", "zero"], ["b"], axis=0),
             helper.make_node("Unsqueeze", ["b", "axes"], ["b1"]),
             helper.make_node("Concat", ["b1", "minus1"], ["shape"], axis=0),
             helper.make_node("Reshape", ["x", "shape"], ["y"])]
    model = make_model(nodes, [("x", F, ["batch", 3, 4])], [("y", F, ["batch", 12])],
                       [("zero", np.array(0)), ("axes", np.array([0])),
                        ("minus1", np.array([-1]))], opset=13)
    assert ops_after(model, GraphOptimizationLevel.ORT_ENABLE_BASIC) == {"Reshape": 1}
    for batch in (1, 5):
        check_equal(model, {"x": randn(batch, 3, 4)})


def test_common_subexpressions_merge():
    nodes = [helper.make_node("Exp", ["x"], ["a"]), helper.make_node("Exp", ["x"], ["b"]),
             helper.make_node("Add", ["a", "b"], ["y"])]
    model = make_model(nodes, [("x", F, [3])], [("y", F, [3])])
    assert ops_after(model, GraphOptimizationLevel.ORT_ENABLE_BASIC) == {"Exp": 1, "Add": 1}
    check_equal(model, {"x": randn(3)})


def test_noop_cast_and_reshape_chain():
    nodes = [helper.make_node("Cast", ["x"], ["c"], to=F),
             helper.make_node("Reshape", ["c", "s1"], ["r1"]),
             helper.make_node("Reshape", ["r1", "s2"], ["y"])]
    model = make_model(nodes, [("x", F, [2, 6])], [("y", F, [3, 4])],
                       [("s1", np.array([12])), ("s2", np.array([3, 4]))])
    assert ops_after(model, GraphOptimizationLevel.ORT_ENABLE_BASIC) == {"Reshape": 1}
    check_equal(model, {"x": randn(2, 6)})


def _conv_model(tail_nodes, out="y", extra_inits=(), out_shape=(1, 8, 6, 6)):
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1])] + tail_nodes
    inits = [("w", randn(8, 4, 3, 3, scale=0.3)), ("b", randn(8))] + list(extra_inits)
    return make_model(nodes, [("x", F, [1, 4, 6, 6])], [(out, F, list(out_shape))], inits)


def test_conv_batchnorm_mul_add_fold_into_the_conv():
    bn = [("scale", randn(8)), ("bias", randn(8)), ("mean", randn(8)),
          ("var", np.abs(randn(8)) + 0.5), ("m", randn(8, 1, 1)), ("a", randn(1, 8, 1, 1))]
    tail = [helper.make_node("BatchNormalization", ["c", "scale", "bias", "mean", "var"], ["n"]),
            helper.make_node("Mul", ["n", "m"], ["nm"]),
            helper.make_node("Add", ["a", "nm"], ["y"])]
    model = _conv_model(tail, extra_inits=bn)
    assert ops_after(model, GraphOptimizationLevel.ORT_ENABLE_BASIC) == {"Conv": 1}
    check_equal(model, {"x": randn(1, 4, 6, 6)}, rtol=1e-4, atol=1e-5)


def _preact_model(act_nodes, mul_shape=(8, 1, 1)):
    """DenseNet's pre-activation block: Concat -> BatchNormalization -> Mul -> Add -> act."""
    inits = [("scale", randn(8)), ("bias", randn(8)), ("mean", randn(8)),
             ("var", np.abs(randn(8)) + 0.5), ("m", randn(*mul_shape)), ("a", randn(8, 1, 1))]
    nodes = [helper.make_node("Concat", ["x1", "x2"], ["c"], axis=1),
             helper.make_node("BatchNormalization", ["c", "scale", "bias", "mean", "var"], ["n"],
                              epsilon=1e-3),
             helper.make_node("Mul", ["m", "n"], ["nm"]),
             helper.make_node("Add", ["nm", "a"], ["y" if not act_nodes else "t"])] + act_nodes
    return make_model(nodes, [("x1", F, [1, 3, 5, 5]), ("x2", F, [1, 5, 5, 5])],
                      [("y", F, [1, 8, 5, 5])], inits)


@pytest.mark.parametrize("act", [None, "Relu", "Clip", "LeakyRelu"])
def test_batchnorm_mul_add_fold_into_the_batchnorm_and_its_activation_fuses(act):
    act_nodes = [] if act is None else [
        helper.make_node(act, ["t"], ["y"], **({"min": -0.5, "max": 0.7} if act == "Clip" else {}))]
    model = _preact_model(act_nodes)
    if act == "Clip":
        model.opset_import[0].version = 10
    basic = ops_after(model, GraphOptimizationLevel.ORT_ENABLE_BASIC)
    assert basic["BatchNormalization"] == 1 and "Mul" not in basic and "Add" not in basic
    after = ops_after(model)
    if act is None:
        assert after == {"Concat": 1, "BatchNormalization": 1}
    else:
        assert after == {"Concat": 1, "ferry::FusedBatchNormalization": 1}
        sess = session(model)
        sess.run(None, {"x1": randn(1, 3, 5, 5), "x2": randn(1, 5, 5, 5)})
        kernels = [k for p in sess.explain()["partitions"] for plan in p["details"]["plans"]
                   for k in plan["kernels"]]
        assert "BatchNormalization" in kernels  # the C++ kernel with the activation fused
    check_equal(model, {"x1": randn(1, 3, 5, 5), "x2": randn(1, 5, 5, 5)}, rtol=1e-5, atol=1e-5)


def test_batchnorm_fold_skips_values_others_read_and_non_channel_constants():
    model = _preact_model([], mul_shape=(1, 5, 5))  # varies along H, W: not per channel
    assert ops_after(model, GraphOptimizationLevel.ORT_ENABLE_BASIC)["Mul"] == 1
    check_equal(model, {"x1": randn(1, 3, 5, 5), "x2": randn(1, 5, 5, 5)})
    model = _preact_model([])
    model.graph.output.append(helper.make_tensor_value_info("n", F, [1, 8, 5, 5]))
    after = ops_after(model, GraphOptimizationLevel.ORT_ENABLE_BASIC)
    assert after["Mul"] == 1  # the BN output is read by the graph too
    check_equal(model, {"x1": randn(1, 3, 5, 5), "x2": randn(1, 5, 5, 5)})


@pytest.mark.parametrize("act", ["Relu", "Sigmoid", "LeakyRelu", "Clip", "HardSigmoid", "Tanh"])
def test_conv_residual_activation_fuse(act):
    attrs = {"alpha": 0.1} if act == "LeakyRelu" else {}
    act_inputs = ["s", "lo", "hi"] if act == "Clip" else ["s"]
    tail = [helper.make_node("Add", ["c", "z"], ["s"]),
            helper.make_node(act, act_inputs, ["y"], **attrs)]
    model = _conv_model(tail, extra_inits=[("lo", np.float32(-0.5)), ("hi", np.float32(0.7))])
    model.graph.input.append(helper.make_tensor_value_info("z", F, [1, 8, 6, 6]))
    assert ops_after(model) == {"ferry::FusedConv": 1}
    assert ops_after(model, GraphOptimizationLevel.ORT_ENABLE_BASIC)[act] == 1
    check_equal(model, {"x": randn(1, 4, 6, 6), "z": randn(1, 8, 6, 6)}, rtol=1e-4, atol=1e-5)


def test_depthwise_conv_residual_fuses():
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], group=4, pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["z", "c"], ["s"]), helper.make_node("Relu", ["s"], ["y"])]
    model = make_model(nodes, [("x", F, [2, 4, 7, 7]), ("z", F, [2, 4, 7, 7])],
                       [("y", F, [2, 4, 7, 7])], [("w", randn(4, 1, 3, 3))])
    assert ops_after(model) == {"ferry::FusedConv": 1}
    check_equal(model, {"x": randn(2, 4, 7, 7), "z": randn(2, 4, 7, 7)}, rtol=1e-4, atol=1e-5)


def _gelu_nodes(x, out):
    return [helper.make_node("Div", [x, "sqrt2"], ["g_d"]),
            helper.make_node("Erf", ["g_d"], ["g_e"]),
            helper.make_node("Add", ["g_e", "one"], ["g_a"]),
            helper.make_node("Mul", [x, "g_a"], ["g_m"]),
            helper.make_node("Mul", ["g_m", "half"], [out])]


GELU_INITS = [("sqrt2", np.float32(math.sqrt(2))), ("one", np.float32(1)),
              ("half", np.float32(0.5))]


def test_matmul_bias_gelu_fuse_for_3d_activations():
    nodes = [helper.make_node("MatMul", ["x", "w"], ["mm"]),
             helper.make_node("Add", ["mm", "bias"], ["h"])] + _gelu_nodes("h", "y")
    model = make_model(nodes, [("x", F, ["batch", 5, 16])], [("y", F, ["batch", 5, 24])],
                       [("w", randn(16, 24, scale=0.3)), ("bias", randn(24))] + GELU_INITS)
    assert ops_after(model) == {"ferry::FusedMatMul": 1}
    for batch in (1, 3):
        check_equal(model, {"x": randn(batch, 5, 16)}, rtol=1e-4, atol=1e-5)


def test_matmul_add_becomes_gemm_for_2d_and_gemm_relu_fuses():
    nodes = [helper.make_node("MatMul", ["x", "w"], ["mm"]),
             helper.make_node("Add", ["bias", "mm"], ["h"]),
             helper.make_node("Gemm", ["h", "w2"], ["g"], transB=1),
             helper.make_node("Relu", ["g"], ["y"])]
    model = make_model(nodes, [("x", F, [3, 16])], [("y", F, [3, 6])],
                       [("w", randn(16, 8)), ("bias", randn(8)), ("w2", randn(6, 8))])
    assert ops_after(model) == {"Gemm": 1, "ferry::FusedGemm": 1}
    check_equal(model, {"x": randn(3, 16)}, rtol=1e-4, atol=1e-5)


def test_layer_norm_pattern():
    nodes = [helper.make_node("ReduceMean", ["x"], ["m"], axes=[-1]),
             helper.make_node("Sub", ["x", "m"], ["d"]),
             helper.make_node("Pow", ["d", "two"], ["p"]),
             helper.make_node("ReduceMean", ["p"], ["v"], axes=[-1]),
             helper.make_node("Add", ["v", "eps"], ["ve"]),
             helper.make_node("Sqrt", ["ve"], ["sd"]),
             helper.make_node("Div", ["d", "sd"], ["n"]),
             helper.make_node("Mul", ["n", "gamma"], ["g"]),
             helper.make_node("Add", ["g", "beta"], ["y"])]
    model = make_model(nodes, [("x", F, [2, 5, 32])], [("y", F, [2, 5, 32])],
                       [("two", np.float32(2)), ("eps", np.float32(1e-5)),
                        ("gamma", randn(32)), ("beta", randn(32))], opset=13)
    assert ops_after(model) == {"ferry::LayerNormalization": 1}
    check_equal(model, {"x": randn(2, 5, 32)}, rtol=1e-4, atol=1e-5)


def test_silu_and_hard_swish_patterns_fuse_into_conv():
    tail = [helper.make_node("Sigmoid", ["c"], ["sg"]), helper.make_node("Mul", ["sg", "c"], ["y"])]
    model = _conv_model(tail)
    assert ops_after(model) == {"ferry::FusedConv": 1}
    check_equal(model, {"x": randn(1, 4, 6, 6)}, rtol=1e-4, atol=1e-5)
    tail = [helper.make_node("HardSigmoid", ["c"], ["hs"], alpha=1 / 6, beta=0.5),
            helper.make_node("Mul", ["c", "hs"], ["y"])]
    model = _conv_model(tail)
    assert ops_after(model) == {"ferry::FusedConv": 1}
    check_equal(model, {"x": randn(1, 4, 6, 6)}, rtol=1e-4, atol=1e-5)


def test_standalone_silu_and_gelu_run_natively_and_match():
    nodes = [helper.make_node("Sigmoid", ["x"], ["s"]), helper.make_node("Mul", ["x", "s"], ["t"])]
    nodes += _gelu_nodes("t", "y")
    model = make_model(nodes, [("x", F, [4, 33])], [("y", F, [4, 33])], GELU_INITS)
    assert ops_after(model) == {"ferry::Silu": 1, "ferry::Gelu": 1}
    check_equal(model, {"x": randn(4, 33)}, rtol=1e-5, atol=1e-6)


def test_fusions_skip_values_others_read():
    # c is a graph output too: the Conv must stay unfused so c keeps its value.
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]), helper.make_node("Relu", ["c"], ["y"])]
    model = make_model(nodes, [("x", F, [1, 2, 4, 4])], [("y", F, None), ("c", F, None)],
                       [("w", randn(3, 2, 1, 1))])
    assert ops_after(model) == {"Conv": 1, "Relu": 1}
    check_equal(model, {"x": randn(1, 2, 4, 4)})


def test_extended_fusions_need_the_cpu_provider_first():
    model = _conv_model([helper.make_node("Relu", ["c"], ["y"])])
    graph = load_model(model.SerializeToString()).graph
    optimize(graph, GraphOptimizationLevel.ORT_ENABLE_ALL, cpu_fusions=False)
    assert [n.op_type for n in graph.nodes] == ["Conv", "Relu"]


def test_saved_optimized_model_reloads_and_matches(tmp_path):
    tail = [helper.make_node("Add", ["c", "z"], ["s"]), helper.make_node("Relu", ["s"], ["y"])]
    model = _conv_model(tail)
    model.graph.input.append(helper.make_tensor_value_info("z", F, [1, 8, 6, 6]))
    path = str(tmp_path / "opt.onnx")
    feeds = {"x": randn(1, 4, 6, 6), "z": randn(1, 8, 6, 6)}
    first = session(model, GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                    optimized_model_filepath=path).run(None, feeds)
    saved = onnx.load(path)
    assert {o.domain for o in saved.opset_import} >= {"", "ferry"}
    assert [n.op_type for n in saved.graph.node] == ["FusedConv"]
    again = InferenceSession(path, providers=["cpu"]).run(None, feeds)
    np.testing.assert_allclose(first[0], again[0], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(first[0], ort_run(model, feeds)[0], rtol=1e-4, atol=1e-5)


def test_explain_reports_node_counts():
    model = _conv_model([helper.make_node("Relu", ["c"], ["y"])])
    info = session(model, GraphOptimizationLevel.ORT_ENABLE_EXTENDED).explain()
    assert info["nodes_before_optimization"] == 2 and info["nodes_after_optimization"] == 1
    assert "fuse_conv" in info["optimizations_applied"]


@pytest.mark.parametrize("opset", [10, 13, 18])
def test_zero_pad_folds_into_the_conv(opset):
    if opset >= 18:
        pad = helper.make_node("Pad", ["x", "pads", "", "axes"], ["p"])
        inits = [("pads", np.array([0, 1, 2, 1], np.int64)), ("axes", np.array([2, 3]))]
    elif opset >= 11:
        pad = helper.make_node("Pad", ["x", "pads"], ["p"])
        inits = [("pads", np.array([0, 0, 0, 1, 0, 0, 2, 1], np.int64))]
    else:
        pad = helper.make_node("Pad", ["x"], ["p"], pads=[0, 0, 0, 1, 0, 0, 2, 1])
        inits = []
    conv_pads = {"pads": [1, 0, 0, 1]} if opset != 13 else {"auto_pad": "VALID"}
    nodes = [pad, helper.make_node("Conv", ["p", "w"], ["y"], **conv_pads)]
    model = make_model(nodes, [("x", F, [1, 2, 5, 5])], [("y", F, None)],
                       [("w", randn(3, 2, 3, 3))] + inits, opset=opset)
    assert ops_after(model, GraphOptimizationLevel.ORT_ENABLE_BASIC) == {"Conv": 1}
    check_equal(model, {"x": randn(1, 2, 5, 5)}, rtol=1e-4, atol=1e-5)


def test_nonzero_or_channel_pad_stays():
    nodes = [helper.make_node("Pad", ["x", "pads", "v"], ["p"]),
             helper.make_node("Conv", ["p", "w"], ["y"])]
    model = make_model(nodes, [("x", F, [1, 2, 5, 5])], [("y", F, None)],
                       [("w", randn(3, 2, 3, 3)), ("pads", np.array([0, 0, 1, 1, 0, 0, 1, 1])),
                        ("v", np.float32(0.5))], opset=13)
    assert ops_after(model, GraphOptimizationLevel.ORT_ENABLE_BASIC)["Pad"] == 1
    check_equal(model, {"x": randn(1, 2, 5, 5)}, rtol=1e-4, atol=1e-5)
