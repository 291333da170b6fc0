"""The NCHWc layout pass (ORT_ENABLE_ALL): which nodes move to the blocked layout, where the
reorders go, and that the converted graph computes what onnxruntime computes, through the C++
kernels and through the numpy references."""

from __future__ import annotations

import collections

import numpy as np
from onnx import TensorProto as TP
from onnx import helper

from runtime import GraphOptimizationLevel, InferenceSession, SessionOptions
from tests.conftest import make_model, ort_run

F = TP.FLOAT
rng = np.random.default_rng(11)


def randn(*shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def conv_w(m, c, k=1, group=1):
    return randn(m, c // group, k, k, scale=1.0 / np.sqrt(c // group * k * k))


def session(model, native=True, level=GraphOptimizationLevel.ORT_ENABLE_ALL):
    so = SessionOptions()
    so.graph_optimization_level = level
    providers = ["cpu"] if native else [("cpu", {"use_native_kernels": False})]
    return InferenceSession(model.SerializeToString(), so, providers=providers)


def ops_of(sess) -> collections.Counter:
    return collections.Counter(
        (n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}::{n.op_type}")
        for n in sess._graph.nodes)


def check(model, feeds, rtol=1e-4, atol=1e-4):
    """Converted (C++ and numpy) == onnxruntime; returns the converted graph's op counts."""
    ref = ort_run(model, feeds)
    sess = session(model)
    for native in (True, False):
        s = sess if native else session(model, native=False)
        for a, r in zip(s.run(None, feeds), ref):
            np.testing.assert_allclose(a, r, rtol=rtol, atol=atol,
                                       err_msg=f"native={native}")
    return ops_of(sess)


def _mobile_block_model():
    """First layer (3 channels), depthwise 3x3/2, pointwise with a residual, ReLU6 clips."""
    inits = [("w0", conv_w(16, 3, 3)), ("b0", randn(16)),
             ("wd", conv_w(16, 16, 3, group=16)), ("bd", randn(16)),
             ("wp", conv_w(24, 16)), ("bp", randn(24)),
             ("we", conv_w(24, 24)),
             ("lo", np.array(0, np.float32)), ("hi", np.array(6, np.float32))]
    nodes = [
        helper.make_node("Conv", ["x", "w0", "b0"], ["c0"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Clip", ["c0", "lo", "hi"], ["r0"]),
        helper.make_node("Conv", ["r0", "wd", "bd"], ["cd"], pads=[1, 1, 1, 1], strides=[2, 2],
                         group=16),
        helper.make_node("Clip", ["cd", "lo", "hi"], ["rd"]),
        helper.make_node("Conv", ["rd", "wp", "bp"], ["cp"]),
        helper.make_node("Conv", ["cp", "we"], ["ce"]),
        helper.make_node("Add", ["ce", "cp"], ["s"]),
        helper.make_node("GlobalAveragePool", ["s"], ["g"]),
        helper.make_node("Flatten", ["g"], ["y"]),
    ]
    return make_model(nodes, [("x", F, [1, 3, 29, 31])], [("y", F, [1, 24])], inits)


def test_mobile_block_runs_blocked_end_to_end():
    counts = check(_mobile_block_model(), {"x": randn(1, 3, 29, 31)})
    assert counts["ferry::NchwcConv"] == 4
    assert counts["ferry::NchwcGlobalAveragePool"] == 1
    # The first conv reads the NCHW input itself and the global pool writes NCHW: no reorder.
    assert counts["ferry::ReorderInput"] == 0 and counts["ferry::ReorderOutput"] == 0
    assert counts["Flatten"] == 1


def test_outputs_and_nchw_readers_get_a_reorder_back():
    """A value read by a blocked conv and by a layout-bound op (Transpose), and also a graph
    output, is reordered back once under its own name."""
    inits = [("w1", conv_w(8, 8, 3)), ("w2", conv_w(16, 8))]
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["a", "w2"], ["b"]),
             helper.make_node("Transpose", ["a"], ["t"], perm=[0, 2, 3, 1])]
    model = make_model(nodes, [("x", F, [2, 8, 5, 7])],
                       [("a", F, [2, 8, 5, 7]), ("b", F, [2, 16, 5, 7]), ("t", F, [2, 5, 7, 8])],
                       inits)
    counts = check(model, {"x": randn(2, 8, 5, 7)})
    assert counts["ferry::NchwcConv"] == 2
    assert counts["ferry::ReorderInput"] == 1
    assert counts["ferry::ReorderOutput"] == 2  # a (read twice, reordered once) and b


def test_batchnorm_pools_concat_and_activations():
    c = 16
    inits = [("w1", conv_w(c, 8)), ("w2", conv_w(8, c, 3)),
             ("s", randn(c + 8, scale=0.5) + 1), ("bb", randn(c + 8)),
             ("mu", randn(c + 8)), ("var", np.abs(randn(c + 8)) + 0.5)]
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"]),
             helper.make_node("Softplus", ["a"], ["sa"]),
             helper.make_node("MaxPool", ["sa"], ["p"], kernel_shape=[3, 3], strides=[2, 2],
                              ceil_mode=1),
             helper.make_node("Conv", ["p", "w2"], ["q"], pads=[1, 1, 1, 1]),
             helper.make_node("Concat", ["p", "q"], ["cat"], axis=1),
             helper.make_node("BatchNormalization", ["cat", "s", "bb", "mu", "var"], ["bn"]),
             helper.make_node("Relu", ["bn"], ["r"]),
             helper.make_node("AveragePool", ["r"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                              count_include_pad=0)]
    model = make_model(nodes, [("x", F, [1, 8, 12, 11])], [("y", F, [1, c + 8, 6, 5])], inits)
    counts = check(model, {"x": randn(1, 8, 12, 11)})
    assert counts["ferry::NchwcConv"] == 3  # two convs and the batch norm (+ ReLU)
    assert counts["ferry::NchwcMaxPool"] == 1 and counts["ferry::NchwcAveragePool"] == 1
    assert counts["Concat"] == 1 and counts["Softplus"] == 1
    assert counts["ferry::ReorderInput"] == 1 and counts["ferry::ReorderOutput"] == 1


def test_squeeze_excitation_scale_broadcasts_per_channel():
    """EfficientNet's SE: the [1, C, 1, 1] gate multiplies the blocked map after a Reshape."""
    c = 16
    inits = [("w1", conv_w(c, 8)), ("ws", conv_w(4, c)), ("bs", randn(4)),
             ("we", conv_w(c, 4)), ("be", randn(c)), ("w2", conv_w(8, c)),
             ("k", randn(c, 1, 1))]
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"]),
             helper.make_node("GlobalAveragePool", ["a"], ["g"]),
             helper.make_node("Conv", ["g", "ws", "bs"], ["s1"]),
             helper.make_node("Relu", ["s1"], ["s2"]),
             helper.make_node("Conv", ["s2", "we", "be"], ["s3"]),
             helper.make_node("Sigmoid", ["s3"], ["gate"]),
             helper.make_node("Mul", ["a", "gate"], ["m"]),
             helper.make_node("Mul", ["m", "k"], ["mk"]),  # a constant per-channel scale
             helper.make_node("Add", ["mk", "a"], ["res"]),
             helper.make_node("Mul", ["res", "u"], ["ru"]),  # a per-channel graph input
             helper.make_node("Conv", ["ru", "w2"], ["y"])]
    model = make_model(nodes, [("x", F, [1, 8, 9, 10]), ("u", F, [1, c, 1, 1])],
                       [("y", F, [1, 8, 9, 10])], inits)
    counts = check(model, {"x": randn(1, 8, 9, 10), "u": randn(1, c, 1, 1)})
    # The squeeze conv (4 outputs) stays NCHW; the excitation conv reads its 4 channels as a
    # first layer does and writes the gate blocked.
    assert counts["ferry::NchwcConv"] == 3 and counts["ferry::FusedConv"] == 1
    assert counts["Mul"] == 3 and counts["Reshape"] == 1  # (the graph input u)


def test_full_nchw_operand_is_reordered_in():
    inits = [("w1", conv_w(8, 8))]
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"]),
             helper.make_node("Mul", ["a", "z"], ["y"])]
    model = make_model(nodes, [("x", F, [1, 8, 4, 5]), ("z", F, [1, 8, 4, 5])],
                       [("y", F, [1, 8, 4, 5])], inits)
    counts = check(model, {"x": randn(1, 8, 4, 5), "z": randn(1, 8, 4, 5)})
    assert counts["Mul"] == 1 and counts["ferry::ReorderInput"] == 2


def _plan_kernels(sess) -> collections.Counter:
    total = collections.Counter()
    for p in sess.explain()["partitions"]:
        for plan in p["details"]["plans"]:
            total.update(plan["kernels"])
    return total


def test_what_stays_nchw():
    """Grouped (not depthwise) convs, output channels not a multiple of 8 and runtime weights
    keep their NCHW kernels; so does everything at ORT_ENABLE_EXTENDED. A blocked 3x3 conv
    runs Winograd in its NCHWc form where that pays (64 -> 64 on 24 x 24), the direct kernel
    on a 12 x 12 map."""
    inits = [("wg", conv_w(16, 16, 3, group=2)), ("w6", conv_w(6, 16)),
             ("ww", conv_w(64, 64, 3)), ("w64", conv_w(64, 16))]
    nodes = [helper.make_node("Conv", ["x", "wg"], ["a"], pads=[1, 1, 1, 1], group=2),
             helper.make_node("Conv", ["a", "w6"], ["b"]),
             helper.make_node("Conv", ["a", "wr"], ["c"]),
             helper.make_node("Conv", ["a", "w64"], ["d"]),
             helper.make_node("Conv", ["d", "ww"], ["e"], pads=[1, 1, 1, 1])]
    for hw, winograd in ((24, 1), (12, 0)):
        model = make_model(nodes, [("x", F, [1, 16, hw, hw]), ("wr", F, [8, 16, 1, 1])],
                           [("b", F, [1, 6, hw, hw]), ("c", F, [1, 8, hw, hw]),
                            ("e", F, [1, 64, hw, hw])], inits)
        feeds = {"x": randn(1, 16, hw, hw), "wr": conv_w(8, 16)}
        counts = check(model, feeds)
        assert counts["ferry::NchwcConv"] == 2  # a -> d and d -> e
        assert counts["ferry::ReorderInput"] == 1 and counts["ferry::ReorderOutput"] == 1
        assert sum(v for k, v in counts.items() if k in ("Conv", "ferry::FusedConv")) == 3
        sess = session(model)
        sess.run(None, feeds)
        kernels = _plan_kernels(sess)
        assert kernels["NchwcConv"] == 2 - winograd
        assert kernels["Conv"] == 3 + winograd  # a, b, c (and d -> e on NCHWc values)
    ext = ops_of(session(model, level=GraphOptimizationLevel.ORT_ENABLE_EXTENDED))
    assert not any(k.startswith("ferry::Nchwc") for k in ext)


def test_env_switch_turns_the_pass_off(monkeypatch):
    monkeypatch.setenv("FERRY_NCHWC", "0")
    counts = ops_of(session(_mobile_block_model()))
    assert not any("Nchwc" in k or "Reorder" in k for k in counts)


def test_saved_optimized_model_reloads_and_matches(tmp_path):
    model = _mobile_block_model()
    path = str(tmp_path / "opt.onnx")
    so = SessionOptions()
    so.optimized_model_filepath = path
    x = {"x": randn(1, 3, 29, 31)}
    first = InferenceSession(model.SerializeToString(), so, providers=["cpu"]).run(None, x)
    again = InferenceSession(path, providers=["cpu"]).run(None, x)
    np.testing.assert_array_equal(first[0], again[0])


def test_results_do_not_depend_on_thread_count():
    model = _mobile_block_model()
    x = {"x": randn(1, 3, 29, 31)}
    outs = []
    for threads in (1, 2):
        so = SessionOptions()
        so.intra_op_num_threads = threads
        outs.append(InferenceSession(model.SerializeToString(), so, providers=["cpu"])
                    .run(None, x)[0])
    np.testing.assert_array_equal(outs[0], outs[1])


def test_operand_that_cannot_broadcast_blocked_leaves_the_node_nchw():
    """Sum(blocked, full NCHW, [1, 1, H, W]): the last operand cannot be blocked, so nothing
    made for the first two is kept (no dangling reorder) and the Sum reads NCHW values."""
    inits = [("w1", conv_w(8, 8))]
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"]),
             helper.make_node("Sum", ["a", "z", "q"], ["y"])]
    model = make_model(nodes, [("x", F, [1, 8, 4, 5]), ("z", F, [1, 8, 4, 5]),
                               ("q", F, [1, 1, 4, 5])], [("y", F, [1, 8, 4, 5])], inits)
    counts = check(model, {"x": randn(1, 8, 4, 5), "z": randn(1, 8, 4, 5),
                           "q": randn(1, 1, 4, 5)})
    assert counts["Sum"] == 1
    assert counts["ferry::ReorderInput"] == 1 and counts["ferry::ReorderOutput"] == 1


def test_symbolic_batch_and_several_images():
    """A symbolic batch dim: blocked values keep it, and the per-channel Reshape infers it."""
    c = 16
    inits = [("w1", conv_w(c, 8)), ("wd", conv_w(c, c, 3, group=c)), ("w2", conv_w(8, c))]
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"]),
             helper.make_node("Conv", ["a", "wd"], ["d"], pads=[1, 1, 1, 1], group=c),
             helper.make_node("GlobalAveragePool", ["d"], ["g"]),
             helper.make_node("Sigmoid", ["g"], ["gate"]),
             helper.make_node("Mul", ["d", "gate"], ["m"]),
             helper.make_node("Conv", ["m", "w2"], ["y"])]
    model = make_model(nodes, [("x", F, ["N", 8, 9, 7])], [("y", F, ["N", 8, 9, 7])], inits)
    for n in (1, 3):
        counts = check(model, {"x": randn(n, 8, 9, 7)})
    assert counts["ferry::NchwcConv"] == 3 and counts["Mul"] == 1 and counts["Reshape"] == 1


def test_broadcast_residual_keeps_the_conv_nchw():
    """A residual Add whose other operand broadcasts over channels ([1, 1, H, W]) is fused
    into the NCHW conv, which then stays NCHW (a blocked Z must have the output's shape)."""
    inits = [("w1", conv_w(16, 8)), ("w2", conv_w(16, 16))]
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"]),
             helper.make_node("Conv", ["a", "w2"], ["c"]),
             helper.make_node("Add", ["c", "q"], ["y"])]
    model = make_model(nodes, [("x", F, [1, 8, 5, 6]), ("q", F, [1, 1, 5, 6])],
                       [("y", F, [1, 16, 5, 6])], inits)
    counts = check(model, {"x": randn(1, 8, 5, 6), "q": randn(1, 1, 5, 6)})
    assert counts["ferry::NchwcConv"] == 1 and counts["ferry::FusedConv"] == 1


def test_padded_and_strided_pointwise_convs():
    """1x1 convs with padding (border pixels have no taps: only the bias) and with strides
    (the input gathered, then convolved as a pointwise plane), blocked, against onnxruntime."""
    inits = [("w0", conv_w(16, 8)), ("b0", randn(16)), ("w1", conv_w(24, 16)), ("b1", randn(24)),
             ("w2", conv_w(16, 24)), ("b2", randn(16))]
    nodes = [helper.make_node("Conv", ["x", "w0", "b0"], ["a"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["a"], ["r"]),
             helper.make_node("Conv", ["r", "w1", "b1"], ["s"], strides=[2, 2]),
             helper.make_node("Conv", ["s", "w2", "b2"], ["y"], strides=[3, 2], pads=[0, 2, 1, 0])]
    model = make_model(nodes, [("x", F, [1, 8, 11, 13])], [("y", F, [1, 16, 3, 5])], inits)
    counts = check(model, {"x": randn(1, 8, 11, 13)})
    assert counts["ferry::NchwcConv"] == 3
