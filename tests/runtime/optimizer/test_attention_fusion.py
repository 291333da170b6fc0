"""Attention fusion (runtime/optimizer/attention_fusion.py) and the tanh-GELU / transpose
folds: each fires on the exporters' spellings, and the fused session computes what the
unoptimized one and onnxruntime compute; graphs the fusion must not touch keep their nodes."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto as TP
from onnx import helper

from runtime import GraphOptimizationLevel
from tests.conftest import make_model
from tests.runtime.optimizer.test_passes import check_equal, ops_after, session

F = TP.FLOAT
rng = np.random.default_rng(11)


def randn(*shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def attention_model(style="bert", heads=4, d=8, dv=None, hidden_in=24, mask="key",
                    reshape_heads=None, symbolic=True, softmax_out_is_output=False,
                    softmax_axis=-1, merge_target=None):
    """A one-layer attention block as exporters write it.

    style: "bert" (three MatMul+Add projections, K^T by perm [0,2,3,1], scores * scale),
    "gpt2" (one Gemm on the flattened input, Split into Q/K/V, K^T by two Transposes, scores /
    sqrt(d)), "sdpa" (Q and K^T each scaled by d**-0.25, no mask), "cross" (K/V projected from
    a second input `e` of another length)."""
    dv = dv or d
    hq, hv = heads * d, heads * dv
    b, s, t = ("batch", "seq", "kv") if symbolic else (2, 5, 7)
    nodes, inits = [], []
    inputs = [("x", F, [b, s, hidden_in])]
    if style == "cross":
        inputs.append(("e", F, [b, t, hidden_in]))

    def init(name, value):
        inits.append((name, value))
        return name

    shape_h = reshape_heads or [0, 0, heads, d]
    shape_hv = [0, 0, heads, dv]
    init("shape_h", np.array(shape_h, np.int64))
    init("shape_hv", np.array(shape_hv, np.int64))
    if style == "gpt2":
        init("flat", np.array([-1, hidden_in], np.int64))
        init("w_qkv", randn(hidden_in, 2 * hq + hv, scale=0.3))
        init("b_qkv", randn(2 * hq + hv, scale=0.1))
        init("split", np.array([hq, hq, hv], np.int64))
        nodes += [helper.make_node("Reshape", ["x", "flat"], ["x2"]),
                  helper.make_node("Gemm", ["x2", "w_qkv", "b_qkv"], ["qkv2"]),
                  helper.make_node("Shape", ["x"], ["xs"]),
                  helper.make_node("Slice", ["xs", "zero1", "two1"], ["bs"]),
                  helper.make_node("Concat", ["bs", "qkv_width"], ["qkv_shape"], axis=0),
                  helper.make_node("Reshape", ["qkv2", "qkv_shape"], ["qkv"]),
                  helper.make_node("Split", ["qkv", "split"], ["q3", "k3", "v3"], axis=2)]
        init("zero1", np.array([0], np.int64))
        init("two1", np.array([2], np.int64))
        init("qkv_width", np.array([2 * hq + hv], np.int64))
    else:
        for name, width, src in (("q", hq, "x"), ("k", hq, "e" if style == "cross" else "x"),
                                 ("v", hv, "e" if style == "cross" else "x")):
            init(f"w_{name}", randn(hidden_in, width, scale=0.3))
            init(f"b_{name}", randn(width, scale=0.1))
            nodes += [helper.make_node("MatMul", [src, f"w_{name}"], [f"{name}m"]),
                      helper.make_node("Add", [f"{name}m", f"b_{name}"], [f"{name}3"])]
    nodes += [helper.make_node("Reshape", ["q3", "shape_h"], ["q4"]),
              helper.make_node("Transpose", ["q4"], ["qh"], perm=[0, 2, 1, 3]),
              helper.make_node("Reshape", ["k3", "shape_h"], ["k4"]),
              helper.make_node("Reshape", ["v3", "shape_hv"], ["v4"]),
              helper.make_node("Transpose", ["v4"], ["vh"], perm=[0, 2, 1, 3])]
    if style == "gpt2":
        nodes += [helper.make_node("Transpose", ["k4"], ["kh"], perm=[0, 2, 1, 3]),
                  helper.make_node("Transpose", ["kh"], ["kt"], perm=[0, 1, 3, 2])]
    else:
        nodes.append(helper.make_node("Transpose", ["k4"], ["kt"], perm=[0, 2, 3, 1]))
    q_in, k_in = "qh", "kt"
    if style == "sdpa":
        init("qs", np.array(d ** -0.25, np.float32))
        nodes += [helper.make_node("Mul", ["qh", "qs"], ["qh_s"]),
                  helper.make_node("Mul", ["qs", "kt"], ["kt_s"])]
        q_in, k_in = "qh_s", "kt_s"
    nodes.append(helper.make_node("MatMul", [q_in, k_in], ["scores"]))
    last = "scores"
    if style == "gpt2":
        init("sqrt_d", np.array(np.sqrt(d), np.float32))
        nodes.append(helper.make_node("Div", ["scores", "sqrt_d"], ["scaled"]))
        last = "scaled"
    elif style != "sdpa":
        init("scale", np.array(1 / np.sqrt(d), np.float32))
        nodes.append(helper.make_node("Mul", ["scores", "scale"], ["scaled"]))
        last = "scaled"
    if mask and style != "sdpa":
        if mask == "key":
            inputs.append(("mask", F, [b, 1, 1, t if style == "cross" else s]))
        elif mask == "full":
            inputs.append(("mask", F, [b, heads, s, t if style == "cross" else s]))
        nodes.append(helper.make_node("Add", ["mask", last], ["masked"]))
        last = "masked"
    nodes += [helper.make_node("Softmax", [last], ["probs"], axis=softmax_axis),
              helper.make_node("MatMul", ["probs", "vh"], ["ctx"]),
              helper.make_node("Transpose", ["ctx"], ["ctx_t"], perm=[0, 2, 1, 3]),
              helper.make_node("Reshape", ["ctx_t", "merge"], ["y"])]
    init("merge", np.array(merge_target or [0, 0, -1], np.int64))
    outputs = [("y", F, None)]
    if softmax_out_is_output:
        outputs.append(("probs", F, None))
    return make_model(nodes, inputs, outputs, inits, opset=17)


def feeds_for(model, bsz=2, s=5, t=7):
    feeds = {}
    for vi in model.graph.input:
        dims = [d.dim_value or {"batch": bsz, "seq": s, "kv": t}[d.dim_param]
                for d in vi.type.tensor_type.shape.dim]
        if vi.name == "mask":
            feeds[vi.name] = np.where(rng.random(dims) < 0.3, -10000.0, 0.0).astype(np.float32)
        else:
            feeds[vi.name] = randn(*dims)
    return feeds


@pytest.mark.parametrize("style", ["bert", "gpt2", "sdpa", "cross"])
@pytest.mark.parametrize("mask", ["key", "full", None])
def test_attention_fused_and_equal(style, mask):
    model = attention_model(style, mask=mask)
    ops = ops_after(model)
    assert ops["ferry::MultiHeadAttention"] == 1, ops
    assert ops["Softmax"] == 0 and ops["Transpose"] == 0 and ops["MatMul"] == 0, ops
    if style in ("bert", "gpt2"):  # Q, K and V come from one GEMM
        assert ops["ferry::FusedMatMul"] + ops["Gemm"] + ops["ferry::FusedGemm"] == 1, ops
    for bsz, s, t in ((2, 5, 7), (1, 70, 3), (3, 1, 1)):  # symbolic dims: other sizes
        check_equal(model, feeds_for(model, bsz, s, t), rtol=2e-5, atol=2e-5)


def test_attention_static_shapes_heads_inferred_and_other_v_size():
    model = attention_model("bert", heads=3, d=4, dv=6, symbolic=False,
                            reshape_heads=[0, 0, -1, 4], merge_target=[2, 5, 18])
    assert ops_after(model)["ferry::MultiHeadAttention"] == 1
    check_equal(model, feeds_for(model), rtol=2e-5, atol=2e-5)


def test_attention_probabilities_read_elsewhere_are_not_fused():
    model = attention_model("bert", softmax_out_is_output=True)
    ops = ops_after(model)
    assert ops["ferry::MultiHeadAttention"] == 0 and ops["Softmax"] == 1
    check_equal(model, feeds_for(model))


def test_softmax_over_another_axis_is_not_fused():
    model = attention_model("bert", softmax_axis=2)
    assert ops_after(model)["ferry::MultiHeadAttention"] == 0
    check_equal(model, feeds_for(model))


def test_merge_target_that_copies_the_head_axis_is_not_fused():
    # [0, 0, 0, -1] keeps the head axis: the result is not the merged [b, s, H*Dv].
    model = attention_model("bert", merge_target=[0, 0, 0, -1])
    assert ops_after(model)["ferry::MultiHeadAttention"] == 0
    check_equal(model, feeds_for(model))


def test_attention_is_an_extended_fusion():
    model = attention_model("bert")
    assert ops_after(model, GraphOptimizationLevel.ORT_ENABLE_BASIC)["Softmax"] == 1
    assert ops_after(model, GraphOptimizationLevel.ORT_ENABLE_EXTENDED)["Softmax"] == 0


def test_multi_head_attention_runs_the_cpp_kernel():
    model = attention_model("gpt2")
    sess = session(model)
    feeds = feeds_for(model)
    sess.run(None, feeds)
    plans = sess.explain()["partitions"][0]["details"]["plans"]
    assert plans and plans[0]["kernels"].get("MultiHeadAttention") == 1, plans[0]["kernels"]


def test_saved_optimized_model_reloads(tmp_path):
    model = attention_model("bert")
    path = tmp_path / "opt.onnx"
    from runtime import InferenceSession, SessionOptions
    so = SessionOptions()
    so.optimized_model_filepath = str(path)
    feeds = feeds_for(model)
    a = InferenceSession(model.SerializeToString(), so, providers=["cpu"]).run(None, feeds)
    b = InferenceSession(str(path), providers=["cpu"]).run(None, feeds)
    np.testing.assert_allclose(a[0], b[0], rtol=1e-6, atol=1e-6)


# ---- GELU, tanh form ------------------------------------------------------------------------

def _gelu_tanh_nodes(x, out, cube="pow", tail="half_first"):
    c = {"half": 0.5, "c3": 0.044715, "k": float(np.sqrt(2 / np.pi)), "one": 1.0,
         "three": 3.0}
    inits = [(k, np.array(v, np.float32)) for k, v in c.items()]
    nodes = []
    if cube == "pow":
        nodes.append(helper.make_node("Pow", [x, "three"], ["cube"]))
    else:
        nodes += [helper.make_node("Mul", [x, x], ["sq"]),
                  helper.make_node("Mul", [x, "sq"], ["cube"])]
    nodes += [helper.make_node("Mul", ["cube", "c3"], ["cube_s"]),
              helper.make_node("Add", [x, "cube_s"], ["inner"]),
              helper.make_node("Mul", ["k", "inner"], ["inner_s"]),
              helper.make_node("Tanh", ["inner_s"], ["th"]),
              helper.make_node("Add", ["th", "one"], ["th1"])]
    if tail == "half_first":
        nodes += [helper.make_node("Mul", [x, "half"], ["xh"]),
                  helper.make_node("Mul", ["xh", "th1"], [out])]
    else:
        nodes += [helper.make_node("Mul", [x, "th1"], ["xt"]),
                  helper.make_node("Mul", ["xt", "half"], [out])]
    return nodes, inits


@pytest.mark.parametrize("cube", ["pow", "mul"])
@pytest.mark.parametrize("tail", ["half_first", "half_last"])
def test_gelu_tanh_recognised_and_fused_into_gemm_through_reshape(cube, tail):
    gelu, inits = _gelu_tanh_nodes("h3", "g3", cube, tail)
    nodes = [helper.make_node("Reshape", ["x", "flat"], ["x2"]),
             helper.make_node("Gemm", ["x2", "w", "bias"], ["h2"]),
             helper.make_node("Reshape", ["h2", "shape3"], ["h3"])] + gelu
    inits += [("flat", np.array([-1, 6], np.int64)), ("w", randn(6, 10)),
              ("bias", randn(10)), ("shape3", np.array([-1, 3, 10], np.int64))]
    model = make_model(nodes, [("x", F, ["b", 3, 6])], [("g3", F, None)], inits)
    sess = session(model)
    (node,) = sess._graph.nodes  # Reshape -> Gemm+GELU -> Reshape is one 3-D MatMul
    assert (node.domain, node.op_type) == ("ferry", "FusedMatMul")
    assert node.attrs["activation"] == "gelu_tanh"
    check_equal(model, {"x": randn(2, 3, 6, scale=2.0)})


def test_gelu_tanh_with_wrong_constant_is_left_alone():
    gelu, inits = _gelu_tanh_nodes("x", "y")
    inits = [(k, np.array(0.05, np.float32)) if k == "c3" else (k, v) for k, v in inits]
    model = make_model(gelu, [("x", F, [4, 5])], [("y", F, None)], inits)
    assert ops_after(model)["Tanh"] == 1
    check_equal(model, {"x": randn(4, 5)})


# ---- Transpose folded into MatMul / Gemm ------------------------------------------------------

def test_transpose_folded_into_matmul_and_gemm():
    nodes = [helper.make_node("Transpose", ["b"], ["bt"], perm=[0, 2, 1]),
             helper.make_node("MatMul", ["a", "bt"], ["y"]),
             helper.make_node("Transpose", ["c"], ["ct"]),
             helper.make_node("Transpose", ["d"], ["dt"], perm=[1, 0]),
             helper.make_node("Gemm", ["ct", "dt"], ["z"], transB=1)]
    model = make_model(nodes, [("a", F, [2, 3, 4]), ("b", F, [2, 5, 4]), ("c", F, [4, 3]),
                               ("d", F, [4, 5])], [("y", F, None), ("z", F, None)])
    ops = ops_after(model)
    assert ops == {"ferry::FusedMatMul": 1, "Gemm": 1}, ops
    check_equal(model, {"a": randn(2, 3, 4), "b": randn(2, 5, 4), "c": randn(4, 3),
                        "d": randn(4, 5)})


def test_transpose_of_batch_axes_is_not_folded():
    nodes = [helper.make_node("Transpose", ["b"], ["bt"], perm=[1, 0, 2]),
             helper.make_node("MatMul", ["a", "bt"], ["y"])]
    model = make_model(nodes, [("a", F, [3, 2, 4]), ("b", F, [4, 3, 5])], [("y", F, None)])
    assert ops_after(model)["Transpose"] == 1
    check_equal(model, {"a": randn(3, 2, 4), "b": randn(4, 3, 5)})


def test_reshape_that_keeps_every_axis_is_removed():
    nodes = [helper.make_node("Reshape", ["x", "same"], ["r"]),
             helper.make_node("Relu", ["r"], ["y"])]
    model = make_model(nodes, [("x", F, ["b", 3, 4, 5])], [("y", F, None)],
                       [("same", np.array([0, -1, 4, 5], np.int64))])
    assert ops_after(model, GraphOptimizationLevel.ORT_ENABLE_BASIC) == {"Relu": 1}
    check_equal(model, {"x": randn(2, 3, 4, 5)})
    # [0, -1, 5, 4] moves elements between axes: kept.
    model2 = make_model(nodes, [("x", F, ["b", 3, 4, 5])], [("y", F, None)],
                        [("same", np.array([0, -1, 5, 4], np.int64))])
    assert ops_after(model2, GraphOptimizationLevel.ORT_ENABLE_BASIC)["Reshape"] == 1


@pytest.mark.parametrize("back", [[0, 0, 10], [-1, 3, 10]])
def test_flattened_gemm_runs_as_matmul_on_the_3d_value(back):
    nodes = [helper.make_node("Reshape", ["x", "flat"], ["x2"]),
             helper.make_node("Gemm", ["x2", "w", "bias"], ["h2"], transB=1),
             helper.make_node("Reshape", ["h2", "back"], ["y"])]
    model = make_model(nodes, [("x", F, ["b", 3, 6])], [("y", F, None)],
                       [("flat", np.array([-1, 6], np.int64)), ("w", randn(10, 6)),
                        ("bias", randn(10)), ("back", np.array(back, np.int64))])
    ops = ops_after(model)
    if back[0] == 0:  # 0 copies the 2-D Gemm output's rows: not x's batch, left alone
        assert ops["Gemm"] == 1
        return
    assert ops == {"ferry::FusedMatMul": 1}, ops
    check_equal(model, {"x": randn(2, 3, 6)})
