"""What services embedding ferry rely on: memory they can see and give back, warm-up, the
profiling summary, many threads on one session, closing while others run."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from onnx import TensorProto as TP
from onnx import helper

from runtime import InferenceSession, SessionOptions
from runtime.errors import InvalidArgument
from tests.conftest import make_model

F = TP.FLOAT


def _mlp(hidden=64):
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("MatMul", ["r", "w2"], ["y"])]
    return make_model(nodes, [("x", F, ["batch", 32])], [("y", F, ["batch", 8])],
                      [("w1", rng.standard_normal((32, hidden)).astype(np.float32)),
                       ("w2", rng.standard_normal((hidden, 8)).astype(np.float32))])


def _session(**opts):
    so = SessionOptions()
    so.intra_op_num_threads = 1
    for k, v in opts.items():
        setattr(so, k, v)
    return InferenceSession(_mlp().SerializeToString(), so, providers=["cpu"])


def test_memory_stats_and_release_memory():
    sess = _session()
    before = sess.memory_stats()
    assert before["reserved_bytes"] == 0 and before["weights_bytes"] == (32 * 64 + 64 * 8) * 4
    for _ in range(2):  # the first run traces the plan, the second runs it
        sess.run(None, {"x": np.ones((16, 32), np.float32)})
    stats = sess.memory_stats()
    assert stats["providers"]["cpu"]["planned_bytes"] >= 16 * 64 * 4  # h (or r) in the arena
    assert stats["reserved_bytes"] >= stats["planned_bytes"] > 0
    assert stats["peak_bytes"] >= stats["planned_bytes"]
    freed = sess.release_memory()
    assert freed >= stats["planned_bytes"]
    assert sess.memory_stats()["reserved_bytes"] == 0
    # The session still runs (and allocates again).
    y = sess.run(None, {"x": np.ones((16, 32), np.float32)})[0]
    assert y.shape == (16, 8) and sess.memory_stats()["reserved_bytes"] > 0


def test_warmup_compiles_ahead_and_reports():
    sess = _session()
    report = sess.warmup(dims={"batch": 4})
    assert len(report["run_seconds"]) == 2 and report["memory"]["planned_bytes"] > 0
    with pytest.raises(InvalidArgument):
        sess.warmup(input_feed={"nope": np.ones(1)})


def test_profiling_summary_tables(tmp_path):
    sess = _session(enable_profiling=True, profile_file_prefix=str(tmp_path / "p"))
    for _ in range(3):
        sess.run(None, {"x": np.ones((2, 32), np.float32)})
    summary = sess.profiling_summary()
    assert summary["runs"] == 3
    ops = {r["name"]: r for r in summary["by_op"]}
    assert ops["FusedGemm"]["calls"] == 3 and ops["MatMul"]["calls"] == 3  # MatMul+Relu fused
    assert summary["by_provider"][0]["name"] == "cpu"
    assert abs(sum(r["share"] for r in summary["by_op"]) - 1.0) < 1e-3
    assert "FusedGemm" in summary["table"]
    with pytest.raises(InvalidArgument):
        _session().profiling_summary()


def test_profile_plan_times_the_fast_path_per_node():
    """profile_plan: one row per plan step (the nodes the C++ plan runs), slowest first, the
    shares summing to 1; a slow op shows as the slow one; the timing is off afterwards."""
    rng = np.random.default_rng(1)
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"]),
             helper.make_node("MatMul", ["h", "w2"], ["y"])]
    model = make_model(nodes, [("x", F, [64, 512])], [("y", F, [64, 4])],
                       [("w1", rng.standard_normal((512, 512)).astype(np.float32)),
                        ("w2", rng.standard_normal((512, 4)).astype(np.float32))])
    so = SessionOptions()
    so.intra_op_num_threads = 1
    sess = InferenceSession(model.SerializeToString(), so, providers=["cpu"])
    x = np.ones((64, 512), np.float32)
    rows = sess.profile_plan({"x": x}, runs=5)
    assert [r["op_type"] for r in rows] == ["MatMul", "MatMul"]
    assert {r["node"] for r in rows} == {n.name for n in sess._graph.nodes}
    assert rows[0]["mean_us"] > rows[1]["mean_us"] > 0  # 64x512x512 vs 64x512x4
    assert rows[0]["kernel"] == "MatMul"
    assert abs(sum(r["share"] for r in rows) - 1.0) < 1e-9
    parts = [p.compiled for p in sess._partitioning.partitions]
    assert not any(p.step_timing for p in parts)
    np.testing.assert_allclose(sess.run(None, {"x": x})[0],
                               sess.run(None, {"x": x})[0])
    with pytest.raises(InvalidArgument):
        sess.profile_plan({"x": x}, runs=0)


def test_many_threads_one_session_match_serial_and_peak_grows():
    sess = _session()
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal((8, 32)).astype(np.float32) for _ in range(16)]
    expected = [sess.run(None, {"x": x})[0] for x in xs]
    results: list = [None] * len(xs)
    errors: list = []
    barrier = threading.Barrier(4)

    def worker(k):
        try:
            barrier.wait()
            for j in range(k, len(xs), 4):
                for _ in range(20):
                    results[j] = sess.run(None, {"x": xs[j]})[0]
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for a, b in zip(results, expected):
        np.testing.assert_array_equal(a, b)


def test_close_while_other_threads_run_is_safe():
    sess = _session()
    x = np.ones((64, 32), np.float32)
    stop = threading.Event()
    outcomes: list = []

    def worker():
        while not stop.is_set():
            try:
                outcomes.append(sess.run(None, {"x": x})[0].shape)
            except InvalidArgument as exc:  # "the session is closed": the only allowed error
                outcomes.append(str(exc))
                return

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    while len(outcomes) < 10:
        pass
    sess.close()
    stop.set()
    for t in threads:
        t.join()
    assert all(o == (64, 8) or "closed" in o for o in outcomes)
