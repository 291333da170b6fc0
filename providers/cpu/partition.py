"""A compiled CPU partition: how the CPU provider runs a subgraph.

Two ways to run, chosen per input-shape signature:

- **Plan** (the fast path). When every shape in the partition is fixed by the input shapes
  (no NonZero-like op, every Reshape target computed from constants or Shape ops), the first run
  with a new signature is traced node by node; the trace fixes every value's shape, the memory
  planner places the intermediates in one arena, and the nodes become one ``ferry_kernels.Plan``:
  C++ kernels called in a loop without the GIL, numpy implementations as callbacks. Later runs
  with that signature are one C++ call.
- **Trace** (node by node, in Python). For partitions whose shapes depend on data, and for the
  first run of each signature. Kernels are cached per node and input shapes.

With ``SessionOptions.execution_mode = ORT_PARALLEL`` and ``inter_op_num_threads`` != 1, a plan
runs its steps in *waves* (levels of the dependency graph): the steps of one wave, which do not
depend on each other, run at the same time on inter-op threads, and the memory planner measures
lifetimes in waves so that values alive in the same wave never share arena bytes.
"""

from __future__ import annotations

import collections
import logging
import threading
import weakref
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from providers.base import CompileContext, CompiledPartition, DirectRunner, StaleRunner
from providers.cpu import native, opset
from providers.cpu.size_prediction import predicted_output_bytes
from runtime import errors, ir, memory
from runtime.errors import FerryError, InvalidArgument, MemoryLimitExceeded, RuntimeException
from runtime.executor import RunState as _RunState
from runtime.options import ExecutionMode, default_thread_count

log = logging.getLogger("ferry")

# Ops whose output values change from run to run even with equal inputs.
NONDETERMINISTIC_OPS = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike",
                        "Multinomial", "Bernoulli", "Dropout"}
# Ops that only reinterpret their first input's memory: the planner makes their output a view.
VIEW_OPS = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dropout"}
# Element types the C++ plan can hold in its arena (everything numpy stores flat).
_PLANNABLE_KINDS = set("biufcV")
# inter_op_num_threads = 0 under ORT_PARALLEL: at most this many (branches rarely go wider).
DEFAULT_INTER_OP_THREADS = 4


def inter_op_threads(session_options) -> int:
    """Threads a plan's independent steps may run on: 1 unless the options ask ORT_PARALLEL."""
    if session_options is None:
        return 1
    if getattr(session_options, "execution_mode", None) != ExecutionMode.ORT_PARALLEL:
        return 1
    n = int(getattr(session_options, "inter_op_num_threads", 0) or 0)
    if n <= 0:
        n = min(DEFAULT_INTER_OP_THREADS, default_thread_count())
    return max(1, n)


@dataclass
class _Step:
    node_index: int
    inputs: list[str]          # value names, '' when absent
    outputs: list[str]
    kernel: Any = None         # a ferry_kernels.Kernel, or None for a numpy callback
    kernel_name: str = ""
    constant_positions: tuple = ()


@dataclass
class _PlanEntry:
    plan: Any
    input_names: list[str]     # order of Plan.run's inputs
    output_shapes: list[tuple]
    output_dtypes: list[np.dtype]
    produced_outputs: list[str]  # partition outputs written by the plan, in outputs order
    memory: memory.MemoryPlan
    kernels: list[str] = field(default_factory=list)
    schedule: list[list[list[int]]] | None = None  # waves of tasks when run in parallel
    step_nodes: list[tuple[str, str]] = field(default_factory=list)  # (node name, op type)
    step_ns: np.ndarray | None = None  # per-step nanoseconds while step timing is on
    timed_runs: int = 0
    in_place_concats: int = 0  # Concats whose inputs were written straight into the output


class CpuPartition(CompiledPartition):
    """A CPU subgraph, compiled. Holds two programs: ``folded`` (the nodes whose inputs are all
    constants evaluated once, here, at compile time) used while every overridable initializer
    keeps its default, and ``full`` (every node) used when a run overrides one."""

    def __init__(self, graph: ir.Graph, provider, context: CompileContext):
        self.provider = provider
        self.graph = graph
        self.context = context
        self.inputs = graph.input_names
        self.outputs = graph.output_names
        self.initializers = graph.initializers
        self.overridable = {n for n in context.overridable if n in graph.initializers}
        nodes = ir.topological_sort(graph)
        impls, attrs = [], []
        for node in nodes:
            impl = opset.get(node.op_type, node.domain, graph.opset(node.domain))
            if impl is None:
                raise errors.NotImplemented(f"no CPU implementation for node {node.display}")
            impls.append(impl)
            attrs.append(impl.attrs_with_defaults(node.attrs))
        opts = provider.options
        self.use_native = bool(opts.get("use_native_kernels", True)) and native.available()
        self.use_plan = bool(opts.get("use_plan", True)) and self.use_native
        self.cache_size = int(opts.get("plan_cache_size", 16))
        self.inter_op_threads = inter_op_threads(context.session_options)
        self.step_timing = False  # set by InferenceSession.profile_plan
        self._memory_limit = context.session_options.effective_memory_limit() \
            if context.session_options is not None else 1 << 40
        self._subgraph_parts: dict[int, CpuPartition] = {}
        self._lock = threading.Lock()

        constants = {k: v for k, v in graph.initializers.items() if k not in self.overridable}
        self.full = _Program(self, nodes, impls, attrs, constants)
        if self.overridable:
            folded_nodes, folded = self._fold(nodes, impls, attrs, dict(graph.initializers))
            self.folded = _Program(self, *folded_nodes, {**graph.initializers, **folded})
        else:
            folded_nodes, folded = self._fold(nodes, impls, attrs, constants)
            self.folded = _Program(self, *folded_nodes, {**constants, **folded})
            self.full = self.folded
        self.folded_count = len(nodes) - len(self.folded.nodes)

    def _fold(self, nodes, impls, attrs, constants):
        """Evaluate the nodes that read only constants; returns the rest and the values."""
        env = dict(constants)
        rest = ([], [], [])
        folded: dict[str, Any] = {}
        for node, impl, at in zip(nodes, impls, attrs):
            names = ir.node_all_inputs(node)
            foldable = (node.op_type not in NONDETERMINISTIC_OPS and not impl.dynamic_shape
                        and not any(True for _ in node.subgraphs())
                        and all(n in env for n in names))
            if foldable:
                ins = [env[n] if n else None for n in node.inputs]
                if self._predicted_bytes(node, ins, at) > self._memory_limit:
                    foldable = False  # run time refuses it, naming the node
            if foldable:
                try:
                    with np.errstate(all="ignore"):
                        outs = impl.call(ins, at, None)
                except Exception:  # leave it to run time, where errors name the node
                    foldable = False
                else:
                    if len(outs) < len([o for o in node.outputs if o]) or not all(
                            isinstance(o, np.ndarray) for o in outs):
                        foldable = False
            if not foldable:
                rest[0].append(node)
                rest[1].append(impl)
                rest[2].append(at)
                continue
            for name, value in zip(node.outputs, outs):
                if name:
                    env[name] = value
                    folded[name] = value
        return rest, folded

    def run(self, feeds: dict[str, Any], run_state: _RunState | None = None) -> dict[str, Any]:
        run_state = run_state or _RunState()
        defaults = all(feeds.get(n) is self.initializers[n] for n in self.overridable
                       if n in feeds)
        return (self.folded if defaults else self.full).run(feeds, run_state)

    def _subgraph_partition(self, graph: ir.Graph) -> "CpuPartition":
        part = self._subgraph_parts.get(id(graph))
        if part is None:
            outer = sorted(graph.outer_references())
            inputs = list(graph.inputs) + [ir.ValueInfo(name) for name in outer
                                           if name not in graph.input_names]
            wrapper = ir.Graph(name=graph.name, nodes=graph.nodes, inputs=inputs,
                               outputs=graph.outputs, initializers=graph.initializers,
                               value_info=graph.value_info, opsets=graph.opsets,
                               parent=graph.parent)
            ctx = CompileContext(session_options=self.context.session_options,
                                 opsets=self.context.opsets)
            part = CpuPartition(wrapper, self.provider, ctx)
            with self._lock:
                part = self._subgraph_parts.setdefault(id(graph), part)
        return part

    @staticmethod
    def _predicted_bytes(node, ins, attrs) -> int:
        if node.domain not in ("", "ai.onnx"):
            return 0
        return predicted_output_bytes(node.op_type, ins, attrs) or 0

    def check_predicted_size(self, node, ins, attrs) -> None:
        """Refuse, before allocating, an output whose size the input values make too big."""
        nbytes = self._predicted_bytes(node, ins, attrs)
        if nbytes > self._memory_limit:
            raise MemoryLimitExceeded(
                f"node {node.display} would allocate {nbytes} bytes for its output, over the "
                f"session's memory limit of {self._memory_limit} "
                "(SessionOptions.memory_limit_bytes)")

    def _check_size(self, node, shape, dtype) -> None:
        n = 1
        for d in shape:
            n *= int(d)
        nbytes = n * np.dtype(dtype).itemsize
        if nbytes > self._memory_limit:
            raise MemoryLimitExceeded(
                f"node {node.display} would allocate {nbytes} bytes for an output of shape "
                f"{list(shape)}, over the session's memory limit of {self._memory_limit}")

    def memory_stats(self) -> dict[str, int]:
        programs = [self.folded] + ([self.full] if self.full is not self.folded else [])
        total: dict[str, int] = {}
        for prog in programs:
            for k, v in prog.memory_stats().items():
                total[k] = total.get(k, 0) + v
        return total

    def release_memory(self) -> int:
        programs = [self.folded] + ([self.full] if self.full is not self.folded else [])
        return sum(p.release_memory() for p in programs)

    def direct_runner(self, feeds: dict[str, Any]) -> DirectRunner | None:
        if self.step_timing or any(n in feeds for n in self.overridable):
            return None
        return self.folded.direct_runner(feeds)

    def step_times(self) -> list[dict[str, Any]]:
        programs = [self.folded] + ([self.full] if self.full is not self.folded else [])
        return [row for p in programs for row in p.step_times()]

    def explain(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "nodes": len(self.full.nodes),
            "nodes_folded_at_compile": self.folded_count,
            "static_shapes": self.folded.static,
            "native_kernels": self.use_native,
            "native_unavailable_reason": "" if native.available() else native.unavailable_reason(),
            "execution_mode": "parallel" if self.inter_op_threads > 1 else "sequential",
            "inter_op_threads": self.inter_op_threads,
            "plans": self.folded.explain_plans() + (
                self.full.explain_plans() if self.full is not self.folded else []),
        }
        return info


class _Program:
    """One node list of a partition with the constants it reads: runs by plan or by trace."""

    def __init__(self, part: CpuPartition, nodes, impls, attrs, constants: dict[str, Any]):
        self.part = part
        self.nodes, self.impls, self.attrs = nodes, impls, attrs
        self.constants = constants
        self.inputs = part.inputs
        self.outputs = part.outputs
        self.static = self._shapes_fixed_by_input_shapes()
        self._plans: collections.OrderedDict = collections.OrderedDict()
        self._trace_only: set = set()
        self._kernel_cache: dict = {}
        self._lock = threading.Lock()

    # ---- analysis ------------------------------------------------------------------------
    def _shapes_fixed_by_input_shapes(self) -> bool:
        """True when every value's shape is a function of the partition's input shapes."""
        shape_known = {n: True for n in self.inputs}
        value_known = {n: n in self.constants for n in self.inputs}
        for n in self.constants:
            shape_known[n] = True
            value_known[n] = True
        for node, impl in zip(self.nodes, self.impls):
            names = ir.node_all_inputs(node)
            if impl.dynamic_shape or any(True for _ in node.subgraphs()):
                sk = vk = False
            else:
                sk = all(shape_known.get(i, False) for i in names) and all(
                    value_known.get(node.inputs[j], False)
                    for j in impl.shape_inputs if j < len(node.inputs) and node.inputs[j])
                vk = sk and node.op_type not in NONDETERMINISTIC_OPS and (
                    impl.value_from_shape or all(value_known.get(i, False) for i in names))
            for o in node.outputs:
                if o:
                    shape_known[o] = sk
                    value_known[o] = vk
            if not sk:
                return False
        return True

    def _is_constant(self, name: str, value: Any) -> bool:
        return bool(name) and name in self.constants and value is self.constants[name]

    # ---- running -------------------------------------------------------------------------
    def run(self, feeds: dict[str, Any], run_state: _RunState) -> dict[str, Any]:
        part = self.part
        key = self._signature(feeds) if (part.use_plan and self.static
                                         and run_state.profiler is None) else None
        if key is not None and key not in self._trace_only:
            with self._lock:
                entry = self._plans.get(key)
                if entry is not None:
                    self._plans.move_to_end(key)
            if entry is not None:
                try:
                    return self._run_plan(entry, feeds, run_state)
                except FerryError:
                    raise
                except Exception as exc:
                    # Stopped between steps (terminate or timeout): RunCancelled, plan kept.
                    run_state.check_cancelled()
                    # Re-run node by node. When that fails too, the input is at fault (an
                    # index out of range): the error names the node and the plan stays, or one
                    # bad request would put every later one of its shape on the slow path.
                    log.debug("plan run failed (%s); retrying node by node", exc)
                    env, _ = self._trace(feeds, run_state, record=False)
                    # It ran node by node where the plan failed: the plan's assumption broke,
                    # and this signature stays on the slow path.
                    with self._lock:
                        self._trace_only.add(key)
                        self._plans.pop(key, None)
                    return {name: env[name] for name in self.outputs}
        env, steps = self._trace(feeds, run_state, record=key is not None)
        if key is not None and steps is not None:
            try:
                entry = self._build_plan(steps, env, feeds)
            except Exception as exc:  # an exotic dtype the C++ side does not hold, etc.
                log.debug("no plan for partition (%s); it runs node by node", exc)
                with self._lock:
                    self._trace_only.add(key)
            else:
                with self._lock:
                    self._plans[key] = entry
                    while len(self._plans) > part.cache_size:
                        self._plans.popitem(last=False)
        return {name: env[name] for name in self.outputs}

    def direct_runner(self, feeds: dict[str, Any]) -> DirectRunner | None:
        """The plan that run() takes for these feeds' signature, as one call (see
        CompiledPartition.direct_runner); None when they go node by node or have no plan yet.
        It goes stale when the plan leaves the cache or step timing starts."""
        part = self.part
        if not (part.use_plan and self.static):
            return None
        key = self._signature(feeds)
        if key is None or key in self._trace_only:
            return None
        plans = self._plans
        entry = plans.get(key)
        if entry is None:
            return None
        # Weakly: a plan the cache evicts is freed (with its arena), not kept by the runner.
        entry_ref = weakref.ref(entry)
        shapes, dtypes = list(entry.output_shapes), list(entry.output_dtypes)

        def run(values: list) -> list:
            current = entry_ref()
            if current is None or part.step_timing or plans.get(key) is not current:
                raise StaleRunner("the plan left the partition's cache")
            outs = [np.empty(s, d) for s, d in zip(shapes, dtypes)]
            current.plan.run(values, outs)
            return outs

        return DirectRunner(list(entry.input_names), list(entry.produced_outputs), run)

    def _signature(self, feeds: dict[str, Any]):
        sig = []
        for name in self.inputs:
            v = feeds.get(name)
            if not isinstance(v, np.ndarray) or v.dtype.kind not in "biuf":
                return None
            sig.append((v.shape, v.dtype.str, self._is_constant(name, v)))
        return tuple(sig)

    def _run_plan(self, entry: _PlanEntry, feeds, run_state) -> dict[str, Any]:
        run_state.check_cancelled()
        ins = [native.contiguous(feeds[n]) for n in entry.input_names]
        outs = [np.empty(s, d) for s, d in zip(entry.output_shapes, entry.output_dtypes)]
        control = run_state.plan_control()
        if self.part.step_timing and entry.schedule is None:
            if entry.step_ns is None:
                entry.step_ns = np.zeros(len(entry.kernels), np.int64)
            control["step_ns"] = entry.step_ns
            entry.timed_runs += 1
        entry.plan.run(ins, outs, **control)
        result = dict(zip(entry.produced_outputs, outs))
        for name in self.outputs:
            if name not in result:  # passed straight through, or a constant
                result[name] = feeds[name] if name in feeds else self.constants[name]
        return result

    def _node_context(self, node: ir.Node, env: dict, run_state: _RunState) -> opset.OpContext:
        part = self.part

        def run_subgraph(graph: ir.Graph, sub_feeds: dict[str, Any]) -> list:
            sub = part._subgraph_partition(graph)
            full = {}
            for name in sub.inputs:
                if name in sub_feeds:
                    full[name] = sub_feeds[name]
                elif name in env:
                    full[name] = env[name]
                else:
                    raise RuntimeException(
                        f"subgraph of node {node.display} reads '{name}', which is not defined "
                        "in any enclosing scope")
            out = sub.run(full, run_state)
            return [out[n] for n in sub.outputs]

        return opset.OpContext(
            node_name=node.name, op_type=node.op_type, domain=node.domain,
            opset=part.graph.opset(node.domain), num_outputs=len(node.outputs),
            run_subgraph=run_subgraph, outer_scope=env,
            rng=run_state.rng if run_state.rng is not None else np.random.default_rng())

    def _trace(self, feeds, run_state: _RunState, record: bool):
        env: dict[str, Any] = dict(self.constants)
        env.update(feeds)
        steps: list[_Step] | None = [] if record else None
        for i, (node, impl, attrs) in enumerate(zip(self.nodes, self.impls, self.attrs)):
            run_state.check_cancelled()
            ins = [env[n] if n else None for n in node.inputs]
            profiler = run_state.profiler
            t0 = profiler.now() if profiler is not None else 0
            try:
                outs, step = self._run_node(i, node, impl, attrs, ins, env, run_state)
            except FerryError:
                raise
            except Exception as exc:
                shapes = ", ".join(_describe(v) for v in ins)
                raise RuntimeException(
                    f"node {node.display} failed on inputs ({shapes}): "
                    f"{type(exc).__name__}: {exc}") from exc
            if profiler is not None:
                profiler.node_event(node, "cpu", t0, ins, outs)
            names = step.outputs if step.kernel is not None else node.outputs
            for j, name in enumerate(names):
                if not name:
                    continue
                if j >= len(outs) or (outs[j] is None and node.op_type not in _MAY_YIELD_NONE):
                    raise RuntimeException(f"node {node.display} produced no value for its "
                                           f"output #{j} '{name}'")
                env[name] = outs[j]
            if steps is not None:
                steps.append(step)
        for name in self.outputs:
            if name not in env:
                raise RuntimeException(f"partition output '{name}' was never computed")
        return env, steps

    def _run_node(self, index, node, impl, attrs, ins, env, run_state):
        part = self.part
        part.check_predicted_size(node, ins, attrs)
        if part.use_native and impl.native is not None and all(
                v is None or isinstance(v, np.ndarray) for v in ins):
            is_const = tuple(self._is_constant(n, v) for n, v in zip(node.inputs, ins))
            key = (index,) + tuple(None if v is None else (v.shape, v.dtype.str) for v in ins)
            key += tuple(ins[j].tobytes() if j < len(ins) and ins[j] is not None else None
                         for j in impl.shape_inputs) + is_const
            cached = self._kernel_cache.get(key)
            if cached is None:
                cached = self._make_kernel(node, impl, attrs, ins, is_const)
                if len(self._kernel_cache) > 4096:
                    self._kernel_cache.clear()
                self._kernel_cache[key] = cached
            call, kernel, positions, names, const_pos = cached
            if call is not None:
                kins = [ins[p] if p is not None and p < len(ins) else None for p in positions]
                kins = [None if j in const_pos else
                        (None if v is None else native.contiguous(v))
                        for j, v in enumerate(kins)]
                outs = [np.empty(s, d) for s, d in zip(call.output_shapes, call.output_dtypes)]
                kernel.run(kins, outs)
                # A kernel writes every output it declares; unnamed ones still need memory.
                out_names = [node.outputs[j] if j < len(node.outputs) and node.outputs[j]
                             else f"\0unused:{index}:{j}" for j in range(len(outs))]
                return outs, _Step(index, names, out_names, kernel, call.kernel, const_pos)
        ctx = self._node_context(node, env, run_state)
        outs = impl.call(ins, attrs, ctx)
        outs = [np.asarray(o) if isinstance(o, (np.generic, float, int, bool)) else o
                for o in outs]
        return outs, _Step(index, list(node.inputs), list(node.outputs))

    def _make_kernel(self, node, impl, attrs, ins, is_const):
        call = impl.native(ins, {**attrs, "_num_outputs": len(node.outputs)})
        if call is None:
            return (None, None, None, None, None)
        positions = call.inputs if call.inputs is not None else list(range(len(ins)))
        kins = [ins[p] if p is not None and p < len(ins) else None for p in positions]
        names = [node.inputs[p] if p is not None and p < len(node.inputs) else ""
                 for p in positions]
        constants = {j: kins[j] for j in call.constant_inputs
                     if j < len(positions) and kins[j] is not None
                     and positions[j] is not None and positions[j] < len(is_const)
                     and is_const[positions[j]]}
        for shape, dt in zip(call.output_shapes, call.output_dtypes):
            self.part._check_size(node, shape, dt)
        kernel = native.make(call, [() if v is None else v.shape for v in kins],
                             [None if v is None else v.dtype for v in kins], constants)
        return (call, kernel, positions, names, tuple(sorted(constants)))

    # ---- plan building -------------------------------------------------------------------
    def _build_plan(self, steps: list[_Step], env: dict, feeds: dict) -> _PlanEntry:
        import ferry_kernels as fk

        for name, v in env.items():
            if not isinstance(v, np.ndarray):
                raise TypeError(f"value '{name}' is a {type(v).__name__}, not a tensor")
            if v.dtype.kind not in "biuf" and name not in self.constants:
                raise TypeError(f"value '{name}' of dtype {v.dtype} cannot live in the arena")

        output_set = set(self.outputs)
        produced = {o for s in steps for o in s.outputs if o}
        produced_outputs = [n for n in self.outputs if n in produced]
        fed = [n for n in self.inputs if n in feeds and not self._is_constant(n, feeds[n])]

        # Which steps become views (dropped from the plan)?
        alias_of: dict[str, str] = {}
        kept: list[_Step] = []
        for s in steps:
            node = self.nodes[s.node_index]
            if (s.kernel is not None and s.kernel_name == "Copy" and node.op_type in VIEW_OPS
                    and s.outputs and s.outputs[0] and s.outputs[0] not in output_set
                    and s.inputs and s.inputs[0] and len([o for o in s.outputs if o]) == 1):
                alias_of[s.outputs[0]] = s.inputs[0]
                continue
            kept.append(s)
        slice_offset: dict[str, int] = {}
        before = len(kept)
        if self.part.inter_op_threads <= 1:  # a wave schedule wants one writer per memory
            kept = self._concat_slices(kept, env, feeds, set(fed), output_set, alias_of,
                                       slice_offset)
        in_place_concats = before - len(kept)

        requests: dict[str, memory.ValueRequest] = {}

        def kind_of(name: str) -> str:
            if name in output_set and name in produced:
                return "output"
            if name in fed:
                return "input"
            if name in self.constants or name in feeds:
                return "const"
            return "arena"

        names_in_order: list[str] = []

        def request(n: str) -> None:
            if n and n not in requests:
                names_in_order.append(n)
                requests[n] = memory.ValueRequest(n, int(env[n].nbytes), kind_of(n),
                                                  alias_of.get(n), slice_offset.get(n, 0))

        for s in kept:
            for j, n in enumerate(s.inputs):
                if s.kernel is None or j not in s.constant_positions:
                    request(n)
            for n in s.outputs:
                request(n)
        # Views read by kept steps must also be present, with their targets.
        for n in list(requests):
            t = alias_of.get(n)
            while t and t not in requests:
                request(t)
                t = alias_of.get(t)
        for n in produced_outputs:
            request(n)

        plan_steps = [([n for j, n in enumerate(s.inputs)
                        if s.kernel is None or j not in s.constant_positions], s.outputs)
                      for s in kept]
        schedule = None
        if self.part.inter_op_threads > 1:
            schedule = memory.dependency_tasks(plan_steps, alias_of)
            if all(len(w) == 1 for w in schedule):  # a chain: nothing to run concurrently
                schedule = None
        mem = memory.plan_memory(plan_steps, requests, schedule=schedule)

        ids = {n: i for i, n in enumerate(names_in_order)}
        input_names = [n for n in fed if n in requests]
        values = []
        for n in names_in_order:
            v = env[n]
            shape = list(v.shape)
            dt = v.dtype.name
            req = requests[n]
            if req.alias_of:
                values.append(("alias", ids[req.alias_of], shape, dt, req.alias_offset or None))
            elif req.kind == "input":
                values.append(("input", input_names.index(n), shape, dt, None))
            elif req.kind == "const":
                values.append(("const", 0, shape, dt, native.contiguous(v)))
            elif req.kind == "output":
                values.append(("output", produced_outputs.index(n), shape, dt, None))
            else:
                values.append(("arena", mem.placements[n].offset, shape, dt, None))

        fk_steps = []
        for s in kept:
            if s.kernel is not None:
                in_ids = [-1 if (not n or j in s.constant_positions) else ids[n]
                          for j, n in enumerate(s.inputs)]
                out_ids = [ids[n] if n else -1 for n in s.outputs]
                fk_steps.append((s.kernel, in_ids, out_ids))
            else:
                in_ids = [ids[n] if n else -1 for n in s.inputs]
                out_ids = [ids[n] for n in s.outputs if n]
                fk_steps.append((self._callback(s.node_index), in_ids, out_ids))
        if schedule is None:
            plan = fk.Plan(int(mem.arena_bytes), values, fk_steps)
        else:
            plan = fk.Plan(int(mem.arena_bytes), values, fk_steps, schedule=schedule,
                           inter_op_threads=self.part.inter_op_threads)
        return _PlanEntry(
            plan=plan, input_names=input_names,
            output_shapes=[env[n].shape for n in produced_outputs],
            output_dtypes=[env[n].dtype for n in produced_outputs],
            produced_outputs=produced_outputs, memory=mem,
            kernels=[s.kernel_name or f"numpy:{self.nodes[s.node_index].op_type}" for s in kept],
            schedule=schedule, in_place_concats=in_place_concats,
            step_nodes=[(self.nodes[s.node_index].name or f"#{s.node_index}",
                         self.nodes[s.node_index].op_type) for s in kept])

    def _concat_slices(self, kept: list[_Step], env: dict, feeds: dict, fed: set[str],
                       output_set: set[str], alias_of: dict[str, str],
                       slice_offset: dict[str, int]) -> list[_Step]:
        """Concats whose inputs can be written in place: along an axis with only 1s before
        it, each input is one contiguous block of the output, so the steps producing the
        inputs write straight into the output (each input becomes a view of its slice) and
        the Concat step, a copy of everything, is dropped. DenseNet's blocks concatenate the
        growing feature map each layer, SqueezeNet's fire modules their two branches.
        Records the slices in ``alias_of`` / ``slice_offset``; returns the steps left."""
        produced = {o for s in kept for o in s.outputs if o}
        sliced: set[str] = set()
        drop: set[int] = set()
        for i, s in enumerate(kept):
            node = self.nodes[s.node_index]
            if node.op_type != "Concat" or s.kernel_name != "Concat" or not s.outputs:
                continue
            out = s.outputs[0]
            y = env.get(out)
            if not out or not isinstance(y, np.ndarray) or y.ndim == 0:
                continue
            axis = int(self.attrs[s.node_index].get("axis", 1))
            axis = axis + y.ndim if axis < 0 else axis
            if not 0 <= axis < y.ndim or int(np.prod(y.shape[:axis], dtype=np.int64)) != 1:
                continue
            names = [n for n in s.inputs]

            def sliceable(n: str) -> bool:
                v = env.get(n)
                return bool(n) and n in produced and n not in alias_of and n not in sliced \
                    and n not in output_set and n not in fed and n not in feeds \
                    and n not in self.constants and names.count(n) == 1 \
                    and isinstance(v, np.ndarray) and v.dtype == y.dtype
            if not names or not all(sliceable(n) for n in names):
                continue
            offset = 0
            for n in names:
                alias_of[n] = out
                slice_offset[n] = offset
                sliced.add(n)
                offset += int(env[n].nbytes)
            drop.add(i)
        return [s for i, s in enumerate(kept) if i not in drop]

    def _callback(self, index: int):
        node, impl, attrs = self.nodes[index], self.impls[index], self.attrs[index]
        ctx = opset.OpContext(node_name=node.name, op_type=node.op_type, domain=node.domain,
                              opset=self.part.graph.opset(node.domain),
                              num_outputs=len(node.outputs), rng=np.random.default_rng())
        wanted = [j for j, o in enumerate(node.outputs) if o]

        def callback(*args):
            outs = impl.call(list(args), attrs, ctx)
            if len(wanted) == 1:
                return np.asarray(outs[wanted[0]])
            return tuple(np.asarray(outs[j]) for j in wanted)

        callback.__name__ = f"{node.op_type}_{node.name}"
        return callback

    def memory_stats(self) -> dict[str, int]:
        """Bytes planned (arena sizes of the compiled plans), reserved (arenas allocated: pooled
        for reuse or in use) and the peak reserved (most arenas leased at once)."""
        with self._lock:
            entries = list(self._plans.values())
        planned = reserved = peak = 0
        for e in entries:
            st = e.plan.arena_stats()
            size = int(e.plan.arena_bytes)
            planned += size
            reserved += size * (int(st["pooled"]) + int(st["leased"]))
            peak += size * int(st["peak"])
        return {"planned_bytes": planned, "reserved_bytes": reserved, "peak_bytes": peak,
                "plans": len(entries)}

    def release_memory(self) -> int:
        """Free the idle arenas (runs in flight keep theirs); returns the bytes freed."""
        with self._lock:
            entries = list(self._plans.values())
        return sum(int(e.plan.trim()) for e in entries)

    def step_times(self) -> list[dict[str, Any]]:
        """Per-step mean times of the plans run while step timing was on (see
        InferenceSession.profile_plan); resets them."""
        with self._lock:
            entries = list(self._plans.values())
        rows = []
        for e in entries:
            if e.step_ns is None or not e.timed_runs:
                continue
            for (name, op), kernel, ns in zip(e.step_nodes, e.kernels, e.step_ns):
                rows.append({"node": name, "op_type": op, "kernel": kernel,
                             "mean_us": float(ns) / e.timed_runs / 1e3})
            e.step_ns, e.timed_runs = None, 0
        return rows

    def explain_plans(self) -> list[dict[str, Any]]:
        with self._lock:
            plans = list(self._plans.items())
        out = []
        for key, entry in plans:
            out.append({
                "input_shapes": [list(s) for s, _, c in key if not c],
                "arena_bytes": entry.memory.arena_bytes,
                "naive_bytes": entry.memory.naive_bytes,
                "steps": len(entry.kernels),
                "kernels": dict(collections.Counter(entry.kernels)),
                "in_place_concats": entry.in_place_concats,
                # Sequential: one step per wave. Parallel: the tasks (chains of steps) of a
                # wave run concurrently; widest_wave counts tasks.
                "schedule": {
                    "mode": "parallel" if entry.schedule is not None else "sequential",
                    "waves": len(entry.schedule) if entry.schedule is not None
                    else len(entry.kernels),
                    "max_concurrency": min(max((len(w) for w in entry.schedule), default=1),
                                           self.part.inter_op_threads)
                    if entry.schedule is not None else 1,
                    "widest_wave": max((len(w) for w in entry.schedule), default=0)
                    if entry.schedule is not None else min(1, len(entry.kernels)),
                    "inter_op_threads": self.part.inter_op_threads
                    if entry.schedule is not None else 1,
                },
                "memory_plan": entry.memory,
            })
        return out


# Ops whose numpy implementation legitimately yields None (an empty optional).
_MAY_YIELD_NONE = {"Optional", "OptionalGetElement", "If", "Loop", "Identity", "SequenceAt"}


def _describe(v: Any) -> str:
    if isinstance(v, np.ndarray):
        return f"{v.dtype}{list(v.shape)}"
    if v is None:
        return "None"
    if isinstance(v, list):
        return f"sequence[{len(v)}]"
    return type(v).__name__


__all__ = ["CpuPartition", "InvalidArgument"]
