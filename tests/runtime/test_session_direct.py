"""Repeated requests go straight to the CPU partition's plan (InferenceSession._run_direct),
skipping the feed checks and the executor: the results, the errors and the options must be the
same as on the full path. Each test warms the direct path first, then checks one property."""

from __future__ import annotations

import gc
import threading
import weakref

import numpy as np
import pytest
from onnx import TensorProto, helper

from runtime import InferenceSession, RunOptions
from runtime.errors import InvalidArgument, RunCancelled, RuntimeException
from tests.conftest import make_model, ort_run

pytest.importorskip("ferry_kernels")

F = TensorProto.FLOAT


@pytest.fixture
def mlp():
    """x [N, 16] -> MatMul + bias -> Relu -> y, and MatMul -> z: two outputs, dynamic batch."""
    rng = np.random.default_rng(3)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"]),
             helper.make_node("Add", ["m", "b"], ["a"]),
             helper.make_node("Relu", ["a"], ["y"]),
             helper.make_node("MatMul", ["y", "w2"], ["z"])]
    return make_model(nodes, [("x", F, ["N", 16])], [("y", F, ["N", 8]), ("z", F, ["N", 3])],
                      [("w", rng.standard_normal((16, 8)).astype(np.float32)),
                       ("b", rng.standard_normal(8).astype(np.float32)),
                       ("w2", rng.standard_normal((8, 3)).astype(np.float32))])


def _x(n=4, seed=0):
    return np.random.default_rng(seed).standard_normal((n, 16)).astype(np.float32)


@pytest.fixture
def executor_calls(monkeypatch):
    """Counts the runs that take the full path (through the session's executor)."""
    from runtime.executor import Executor

    calls = {"n": 0}
    original = Executor.run

    def run(self, *args, **kwargs):
        calls["n"] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Executor, "run", run)
    return calls


def test_repeated_requests_skip_the_executor_and_match_onnxruntime(mlp, executor_calls):
    sess = InferenceSession(mlp.SerializeToString())
    x = _x()
    expected = ort_run(mlp, {"x": x})
    for i in range(4):
        got = sess.run(None, {"x": x})
        for g, e in zip(got, expected):
            np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5)
    # The first request traced the graph and built the plan; the others went straight to it.
    assert executor_calls["n"] == 1


@pytest.mark.parametrize("feed,needle", [
    ({"x": np.ones((4, 16), np.float64)}, "expected tensor(float)"),
    ({"x": np.ones((4, 16, 1), np.float32)}, "expected rank 2"),
    ({"x": np.ones((4, 15), np.float32)}, "dimension 1 must be 16"),
    ({"X": np.ones((4, 16), np.float32)}, "did you mean 'x'"),
    ({"x": np.ones((4, 16), np.float32), "extra": np.ones(1, np.float32)}, "not an input"),
    ({}, "missing input(s)"),
    ({"x": "text"}, "expected tensor(float)"),
])
def test_bad_inputs_after_warm_up_still_get_typed_errors(mlp, feed, needle):
    sess = InferenceSession(mlp.SerializeToString())
    x = _x()
    good = sess.run(None, {"x": x})
    sess.run(None, {"x": x})
    with pytest.raises(InvalidArgument) as exc:
        sess.run(None, feed)
    assert needle in str(exc.value)
    np.testing.assert_array_equal(sess.run(None, {"x": x})[0], good[0])


def test_bad_output_name_after_warm_up(mlp):
    sess = InferenceSession(mlp.SerializeToString())
    x = _x()
    sess.run(["y"], {"x": x})
    sess.run(["y"], {"x": x})
    with pytest.raises(InvalidArgument, match="not an output"):
        sess.run(["q"], {"x": x})


def test_output_selection_and_order(mlp, executor_calls):
    sess = InferenceSession(mlp.SerializeToString())
    x = _x(5, 1)
    y, z = ort_run(mlp, {"x": x})
    for _ in range(2):
        got_z, got_y = sess.run(["z", "y"], {"x": x})
        np.testing.assert_allclose(got_z, z, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(got_y, y, rtol=1e-5, atol=1e-5)
        (only_z,) = sess.run("z", {"x": x})
        np.testing.assert_allclose(only_z, z, rtol=1e-5, atol=1e-5)
        all_outputs = sess.run([], {"x": x})
        assert len(all_outputs) == 2
        np.testing.assert_allclose(all_outputs[1], z, rtol=1e-5, atol=1e-5)
    assert executor_calls["n"] == 3  # once per selection, then direct


def test_each_request_gets_fresh_arrays(mlp):
    sess = InferenceSession(mlp.SerializeToString())
    x = _x()
    runs = [sess.run(None, {"x": x}) for _ in range(3)]
    assert not np.shares_memory(runs[1][0], runs[2][0])
    assert all(o.flags.owndata and o.flags.writeable for r in runs for o in r)
    runs[1][0][...] = 42
    np.testing.assert_array_equal(runs[2][0], sess.run(None, {"x": x})[0])


def test_dynamic_batch_alternating_shapes(mlp):
    sess = InferenceSession(mlp.SerializeToString())
    for n in (1, 3, 1, 5, 3, 1, 5, 0):
        x = _x(n, n)
        for g, e in zip(sess.run(None, {"x": x}), ort_run(mlp, {"x": x})):
            assert g.shape == e.shape
            np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5)


def test_non_contiguous_and_read_only_inputs_after_warm_up(mlp):
    sess = InferenceSession(mlp.SerializeToString())
    base = _x(8)
    x = base[::2]
    assert not x.flags.c_contiguous
    expected = ort_run(mlp, {"x": np.ascontiguousarray(x)})
    for _ in range(2):
        sess.run(None, {"x": np.ascontiguousarray(x)})
    np.testing.assert_allclose(sess.run(None, {"x": x})[0], expected[0], rtol=1e-5, atol=1e-5)
    ro = np.ascontiguousarray(x)
    ro.setflags(write=False)
    np.testing.assert_allclose(sess.run(None, {"x": ro})[0], expected[0], rtol=1e-5, atol=1e-5)


def test_run_options_take_the_full_path(mlp):
    sess = InferenceSession(mlp.SerializeToString())
    x = _x()
    sess.run(None, {"x": x})
    sess.run(None, {"x": x})
    ro = RunOptions()
    ro.terminate = True
    with pytest.raises(RunCancelled):
        sess.run(None, {"x": x}, ro)
    ro.terminate = False
    np.testing.assert_array_equal(sess.run(None, {"x": x}, ro)[0], sess.run(None, {"x": x})[0])


def test_overridable_initializer_fed_after_warm_up():
    nodes = [helper.make_node("Add", ["x", "bias"], ["y"])]
    model = make_model(nodes, [("x", F, [3]), ("bias", F, [3])], [("y", F, [3])],
                       [("bias", np.ones(3, np.float32))])
    sess = InferenceSession(model.SerializeToString())
    x = np.arange(3, dtype=np.float32)
    for _ in range(3):
        np.testing.assert_array_equal(sess.run(None, {"x": x})[0], x + 1)
    np.testing.assert_array_equal(sess.run(None, {"x": x, "bias": 2 * x})[0], 3 * x)
    np.testing.assert_array_equal(sess.run(None, {"x": x})[0], x + 1)


def test_a_bad_index_names_the_node_and_keeps_the_plan(executor_calls):
    data = np.arange(12, dtype=np.float32).reshape(4, 3)
    nodes = [helper.make_node("Gather", ["d", "i"], ["g"], name="gather_rows"),
             helper.make_node("Relu", ["g"], ["y"])]
    model = make_model(nodes, [("i", TensorProto.INT64, [2])], [("y", F, [2, 3])], [("d", data)])
    sess = InferenceSession(model.SerializeToString())
    good = {"i": np.array([0, 3])}
    for _ in range(2):
        np.testing.assert_array_equal(sess.run(None, good)[0], data[[0, 3]])
    with pytest.raises(RuntimeException, match="gather_rows.*out of range"):
        sess.run(None, {"i": np.array([0, 7])})
    before = executor_calls["n"]
    for _ in range(3):
        np.testing.assert_array_equal(sess.run(None, good)[0], data[[0, 3]])
    # The failed request dropped the direct runner (one full run brings it back), but not the
    # plan: the requests after it run it directly, not node by node.
    assert executor_calls["n"] == before + 1
    plans = [p for part in sess.explain()["partitions"] for p in part["details"].get("plans", [])]
    assert len(plans) == 1


def test_profile_plan_after_warm_up(mlp, executor_calls):
    sess = InferenceSession(mlp.SerializeToString())
    feeds = {"x": _x()}
    sess.run(None, feeds)
    sess.run(None, feeds)
    rows = sess.profile_plan(feeds, runs=3)
    assert rows and all(r["mean_us"] >= 0 for r in rows)
    assert sum(r["mean_us"] for r in rows) > 0  # the steps were timed: not run directly
    before = executor_calls["n"]
    sess.run(None, feeds)
    sess.run(None, feeds)
    assert executor_calls["n"] <= before + 1  # direct again after profiling


def test_closed_session_refuses_direct_requests(mlp):
    sess = InferenceSession(mlp.SerializeToString())
    x = _x()
    sess.run(None, {"x": x})
    sess.run(None, {"x": x})
    sess.close()
    with pytest.raises(InvalidArgument, match="closed"):
        sess.run(None, {"x": x})


def test_concurrent_direct_requests_match_serial(mlp):
    sess = InferenceSession(mlp.SerializeToString())
    xs = [_x(int(n), int(n)) for n in np.random.default_rng(5).integers(1, 4, 48)]
    expected = [sess.run(None, {"x": x}) for x in xs]
    results = [None] * len(xs)

    def work(i):
        for _ in range(5):
            results[i] = sess.run(None, {"x": xs[i]})

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(xs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r, e in zip(results, expected):
        for a, b in zip(r, e):
            np.testing.assert_array_equal(a, b)


def test_a_plan_the_cache_evicts_is_freed_not_kept_by_its_runner(mlp):
    sess = InferenceSession(mlp.SerializeToString(), providers=["cpu"],
                            provider_options=[{"plan_cache_size": 1}])
    one, two = _x(1, 1), _x(2, 2)
    sess.run(None, {"x": one})
    sess.run(None, {"x": one})  # direct
    program = sess._executor.partitions[0].compiled.folded
    evicted = weakref.ref(next(iter(program._plans.values())))
    sess.run(None, {"x": two})  # a second shape: the cache of one plan drops the first
    gc.collect()
    assert evicted() is None
    for x in (one, two, one):  # the stale runner gives way to the full path, which replans
        for g, e in zip(sess.run(None, {"x": x}), ort_run(mlp, {"x": x})):
            np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5)
