"""The memory planner: value lifetimes in execution order -> offsets in one arena.

Given the steps of a partition in execution order, which values each step reads and writes,
and each value's size, it places every arena-managed value at a byte offset so that two values
alive at the same time never overlap, packing greedily by size (largest first, lowest offset
that fits). Every value gets a named decision, as onnxruntime's planner does:

- ``allocate``     a fresh region of the arena (nothing was there before it)
- ``reuse``        a region an earlier, now dead value used
- ``pre-existing`` memory owned by someone else: a graph input or a constant
- ``output``       a partition output, written straight into the array handed back
- ``alias``        a view of another value's memory (Reshape, Squeeze, Identity...)

Plans are made per input-shape signature by the CPU provider and cached there.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ALIGNMENT = 64


def align(n: int, a: int = ALIGNMENT) -> int:
    return (n + a - 1) // a * a


@dataclass
class ValueRequest:
    name: str
    nbytes: int
    kind: str = "arena"          # "arena", "input", "const", "output"
    alias_of: str | None = None  # share this value's memory


@dataclass
class Placement:
    name: str
    decision: str                # allocate | reuse | pre-existing | output | alias
    offset: int = -1             # byte offset in the arena (arena values)
    nbytes: int = 0
    first: int = -1              # first step that writes or reads it
    last: int = -1               # last step that reads it
    alias_of: str | None = None
    reused_from: str | None = None


@dataclass
class MemoryPlan:
    placements: dict[str, Placement] = field(default_factory=dict)
    arena_bytes: int = 0
    naive_bytes: int = 0         # sum of all arena values' sizes: the cost without reuse

    def describe(self) -> str:
        lines = [f"arena {self.arena_bytes} bytes (naive sum {self.naive_bytes})"]
        for p in sorted(self.placements.values(), key=lambda p: (p.first, p.name)):
            where = f"@{p.offset}" if p.offset >= 0 else ""
            extra = f" of {p.alias_of}" if p.alias_of else (
                f" from {p.reused_from}" if p.reused_from else "")
            lines.append(f"  {p.name}: {p.decision}{extra} {p.nbytes}B{where} "
                         f"live [{p.first}, {p.last}]")
        return "\n".join(lines)


def lifetimes(steps: list[tuple[list[str], list[str]]], keep_alive: set[str] = frozenset()
              ) -> dict[str, tuple[int, int]]:
    """(first, last) step index per value; values in ``keep_alive`` live to the end."""
    span: dict[str, list[int]] = {}
    for i, (ins, outs) in enumerate(steps):
        for name in list(ins) + list(outs):
            if not name:
                continue
            s = span.setdefault(name, [i, i])
            s[0] = min(s[0], i)
            s[1] = max(s[1], i)
    end = max(len(steps) - 1, 0)
    for name in keep_alive:
        if name in span:
            span[name][1] = end
    return {k: (v[0], v[1]) for k, v in span.items()}


def plan_memory(steps: list[tuple[list[str], list[str]]], values: dict[str, ValueRequest],
                keep_alive: set[str] = frozenset()) -> MemoryPlan:
    """Place every ``arena`` value; see the module docstring for the decisions."""
    life = lifetimes(steps, keep_alive)
    plan = MemoryPlan()

    # Alias groups: a view extends its root's lifetime; the root owns the memory.
    def root_of(name: str) -> str:
        seen = set()
        while values[name].alias_of and name not in seen:
            seen.add(name)
            name = values[name].alias_of
        return name

    span: dict[str, list[int]] = {}
    for name, req in values.items():
        first, last = life.get(name, (0, 0))
        root = root_of(name)
        s = span.setdefault(root, [first, last])
        s[0] = min(s[0], first)
        s[1] = max(s[1], last)

    arena_roots = []
    for name, req in values.items():
        first, last = life.get(name, (0, 0))
        if req.alias_of:
            plan.placements[name] = Placement(name, "alias", nbytes=req.nbytes, first=first,
                                              last=last, alias_of=req.alias_of)
        elif req.kind in ("input", "const"):
            plan.placements[name] = Placement(name, "pre-existing", nbytes=req.nbytes,
                                              first=first, last=last)
        elif req.kind == "output":
            plan.placements[name] = Placement(name, "output", nbytes=req.nbytes, first=first,
                                              last=last)
        else:
            arena_roots.append(name)
            plan.naive_bytes += align(max(req.nbytes, 1))

    # Greedy by size: biggest first, each at the lowest offset free during its lifetime.
    order = sorted(arena_roots, key=lambda n: (-values[n].nbytes, span[n][0], n))
    placed: list[tuple[int, int, int, int, str]] = []  # (offset, end, first, last, name)
    for name in order:
        size = align(max(values[name].nbytes, 1))
        first, last = span[name]
        conflicts = sorted((o, e) for o, e, f, la, _ in placed if not (la < first or f > last))
        offset = 0
        for o, e in conflicts:
            if offset + size <= o:
                break
            offset = max(offset, e)
        placed.append((offset, offset + size, first, last, name))
        # Named decision: did a value that died earlier use any of these bytes?
        previous = [n for o, e, f, la, n in placed[:-1]
                    if la < first and o < offset + size and offset < e]
        decision = "reuse" if previous else "allocate"
        plan.placements[name] = Placement(
            name, decision, offset=offset, nbytes=values[name].nbytes, first=first, last=last,
            reused_from=previous[-1] if previous else None)
        plan.arena_bytes = max(plan.arena_bytes, offset + size)
    for name, p in plan.placements.items():
        if p.decision == "alias":
            p.offset = plan.placements[root_of(name)].offset
    return plan


def check_plan(plan: MemoryPlan, steps, values: dict[str, ValueRequest],
               keep_alive: set[str] = frozenset()) -> None:
    """Assert the planner's invariant: no two arena values alive at once share a byte.

    Lifetimes are recomputed from the steps (a view keeps the memory it aliases alive)."""
    life = dict(lifetimes(steps, keep_alive))
    for name, req in values.items():
        target = req.alias_of
        while target and name in life:
            t0, t1 = life.get(target, life[name])
            life[target] = (min(t0, life[name][0]), max(t1, life[name][1]))
            target = values[target].alias_of
    arena = [p for p in plan.placements.values() if p.decision in ("allocate", "reuse")]
    for i, a in enumerate(arena):
        for b in arena[i + 1:]:
            la, lb = life.get(a.name, (a.first, a.last)), life.get(b.name, (b.first, b.last))
            overlap_time = not (la[1] < lb[0] or lb[1] < la[0])
            overlap_space = a.offset < b.offset + max(b.nbytes, 1) and \
                b.offset < a.offset + max(a.nbytes, 1)
            if overlap_time and overlap_space:
                raise AssertionError(f"{a.name} and {b.name} overlap in time and space")
