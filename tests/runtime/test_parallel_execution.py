"""ORT_PARALLEL: independent steps of a CPU plan run concurrently on inter-op threads.

Checked here: the wave schedule, the memory planner's no-overlap rule under that schedule (on
the onnx package's light models and crafted branchy graphs), outputs equal to ORT_SEQUENTIAL and
to onnxruntime, errors raised once from a concurrent wave, terminate, concurrent runs, and the
schedule reported by explain(). No timing assertions.
"""

from __future__ import annotations

import os
import threading

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from providers.cpu import opset
from providers.cpu.partition import inter_op_threads
from runtime import InferenceSession, RunOptions, SessionOptions, memory
from runtime.errors import RunCancelled
from runtime.options import ExecutionMode
from tests.conftest import ONNX_DATA

fk = pytest.importorskip("ferry_kernels")

LIGHT = ["light_inception_v2", "light_densenet121", "light_squeezenet"]
TEST_DOMAIN = "test.ferry.parallel"


# A numpy-only op of a test domain that fails on demand: a Python callback inside a plan.
if opset.lookup("FailIfNegative", TEST_DOMAIN, 1) is None:
    @opset.register("FailIfNegative", since=1, domain=TEST_DOMAIN)
    def _fail_if_negative(x):
        if (x < 0).any():
            raise ValueError("FailIfNegative saw a negative value")
        return x * np.asarray(2, x.dtype)


# ---- helpers -------------------------------------------------------------------------------

def _options(mode, inter=0, intra=1):
    so = SessionOptions()
    so.execution_mode = mode
    so.inter_op_num_threads = inter
    so.intra_op_num_threads = intra
    return so


def _session(model, mode, inter=0, intra=1):
    data = model if isinstance(model, (str, bytes)) else model.SerializeToString()
    return InferenceSession(data, _options(mode, inter, intra))


def _plans(sess):
    return [plan for part in sess.explain()["partitions"]
            for plan in part["details"].get("plans", [])]


def _light_model(name: str) -> onnx.ModelProto:
    """The light model with every Concat output (the joins of its branches) also an output:
    the models' softmax outputs are nearly uniform with their toy weights."""
    model = onnx.load(os.path.join(ONNX_DATA, "light", name + ".onnx"))
    outputs = {o.name for o in model.graph.output}
    for node in model.graph.node:
        if node.op_type == "Concat" and node.output[0] not in outputs:
            model.graph.output.append(
                helper.make_tensor_value_info(node.output[0], TensorProto.FLOAT, None))
    return model


def _light_feeds(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    inits = {i.name for i in model.graph.initializer}
    feeds = {}
    rng = np.random.default_rng(0)
    for inp in model.graph.input:
        if inp.name in inits:
            continue
        shape = [d.dim_value for d in inp.type.tensor_type.shape.dim]
        feeds[inp.name] = rng.standard_normal(shape).astype(np.float32)
    return feeds


def _branchy_model(branches=8, width=16, with_callback=False):
    """x -> `branches` independent chains (MatMul, Relu, Add, Sigmoid / Cos) -> Concat -> y,
    plus a second join (Sum of the chain ends) so values cross waves."""
    rng = np.random.default_rng(1)
    nodes, inits, ends = [], [], []
    for b in range(branches):
        w = (rng.standard_normal((width, width)) / np.sqrt(width)).astype(np.float32)
        c = rng.standard_normal((width,)).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{b}"), numpy_helper.from_array(c, f"c{b}")]
        nodes += [helper.make_node("MatMul", ["x", f"w{b}"], [f"m{b}"]),
                  helper.make_node("Relu", [f"m{b}"], [f"r{b}"]),
                  helper.make_node("Add", [f"r{b}", f"c{b}"], [f"a{b}"])]
        # Cos has no C++ kernel: a numpy callback step inside the plan.
        last = "Cos" if with_callback and b % 2 else "Sigmoid"
        nodes.append(helper.make_node(last, [f"a{b}"], [f"e{b}"]))
        ends.append(f"e{b}")
    nodes.append(helper.make_node("Concat", ends, ["y"], axis=1))
    nodes.append(helper.make_node("Sum", ends, ["s"]))
    graph = helper.make_graph(
        nodes, "branchy", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, width * branches]),
         helper.make_tensor_value_info("s", TensorProto.FLOAT, [4, width])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _failing_model():
    """Four branches, one of which runs FailIfNegative (a Python callback) on x - 1."""
    nodes = [helper.make_node("Relu", ["x"], ["b0"]),
             helper.make_node("Sigmoid", ["x"], ["b1"]),
             helper.make_node("Sub", ["x", "one"], ["xm"]),
             helper.make_node("FailIfNegative", ["xm"], ["b2"], domain=TEST_DOMAIN),
             helper.make_node("Tanh", ["x"], ["b3"]),
             helper.make_node("Concat", ["b0", "b1", "b2", "b3"], ["y"], axis=0)]
    graph = helper.make_graph(
        nodes, "failing", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [8, 3])],
        [numpy_helper.from_array(np.ones((), np.float32), "one")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                   helper.make_opsetid(TEST_DOMAIN, 1)])


def _graph_steps(model: onnx.ModelProto):
    """(steps, requests, alias_of) of a model's nodes for the memory planner, sizes from onnx
    shape inference; Reshape/Flatten/Squeeze/Unsqueeze/Identity outputs are views."""
    inferred = onnx.shape_inference.infer_shapes(model)
    sizes = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.output) + \
            list(inferred.graph.input):
        dims = [d.dim_value or 1 for d in vi.type.tensor_type.shape.dim]
        sizes[vi.name] = int(np.prod(dims)) * 4
    inits = {i.name for i in model.graph.initializer}
    graph_inputs = {i.name for i in model.graph.input} - inits
    outputs = {o.name for o in model.graph.output}
    steps, requests, alias_of = [], {}, {}
    for node in model.graph.node:
        ins = [n for n in node.input if n and n not in inits]
        outs = [n for n in node.output if n]
        if node.op_type in ("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity") \
                and ins and outs[0] not in outputs:
            alias_of[outs[0]] = ins[0]
        steps.append((ins, outs))
        for n in ins + outs:
            kind = "input" if n in graph_inputs else "output" if n in outputs else "arena"
            requests.setdefault(n, memory.ValueRequest(n, sizes.get(n, 64), kind,
                                                       alias_of.get(n)))
    # Views are not steps of their own in a plan: drop them, as the partition does.
    kept = [(ins, outs) for (ins, outs) in steps if not (outs and outs[0] in alias_of)]
    return kept, requests, alias_of


# ---- the schedule and the memory planner ---------------------------------------------------

def test_dependency_waves_of_a_diamond():
    steps = [(["x"], ["a"]), (["x"], ["b"]), (["a"], ["c"]), (["b", "c"], ["d"]),
             (["x"], ["e"])]
    assert memory.dependency_waves(steps) == [[0, 1, 4], [2], [3]]
    # A view counts as produced by the step producing what it views.
    steps = [(["x"], ["a"]), (["v"], ["b"]), (["x"], ["c"])]
    assert memory.dependency_waves(steps, {"v": "a"}) == [[0, 2], [1]]


def test_dependency_tasks_link_chains():
    steps = [(["x"], ["a"]), (["x"], ["b"]), (["a"], ["c"]), (["b", "c"], ["d"]),
             (["x"], ["e"])]
    # 0 -> 2 is a chain link (2's only producer is 0, 0's only consumer is 2); 3 joins two.
    assert memory.dependency_tasks(steps) == [[[0, 2], [1], [4]], [[3]]]
    # Two branches of three steps each: one wave of two tasks, then the join.
    steps = [(["x"], ["a1"]), (["a1"], ["a2"]), (["a2"], ["a3"]),
             (["x"], ["b1"]), (["b1"], ["b2"]), (["b2"], ["b3"]), (["a3", "b3"], ["y"])]
    assert memory.dependency_tasks(steps) == [[[0, 1, 2], [3, 4, 5]], [[6]]]
    # A value read by two steps ends a chain.
    steps = [(["x"], ["a"]), (["a"], ["b"]), (["a"], ["c"])]
    assert memory.dependency_tasks(steps) == [[[0]], [[1], [2]]]


def test_schedule_must_cover_each_step_once():
    steps = [(["x"], ["a"]), (["a"], ["b"])]
    values = {n: memory.ValueRequest(n, 16) for n in "ab"}
    with pytest.raises(ValueError, match="not scheduled"):
        memory.plan_memory(steps, values, schedule=[[0]])
    with pytest.raises(ValueError, match="twice"):
        memory.plan_memory(steps, values, schedule=[[0, 1], [1]])


def test_wave_lifetimes_keep_concurrent_values_apart():
    # a dies at step 1 and the sequential plan gives its bytes to c (step 2); under waves
    # [[0, 2], [1, 3]] steps 0 and 2 run together, so a and c must not share.
    steps = [(["x"], ["a"]), (["a"], ["b"]), (["x"], ["c"]), (["c"], ["d"])]
    values = {n: memory.ValueRequest(n, 256) for n in "abcd"}
    values["x"] = memory.ValueRequest("x", 256, "input")
    schedule = memory.dependency_waves(steps)
    assert schedule == [[0, 2], [1, 3]]
    seq = memory.plan_memory(steps, values)
    with pytest.raises(AssertionError, match="overlap"):
        memory.check_plan(seq, steps, values, schedule=schedule)
    par = memory.plan_memory(steps, values, schedule=schedule)
    memory.check_plan(par, steps, values, schedule=schedule)
    assert par.placements["a"].offset != par.placements["c"].offset
    # As two tasks of one wave, all four values may be alive at once: no sharing at all.
    tasks = memory.dependency_tasks(steps)
    assert tasks == [[[0, 1], [2, 3]]]
    par = memory.plan_memory(steps, values, schedule=tasks)
    memory.check_plan(par, steps, values, schedule=tasks)
    assert len({par.placements[n].offset for n in "abcd"}) == 4
    par.verify()


def test_values_of_one_task_reuse_memory_in_order():
    # Two chains x -> a -> b -> c, each one task of the same wave: inside a chain, a dies
    # before c is written, so they may share; across the two chains nothing may.
    steps = [(["x"], ["a"]), (["a"], ["b"]), (["b"], ["c"]),
             (["x"], ["d"]), (["d"], ["e"]), (["e"], ["f"]), (["c", "f"], ["y"])]
    values = {n: memory.ValueRequest(n, 256) for n in "abcdef"}
    values["x"] = memory.ValueRequest("x", 256, "input")
    values["y"] = memory.ValueRequest("y", 256, "output")
    tasks = memory.dependency_tasks(steps)
    assert tasks == [[[0, 1, 2], [3, 4, 5]], [[6]]]
    plan = memory.plan_memory(steps, values, schedule=tasks)
    plan.verify()
    off = {n: plan.placements[n].offset for n in "abcdef"}
    assert off["a"] == off["c"] and off["d"] == off["f"]
    assert {off["a"], off["b"]}.isdisjoint({off["d"], off["e"]})
    assert plan.arena_bytes == 4 * 256
    # The independent checker catches a plan that shares across the two chains.
    plan.placements["d"].offset = off["a"]
    with pytest.raises(AssertionError, match="overlap"):
        plan.verify()


@pytest.mark.parametrize("name", LIGHT)
def test_wave_memory_plan_has_no_overlap_on_light_models(name):
    steps, requests, alias_of = _graph_steps(onnx.load(
        os.path.join(ONNX_DATA, "light", name + ".onnx")))
    for schedule in (memory.dependency_waves(steps, alias_of),
                     memory.dependency_tasks(steps, alias_of)):
        assert len(schedule) < len(steps)  # these models do have independent branches
        plan = memory.plan_memory(steps, requests, schedule=schedule)
        memory.check_plan(plan, steps, requests, schedule=schedule)
        # Lifetimes in waves cost some reuse, never correctness.
        assert plan.arena_bytes <= plan.naive_bytes


def _assert_no_overlap_in_waves(mem: memory.MemoryPlan):
    """The plan a parallel session made, re-checked pair by pair under its schedule."""
    assert mem.schedule is not None
    mem.verify()


# ---- sessions ------------------------------------------------------------------------------

def test_inter_op_thread_resolution():
    assert inter_op_threads(None) == 1
    assert inter_op_threads(_options(ExecutionMode.ORT_SEQUENTIAL, 4)) == 1
    assert inter_op_threads(_options(ExecutionMode.ORT_PARALLEL, 1)) == 1
    assert inter_op_threads(_options(ExecutionMode.ORT_PARALLEL, 3)) == 3
    assert 1 <= inter_op_threads(_options(ExecutionMode.ORT_PARALLEL, 0)) <= 4


@pytest.mark.parametrize("name", LIGHT)
def test_light_models_parallel_equals_sequential_and_onnxruntime(name):
    model = _light_model(name)
    feeds = _light_feeds(model)
    ref = ort.InferenceSession(model.SerializeToString(),
                               providers=["CPUExecutionProvider"]).run(None, feeds)
    seq_sess = _session(model, ExecutionMode.ORT_SEQUENTIAL)
    seq = seq_sess.run(None, feeds)
    seq = seq_sess.run(None, feeds)  # the plan
    assert all(p["schedule"]["mode"] == "sequential" for p in _plans(seq_sess))
    for inter, intra in [(2, 1), (4, 2)]:
        sess = _session(model, ExecutionMode.ORT_PARALLEL, inter, intra)
        for _ in range(3):  # trace, then the plan twice (arena reuse across runs)
            out = sess.run(None, feeds)
            for o, s, r in zip(out, seq, ref):
                np.testing.assert_array_equal(o, s)
                np.testing.assert_allclose(o, r, rtol=1e-4, atol=1e-5)
        plans = _plans(sess)
        assert plans
        if name != "light_densenet121":  # optimized, DenseNet's dense blocks are one chain
            assert all(p["schedule"]["mode"] == "parallel" for p in plans)
        for p in plans:
            if p["schedule"]["mode"] == "sequential":
                assert p["schedule"]["waves"] == p["steps"]
                continue
            assert p["schedule"]["waves"] < p["steps"]
            assert p["schedule"]["max_concurrency"] == min(inter, p["schedule"]["widest_wave"])
            _assert_no_overlap_in_waves(p["memory_plan"])


@pytest.mark.parametrize("inter,intra", [(2, 1), (4, 1), (2, 2), (4, 2)])
def test_branchy_model_with_callbacks(inter, intra):
    model = _branchy_model(branches=8, with_callback=True)
    x = np.random.default_rng(2).standard_normal((4, 16)).astype(np.float32)
    ref = ort.InferenceSession(model.SerializeToString(),
                               providers=["CPUExecutionProvider"]).run(None, {"x": x})
    seq = _session(model, ExecutionMode.ORT_SEQUENTIAL).run(None, {"x": x})
    sess = _session(model, ExecutionMode.ORT_PARALLEL, inter, intra)
    for _ in range(4):
        out = sess.run(None, {"x": x})
        for o, s, r in zip(out, seq, ref):
            np.testing.assert_allclose(o, s, rtol=1e-6, atol=1e-6)
            np.testing.assert_allclose(o, r, rtol=1e-5, atol=1e-5)
    (plan,) = _plans(sess)
    sched = plan["schedule"]
    assert sched["mode"] == "parallel" and sched["inter_op_threads"] == inter
    assert sched["widest_wave"] == 8 and sched["max_concurrency"] == inter
    assert "numpy:Cos" in plan["kernels"]
    details = sess.explain()["partitions"][0]["details"]
    assert details["execution_mode"] == "parallel" and details["inter_op_threads"] == inter
    _assert_no_overlap_in_waves(plan["memory_plan"])


def test_a_chain_stays_sequential():
    nodes = [helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Neg", ["a"], ["b"]),
             helper.make_node("Sigmoid", ["b"], ["y"])]
    graph = helper.make_graph(nodes, "chain",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 5])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 5])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    sess = _session(model, ExecutionMode.ORT_PARALLEL, 4)
    x = np.linspace(-1, 1, 15, dtype=np.float32).reshape(3, 5)
    for _ in range(2):
        y = sess.run(None, {"x": x})[0]
    np.testing.assert_allclose(y, 1 / (1 + np.exp(np.maximum(x, 0))), rtol=1e-6)
    assert all(p["schedule"]["mode"] == "sequential" for p in _plans(sess))


def test_error_in_a_concurrent_callback_is_raised_once_and_the_session_recovers():
    sess = _session(_failing_model(), ExecutionMode.ORT_PARALLEL, 4)
    good = np.full((2, 3), 2.0, np.float32)
    bad = np.zeros((2, 3), np.float32)
    for _ in range(2):  # trace, then the plan
        y = sess.run(None, {"x": good})[0]
    np.testing.assert_allclose(y[4:6], 2 * (good - 1))
    assert _plans(sess)[0]["schedule"]["mode"] == "parallel"
    for _ in range(3):
        with pytest.raises(Exception, match="FailIfNegative saw a negative value") as info:
            sess.run(None, {"x": bad})
        assert "FailIfNegative" in str(info.value)
    np.testing.assert_array_equal(sess.run(None, {"x": good})[0], y)


def test_terminate_and_timeout_in_parallel_mode():
    sess = _session(_branchy_model(branches=4), ExecutionMode.ORT_PARALLEL, 2)
    x = np.ones((4, 16), np.float32)
    sess.run(None, {"x": x})
    sess.run(None, {"x": x})  # a plan exists: terminate is checked before it runs
    ro = RunOptions()
    ro.terminate = True
    with pytest.raises(RunCancelled):
        sess.run(None, {"x": x}, ro)
    sess.run(None, {"x": x})


def test_concurrent_runs_in_parallel_mode():
    model = _branchy_model(branches=6, with_callback=True)
    sess = _session(model, ExecutionMode.ORT_PARALLEL, 3, 2)
    seq = _session(model, ExecutionMode.ORT_SEQUENTIAL)
    xs = [np.random.default_rng(i).standard_normal((4, 16)).astype(np.float32)
          for i in range(6)]
    expected = [seq.run(None, {"x": x}) for x in xs]
    sess.run(None, {"x": xs[0]})
    errors, results = [], [[None] * 20 for _ in xs]

    def work(i):
        try:
            for k in range(20):
                results[i][k] = sess.run(None, {"x": xs[i]})
        except Exception as exc:  # noqa: BLE001 - reported below, with the thread index
            errors.append((i, exc))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(xs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i, runs in enumerate(results):
        for out in runs:
            for o, e in zip(out, expected[i]):
                np.testing.assert_allclose(o, e, rtol=1e-6, atol=1e-6)


# ---- the C++ plan directly -----------------------------------------------------------------

def _callback_plan(n_branches, fail_at=None, inter=4):
    """x -> n callbacks (each x + k) into arena values -> a callback summing them -> out."""
    n = 8
    values = [("input", 0, [n], "float32", None)]
    values += [("arena", 64 * k, [n], "float32", None) for k in range(n_branches)]
    values.append(("output", 0, [n], "float32", None))
    steps = []
    for k in range(n_branches):
        def branch(x, k=k):
            if k == fail_at:
                raise KeyError(f"branch {k} failed")
            return x + np.float32(k)
        steps.append((branch, [0], [1 + k]))
    steps.append((lambda *xs: np.sum(xs, axis=0).astype(np.float32),
                  list(range(1, n_branches + 1)), [n_branches + 1]))
    schedule = [list(range(n_branches)), [n_branches]]
    return fk.Plan(64 * n_branches, values, steps, schedule=schedule, inter_op_threads=inter)


def test_plan_runs_waves_and_reports_them():
    plan = _callback_plan(6)
    assert (plan.num_steps, plan.num_waves, plan.max_wave, plan.inter_op_threads) == (7, 2, 6, 4)
    x = np.arange(8, dtype=np.float32)
    out = np.empty(8, np.float32)
    for _ in range(5):
        plan.run([x], [out])
        np.testing.assert_array_equal(out, 6 * x + sum(range(6)))
    seq = fk.Plan(0, [("input", 0, [2], "float32", None), ("output", 0, [2], "float32", None)],
                  [(lambda x: x, [0], [1])])
    assert (seq.num_waves, seq.max_wave, seq.inter_op_threads) == (1, 1, 1)


def test_plan_error_in_a_wave_propagates_once():
    plan = _callback_plan(6, fail_at=3)
    x = np.zeros(8, np.float32)
    out = np.full(8, -1, np.float32)
    for _ in range(3):  # no deadlock, no leaked arena, same error each time
        with pytest.raises(KeyError, match="branch 3 failed"):
            plan.run([x], [out])
    np.testing.assert_array_equal(out, -1)  # the step after the failing wave never ran
    assert plan.arena_stats()["leased"] == 0


def test_plan_runs_tasks_in_order_and_stops_a_failing_one():
    # Two chains of three callbacks as two tasks of one wave, then a join.
    called = []
    values = [("input", 0, [4], "float32", None)]
    values += [("arena", 64 * k, [4], "float32", None) for k in range(6)]
    values.append(("output", 0, [4], "float32", None))

    def link(k, fail=False):
        def f(x):
            called.append(k)
            if fail:
                raise RuntimeError(f"link {k} failed")
            return x + np.float32(1)
        return f

    def make(fail_at=None):
        steps = [(link(0, fail_at == 0), [0], [1]), (link(1, fail_at == 1), [1], [2]),
                 (link(2, fail_at == 2), [2], [3]), (link(3), [0], [4]), (link(4), [4], [5]),
                 (link(5), [5], [6]), (lambda a, b: a + b, [3, 6], [7])]
        return fk.Plan(64 * 6, values, steps, schedule=[[[0, 1, 2], [3, 4, 5]], [6]],
                       inter_op_threads=2)

    x = np.zeros(4, np.float32)
    out = np.empty(4, np.float32)
    plan = make()
    assert (plan.num_waves, plan.max_wave) == (2, 2)
    plan.run([x], [out])
    np.testing.assert_array_equal(out, 6)
    assert called.index(0) < called.index(1) < called.index(2)
    called.clear()
    with pytest.raises(RuntimeError, match="link 1 failed"):
        make(fail_at=1).run([x], [out])
    assert 2 not in called  # the rest of the failing task never ran


def test_plan_rejects_bad_schedules():
    values = [("input", 0, [2], "float32", None), ("arena", 0, [2], "float32", None),
              ("output", 0, [2], "float32", None)]
    steps = [(lambda x: x, [0], [1]), (lambda x: x, [1], [2])]
    with pytest.raises(ValueError, match="before the step that writes it"):
        fk.Plan(64, values, steps, schedule=[[0, 1]], inter_op_threads=2)
    with pytest.raises(ValueError, match="before the step that writes it"):
        fk.Plan(64, values, steps, schedule=[[[1, 0]]], inter_op_threads=2)
    fk.Plan(64, values, steps, schedule=[[[0, 1]]], inter_op_threads=2)  # in order: fine
    with pytest.raises(ValueError, match="not scheduled"):
        fk.Plan(64, values, steps, schedule=[[0]], inter_op_threads=2)
    with pytest.raises(ValueError, match="twice"):
        fk.Plan(64, values, steps, schedule=[[0], [0, 1]], inter_op_threads=2)


def test_concurrent_parallel_for_from_inter_op_and_caller_threads():
    # Kernels that split their work on the intra-op pool, started at once by the inter-op
    # threads of several concurrent runs: the pool must serve one and run the others inline.
    m = 96
    values = [("input", 0, [m, m], "float32", None), ("input", 1, [m, m], "float32", None)]
    values += [("output", k, [m, m], "float32", None) for k in range(4)]
    steps = [(fk.make_kernel("MatMul", {}, [[m, m], [m, m]], ["float32"] * 2, [[m, m]],
                             ["float32"], {}), [0, 1], [2 + k]) for k in range(4)]
    plan = fk.Plan(0, values, steps, schedule=[[0, 1, 2, 3]], inter_op_threads=4)
    rng = np.random.default_rng(3)
    xs = [rng.standard_normal((m, m)).astype(np.float32) for _ in range(4)]
    w = rng.standard_normal((m, m)).astype(np.float32)
    old = fk.get_num_threads()
    fk.set_num_threads(2)
    errors = []

    def work(i):
        try:
            outs = [np.empty((m, m), np.float32) for _ in range(4)]
            for _ in range(30):
                plan.run([xs[i], w], outs)
                for o in outs:
                    np.testing.assert_allclose(o, xs[i] @ w, rtol=1e-4, atol=1e-4)
        except Exception as exc:  # noqa: BLE001 - reported below, in the main thread
            errors.append(exc)

    try:
        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        fk.set_num_threads(old)
    assert not errors, errors[0]


def test_waking_the_pool_during_jobs_loses_nothing():
    """wake_workers() (called as each run starts) bumps the pool's generation with no work:
    from another thread, between and during parallel jobs, results stay exact, with workers
    spinning and with workers that sleep at once (spin 0)."""
    m = 128
    a = np.random.default_rng(5).standard_normal((m, m)).astype(np.float32)
    k = fk.make_kernel("MatMul", {}, [[m, m], [m, m]], ["float32"] * 2, [[m, m]], ["float32"],
                       {1: a})
    want = a @ a
    old_threads, old_spin = fk.get_num_threads(), fk.get_spin_us()
    stop = threading.Event()

    def waker():
        while not stop.is_set():
            fk.wake_workers()

    try:
        fk.set_num_threads(2)
        for spin in (20000, 0):
            fk.set_spin_us(spin)
            t = threading.Thread(target=waker)
            t.start()
            try:
                for _ in range(200):
                    y = np.empty((m, m), np.float32)
                    k.run([a, None], [y])
                    np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-4)
            finally:
                stop.set()
                t.join()
                stop.clear()
    finally:
        fk.set_num_threads(old_threads)
        fk.set_spin_us(old_spin)
