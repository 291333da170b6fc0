"""The ORT-compatible API: descriptions, run(), input checking, options, explain()."""

from __future__ import annotations

import threading

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import runtime
from runtime import (GraphOptimizationLevel, InferenceSession, RunOptions, SessionOptions)
from runtime.errors import InvalidArgument, RunCancelled
from tests.conftest import make_model, ort_run


def test_module_level_provider_lists():
    assert "CPUExecutionProvider" in runtime.get_available_providers()
    everything = runtime.get_all_providers()
    for name in ("CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider",
                 "OpenVINOExecutionProvider"):
        assert name in everything
    reasons = runtime.get_unavailable_providers()
    assert "CUDAExecutionProvider" in reasons and reasons["CUDAExecutionProvider"]


def test_descriptions_like_onnxruntime(chain_model):
    import onnxruntime as ort

    ours = InferenceSession(chain_model.SerializeToString(), providers=["cpu"])
    theirs = ort.InferenceSession(chain_model.SerializeToString(),
                                  providers=["CPUExecutionProvider"])
    for a, b in ((ours.get_inputs(), theirs.get_inputs()),
                 (ours.get_outputs(), theirs.get_outputs())):
        assert [(x.name, x.type, x.shape) for x in a] == [(x.name, x.type, x.shape) for x in b]
    assert ours.get_providers() == ["CPUExecutionProvider"]
    assert isinstance(ours.get_session_options(), SessionOptions)


def test_overridable_initializers():
    nodes = [helper.make_node("Add", ["x", "bias"], ["y"])]
    model = make_model(nodes, [("x", TensorProto.FLOAT, [3]), ("bias", TensorProto.FLOAT, [3])],
                       [("y", TensorProto.FLOAT, [3])], [("bias", np.ones(3, np.float32))])
    sess = InferenceSession(model.SerializeToString())
    assert [i.name for i in sess.get_inputs()] == ["x"]
    assert [i.name for i in sess.get_overridable_initializers()] == ["bias"]
    x = np.arange(3, dtype=np.float32)
    np.testing.assert_array_equal(sess.run(None, {"x": x})[0], x + 1)
    np.testing.assert_array_equal(sess.run(None, {"x": x, "bias": 2 * x})[0], 3 * x)
    np.testing.assert_array_equal(sess.run(None, {"x": x})[0], x + 1)


def test_modelmeta():
    model = make_model([helper.make_node("Relu", ["x"], ["y"])], [("x", TensorProto.FLOAT, [1])],
                       [("y", TensorProto.FLOAT, [1])], name="gname")
    model.producer_name = "pytest"
    model.model_version = 7
    onnx.helper.set_model_props(model, {"author": "ferry"})
    meta = InferenceSession(model.SerializeToString()).get_modelmeta()
    assert (meta.producer_name, meta.graph_name, meta.version) == ("pytest", "gname", 7)
    assert meta.custom_metadata_map == {"author": "ferry"}


def test_run_output_selection(chain_model):
    sess = InferenceSession(chain_model.SerializeToString())
    x = np.ones((2, 4), np.float32)
    assert len(sess.run(None, {"x": x})) == 1
    assert len(sess.run(["y"], {"x": x})) == 1
    with pytest.raises(InvalidArgument, match="not an output"):
        sess.run(["z"], {"x": x})


@pytest.mark.parametrize("feed,needle", [
    ({"x": np.ones((2, 4), np.float64)}, "expected tensor(float)"),
    ({"x": np.ones((2, 4, 1), np.float32)}, "expected rank 2"),
    ({"x": np.ones((2, 5), np.float32)}, "dimension 1 must be 4"),
    ({"X": np.ones((2, 4), np.float32)}, "did you mean 'x'"),
    ({}, "missing input(s): 'x' (tensor(float), shape ['N', 4])"),
    ({"x": "text"}, "expected tensor(float)"),
])
def test_bad_inputs_are_named(chain_model, feed, needle):
    sess = InferenceSession(chain_model.SerializeToString())
    with pytest.raises(InvalidArgument) as exc:
        sess.run(None, feed)
    assert needle in str(exc.value)
    # the session still works afterwards
    sess.run(None, {"x": np.ones((1, 4), np.float32)})


def test_non_contiguous_and_read_only_inputs(chain_model):
    sess = InferenceSession(chain_model.SerializeToString())
    base = np.random.default_rng(1).standard_normal((4, 8)).astype(np.float32)
    x = base[::2, ::2]
    assert not x.flags.c_contiguous
    expected = ort_run(chain_model, {"x": np.ascontiguousarray(x)})[0]
    np.testing.assert_allclose(sess.run(None, {"x": x})[0], expected, rtol=1e-6)
    ro = np.ascontiguousarray(x)
    ro.setflags(write=False)
    np.testing.assert_allclose(sess.run(None, {"x": ro})[0], expected, rtol=1e-6)


def test_zero_size_and_nan_inputs(chain_model):
    sess = InferenceSession(chain_model.SerializeToString())
    assert sess.run(None, {"x": np.zeros((0, 4), np.float32)})[0].shape == (0, 4)
    x = np.array([[np.nan, np.inf, -np.inf, 1]], np.float32)
    np.testing.assert_array_equal(sess.run(None, {"x": x})[0], ort_run(chain_model, {"x": x})[0])


def test_dynamic_batch_gives_a_plan_per_shape(chain_model):
    sess = InferenceSession(chain_model.SerializeToString())
    for n in (1, 3, 1, 5, 3):
        x = np.random.default_rng(n).standard_normal((n, 4)).astype(np.float32)
        np.testing.assert_allclose(sess.run(None, {"x": x})[0],
                                   ort_run(chain_model, {"x": x})[0], rtol=1e-6)


def test_results_are_fresh_arrays(chain_model):
    sess = InferenceSession(chain_model.SerializeToString())
    x = np.ones((2, 4), np.float32)
    a = sess.run(None, {"x": x})[0]
    b = sess.run(None, {"x": x})[0]
    assert a is not b and not np.shares_memory(a, b)
    a[...] = 42
    np.testing.assert_array_equal(b, sess.run(None, {"x": x})[0])


def test_concurrent_runs_match_serial(chain_model):
    sess = InferenceSession(chain_model.SerializeToString())
    rng = np.random.default_rng(7)
    xs = [rng.standard_normal((int(rng.integers(1, 6)), 4)).astype(np.float32) for _ in range(40)]
    expected = [sess.run(None, {"x": x})[0] for x in xs]
    results = [None] * len(xs)

    def work(i):
        results[i] = sess.run(None, {"x": xs[i]})[0]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(xs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r, e in zip(results, expected):
        np.testing.assert_array_equal(r, e)


def test_terminate_stops_a_run(chain_model):
    sess = InferenceSession(chain_model.SerializeToString())
    ro = RunOptions()
    ro.terminate = True
    with pytest.raises(RunCancelled):
        sess.run(None, {"x": np.ones((2, 4), np.float32)}, ro)


def test_optimization_levels_and_saved_model(tmp_path, chain_model):
    nodes = [helper.make_node("Identity", ["x"], ["i"]), helper.make_node("Relu", ["i"], ["r"]),
             helper.make_node("Neg", ["x"], ["unused"]), helper.make_node("Relu", ["r"], ["y"])]
    model = make_model(nodes, [("x", TensorProto.FLOAT, [3])], [("y", TensorProto.FLOAT, [3])])
    x = np.array([-1, 0, 1], np.float32)
    outs = []
    for level in GraphOptimizationLevel:
        so = SessionOptions()
        so.graph_optimization_level = level
        so.optimized_model_filepath = str(tmp_path / f"opt_{level.name}.onnx")
        sess = InferenceSession(model.SerializeToString(), so)
        outs.append(sess.run(None, {"x": x})[0])
        saved = onnx.load(so.optimized_model_filepath)
        onnx.checker.check_model(saved)
        again = InferenceSession(so.optimized_model_filepath)
        np.testing.assert_array_equal(again.run(None, {"x": x})[0], outs[-1])
        n_nodes = len(saved.graph.node)
        assert n_nodes == (4 if level == GraphOptimizationLevel.ORT_DISABLE_ALL else 2)
    for o in outs[1:]:
        np.testing.assert_array_equal(outs[0], o)


def test_explain_reports_memory_plan_and_reasons(chain_model):
    sess = InferenceSession(chain_model.SerializeToString())
    sess.run(None, {"x": np.ones((2, 4), np.float32)})
    info = sess.explain()
    assert {n["provider"] for n in info["nodes"]} == {"cpu"}
    assert all(n["reason"] == "claimed" for n in info["nodes"])
    part = info["partitions"][0]["details"]
    assert part["static_shapes"] is True
    assert part["plans"] and part["plans"][0]["input_shapes"][0] == [2, 4]
    assert info["memory"]["planned_arena_bytes"] <= info["memory"]["naive_bytes"]


def test_profiling_writes_a_chrome_trace(tmp_path, chain_model):
    import json

    so = SessionOptions()
    so.enable_profiling = True
    so.profile_file_prefix = str(tmp_path / "prof")
    sess = InferenceSession(chain_model.SerializeToString(), so)
    sess.run(None, {"x": np.ones((2, 4), np.float32)})
    path = sess.end_profiling()
    events = json.load(open(path))
    ops = {e["args"].get("op_name") for e in events if e["cat"] == "Node"}
    assert ops == {"Add", "Relu", "Mul"}
    assert all(e["ph"] == "X" and e["dur"] >= 0 for e in events)


def test_closed_session_refuses_runs(chain_model):
    with InferenceSession(chain_model.SerializeToString()) as sess:
        sess.run(None, {"x": np.ones((1, 4), np.float32)})
    with pytest.raises(InvalidArgument, match="closed"):
        sess.run(None, {"x": np.ones((1, 4), np.float32)})


def test_unexpected_keyword(chain_model):
    with pytest.raises(InvalidArgument):
        InferenceSession(chain_model.SerializeToString(), provider=["cpu"])


def test_numpy_only_mode_matches_native(chain_model):
    x = np.random.default_rng(3).standard_normal((3, 4)).astype(np.float32)
    a = InferenceSession(chain_model.SerializeToString(),
                         providers=[("cpu", {"use_native_kernels": False})]).run(None, {"x": x})[0]
    b = InferenceSession(chain_model.SerializeToString()).run(None, {"x": x})[0]
    np.testing.assert_allclose(a, b, rtol=1e-6)
