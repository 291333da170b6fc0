"""OpenVINO partitions and declared input shapes: one compile with bounded dims
(``ov.Dimension(min, max)``) for a declared range, static compiles for fixed dims, refusal of
inputs outside the range; results against onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto

ov = pytest.importorskip("openvino")

from providers.openvino.partition import bounded_shapes
from runtime import InferenceSession, SessionOptions, ir
from runtime.errors import InvalidArgument
from runtime.options import ShapeRange
from tests.providers.openvino.ov_helpers import (
    assert_close,
    mlp_model,
    ort_run,
    ov_details,
    placement,
)


def _session(model, so, options=None):
    return InferenceSession(model.SerializeToString(), so,
                            providers=[("openvino", dict(options or {}))])


def _compiled_input_shapes(sess) -> list:
    parts = [p.compiled for p in sess._partitioning.partitions if p.provider.name == "openvino"]
    return [[str(port.get_partial_shape()) for port in part._main.compiled.inputs]
            for part in parts]


def _x(n, seed=0):
    return np.random.default_rng(seed).standard_normal((n, 8)).astype(np.float32)


@pytest.mark.parametrize("dynamic_option", [False, True])
def test_declared_range_compiles_once_with_bounded_dims(dynamic_option):
    model = mlp_model()
    so = SessionOptions()
    so.set_input_shape_range("x", [1, 8], [6, 8], [4, 8])
    sess = _session(model, so, {"enable_dynamic_shapes": dynamic_option})
    assert set(placement(sess).values()) == {"openvino"}
    (details,) = ov_details(sess)
    assert details["shape_mode"] == "bounded"
    assert details["input_bounds"] == {"x": [[1, 6], [8, 8]]}
    expected_shape = str(ov.PartialShape([ov.Dimension(1, 6), 8]))
    assert _compiled_input_shapes(sess) == [[expected_shape]]
    for n in (1, 4, 6):
        x = _x(n, seed=n)
        assert_close(sess.run(None, {"x": x}), ort_run(model, {"x": x}))
    # One compile covered every shape of the range (no per-shape compiles).
    (details,) = ov_details(sess)
    assert details["compiles"] == 1


def test_outside_the_range_is_refused_before_openvino_runs():
    so = SessionOptions()
    so.set_input_shape_range("x", [2, 8], [4, 8])
    sess = _session(mlp_model(), so)
    for n in (1, 5):
        with pytest.raises(InvalidArgument, match=f"dimension 0 is {n}, outside its declared "
                                                  r"range \[2, 4\]"):
            sess.run(None, {"x": _x(n)})


def test_without_ranges_shapes_stay_per_shape():
    sess = _session(mlp_model(), SessionOptions())
    (details,) = ov_details(sess)
    assert details["shape_mode"] == "per-shape" and "input_bounds" not in details


def test_single_valued_range_compiles_static():
    model = mlp_model()
    so = SessionOptions()
    so.set_input_shape_range("x", [3, 8], [3, 8])
    sess = _session(model, so)
    (details,) = ov_details(sess)
    assert details["shape_mode"] == "static" and details["compiles"] == 1
    x = _x(3)
    assert_close(sess.run(None, {"x": x}), ort_run(model, {"x": x}))


def test_free_dimension_override_compiles_static_and_matches_onnxruntime():
    import onnxruntime as ort

    model = mlp_model()
    so = SessionOptions()
    so.add_free_dimension_override_by_name("N", 5)
    sess = _session(model, so)
    (details,) = ov_details(sess)
    assert details["shape_mode"] == "static"
    assert sess.get_inputs()[0].shape == [5, 8]
    oso = ort.SessionOptions()
    oso.add_free_dimension_override_by_name("N", 5)
    ref = ort.InferenceSession(model.SerializeToString(), oso,
                               providers=["CPUExecutionProvider"])
    x = _x(5, seed=3)
    assert_close(sess.run(None, {"x": x}), ref.run(None, {"x": x}))


def test_memory_planned_at_creation_with_openvino():
    # The max-shape run at creation happens on OpenVINO too: its compile is ready and the
    # result of that run is discarded; memory_stats still answers.
    so = SessionOptions()
    so.set_input_shape_range("x", [1, 8], [16, 8])
    sess = _session(mlp_model(), so)
    assert sess.explain()["input_shapes"]["planned_at_creation"]["ok"] is True
    assert "openvino" in sess.memory_stats()["providers"]


def test_bounded_shapes_logic():
    rng = {"a": ShapeRange((1, 3), (2, 3), (8, 3))}
    a = ir.ValueInfo("a", TensorProto.FLOAT, ("N", 3))
    b = ir.ValueInfo("b", TensorProto.FLOAT, (2, 2))
    inner = ir.ValueInfo("inner", TensorProto.FLOAT, ("K",))
    assert bounded_shapes([a, b], rng) == {"a": [(1, 8), (3, 3)], "b": [(2, 2), (2, 2)]}
    # An inner value with a dynamic dim has no declared range: no bounded compile.
    assert bounded_shapes([a, inner], rng) is None
    # A rank the range does not fit is not bounded by it.
    c = ir.ValueInfo("a", TensorProto.FLOAT, ("N",))
    assert bounded_shapes([c], rng) is None
    # Unknown rank: the range gives it.
    d = ir.ValueInfo("a", TensorProto.FLOAT, None)
    assert bounded_shapes([d], rng) == {"a": [(1, 8), (3, 3)]}
