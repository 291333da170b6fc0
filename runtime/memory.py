"""The memory planner: value lifetimes in execution order -> offsets in one arena.

Given the steps of a partition in execution order, which values each step reads and writes,
and each value's size, it places every arena-managed value at a byte offset so that two values
alive at the same time never overlap, packing greedily by size (largest first, lowest offset
that fits). Every value gets a named decision, as onnxruntime's planner does:

- ``allocate``     a fresh region of the arena (nothing was there before it)
- ``reuse``        a region an earlier, now dead value used
- ``pre-existing`` memory owned by someone else: a graph input or a constant
- ``output``       a partition output, written straight into the array handed back
- ``alias``        a view of another value's memory (Reshape, Squeeze, Identity...), or a
                   slice of it at ``alias_offset`` (a Concat input written in place into the
                   Concat's output)

Plans are made per input-shape signature by the CPU provider and cached there.

Parallel schedules. When the steps run in *waves* (``schedule``: a list of waves, each a list
of tasks, a task being a step index or a list of step indices run in order; the tasks of one
wave may run at the same time, and a wave starts only when the previous one has finished),
a step happens before another when it is in an earlier wave, or earlier in the same task. Two
values share bytes only when every access of one happens before every access of the other:
one's last wave ends before the other's first begins (the barrier between waves makes that
safe), or they meet in one wave inside a single task, in order (a chain run by one thread).
``Placement.first``/``last`` are then wave indices.
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
    alias_offset: int = 0        # ... from this byte on (a slice of it, e.g. a Concat input)


@dataclass
class Placement:
    name: str
    decision: str                # allocate | reuse | pre-existing | output | alias
    offset: int = -1             # byte offset in the arena (arena values)
    nbytes: int = 0
    first: int = -1              # first step that writes or reads it
    last: int = -1               # last step that reads it
    alias_of: str | None = None
    alias_offset: int = 0        # bytes into alias_of
    reused_from: str | None = None


@dataclass
class MemoryPlan:
    placements: dict[str, Placement] = field(default_factory=dict)
    arena_bytes: int = 0
    naive_bytes: int = 0         # sum of all arena values' sizes: the cost without reuse
    schedule: list | None = None  # the parallel schedule planned for, if any
    # (steps, values, keep_alive, schedule) as given to plan_memory: for verify().
    request: tuple | None = field(default=None, repr=False)

    def verify(self) -> None:
        """Re-check this plan against the steps it was made for (AssertionError if wrong)."""
        if self.request is not None:
            check_plan(self, *self.request)

    def describe(self) -> str:
        lines = [f"arena {self.arena_bytes} bytes (naive sum {self.naive_bytes})"]
        for p in sorted(self.placements.values(), key=lambda p: (p.first, p.name)):
            where = f"@{p.offset}" if p.offset >= 0 else ""
            at = f"+{p.alias_offset}" if p.alias_offset else ""
            extra = f" of {p.alias_of}{at}" if p.alias_of else (
                f" from {p.reused_from}" if p.reused_from else "")
            lines.append(f"  {p.name}: {p.decision}{extra} {p.nbytes}B{where} "
                         f"live [{p.first}, {p.last}]")
        return "\n".join(lines)


def wave_of_step(schedule: list[list], n_steps: int) -> list[int]:
    """The wave index of each step; raises ValueError unless ``schedule`` covers each step once.
    A wave's items are step indices or tasks (lists of step indices)."""
    time = [-1] * n_steps
    for w, wave in enumerate(schedule):
        for task in wave:
            for i in ([task] if isinstance(task, int) else task):
                if not 0 <= i < n_steps or time[i] != -1:
                    raise ValueError(f"schedule: step {i} is unknown or scheduled twice")
                time[i] = w
    if -1 in time:
        raise ValueError(f"schedule: step {time.index(-1)} is not scheduled")
    return time


def dependency_waves(steps: list[tuple[list[str], list[str]]],
                     alias_of: dict[str, str] | None = None) -> list[list[int]]:
    """Group steps (in a valid sequential order) into waves: a step goes in the wave after the
    latest wave that produces one of its inputs. Steps of one wave are independent of each
    other. A view (``alias_of``: view -> the value it views) counts as produced by the step
    producing the value it views."""
    alias_of = alias_of or {}
    wave_of_value: dict[str, int] = {}
    waves: list[list[int]] = []
    for i, (ins, outs) in enumerate(steps):
        w = 0
        for name in ins:
            seen = 0
            while name and name not in wave_of_value and name in alias_of and seen < 64:
                name, seen = alias_of[name], seen + 1
            if name in wave_of_value:
                w = max(w, wave_of_value[name] + 1)
        for name in outs:
            if name:
                wave_of_value[name] = w
        if w == len(waves):
            waves.append([])
        waves[w].append(i)
    return waves


def dependency_tasks(steps: list[tuple[list[str], list[str]]],
                     alias_of: dict[str, str] | None = None) -> list[list[list[int]]]:
    """Like ``dependency_waves``, but links of a chain become one task: a step whose only
    consumer step has it as its only producer step runs right before that consumer, on the same
    thread. Waves of tasks (lists of step indices in order): fewer barriers, and a long branch
    no longer waits at every wave for short ones (e.g. an Inception module is one wave of its
    four branches)."""
    alias_of = alias_of or {}
    producer: dict[str, int] = {}
    preds: list[set[int]] = []
    for i, (ins, outs) in enumerate(steps):
        p = set()
        for name in ins:
            seen = 0
            while name and name not in producer and name in alias_of and seen < 64:
                name, seen = alias_of[name], seen + 1
            if name in producer:
                p.add(producer[name])
        preds.append(p)
        for name in outs:
            if name:
                producer[name] = i
    succs: list[set[int]] = [set() for _ in steps]
    for i, p in enumerate(preds):
        for j in p:
            succs[j].add(i)
    # Chains: i -> j when j is i's only successor and i is j's only predecessor.
    task_of: list[int] = [-1] * len(steps)
    tasks: list[list[int]] = []
    for i in range(len(steps)):
        if task_of[i] == -1:
            task_of[i] = len(tasks)
            tasks.append([i])
        if len(succs[i]) == 1:
            (j,) = succs[i]
            if len(preds[j]) == 1:
                task_of[j] = task_of[i]
                tasks[task_of[i]].append(j)
    # Levels of tasks: a task follows every task producing an input of its head (later steps
    # of a chain depend only on their own task and on values no step writes).
    level: list[int] = []
    waves: list[list[list[int]]] = []
    for t, task in enumerate(tasks):
        w = max((level[task_of[j]] + 1 for j in preds[task[0]]), default=0)
        level.append(w)
        if w == len(waves):
            waves.append([])
        waves[w].append(task)
    return waves


def step_times(schedule: list[list], n_steps: int) -> list[tuple[int, int, int]]:
    """(wave, task, position in task) of each step under ``schedule``; tasks are numbered over
    the whole schedule. Raises ValueError unless each step is scheduled exactly once."""
    times: list = [None] * n_steps
    task_id = 0
    for w, wave in enumerate(schedule):
        for task in wave:
            for pos, i in enumerate([task] if isinstance(task, int) else task):
                if not 0 <= i < n_steps or times[i] is not None:
                    raise ValueError(f"schedule: step {i} is unknown or scheduled twice")
                times[i] = (w, task_id, pos)
            task_id += 1
    if None in times:
        raise ValueError(f"schedule: step {times.index(None)} is not scheduled")
    return times


def happens_before(a: tuple[int, int, int], b: tuple[int, int, int]) -> bool:
    """Whether the step at time ``a`` (wave, task, position) ends before the one at ``b``
    starts: an earlier wave, or earlier in the same task."""
    return a[0] < b[0] or (a[1] == b[1] and a[2] < b[2])


@dataclass(frozen=True)
class _Window:
    """Summary of a value's accesses, enough to order two values under a schedule."""
    first_wave: int
    first_tasks: frozenset
    first_pos: int               # earliest position among the first wave's accesses
    last_wave: int
    last_tasks: frozenset
    last_pos: int                # latest position among the last wave's accesses

    @staticmethod
    def of(times: list[tuple[int, int, int]]) -> _Window:
        fw, lw = min(t[0] for t in times), max(t[0] for t in times)
        first = [t for t in times if t[0] == fw]
        last = [t for t in times if t[0] == lw]
        return _Window(fw, frozenset(t[1] for t in first), min(t[2] for t in first),
                       lw, frozenset(t[1] for t in last), max(t[2] for t in last))

    def before(self, other: _Window) -> bool:
        """Every access of this value happens before every access of ``other``."""
        if self.last_wave != other.first_wave:
            return self.last_wave < other.first_wave
        return (len(self.last_tasks) == 1 and self.last_tasks == other.first_tasks
                and self.last_pos < other.first_pos)


def _access_times(steps, schedule, keep_alive) -> dict[str, list[tuple[int, int, int]]]:
    """Every (wave, task, position) at which each value is read or written; values in
    ``keep_alive`` also at the end, by a task of their own."""
    times = step_times(schedule, len(steps))
    access: dict[str, list] = {}
    for i, (ins, outs) in enumerate(steps):
        for name in list(ins) + list(outs):
            if name:
                access.setdefault(name, []).append(times[i])
    end = max(len(schedule) - 1, 0)
    for name in keep_alive:
        if name in access:
            access[name].append((end, -1, 0))
    return access


def lifetimes(steps: list[tuple[list[str], list[str]]], keep_alive: set[str] = frozenset(),
              schedule: list[list] | None = None) -> dict[str, tuple[int, int]]:
    """(first, last) step index per value, or wave index when ``schedule`` (waves of tasks) is
    given; values in ``keep_alive`` live to the end."""
    time = wave_of_step(schedule, len(steps)) if schedule is not None else None
    span: dict[str, list[int]] = {}
    for i, (ins, outs) in enumerate(steps):
        t = time[i] if time is not None else i
        for name in list(ins) + list(outs):
            if not name:
                continue
            s = span.setdefault(name, [t, t])
            s[0] = min(s[0], t)
            s[1] = max(s[1], t)
    end = max((len(schedule) if schedule is not None else len(steps)) - 1, 0)
    for name in keep_alive:
        if name in span:
            span[name][1] = end
    return {k: (v[0], v[1]) for k, v in span.items()}


def plan_memory(steps: list[tuple[list[str], list[str]]], values: dict[str, ValueRequest],
                keep_alive: set[str] = frozenset(),
                schedule: list[list] | None = None) -> MemoryPlan:
    """Place every ``arena`` value; see the module docstring for the decisions. With
    ``schedule`` (waves of tasks run concurrently), lifetimes are in waves, so values
    that may be alive together under that schedule never share memory."""
    life = lifetimes(steps, keep_alive, schedule)
    plan = MemoryPlan(schedule=schedule, request=(steps, values, keep_alive, schedule))

    # Alias groups: a view extends its root's lifetime; the root owns the memory.
    def root_of(name: str) -> str:
        return _root_and_offset(name, values)[0]

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
                                              last=last, alias_of=req.alias_of,
                                              alias_offset=req.alias_offset)
        elif req.kind in ("input", "const"):
            plan.placements[name] = Placement(name, "pre-existing", nbytes=req.nbytes,
                                              first=first, last=last)
        elif req.kind == "output":
            plan.placements[name] = Placement(name, "output", nbytes=req.nbytes, first=first,
                                              last=last)
        else:
            arena_roots.append(name)
            plan.naive_bytes += align(max(req.nbytes, 1))

    # Which value ends before which begins. Sequentially (or in waves of single steps): by the
    # spans. Under a schedule with tasks: by each alias group's access window (see module doc).
    if schedule is not None:
        access = _access_times(steps, schedule, keep_alive)
        group: dict[str, list] = {}
        for name in values:
            group.setdefault(root_of(name), []).extend(access.get(name, []))
        window = {n: _Window.of(group.get(n) or [(0, -2, 0)]) for n in arena_roots}

        def before(a: str, b: str) -> bool:
            return window[a].before(window[b])
    else:
        def before(a: str, b: str) -> bool:
            return span[a][1] < span[b][0]

    # Greedy by size: biggest first, each at the lowest offset free during its lifetime.
    order = sorted(arena_roots, key=lambda n: (-values[n].nbytes, span[n][0], n))
    placed: list[tuple[int, int, str]] = []  # (offset, end, name)
    for name in order:
        size = align(max(values[name].nbytes, 1))
        first, last = span[name]
        conflicts = sorted((o, e) for o, e, n in placed
                           if not (before(n, name) or before(name, n)))
        offset = 0
        for o, e in conflicts:
            if offset + size <= o:
                break
            offset = max(offset, e)
        placed.append((offset, offset + size, name))
        # Named decision: did a value that died earlier use any of these bytes?
        previous = [n for o, e, n in placed[:-1]
                    if before(n, name) and o < offset + size and offset < e]
        decision = "reuse" if previous else "allocate"
        plan.placements[name] = Placement(
            name, decision, offset=offset, nbytes=values[name].nbytes, first=first, last=last,
            reused_from=previous[-1] if previous else None)
        plan.arena_bytes = max(plan.arena_bytes, offset + size)
    for name, p in plan.placements.items():
        if p.decision == "alias":
            root_name, offset = _root_and_offset(name, values)
            root = plan.placements[root_name]
            p.offset = root.offset + offset if root.offset >= 0 else -1
    return plan


def _root_and_offset(name: str, values: dict[str, ValueRequest]) -> tuple[str, int]:
    """The value whose memory ``name`` uses (itself unless it is a view or slice), and the
    byte offset of ``name`` in it (the slices' offsets along the chain, summed)."""
    off, seen = 0, set()
    while values[name].alias_of and name not in seen:
        seen.add(name)
        off += values[name].alias_offset
        name = values[name].alias_of
    return name, off


def check_plan(plan: MemoryPlan, steps, values: dict[str, ValueRequest],
               keep_alive: set[str] = frozenset(),
               schedule: list[list] | None = None) -> None:
    """Assert the planner's invariant: no two arena values alive at once share a byte.

    Lifetimes are recomputed from the steps (a view keeps the memory it aliases alive). With
    ``schedule``, every access of one of two values sharing a byte must happen before every
    access of the other (checked pair by pair, independently of the planner's summaries)."""
    _check_single_writer(steps, values)
    if schedule is not None:
        _check_scheduled_plan(plan, steps, values, keep_alive, schedule)
        return
    life = dict(lifetimes(steps, keep_alive, schedule))
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


def _check_single_writer(steps, values: dict[str, ValueRequest]) -> None:
    # Slices of one memory (Concat inputs written in place) never overlap: each byte of a
    # sliced root value is written by at most one step. (Offset-0 views written by a step are
    # in-place updates of the value they view: not checked here.)
    written: dict[str, list[tuple[int, int, str]]] = {}
    for _, outs in steps:
        for name in outs:
            if name and name in values:
                root, off = _root_and_offset(name, values)
                written.setdefault(root, []).append((off, off + values[name].nbytes, name))
    for root, spans in written.items():
        if not any(off for off, _, _ in spans):  # no slice at an offset: views, not slices
            continue
        spans.sort()
        for (a0, a1, a), (b0, b1, b) in zip(spans, spans[1:]):
            if b0 < a1:
                raise AssertionError(f"{a} and {b} are written by two steps into the same bytes "
                                     f"of {root}")
        if spans and spans[-1][1] > values[root].nbytes:
            raise AssertionError(f"{spans[-1][2]} is written past the end of {root}")


def _check_scheduled_plan(plan: MemoryPlan, steps, values: dict[str, ValueRequest],
                          keep_alive, schedule) -> None:
    access = _access_times(steps, schedule, keep_alive)
    memory_of: dict[str, list] = {}  # arena root -> accesses of it and of every view of it
    for name in values:
        root, hops = name, 0
        while values[root].alias_of and hops <= len(values):
            root, hops = values[root].alias_of, hops + 1
        memory_of.setdefault(root, []).extend(access.get(name, []))
    arena = [p for p in plan.placements.values() if p.decision in ("allocate", "reuse")]
    for i, a in enumerate(arena):
        for b in arena[i + 1:]:
            if not (a.offset < b.offset + max(b.nbytes, 1) and
                    b.offset < a.offset + max(a.nbytes, 1)):
                continue
            ta, tb = memory_of.get(a.name, []), memory_of.get(b.name, [])
            if not ta or not tb:
                raise AssertionError(f"{a.name} and {b.name} share bytes, one is never used")
            if all(happens_before(x, y) for x in ta for y in tb) or \
                    all(happens_before(y, x) for x in ta for y in tb):
                continue
            raise AssertionError(f"{a.name} and {b.name} overlap in time and space")
