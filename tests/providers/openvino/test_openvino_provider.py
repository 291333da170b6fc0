"""The OpenVINO provider: availability, options, capability and partitioning, results against
onnxruntime, control-flow fallback, precision and device reporting."""

from __future__ import annotations

import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

ov = pytest.importorskip("openvino")

import runtime
from providers.openvino.provider import OpenVINOProvider
from runtime import InferenceSession, SessionOptions
from runtime.errors import ProviderOptionError
from tests.conftest import ONNX_DATA
from tests.providers.openvino.ov_helpers import (
    assert_close,
    det_split_model,
    make_model,
    mlp_model,
    ort_run,
    ov_details,
    placement,
    session,
)


# ---- availability and options ---------------------------------------------------------------
def test_available_and_listed():
    assert OpenVINOProvider.availability() == (True, "")
    assert "OpenVINOExecutionProvider" in runtime.get_available_providers()


def test_ort_name_alias_and_reported_options():
    sess = InferenceSession(mlp_model().SerializeToString(),
                            providers=["OpenVINOExecutionProvider"],
                            provider_options=[{"num_of_threads": "1", "precision": "ACCURACY"}])
    assert sess.get_providers()[0] == "OpenVINOExecutionProvider"
    opts = sess.get_provider_options()["OpenVINOExecutionProvider"]
    assert opts["num_of_threads"] == "1" and opts["precision"] == "ACCURACY"
    assert opts["device_type"] == "CPU"


def test_unknown_option_lists_valid_ones():
    with pytest.raises(ProviderOptionError) as err:
        session(mlp_model(), options={"device": "CPU"})
    text = str(err.value)
    for name in ("device_type", "precision", "num_streams", "num_of_threads", "cache_dir",
                 "enable_dynamic_shapes"):
        assert name in text


@pytest.mark.parametrize("options, needle", [
    ({"precision": "FP64"}, "FP32"),
    ({"precision": "fp32"}, "choose one of"),
    ({"num_streams": 0}, ">= 1"),
    ({"num_streams": "two"}, "expects int"),
    ({"num_of_threads": -1}, ">= 0"),
    ({"enable_dynamic_shapes": "maybe"}, "expects bool"),
    ({"device_type": "TPU"}, "not a device"),
    ({"device_type": "HETERO"}, "needs a device list"),
    ({"device_type": "AUTO:CPU,FPGA"}, "unknown device"),
])
def test_bad_option_values(options, needle):
    with pytest.raises(ProviderOptionError) as err:
        session(mlp_model(), options=options)
    assert needle in str(err.value)


def test_device_not_on_this_machine():
    available = ov.Core().available_devices
    missing = next((d for d in ("NPU", "GPU") if not any(a.startswith(d) for a in available)),
                   None)
    if missing is None:
        pytest.skip("this machine has both a GPU and an NPU for OpenVINO")
    with pytest.raises(ProviderOptionError) as err:
        session(mlp_model(), options={"device_type": missing})
    assert "not available" in str(err.value) and "CPU" in str(err.value)
    with pytest.raises(ProviderOptionError):
        session(mlp_model(), options={"device_type": f"HETERO:{missing},CPU"})


# ---- whole models on OpenVINO ---------------------------------------------------------------
def test_mlp_whole_model_on_openvino():
    model = mlp_model(batch=3)
    x = np.random.default_rng(1).standard_normal((3, 8)).astype(np.float32)
    sess = session(model)
    assert set(placement(sess).values()) == {"openvino"}
    assert_close(sess.run(None, {"x": x}), ort_run(model, {"x": x}))
    (details,) = ov_details(sess)
    assert details["precision"] == "f32"
    assert details["execution_devices"] == ["CPU"]
    assert details["shape_mode"] == "static" and details["compiles"] == 1


@pytest.mark.parametrize("name", ["light_squeezenet", "light_shufflenet"])
def test_onnx_light_models(name):
    path = os.path.join(ONNX_DATA, "light", f"{name}.onnx")
    model = onnx.load(path)
    inits = {i.name for i in model.graph.initializer}
    vi = next(i for i in model.graph.input if i.name not in inits)
    shape = [d.dim_value for d in vi.type.tensor_type.shape.dim]
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    sess = InferenceSession(path, providers=["openvino"])
    assert set(placement(sess).values()) == {"openvino"}
    assert_close(sess.run(None, {vi.name: x}), ort_run(model, {vi.name: x}), rtol=1e-4,
                 atol=1e-5)


@pytest.mark.parametrize("elem, dtype", [
    (TensorProto.FLOAT16, np.float16), (TensorProto.DOUBLE, np.float64),
    (TensorProto.INT64, np.int64), (TensorProto.INT32, np.int32), (TensorProto.UINT8, np.uint8),
])
def test_types_cross_the_boundary(elem, dtype):
    nodes = [helper.make_node("Add", ["a", "b"], ["s"], name="add"),
             helper.make_node("Mul", ["s", "a"], ["y"], name="mul"),
             helper.make_node("Greater", ["y", "b"], ["g"], name="gt")]
    model = make_model(nodes, [("a", elem, [2, 3]), ("b", elem, [2, 3])],
                       [("y", elem, [2, 3]), ("g", TensorProto.BOOL, [2, 3])])
    rng = np.random.default_rng(2)
    feeds = {"a": (rng.random((2, 3)) * 5).astype(dtype),
             "b": (rng.random((2, 3)) * 5).astype(dtype)}
    sess = session(model)
    assert set(placement(sess).values()) == {"openvino"}
    got = sess.run(None, feeds)
    assert_close(got, ort_run(model, feeds), rtol=1e-3 if dtype == np.float16 else 1e-6)


def test_scalar_and_empty_tensors():
    nodes = [helper.make_node("Mul", ["x", "s"], ["y"], name="mul")]
    model = make_model(nodes, [("x", TensorProto.FLOAT, [0, 3]), ("s", TensorProto.FLOAT, [])],
                       [("y", TensorProto.FLOAT, [0, 3])])
    feeds = {"x": np.zeros((0, 3), np.float32), "s": np.array(2.0, np.float32)}
    sess = session(model)
    assert_close(sess.run(None, feeds), ort_run(model, feeds))


def test_outputs_are_owned_and_not_reused():
    # Large outputs are written straight into fresh arrays: each run's result is its own.
    nodes = [helper.make_node("Relu", ["x"], ["y"], name="relu")]
    model = make_model(nodes, [("x", TensorProto.FLOAT, [64, 128])],
                       [("y", TensorProto.FLOAT, [64, 128])])
    sess = session(model)
    x1 = np.random.default_rng(3).standard_normal((64, 128)).astype(np.float32)
    (y1,) = sess.run(None, {"x": x1})
    (y2,) = sess.run(None, {"x": -x1})
    assert y1.flags.owndata and y1.flags.writeable
    assert not np.shares_memory(y1, y2)
    np.testing.assert_array_equal(y1, np.maximum(x1, 0))
    np.testing.assert_array_equal(y2, np.maximum(-x1, 0))


def test_read_only_and_strided_inputs():
    model = mlp_model(batch=2)
    base = np.random.default_rng(4).standard_normal((2, 16)).astype(np.float32)
    strided = base[:, ::2]
    frozen = np.ascontiguousarray(strided)
    frozen.flags.writeable = False
    sess = session(model)
    expected = ort_run(model, {"x": np.ascontiguousarray(strided)})
    assert_close(sess.run(None, {"x": strided}), expected)
    assert_close(sess.run(None, {"x": frozen}), expected)


# ---- partitioning ---------------------------------------------------------------------------
def test_unsupported_op_forces_a_split():
    model = det_split_model()
    x = np.random.default_rng(5).random((4, 4)).astype(np.float32)
    sess = session(model, providers=("openvino", "cpu"))
    where = placement(sess)
    assert where["det"] == "cpu"
    assert where["relu"] == "openvino" and where["matmul"] == "openvino"
    reason = next(n for n in sess.explain()["nodes"] if n["node"] == "det")
    assert "Det" in reason["not_taken_by"]["openvino"]
    assert_close(sess.run(None, {"x": x}), ort_run(model, {"x": x}), rtol=1e-5, atol=1e-6)
    providers = [p["provider"] for p in sess.explain()["partitions"]]
    assert "cpu" in providers and "openvino" in providers


def test_ml_domain_op_falls_back():
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("Binarizer", ["r"], ["s"], domain="ai.onnx.ml", threshold=0.5,
                              name="binarizer"),
             helper.make_node("Exp", ["s"], ["y"], name="exp")]
    model = make_model(nodes, [("x", TensorProto.FLOAT, [2, 3])],
                       [("y", TensorProto.FLOAT, [2, 3])], extra_opsets=[("ai.onnx.ml", 3)])
    x = np.random.default_rng(6).standard_normal((2, 3)).astype(np.float32)
    sess = session(model, providers=("openvino", "cpu"))
    where = placement(sess)
    assert where == {"relu": "openvino", "binarizer": "cpu", "exp": "openvino"}
    assert_close(sess.run(None, {"x": x}), ort_run(model, {"x": x}))


def test_min_subgraph_size_sends_small_partitions_to_cpu():
    model = det_split_model()
    x = np.random.default_rng(7).random((4, 4)).astype(np.float32)
    small = session(model, providers=("openvino", "cpu"), options={"min_subgraph_size": 3})
    where = placement(small)
    # Only the Add/Relu/MatMul run reaches 3 nodes; the lone Mul after Det goes to the CPU.
    assert where["square"] == "cpu" and where["matmul"] == "openvino"
    everything = session(model, providers=("openvino", "cpu"),
                         options={"min_subgraph_size": 100})
    assert set(placement(everything).values()) == {"cpu"}
    expected = ort_run(model, {"x": x})
    assert_close(small.run(None, {"x": x}), expected, rtol=1e-5, atol=1e-6)
    assert_close(everything.run(None, {"x": x}), expected, rtol=1e-5, atol=1e-6)


def test_exclude_ops_is_honoured():
    model = mlp_model(batch=2)
    sess = session(model, providers=("openvino", "cpu"), options={"exclude_ops": "Softmax"})
    assert placement(sess)["softmax"] == "cpu"
    x = np.ones((2, 8), np.float32)
    assert_close(sess.run(None, {"x": x}), ort_run(model, {"x": x}))


def test_compile_failure_falls_back_to_cpu(monkeypatch, caplog):
    # A property OpenVINO rejects makes the real compile_model call fail.
    original = OpenVINOProvider.compile

    def failing_compile(self, subgraph, context):
        self.compile_config = dict(self.compile_config, FERRY_NOT_A_PROPERTY="1")
        return original(self, subgraph, context)

    monkeypatch.setattr(OpenVINOProvider, "compile", failing_compile)
    model = mlp_model(batch=2)
    sess = session(model, providers=("openvino", "cpu"))
    assert set(placement(sess).values()) == {"cpu"}
    reason = sess.explain()["nodes"][0]["not_taken_by"]["openvino"]
    assert reason.startswith("compile failed")
    x = np.ones((2, 8), np.float32)
    assert_close(sess.run(None, {"x": x}), ort_run(model, {"x": x}))


def _if_with_det_model():
    then = helper.make_graph([helper.make_node("Det", ["r"], ["o"])], "then", [],
                             [helper.make_tensor_value_info("o", TensorProto.FLOAT, [])])
    other = helper.make_graph([helper.make_node("ReduceSum", ["r"], ["o"], keepdims=0)], "else",
                              [], [helper.make_tensor_value_info("o", TensorProto.FLOAT, [])])
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0, name="sum"),
             helper.make_node("Greater", ["s", "zero"], ["c"], name="gt"),
             helper.make_node("If", ["c"], ["o"], then_branch=then, else_branch=other,
                              name="if"),
             helper.make_node("Mul", ["o", "two"], ["y"], name="mul")]
    return make_model(nodes, [("x", TensorProto.FLOAT, [3, 3])], [("y", TensorProto.FLOAT, [])],
                      [("zero", np.array(0, np.float32)), ("two", np.array(2, np.float32))])


def test_control_flow_openvino_cannot_convert_runs_on_cpu():
    model = _if_with_det_model()
    sess = session(model, providers=("openvino", "cpu"))
    where = placement(sess)
    assert where["if"] == "cpu" and where["relu"] == "openvino"
    rng = np.random.default_rng(8)
    for sign in (1, -1):
        x = (rng.random((3, 3)) * sign).astype(np.float32)
        assert_close(sess.run(None, {"x": x}), ort_run(model, {"x": x}), rtol=1e-5, atol=1e-6)


def test_loop_openvino_converts_runs_on_openvino():
    body = helper.make_graph(
        [helper.make_node("Add", ["acc", "x"], ["acc2"]),
         helper.make_node("Identity", ["cond"], ["cond2"]),
         helper.make_node("Identity", ["acc2"], ["scan"])], "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc", TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info("cond2", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc2", TensorProto.FLOAT, [3]),
         helper.make_tensor_value_info("scan", TensorProto.FLOAT, [3])])
    nodes = [helper.make_node("Loop", ["n", "t", "a0"], ["af", "sc"], body=body, name="loop"),
             helper.make_node("Relu", ["sc"], ["y"], name="relu")]
    model = make_model(nodes, [("x", TensorProto.FLOAT, [3]), ("a0", TensorProto.FLOAT, [3])],
                       [("y", TensorProto.FLOAT, None), ("af", TensorProto.FLOAT, None)],
                       [("n", np.array(4, np.int64)), ("t", np.array(True))])
    rng = np.random.default_rng(9)
    feeds = {"x": rng.standard_normal(3).astype(np.float32),
             "a0": rng.standard_normal(3).astype(np.float32)}
    sess = session(model, providers=("openvino", "cpu"))
    assert placement(sess)["loop"] == "openvino"
    assert_close(sess.run(None, feeds), ort_run(model, feeds))


def test_sequence_values_stay_on_cpu():
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("SequenceConstruct", ["r", "x"], ["seq"], name="construct"),
             helper.make_node("ConcatFromSequence", ["seq"], ["c"], axis=0, name="concat"),
             helper.make_node("Neg", ["c"], ["y"], name="neg")]
    model = make_model(nodes, [("x", TensorProto.FLOAT, [2, 2])],
                       [("y", TensorProto.FLOAT, [4, 2])])
    sess = session(model, providers=("openvino", "cpu"))
    where = placement(sess)
    assert where["construct"] == "cpu" and where["concat"] == "cpu"
    assert where["relu"] == "openvino"
    x = np.random.default_rng(10).standard_normal((2, 2)).astype(np.float32)
    assert_close(sess.run(None, {"x": x}), ort_run(model, {"x": x}))


def test_overridable_initializer_is_an_input():
    nodes = [helper.make_node("Mul", ["x", "k"], ["y"], name="mul")]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2]),
                     helper.make_tensor_value_info("k", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        initializer=[onnx.numpy_helper.from_array(np.array([2, 3], np.float32), "k")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    sess = session(model)
    x = np.array([1, 1], np.float32)
    np.testing.assert_array_equal(sess.run(None, {"x": x})[0], [2, 3])
    np.testing.assert_array_equal(
        sess.run(None, {"x": x, "k": np.array([5, 7], np.float32)})[0], [5, 7])


# ---- precision and devices ------------------------------------------------------------------
@pytest.mark.parametrize("precision", ["FP32", "FP16", "BF16", "ACCURACY"])
def test_precision_is_reported(precision):
    model = mlp_model(batch=2)
    sess = session(model, options={"precision": precision})
    (details,) = ov_details(sess)
    assert details["precision_requested"] == precision
    effective = ov.Core().compile_model(
        ov.Core().read_model(model.SerializeToString(), b""), "CPU",
        {"INFERENCE_PRECISION_HINT": {"FP32": "f32", "FP16": "f16", "BF16": "bf16",
                                      "ACCURACY": "f32"}[precision]}
    ).get_property("INFERENCE_PRECISION_HINT").get_type_name()
    if precision == "ACCURACY":
        assert details["execution_mode"] == "ACCURACY"
    else:
        assert details["precision"] == effective
    x = np.ones((2, 8), np.float32)
    tol = 1e-5 if details["precision"] == "f32" else 3e-2
    assert_close(sess.run(None, {"x": x}), ort_run(model, {"x": x}), rtol=tol, atol=tol)


@pytest.mark.parametrize("device", ["AUTO", "AUTO:CPU", "HETERO:CPU", "MULTI:CPU"])
def test_meta_devices(device):
    model = mlp_model(batch=2)
    sess = session(model, options={"device_type": device, "num_of_threads": 1})
    (details,) = ov_details(sess)
    assert details["device_type"] == device
    assert details["execution_devices"] == ["CPU"]
    x = np.ones((2, 8), np.float32)
    assert_close(sess.run(None, {"x": x}), ort_run(model, {"x": x}))


def test_threads_follow_session_options():
    so = SessionOptions()
    so.intra_op_num_threads = 1
    sess = InferenceSession(mlp_model().SerializeToString(), so, providers=["openvino"])
    assert ov_details(sess)[0]["num_threads"] == 1
    sess = session(mlp_model(), options={"num_of_threads": 2, "num_streams": 2})
    assert ov_details(sess)[0]["num_threads"] == 2
    assert ov_details(sess)[0]["num_streams"] == 2


def test_profiling_records_openvino_partitions(tmp_path):
    so = SessionOptions()
    so.enable_profiling = True
    so.profile_file_prefix = str(tmp_path / "prof")
    sess = InferenceSession(mlp_model(batch=1).SerializeToString(), so, providers=["openvino"])
    sess.run(None, {"x": np.ones((1, 8), np.float32)})
    path = sess.end_profiling()
    with open(path) as f:
        assert "openvino" in f.read()


# ---- nodes OpenVINO would get wrong ---------------------------------------------------------
def test_tile_with_runtime_repeats_is_refused():
    nodes = [helper.make_node("Tile", ["x", "reps"], ["y"], name="tile_dyn"),
             helper.make_node("Tile", ["x", "creps"], ["z"], name="tile_const")]
    model = make_model(nodes, [("x", TensorProto.FLOAT, [2, 3]),
                               ("reps", TensorProto.INT64, [2])],
                       [("y", TensorProto.FLOAT, None), ("z", TensorProto.FLOAT, [4, 3])],
                       [("creps", np.array([2, 1], np.int64))])
    sess = session(model, providers=("openvino", "cpu"))
    where = placement(sess)
    assert where == {"tile_dyn": "cpu", "tile_const": "openvino"}
    feeds = {"x": np.arange(6, dtype=np.float32).reshape(2, 3),
             "reps": np.array([3, 2], np.int64)}
    assert_close(sess.run(None, feeds), ort_run(model, feeds))


@pytest.mark.parametrize("size, refused", [(5, True), (6, False)])
def test_pool_ceil_mode_window_in_padding_is_refused(size, refused):
    # kernel 2, stride 2, ceil: a 5-wide input with pads (1, 1) gets a last window that starts
    # in the end padding, which ONNX drops and OpenVINO keeps.
    nodes = [helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], strides=[2, 2],
                              pads=[1, 1, 1, 1], ceil_mode=1, name="pool")]
    model = make_model(nodes, [("x", TensorProto.FLOAT, [1, 1, size, size])],
                       [("y", TensorProto.FLOAT, None)])
    sess = session(model, providers=("openvino", "cpu"))
    assert placement(sess)["pool"] == ("cpu" if refused else "openvino")
    x = np.random.default_rng(11).standard_normal((1, 1, size, size)).astype(np.float32)
    assert_close(sess.run(None, {"x": x}), ort_run(model, {"x": x}))


def test_topk_with_runtime_k_is_refused():
    nodes = [helper.make_node("TopK", ["x", "k"], ["v1", "i1"], axis=1, name="topk_dyn"),
             helper.make_node("TopK", ["x", "ck"], ["v2", "i2"], axis=1, name="topk_const")]
    model = make_model(nodes, [("x", TensorProto.INT64, [2, 6]), ("k", TensorProto.INT64, [1])],
                       [("v1", TensorProto.INT64, None), ("i1", TensorProto.INT64, None),
                        ("v2", TensorProto.INT64, None), ("i2", TensorProto.INT64, None)],
                       [("ck", np.array([3], np.int64))])
    sess = session(model, providers=("openvino", "cpu"))
    assert placement(sess) == {"topk_dyn": "cpu", "topk_const": "openvino"}
    feeds = {"x": np.array([[0, 0, 0, 0, 1, 1], [2, 1, 1, 1, 1, 0]], np.int64),
             "k": np.array([3], np.int64)}
    assert_close(sess.run(None, feeds), ort_run(model, feeds))


def test_inputs_copied_for_binding_stay_alive_until_the_run_ends():
    # Read-only feeds are copied before OpenVINO shares their memory; each copy must live
    # until infer() is done, or a later copy reuses its memory (both inputs would then read
    # the same data).
    nodes = [helper.make_node("Concat", ["a", "b", "c"], ["y"], axis=1, name="concat")]
    model = make_model(nodes, [(n, TensorProto.FLOAT, [2, 3]) for n in "abc"],
                       [("y", TensorProto.FLOAT, [2, 9])])
    rng = np.random.default_rng(12)
    feeds = {}
    for n in "abc":
        arr = rng.standard_normal((2, 3)).astype(np.float32)
        arr.flags.writeable = False
        feeds[n] = arr
    sess = session(model)
    for _ in range(3):
        assert_close(sess.run(None, feeds), ort_run(model, feeds))
