"""Input shapes declared at session creation: onnxruntime's free-dimension overrides and
ferry's per-input shape ranges (validated against the model, enforced at run time, used to
plan memory up front)."""

from __future__ import annotations

import json
import logging

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from runtime import InferenceSession, SessionOptions
from runtime.errors import InvalidArgument
from runtime.options import PLAN_AT_CREATION_CONFIG_KEY, SHAPE_RANGES_CONFIG_KEY
from tests.conftest import make_model


def _ort_run(model, feeds, by_name=(), by_denotation=()):
    """onnxruntime's outputs with the same free-dimension overrides."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    for k, v in by_name:
        so.add_free_dimension_override_by_name(k, v)
    for k, v in by_denotation:
        so.add_free_dimension_override_by_denotation(k, v)
    sess = ort.InferenceSession(model.SerializeToString(), so,
                                providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def _session(model, so):
    return InferenceSession(model.SerializeToString(), so)


def shape_sum_model():
    """y = x + sum(shape(x)): the Shape folds away once x's shape is static."""
    nodes = [helper.make_node("Shape", ["x"], ["s"], name="shape"),
             helper.make_node("Cast", ["s"], ["sf"], to=TensorProto.FLOAT, name="cast"),
             helper.make_node("ReduceSum", ["sf"], ["t"], keepdims=0, name="sum"),
             helper.make_node("Add", ["x", "t"], ["y"], name="add")]
    return make_model(nodes, [("x", TensorProto.FLOAT, ["N", "C"])],
                      [("y", TensorProto.FLOAT, ["N", "C"])])


def mlp_model(seed=0):
    """x[N, 8], z[N, 8] -> MatMul(x + z) -> Relu."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((8, 16)).astype(np.float32)
    nodes = [helper.make_node("Add", ["x", "z"], ["s"], name="add"),
             helper.make_node("MatMul", ["s", "w"], ["h"], name="mm"),
             helper.make_node("Relu", ["h"], ["y"], name="relu")]
    return make_model(nodes, [("x", TensorProto.FLOAT, ["N", 8]),
                              ("z", TensorProto.FLOAT, ["N", 8])],
                      [("y", TensorProto.FLOAT, ["N", 16])], [("w", w)])


def _rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# ---- free-dimension overrides ----------------------------------------------------------------
def test_override_by_name_fixes_the_dim_folds_and_matches_onnxruntime():
    model = shape_sum_model()
    so = SessionOptions()
    so.add_free_dimension_override_by_name("N", 3)
    so.add_free_dimension_override_by_name("C", 5)
    sess = _session(model, so)
    assert sess.get_inputs()[0].shape == [3, 5]
    assert sess.get_outputs()[0].shape == [3, 5]
    info = sess.explain()
    # Static shapes let the Shape subgraph fold at creation.
    assert info["nodes_after_optimization"] < info["nodes_before_optimization"]
    assert info["input_shapes"]["free_dimension_overrides"] == {"N": 3, "C": 5}
    x = _rand(3, 5)
    expected = _ort_run(model, {"x": x}, by_name=[("N", 3), ("C", 5)])
    np.testing.assert_allclose(sess.run(None, {"x": x})[0], expected[0], rtol=1e-6)
    with pytest.raises(InvalidArgument, match="dimension 0 must be 3"):
        sess.run(None, {"x": _rand(4, 5)})


def test_override_applies_to_every_input_sharing_the_symbol():
    model = mlp_model()
    so = SessionOptions()
    so.add_free_dimension_override_by_name("N", 2)
    sess = _session(model, so)
    assert [a.shape for a in sess.get_inputs()] == [[2, 8], [2, 8]]
    feeds = {"x": _rand(2, 8, seed=1), "z": _rand(2, 8, seed=2)}
    np.testing.assert_allclose(sess.run(None, feeds)[0],
                               _ort_run(model, feeds, by_name=[("N", 2)])[0], rtol=1e-5)


def test_override_by_denotation_matches_onnxruntime():
    model = shape_sum_model()
    dim = model.graph.input[0].type.tensor_type.shape.dim[0]
    dim.denotation = "DATA_BATCH"
    so = SessionOptions()
    so.add_free_dimension_override_by_denotation("DATA_BATCH", 4)
    sess = _session(model, so)
    assert sess.get_inputs()[0].shape == [4, "C"]
    x = _rand(4, 2)
    expected = _ort_run(model, {"x": x}, by_denotation=[("DATA_BATCH", 4)])
    np.testing.assert_allclose(sess.run(None, {"x": x})[0], expected[0], rtol=1e-6)


def test_unused_override_warns_and_is_reported(caplog):
    so = SessionOptions()
    so.add_free_dimension_override_by_name("batch_size", 2)
    with caplog.at_level(logging.WARNING, logger="ferry"):
        sess = _session(shape_sum_model(), so)
    assert "batch_size" in caplog.text
    assert sess.explain()["input_shapes"]["free_dimension_overrides_unused"] == ["batch_size"]
    assert sess.get_inputs()[0].shape == ["N", "C"]


@pytest.mark.parametrize("name, value", [("N", -1), ("N", 2.0), ("N", True), ("", 1), (3, 1)])
def test_bad_overrides_raise(name, value):
    so = SessionOptions()
    with pytest.raises(InvalidArgument):
        so.add_free_dimension_override_by_name(name, value)
    with pytest.raises(InvalidArgument):
        so.add_free_dimension_override_by_denotation(name, value)


# ---- declaring ranges ------------------------------------------------------------------------
@pytest.mark.parametrize("lo, hi, opt", [
    ([1, 8], [4], None),            # ranks differ
    ([4, 8], [2, 8], None),         # min > max
    ([1, 8], [4, 8], [8, 8]),       # opt > max
    ([1, 8], [4, 8], [0, 8]),       # opt < min
    ([-1, 8], [4, 8], None),        # negative
    ([1.5, 8], [4, 8], None),       # not an integer
    ("1x8", [4, 8], None),          # not a list
])
def test_bad_range_declarations_raise(lo, hi, opt):
    so = SessionOptions()
    with pytest.raises(InvalidArgument):
        so.set_input_shape_range("x", lo, hi, opt)
    assert so.get_input_shape_ranges() == {}


def test_range_defaults_opt_to_max_and_accepts_numpy_ints():
    so = SessionOptions()
    so.set_input_shape_range("x", np.array([1, 8]), (np.int64(4), 8))
    (r,) = so.get_input_shape_ranges().values()
    assert r.min == (1, 8) and r.opt == (4, 8) and r.max == (4, 8)


@pytest.mark.parametrize("name, lo, hi, match", [
    ("xx", [1, 8], [4, 8], "no such input.*did you mean 'x'"),
    ("w", [8, 16], [8, 16], "initializer"),
    ("x", [1, 8, 1], [4, 8, 1], "rank 3 but the model declares rank 2"),
    ("x", [1, 1], [4, 4], "dimension 1 is fixed at 8"),
])
def test_range_checked_against_the_model_at_creation(name, lo, hi, match):
    so = SessionOptions()
    so.set_input_shape_range(name, lo, hi)
    with pytest.raises(InvalidArgument, match=match):
        _session(mlp_model(), so)


def test_shared_symbol_gets_the_intersection():
    so = SessionOptions()
    so.set_input_shape_range("x", [1, 8], [8, 8])
    so.set_input_shape_range("z", [2, 8], [16, 8], [12, 8])
    sess = _session(mlp_model(), so)
    ranges = sess.get_input_shape_ranges()
    assert ranges["x"] == {"min": [2, 8], "opt": [8, 8], "max": [8, 8]}
    assert ranges["z"] == {"min": [2, 8], "opt": [8, 8], "max": [8, 8]}
    so = SessionOptions()
    so.set_input_shape_range("x", [1, 8], [2, 8])
    so.set_input_shape_range("z", [4, 8], [16, 8])
    with pytest.raises(InvalidArgument, match="disagree on dimension 'N'"):
        _session(mlp_model(), so)


def test_single_valued_range_becomes_static_and_matches_onnxruntime():
    model = shape_sum_model()
    so = SessionOptions()
    so.set_input_shape_range("x", [1, 6], [8, 6])
    sess = _session(model, so)
    assert sess.get_inputs()[0].shape == ["N", 6]
    assert sess.explain()["input_shapes"]["dims_fixed_by_ranges"] == {"x": {1: 6}}
    for n in (1, 5, 8):
        x = _rand(n, 6, seed=n)
        expected = _ort_run(model, {"x": x}, by_name=[("C", 6)])
        np.testing.assert_allclose(sess.run(None, {"x": x})[0], expected[0], rtol=1e-6)


def test_undeclared_input_sharing_a_bounded_symbol_is_bounded_too():
    so = SessionOptions()
    so.set_input_shape_range("x", [1, 8], [4, 8], [2, 8])
    sess = _session(mlp_model(), so)
    assert sess.get_input_shape_ranges()["z"] == {"min": [1, 8], "opt": [2, 8], "max": [4, 8]}
    assert sess.explain()["input_shapes"]["ranges_derived_from_shared_dims"] == ["z"]
    with pytest.raises(InvalidArgument, match="'z': dimension 0 is 6"):
        sess.run(None, {"x": _rand(3, 8), "z": _rand(6, 8)})


def test_range_and_override_must_agree():
    so = SessionOptions()
    so.add_free_dimension_override_by_name("N", 16)
    so.set_input_shape_range("x", [1, 8], [8, 8])
    with pytest.raises(InvalidArgument, match="fixed at 16"):
        _session(mlp_model(), so)


# ---- enforcing ranges ------------------------------------------------------------------------
def test_out_of_range_input_refused_before_any_work():
    so = SessionOptions()
    so.set_input_shape_range("x", [1, 8], [4, 8])
    sess = _session(mlp_model(), so)

    def no_work(*a, **k):
        raise AssertionError("the executor ran")

    sess._executor.run = no_work
    with pytest.raises(InvalidArgument) as err:
        sess.run(None, {"x": _rand(5, 8), "z": _rand(5, 8)})
    text = str(err.value)
    assert "'x'" in text and "dimension 0" in text and "is 5" in text and "[1, 4]" in text


def test_in_range_inputs_match_onnxruntime():
    model = mlp_model()
    so = SessionOptions()
    so.set_input_shape_range("x", [1, 8], [6, 8], [3, 8])
    sess = _session(model, so)
    for n in (1, 3, 6):
        feeds = {"x": _rand(n, 8, seed=n), "z": _rand(n, 8, seed=10 + n)}
        np.testing.assert_allclose(sess.run(None, feeds)[0], _ort_run(model, feeds)[0],
                                   rtol=1e-5, atol=1e-6)


def test_io_binding_is_checked_too():
    so = SessionOptions()
    so.set_input_shape_range("x", [1, 8], [2, 8])
    sess = _session(mlp_model(), so)
    binding = sess.io_binding()
    binding.bind_cpu_input("x", _rand(3, 8))
    binding.bind_cpu_input("z", _rand(3, 8))
    binding.bind_output("y")
    with pytest.raises(InvalidArgument, match="outside its declared range"):
        sess.run_with_iobinding(binding)


# ---- memory planned up front ----------------------------------------------------------------
def test_memory_planned_and_reserved_for_max_shapes_at_creation():
    so = SessionOptions()
    so.set_input_shape_range("x", [1, 8], [32, 8])
    sess = _session(mlp_model(), so)
    stats = sess.memory_stats()
    assert stats["planned_bytes"] > 0 and stats["reserved_bytes"] >= stats["planned_bytes"]
    info = sess.explain()
    # z shares x's dim N: it is planned (and bounded) at the same size.
    assert info["input_shapes"]["planned_at_creation"] == {
        "shapes": {"x": [32, 8], "z": [32, 8]}, "ok": True}
    plans = [p for part in info["partitions"] for p in part["details"].get("plans", [])]
    assert [32, 8] in [s for p in plans for s in p["input_shapes"]]
    # A smaller request needs no more than was planned for the max shape.
    small = [p["arena_bytes"] for p in plans]
    sess.run(None, {"x": _rand(2, 8), "z": _rand(2, 8)})
    plans = [p for part in sess.explain()["partitions"] for p in part["details"]["plans"]]
    assert max(p["arena_bytes"] for p in plans) == max(small)


def test_planning_at_creation_can_be_turned_off_and_done_by_warmup():
    so = SessionOptions()
    so.set_input_shape_range("x", [1, 8], [16, 8])
    so.add_session_config_entry(PLAN_AT_CREATION_CONFIG_KEY, "0")
    sess = _session(mlp_model(), so)
    assert sess.memory_stats()["planned_bytes"] == 0
    assert sess.explain()["input_shapes"]["planned_at_creation"] is None
    sess.warmup()
    plans = [p for part in sess.explain()["partitions"] for p in part["details"]["plans"]]
    assert [[16, 8], [16, 8]] == plans[0]["input_shapes"]
    assert sess.memory_stats()["reserved_bytes"] > 0
    with pytest.raises(InvalidArgument):
        so.add_session_config_entry(PLAN_AT_CREATION_CONFIG_KEY, "yes")


def test_model_that_cannot_run_on_zeros_still_loads():
    # Range(0, limit, delta=0) fails on zeros: planning ahead is skipped, not fatal.
    nodes = [helper.make_node("Range", ["start", "limit", "delta"], ["y"], name="range")]
    model = make_model(nodes, [("start", TensorProto.FLOAT, []),
                               ("limit", TensorProto.FLOAT, []),
                               ("delta", TensorProto.FLOAT, [])],
                       [("y", TensorProto.FLOAT, ["K"])])
    so = SessionOptions()
    so.set_input_shape_range("delta", [], [])
    sess = _session(model, so)
    report = sess.explain()["input_shapes"]["planned_at_creation"]
    assert report["ok"] is False and report["error"]
    feeds = {"start": np.array(0, np.float32), "limit": np.array(5, np.float32),
             "delta": np.array(1, np.float32)}
    np.testing.assert_array_equal(sess.run(None, feeds)[0], _ort_run(model, feeds)[0])


# ---- the config-entry form -------------------------------------------------------------------
def test_config_entry_declares_ranges():
    so = SessionOptions()
    so.add_session_config_entry(SHAPE_RANGES_CONFIG_KEY, json.dumps(
        {"x": {"min": [1, 8], "max": [4, 8], "opt": [2, 8]}}))
    sess = _session(mlp_model(), so)
    assert sess.get_input_shape_ranges()["x"] == {"min": [1, 8], "opt": [2, 8], "max": [4, 8]}
    assert sess.explain()["input_shapes"]["input_shape_ranges"]["x"]["max"] == [4, 8]
    with pytest.raises(InvalidArgument, match="outside its declared range"):
        sess.run(None, {"x": _rand(5, 8), "z": _rand(5, 8)})


@pytest.mark.parametrize("text", ["not json", "[1, 2]", '{"x": {"min": [1]}}',
                                  '{"x": {"min": [2], "max": [1]}}',
                                  '{"x": {"min": [1], "max": [2], "mid": [1]}}'])
def test_bad_config_entry_raises(text):
    so = SessionOptions()
    with pytest.raises(InvalidArgument):
        so.add_session_config_entry(SHAPE_RANGES_CONFIG_KEY, text)


def test_options_without_shapes_change_nothing():
    sess = _session(mlp_model(), SessionOptions())
    assert sess.get_inputs()[0].shape == ["N", 8]
    assert sess.get_input_shape_ranges() == {}
    assert sess.memory_stats()["planned_bytes"] == 0
    shapes = sess.explain()["input_shapes"]
    assert shapes["input_shape_ranges"] == {} and shapes["planned_at_creation"] is None


def test_model_proto_is_not_modified():
    model = mlp_model()
    before = model.SerializeToString()
    so = SessionOptions()
    so.add_free_dimension_override_by_name("N", 2)
    _session(model, so)
    assert model.SerializeToString() == before
    assert isinstance(onnx.load_from_string(before), onnx.ModelProto)
