"""RunOptions.terminate and timeout_s stop a run inside a C++ plan (checked before every step),
not only between partitions: the run ends with RunCancelled, the plan stays cached and the next
run completes. Sequential and ORT_PARALLEL plans."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto as TP
from onnx import helper

from runtime import ExecutionMode, InferenceSession, RunOptions, SessionOptions
from runtime.errors import RunCancelled
from tests.conftest import make_model

pytest.importorskip("ferry_kernels")

N = 64


def chain(prefix, src, steps, nodes):
    prev = src
    for i in range(steps):
        nodes.append(helper.make_node("MatMul", [prev, "w"], [f"{prefix}{i}"]))
        prev = f"{prefix}{i}"
    return prev


def model_with_hook(branches=1):
    """MatMuls, then Hardmax (numpy: a Python step inside the C++ plan), then more MatMuls,
    in each branch."""
    nodes, outs = [], []
    for b in range(branches):
        mid = chain(f"a{b}_", "x", 20, nodes)
        nodes.append(helper.make_node("Hardmax", [mid], [f"h{b}"], axis=-1))
        outs.append((chain(f"c{b}_", f"h{b}", 20, nodes), TP.FLOAT, [N, N]))
    return make_model(nodes, [("x", TP.FLOAT, [N, N])], outs,
                      [("w", np.eye(N, dtype=np.float32))], opset=17)


@pytest.fixture
def hook(monkeypatch):
    """While armed, the Hardmax step sets RunOptions.terminate and counts its calls."""
    from providers.cpu import opset

    opset.registered_ops()  # loads every op family
    impl = opset.lookup("Hardmax", "", 17)
    state = {"ro": None, "calls": 0}
    original = impl.compute

    def compute(*args, **kwargs):
        if state["ro"] is not None:
            state["calls"] += 1
            state["ro"].terminate = True
        return original(*args, **kwargs)

    monkeypatch.setattr(impl, "compute", compute)
    return state


def session(model, parallel=False):
    so = SessionOptions()
    so.intra_op_num_threads = 1
    if parallel:
        so.execution_mode = ExecutionMode.ORT_PARALLEL
        so.inter_op_num_threads = 2
    sess = InferenceSession(model.SerializeToString(), so, providers=["cpu"])
    x = np.random.default_rng(0).standard_normal((N, N)).astype(np.float32)
    sess.run(None, {"x": x})  # first run: traced, the plan is built
    return sess, x


def plans(sess):
    return sess.explain()["partitions"][0]["details"]["plans"]


@pytest.mark.parametrize("parallel", [False, True])
def test_terminate_set_during_a_plan_stops_it_at_the_next_step(hook, parallel):
    sess, x = session(model_with_hook(branches=2 if parallel else 1), parallel)
    assert plans(sess) and "numpy:Hardmax" in plans(sess)[0]["kernels"]
    expected = sess.run(None, {"x": x})
    ro = RunOptions()
    hook["ro"] = ro
    # terminate is set by a step in the middle of the plan: only the plan loop's own check
    # (before every step) can stop the run there.
    with pytest.raises(RunCancelled, match="terminate"):
        sess.run(None, {"x": x}, ro)
    assert hook["calls"] >= 1
    hook["ro"] = None
    # The plan is kept, and the next run completes with the same results.
    assert plans(sess)
    for got, want in zip(sess.run(None, {"x": x}), expected):
        np.testing.assert_array_equal(got, want)


def test_timeout_passes_to_the_plan_loop(hook):
    sess, x = session(model_with_hook())
    ro = RunOptions()
    ro.timeout_s = 3600.0
    expected = sess.run(None, {"x": x}, ro)  # a generous timeout does not stop anything
    ro.timeout_s = 1e-9
    with pytest.raises(RunCancelled, match="timeout"):
        sess.run(None, {"x": x}, ro)
    assert plans(sess)
    ro.timeout_s = None
    np.testing.assert_array_equal(sess.run(None, {"x": x}, ro)[0], expected[0])


def test_plan_run_checks_its_cancel_argument():
    import ferry_kernels as fk

    with pytest.raises(ValueError, match="uint8"):
        fk.Plan(0, [], []).run([], [], cancel=np.ones(1, np.float32))
    plan = fk.Plan(0, [("input", 0, [1], "float32", None), ("output", 0, [1], "float32", None)],
                   [(lambda a: a, [0], [1])])
    out = np.empty(1, np.float32)
    plan.run([np.ones(1, np.float32)], [out], cancel=np.zeros(1, np.uint8), timeout_s=60.0)
    assert out[0] == 1.0
    with pytest.raises(RuntimeError, match="cancelled"):
        plan.run([np.ones(1, np.float32)], [out], cancel=np.ones(1, np.uint8))
    with pytest.raises(RuntimeError, match="timed out"):
        plan.run([np.ones(1, np.float32)], [out], timeout_s=-1.0)


def test_plan_run_adds_each_steps_time_to_step_ns():
    """Plan.run(step_ns=...) is the fast path's per-step profile: each step's time is added to
    its slot (a slow Python step shows as the slow one), and a bad array is refused."""
    import time

    import ferry_kernels as fk

    def slow(a):
        time.sleep(0.02)
        return a

    values = [("input", 0, [1], "float32", None), ("arena", 0, [1], "float32", None),
              ("output", 0, [1], "float32", None)]
    plan = fk.Plan(64, values, [(lambda a: a + 1, [0], [1]), (slow, [1], [2])])
    acc = np.zeros(2, np.int64)
    out = np.empty(1, np.float32)
    for _ in range(2):
        plan.run([np.ones(1, np.float32)], [out], step_ns=acc)
    assert out[0] == 2.0
    assert acc[1] >= 2 * 20_000_000 and 0 < acc[0] < acc[1]
    with pytest.raises(ValueError, match="step_ns"):
        plan.run([np.ones(1, np.float32)], [out], step_ns=np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="step_ns"):
        plan.run([np.ones(1, np.float32)], [out], step_ns=np.zeros(2, np.float64))
