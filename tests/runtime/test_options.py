"""SessionOptions / RunOptions: ORT names, validation, thread defaults."""

from __future__ import annotations

import os

import pytest

from runtime import ExecutionMode, GraphOptimizationLevel, RunOptions, SessionOptions
from runtime.errors import InvalidArgument
from runtime.options import default_thread_count


def test_defaults_match_onnxruntime():
    so = SessionOptions()
    assert so.graph_optimization_level == GraphOptimizationLevel.ORT_ENABLE_ALL
    assert so.execution_mode == ExecutionMode.ORT_SEQUENTIAL
    assert so.intra_op_num_threads == 0 and so.inter_op_num_threads == 0
    assert so.enable_mem_pattern and not so.enable_profiling
    assert so.log_severity_level == 2
    assert not so.strict_providers


def test_enum_values_are_orts():
    import onnxruntime as ort

    for name in ("ORT_DISABLE_ALL", "ORT_ENABLE_BASIC", "ORT_ENABLE_EXTENDED", "ORT_ENABLE_ALL"):
        assert int(getattr(GraphOptimizationLevel, name)) == int(
            getattr(ort.GraphOptimizationLevel, name))


@pytest.mark.parametrize("field,value", [("intra_op_num_threads", -1),
                                         ("intra_op_num_threads", "2"),
                                         ("graph_optimization_level", 5),
                                         ("execution_mode", 7),
                                         ("log_severity_level", 9)])
def test_bad_values_are_refused(field, value):
    so = SessionOptions()
    with pytest.raises(InvalidArgument):
        setattr(so, field, value)


def test_thread_default_respects_affinity():
    n = default_thread_count()
    assert 1 <= n <= len(os.sched_getaffinity(0))


def test_thread_default_respects_cgroup_quota(monkeypatch):
    import runtime.options as options

    monkeypatch.setattr(options, "_cgroup_cpu_limit", lambda: 1.0)
    assert options.default_thread_count() == 1
    monkeypatch.setattr(options, "_cgroup_cpu_limit", lambda: 0.3)
    assert options.default_thread_count() == 1


def test_config_entries():
    so = SessionOptions()
    so.add_session_config_entry("session.x", "1")
    assert so.get_session_config_entry("session.x") == "1"
    with pytest.raises(InvalidArgument):
        so.get_session_config_entry("nope")


def test_run_options_terminate_and_tag():
    ro = RunOptions()
    assert not ro.terminate
    ro.terminate = True
    assert ro.terminate
    ro.log_tag = "req-1"
    assert ro.run_tag == "req-1"


def test_allow_spinning_entry_sets_the_pools_spin():
    """onnxruntime's session.intra_op.allow_spinning: "0" makes idle workers sleep at once;
    anything but "0"/"1" is refused when set."""
    fk = pytest.importorskip("ferry_kernels")
    from onnx import TensorProto, helper

    from runtime import InferenceSession

    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    old = fk.get_spin_us()
    try:
        so = SessionOptions()
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        InferenceSession(model, so, providers=["cpu"])
        assert fk.get_spin_us() == 0
        InferenceSession(model, providers=["cpu"])
        assert fk.get_spin_us() == fk.DEFAULT_SPIN_US == 20000  # the README's 20 ms
    finally:
        fk.set_spin_us(old)
    with pytest.raises(InvalidArgument, match="allow_spinning"):
        SessionOptions().add_session_config_entry("session.intra_op.allow_spinning", "yes")
