"""The memory planner: its invariant as a property test, and its named decisions."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime import memory


@st.composite
def programs(draw):
    """Random straight-line programs: each step reads earlier values and writes new ones."""
    n_inputs = draw(st.integers(1, 3))
    names = [f"in{i}" for i in range(n_inputs)]
    values = {n: memory.ValueRequest(n, draw(st.integers(1, 4096)), "input") for n in names}
    steps = []
    for i in range(draw(st.integers(1, 25))):
        reads = draw(st.lists(st.sampled_from(names), min_size=1, max_size=3))
        outs = [f"v{i}_{j}" for j in range(draw(st.integers(1, 2)))]
        for o in outs:
            alias = None
            if draw(st.booleans()) and draw(st.integers(0, 4)) == 0:
                alias = reads[0]
            values[o] = memory.ValueRequest(o, draw(st.integers(0, 100_000)), "arena", alias)
        steps.append((reads, outs))
        names.extend(outs)
    last = steps[-1][1][0]
    values[last].kind = "output"
    values[last].alias_of = None
    return steps, values


@settings(max_examples=300, deadline=None)
@given(programs())
def test_no_two_live_values_overlap(program):
    steps, values = program
    plan = memory.plan_memory(steps, values)
    memory.check_plan(plan, steps, values)
    assert plan.arena_bytes <= plan.naive_bytes
    for p in plan.placements.values():
        if p.decision in ("allocate", "reuse"):
            assert p.offset % memory.ALIGNMENT == 0
            assert p.offset + p.nbytes <= plan.arena_bytes


def test_decisions_are_named():
    steps = [(["x"], ["a"]), (["a"], ["b"]), (["b"], ["c"]), (["c"], ["d"]), (["d"], ["y"])]
    values = {"x": memory.ValueRequest("x", 400, "input"),
              "a": memory.ValueRequest("a", 400), "b": memory.ValueRequest("b", 400),
              "c": memory.ValueRequest("c", 400, alias_of="b"),
              "d": memory.ValueRequest("d", 400), "y": memory.ValueRequest("y", 400, "output")}
    plan = memory.plan_memory(steps, values)
    decisions = {k: p.decision for k, p in plan.placements.items()}
    assert decisions["x"] == "pre-existing"
    assert decisions["y"] == "output"
    assert decisions["c"] == "alias"
    assert plan.placements["c"].offset == plan.placements["b"].offset
    # a dies at step 1; d (born at step 3) may take its place
    assert decisions["d"] == "reuse"
    assert plan.arena_bytes < plan.naive_bytes
    assert "reuse" in plan.describe()


def test_alias_keeps_its_target_alive():
    # b is viewed as c, and c is read at the last step: b's bytes must not be reused by d.
    steps = [(["x"], ["b"]), (["b"], ["d"]), (["d", "c"], ["y"])]
    values = {"x": memory.ValueRequest("x", 64, "input"), "b": memory.ValueRequest("b", 640),
              "c": memory.ValueRequest("c", 640, alias_of="b"),
              "d": memory.ValueRequest("d", 640), "y": memory.ValueRequest("y", 64, "output")}
    plan = memory.plan_memory(steps, values)
    memory.check_plan(plan, steps, values)
    b, d = plan.placements["b"], plan.placements["d"]
    assert b.offset + 640 <= d.offset or d.offset + 640 <= b.offset


def test_slices_sit_inside_their_root_and_extend_its_lifetime():
    """Concat inputs written in place: a and b are slices of k (at byte offsets); k's memory
    lives from a's producer to k's last reader, and nothing else may take it meanwhile."""
    steps = [(["x"], ["a"]), (["x"], ["t"]), (["t"], ["b"]), (["k"], ["y"])]
    values = {"x": memory.ValueRequest("x", 400, "input"),
              "a": memory.ValueRequest("a", 400, alias_of="k", alias_offset=0),
              "t": memory.ValueRequest("t", 400),
              "b": memory.ValueRequest("b", 800, alias_of="k", alias_offset=400),
              "k": memory.ValueRequest("k", 1200), "y": memory.ValueRequest("y", 4, "output")}
    plan = memory.plan_memory(steps, values)
    memory.check_plan(plan, steps, values)
    k, t = plan.placements["k"], plan.placements["t"]
    assert plan.placements["a"].offset == k.offset
    assert plan.placements["b"].offset == k.offset + 400
    assert k.first == 0 and k.last == 3
    assert t.offset + 400 <= k.offset or k.offset + 1200 <= t.offset  # t lives inside k's span
    assert "of k+400" in plan.describe()


def test_check_plan_rejects_overlapping_slices():
    steps = [(["x"], ["a"]), (["x"], ["b"]), (["k"], ["y"])]
    values = {"x": memory.ValueRequest("x", 400, "input"),
              "a": memory.ValueRequest("a", 400, alias_of="k", alias_offset=0),
              "b": memory.ValueRequest("b", 400, alias_of="k", alias_offset=200),
              "k": memory.ValueRequest("k", 800), "y": memory.ValueRequest("y", 4, "output")}
    plan = memory.plan_memory(steps, values)
    with pytest.raises(AssertionError, match="same bytes"):
        memory.check_plan(plan, steps, values)
    values["b"].alias_offset = 600
    with pytest.raises(AssertionError, match="past the end"):
        memory.check_plan(plan, steps, values)
