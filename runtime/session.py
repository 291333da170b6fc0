"""InferenceSession: onnxruntime's API, ferry's engine.

Code written for onnxruntime works by changing the import::

    from runtime import InferenceSession
    sess = InferenceSession("model.onnx", providers=["cpu"])
    outputs = sess.run(None, {"input": x})
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from providers import registry
from providers.base import CompileContext, ExecutionProvider
from runtime import ir
from runtime import tensor as _tensor
from runtime.errors import InvalidArgument, ProviderOptionError, suggest
from runtime.executor import Executor
from runtime.model import InputShapeSpec, load_model
from runtime.optimizer import optimize
from runtime.options import (
    ALLOW_SPINNING_CONFIG_KEY,
    PLAN_AT_CREATION_CONFIG_KEY,
    GraphOptimizationLevel,
    RunOptions,
    SessionOptions,
)
from runtime.partition import partition_graph

log = logging.getLogger("ferry")

# Weights above this are saved as external data (protobuf's hard limit is 2 GiB per message).
_EXTERNAL_DATA_ABOVE = 1_800_000_000

_SEVERITY_TO_LOGGING = {0: logging.DEBUG, 1: logging.INFO, 2: logging.WARNING, 3: logging.ERROR,
                        4: logging.CRITICAL}


class ProviderFallbackWarning(UserWarning):
    """A provider the user asked for cannot be used; the session runs on the others."""


@dataclass
class NodeArg:
    """An input or output of the model, as onnxruntime describes it."""

    name: str
    type: str
    shape: list  # ints for fixed dims, strings for symbolic ones, None for unknown

    def __repr__(self) -> str:
        return f"NodeArg(name='{self.name}', type='{self.type}', shape={self.shape})"


@dataclass
class ModelMetadata:
    producer_name: str = ""
    graph_name: str = ""
    domain: str = ""
    description: str = ""
    graph_description: str = ""
    version: int = 0
    custom_metadata_map: dict[str, str] = field(default_factory=dict)


def _node_arg(vi: ir.ValueInfo) -> NodeArg:
    shape = None if vi.shape is None else list(vi.shape)
    return NodeArg(vi.name, vi.type_string, shape)


def _describe_value(v: Any) -> str:
    if isinstance(v, np.ndarray):
        return f"{v.dtype} array of shape {list(v.shape)}"
    return f"{type(v).__name__}"


def _parse_provider_list(providers, provider_options) -> list[tuple[str, dict]]:
    if providers is None:
        providers = ["cpu"]
    if isinstance(providers, str):
        providers = [providers]
    if provider_options is not None:
        if len(provider_options) != len(providers):
            raise InvalidArgument(
                f"provider_options has {len(provider_options)} entries for {len(providers)} "
                "providers; give one dict per provider")
    result: list[tuple[str, dict]] = []
    seen = set()
    for i, entry in enumerate(providers):
        if isinstance(entry, (tuple, list)):
            if len(entry) != 2 or not isinstance(entry[1], dict):
                raise InvalidArgument(f"provider entry {entry!r} must be a name or a "
                                      "(name, options_dict) tuple")
            name, opts = entry[0], dict(entry[1])
        else:
            name, opts = entry, {}
        if provider_options is not None:
            opts.update(provider_options[i] or {})
        short = registry.canonical_name(name)
        if short in seen:
            raise InvalidArgument(f"provider '{name}' is listed twice")
        seen.add(short)
        result.append((short, opts))
    return result


class InferenceSession:
    """Load a model once, run it many times (thread-safe ``run``)."""

    def __init__(self, path_or_bytes, sess_options: SessionOptions | None = None,
                 providers: Sequence | None = None, provider_options: Sequence | None = None,
                 **kwargs):
        if kwargs:
            raise InvalidArgument(f"unexpected arguments: {', '.join(kwargs)}")
        self._options = sess_options if sess_options is not None else SessionOptions()
        if not isinstance(self._options, SessionOptions):
            raise InvalidArgument("sess_options must be a runtime.SessionOptions")
        self._closed = False
        self._lock = threading.Lock()
        log.setLevel(_SEVERITY_TO_LOGGING.get(self._options.log_severity_level, logging.WARNING))

        # 1. Providers: validate everything before any work, so an option error is never
        #    mistaken for unavailability.
        requested = _parse_provider_list(providers, provider_options)
        classes = [(name, registry.provider_class(name), opts) for name, opts in requested]
        for name, cls, opts in classes:
            cls.parse_options(opts)
        self._requested = [name for name, _ in requested]
        active: list[ExecutionProvider] = []
        self._unavailable: dict[str, str] = {}
        for name, cls, opts in classes:
            ok, reason = cls.availability()
            if not ok:
                self._unavailable[name] = reason
                continue
            active.append(cls(opts, self._options))
        if self._unavailable:
            msg = "; ".join(f"'{n}' is unavailable: {r}" for n, r in self._unavailable.items())
            rest = [p.name for p in active] or (["cpu"] if not self._options.strict_providers
                                                 else [])
            text = f"{msg}. Running on {', '.join(rest) or 'nothing'}."
            log.warning(text)
            warnings.warn(text, ProviderFallbackWarning, stacklevel=2)
        if not any(p.name == "cpu" for p in active) and not self._options.strict_providers:
            cpu_cls = registry.provider_class("cpu")
            active.append(cpu_cls({}, self._options))
        if not active:
            raise ProviderOptionError(
                "no usable provider: every provider asked for is unavailable and strict mode "
                f"forbids falling back to the CPU ({'; '.join(self._unavailable.values())})")
        self._providers = active

        # 2. Load (free-dimension overrides and shape ranges applied to the inputs before
        #    shape inference, so fixed sizes reach every pass), optimize.
        overrides = self._options.free_dimension_overrides
        shape_spec = InputShapeSpec(by_name=overrides["by_name"],
                                    by_denotation=overrides["by_denotation"],
                                    ranges=self._options.get_input_shape_ranges())
        self._model = load_model(path_or_bytes, memory_limit=self._options.effective_memory_limit(),
                                 external_data_dir=self._options._config.get(
                                     "session.model_external_initializers_file_folder_path"),
                                 input_shapes=shape_spec)
        self._shape_report = self._model.input_shapes
        self._shape_ranges = dict(self._shape_report.ranges)
        self._planned_at_creation: dict[str, Any] | None = None
        graph = self._model.graph
        if self._model.proto.ir_version < 4:
            # Before IR 4 every initializer had to be listed as an input too: such listings
            # are constants, not inputs a caller may override (onnxruntime reads them so).
            graph.inputs = [v for v in graph.inputs if v.name not in graph.initializers]
        input_names = set(graph.input_names)
        self._overridable = {n for n in graph.initializers if n in input_names}
        self._graph, self._optimization = optimize(
            graph, GraphOptimizationLevel(self._options.graph_optimization_level),
            cpu_fusions=self._providers[0].name == "cpu")
        if self._options.optimized_model_filepath:
            self._save_optimized(self._options.optimized_model_filepath)

        # 3. Threads for our kernels.
        self._threads = self._options.resolved_intra_op_threads()
        self._wake_workers = None
        try:
            import ferry_kernels

            ferry_kernels.set_num_threads(self._threads)
            spin = self._options._config.get(ALLOW_SPINNING_CONFIG_KEY, "1") == "1"
            ferry_kernels.set_spin_us(ferry_kernels.DEFAULT_SPIN_US if spin else 0)
            if self._threads > 1:
                # Sleeping workers are woken as a run starts, not by its first kernel.
                self._wake_workers = ferry_kernels.wake_workers
        except ImportError:
            pass

        # 4. Partition and compile.
        # Effective declared ranges (name -> ShapeRange) go to providers that compile for a
        # range (OpenVINO bounded dims, TensorRT profiles).
        context = CompileContext(session_options=self._options, opsets=self._model.opsets,
                                 constant_names=set(graph.initializers) - self._overridable,
                                 overridable=self._overridable, model_path=self._model.path,
                                 input_shape_ranges=dict(self._shape_ranges))
        self._partitioning = partition_graph(self._graph, self._providers, context)
        self._log_fallback()
        self._executor = Executor(self._graph, self._partitioning, self._overridable)

        self._inputs = [_node_arg(v) for v in graph.inputs if v.name not in graph.initializers]
        self._outputs = [_node_arg(v) for v in graph.outputs]
        self._overridable_args = [_node_arg(v) for v in graph.inputs
                                  if v.name in graph.initializers]
        self._input_info = {v.name: v for v in graph.inputs}
        # (output names, feed signature) -> (DirectRunner, output positions): see _run_direct.
        self._direct: dict = {}
        self._profiler = None
        if self._options.enable_profiling:
            from runtime.profiling import Profiler

            self._profiler = Profiler(self._options.profile_file_prefix)

        # 5. Declared ranges: one run at the largest shapes plans (and reserves) the memory a
        #    service will need, and compiles what compiles per shape, before the first request.
        if self._shape_ranges and self._options._config.get(PLAN_AT_CREATION_CONFIG_KEY,
                                                            "1") == "1":
            self._plan_for_max_shapes()

    def _range_feed(self, dims: dict[str, int] | None = None, which: str = "max"
                    ) -> dict[str, Any]:
        """Zeros for every input: ranged inputs at their ``which`` ("min"/"opt"/"max") shape,
        the others as declared with symbolic dims from ``dims`` (else 1)."""
        dims = dict(dims or {})
        feed = {}
        for arg in self._inputs:
            info = self._input_info[arg.name]
            if info.kind != "tensor" or (info.shape is None and arg.name not in
                                         self._shape_ranges):
                raise InvalidArgument(
                    f"warmup cannot make a value for input '{arg.name}' ({arg.type}); pass "
                    "input_feed")
            rng = self._shape_ranges.get(arg.name)
            if rng is not None:
                shape = list(getattr(rng, which))
            else:
                shape = []
                for d in info.shape:
                    if isinstance(d, int):
                        shape.append(d)
                    elif isinstance(d, str) and d in dims:
                        shape.append(int(dims[d]))
                    else:
                        shape.append(1)
            dtype = info.dtype or np.dtype(np.float32)
            feed[arg.name] = np.zeros(shape, dtype) if dtype != object else \
                np.full(shape, "", dtype=object)
        return feed

    def _plan_for_max_shapes(self) -> None:
        """Run once on zeros at the declared max shapes. A model that cannot run on zeros
        (data-dependent shapes, say) is not an error: the plan is then made at the first run."""
        shapes = {n: list(r.max) for n, r in self._shape_ranges.items()}
        try:
            feed = self._range_feed(which="max")
            # The first run traces and builds the CPU plan; the second runs it, which
            # allocates its arena and keeps it pooled (reserved) for the requests to come.
            profiler, self._profiler = self._profiler, None  # not a request: not profiled
            try:
                self.warmup(feed, runs=2)
            finally:
                self._profiler = profiler
        except Exception as exc:
            log.warning("could not plan memory for the declared max input shapes %s: %s: %s",
                        shapes, type(exc).__name__, exc)
            self._planned_at_creation = {"shapes": shapes, "ok": False,
                                         "error": f"{type(exc).__name__}: {exc}"}
        else:
            self._planned_at_creation = {"shapes": shapes, "ok": True}

    def get_input_shape_ranges(self) -> dict[str, dict[str, list[int]]]:
        """The declared input shape ranges as enforced (narrowed by the model's fixed dims
        and shared symbols): name -> {"min", "opt", "max"}."""
        return {n: r.as_dict() for n, r in self._shape_ranges.items()}

    # ---- description ---------------------------------------------------------------------
    def get_inputs(self) -> list[NodeArg]:
        return list(self._inputs)

    def get_outputs(self) -> list[NodeArg]:
        return list(self._outputs)

    def get_overridable_initializers(self) -> list[NodeArg]:
        return list(self._overridable_args)

    def get_providers(self) -> list[str]:
        return [registry.ort_name(p.name) for p in self._providers]

    def get_provider_options(self) -> dict[str, dict[str, str]]:
        return {registry.ort_name(p.name): p.provider_options_for_report()
                for p in self._providers}

    def get_session_options(self) -> SessionOptions:
        return self._options

    def get_modelmeta(self) -> ModelMetadata:
        p = self._model.proto
        return ModelMetadata(
            producer_name=p.producer_name, graph_name=p.graph.name, domain=p.domain,
            description=p.doc_string, graph_description=p.graph.doc_string,
            version=p.model_version,
            custom_metadata_map={e.key: e.value for e in p.metadata_props})

    def explain(self) -> dict[str, Any]:
        """Which provider runs each node and why; partitions; memory plans; fallbacks."""
        parts = []
        for i, part in enumerate(self._partitioning.partitions):
            parts.append({"index": i, "provider": part.provider.name, "nodes": len(part.nodes),
                          "inputs": list(part.inputs), "outputs": list(part.outputs),
                          "details": part.compiled.explain()})
        plans = [plan for p in parts for plan in p["details"].get("plans", [])]
        return {
            "providers_requested": list(self._requested),
            "providers_unavailable": dict(self._unavailable),
            "providers_used": [p.name for p in self._providers],
            "optimizations_applied": self._optimization.names(),
            "nodes_before_optimization": self._optimization.nodes_before,
            "nodes_after_optimization": self._optimization.nodes_after,
            "nodes": self._partitioning.explain(),
            "partitions": parts,
            "boundary_copies": self._partitioning.boundary_copies,
            # Host/device transfers counted by providers with a device (running totals).
            "transfers": {p.name: p.transfer_stats() for p in self._providers
                          if hasattr(p, "transfer_stats")},
            "memory": {
                "planned_arena_bytes": sum(p["arena_bytes"] for p in plans),
                "naive_bytes": sum(p["naive_bytes"] for p in plans),
            },
            "input_shapes": {**self._shape_report.as_dict(),
                             "planned_at_creation": self._planned_at_creation},
        }

    # ---- running -------------------------------------------------------------------------
    def run(self, output_names, input_feed: dict[str, Any], run_options: RunOptions | None = None
            ) -> list[Any]:
        direct_key = self._direct_key(output_names, input_feed) if run_options is None else None
        if direct_key is not None and self._direct:
            result = self._run_direct(direct_key, input_feed)
            if result is not None:
                return result
        if self._closed:
            raise InvalidArgument("the session is closed")
        if run_options is not None and not isinstance(run_options, RunOptions):
            raise InvalidArgument("run_options must be a runtime.RunOptions")
        names = self._check_output_names(output_names)
        if self._wake_workers is not None:
            self._wake_workers()
        feeds = self._check_feeds(input_feed)
        profiler = self._profiler
        t0 = profiler.now() if profiler is not None else 0
        result = self._executor.run(feeds, names, run_options, profiler)
        if profiler is not None:
            profiler.add("Session", "model_run", t0)
        elif direct_key is not None:
            self._remember_direct(direct_key, input_feed, names)
        return result

    # ---- repeated requests -----------------------------------------------------------------
    # A request whose signature (feed names, shapes, dtypes; output names) already ran, on a
    # model that one partition holds, goes straight to that partition's compiled run: the feed
    # checks, the executor's and the partition's lookups all passed for this signature before.
    # That Python work is ~40 us when warm, but a run's kernels empty the caches it needs, and
    # after them it took ~250 us: 10% of a 2.5 ms model (a 128 x 768 x 768 MatMul + bias).
    _DIRECT_CACHE = 16

    @staticmethod
    def _direct_key(output_names, input_feed) -> tuple | None:
        if type(input_feed) is not dict:
            return None
        sig = []
        for name, value in input_feed.items():
            if type(value) is not np.ndarray:
                return None
            flags = value.flags
            if not (flags.c_contiguous and flags.aligned):
                return None
            sig.append((name, value.shape, value.dtype))
        if output_names is None:
            outs = None
        elif type(output_names) is str:
            outs = (output_names,)
        elif type(output_names) in (list, tuple) and all(type(n) is str for n in output_names):
            outs = tuple(output_names) or None  # [] means every output, as None does
        else:
            return None
        return outs, tuple(sig)

    def _run_direct(self, key: tuple, input_feed) -> list[Any] | None:
        """The outputs of a request whose signature (``key``) has a direct runner; None
        otherwise, and when the runner failed or went stale (then the full path runs the
        request, and reports a failure as it always does, naming the node)."""
        hit = self._direct.get(key)
        if hit is None or self._closed:
            return None
        runner, positions = hit
        if self._wake_workers is not None:
            self._wake_workers()
        try:
            outs = runner.run([input_feed[n] for n in runner.input_names])
        except Exception:
            self._direct.pop(key, None)
            return None
        return [outs[i] for i in positions]

    def _remember_direct(self, key: tuple, input_feed, names: list[str]) -> None:
        """After a request passed the full path: keep its partition's direct runner, when the
        model is one partition that offers one for these feeds (the partition declines feeds
        that override an initializer) and the feeds hold every input the runner reads."""
        parts = self._partitioning.partitions
        if len(parts) != 1 or self._closed or key in self._direct:
            return
        runner = parts[0].compiled.direct_runner(input_feed)
        if runner is None or not set(runner.input_names) <= input_feed.keys():
            return
        if not set(names) <= set(runner.output_names):  # an output passed through, a constant
            return
        positions = [runner.output_names.index(n) for n in names]
        if len(self._direct) >= self._DIRECT_CACHE:
            self._direct.clear()  # shapes that keep changing: start over
        self._direct[key] = (runner, positions)

    def io_binding(self):
        """An :class:`runtime.iobinding.IOBinding` for :meth:`run_with_iobinding`."""
        from runtime.iobinding import IOBinding

        return IOBinding(self)

    def run_with_iobinding(self, iobinding, run_options: RunOptions | None = None) -> None:
        """Run with the inputs and outputs bound in ``iobinding`` (outputs stay where bound:
        read them with ``iobinding.get_outputs()`` / ``copy_outputs_to_cpu()``)."""
        if self._closed:
            raise InvalidArgument("the session is closed")
        if run_options is not None and not isinstance(run_options, RunOptions):
            raise InvalidArgument("run_options must be a runtime.RunOptions")
        if getattr(iobinding, "_session", None) is not self:
            raise InvalidArgument("the IOBinding belongs to another session")
        if self._wake_workers is not None:
            self._wake_workers()
        iobinding._run(run_options)

    # ---- memory and warm-up ----------------------------------------------------------------
    def memory_stats(self) -> dict[str, Any]:
        """Memory the session holds for running, per provider and in total:
        ``planned_bytes`` (arena sizes of the compiled plans), ``reserved_bytes`` (arenas
        allocated now, idle or in use) and ``peak_bytes`` (the most reserved at once, which
        grows with concurrent runs). Weights are not counted (see ``weights_bytes``)."""
        per: dict[str, dict[str, int]] = {}
        for part in self._partitioning.partitions:
            stats = part.compiled.memory_stats() or {}
            acc = per.setdefault(part.provider.name, {"planned_bytes": 0, "reserved_bytes": 0,
                                                       "peak_bytes": 0})
            for k in acc:
                acc[k] += int(stats.get(k, 0))
        total = {k: sum(p[k] for p in per.values()) for k in ("planned_bytes",
                                                              "reserved_bytes", "peak_bytes")}
        weights = sum(v.nbytes for v in self._graph.initializers.values()
                      if isinstance(v, np.ndarray))
        return {"providers": per, **total, "weights_bytes": int(weights)}

    def profile_plan(self, input_feed: dict[str, Any], runs: int = 10,
                     run_options: RunOptions | None = None) -> list[dict[str, Any]]:
        """Per-node times of the fast path: runs ``input_feed`` ``runs`` times (after one
        untimed run that builds the plans) with each C++ plan timing its steps, and returns one
        row per step, slowest first: node, op_type, kernel (the C++ kernel, or numpy:<op> for a
        Python step), mean_us and share (of the timed steps' total). Unlike enable_profiling,
        which runs node by node to record a trace, this measures the plan the session really
        runs (arena memory, pre-packed weights). Sequential plans only (ORT_PARALLEL plans
        and providers other than the CPU's are not timed)."""
        if runs < 1:
            raise InvalidArgument("profile_plan: runs must be at least 1")
        self.run(None, input_feed, run_options)
        parts = [p.compiled for p in self._partitioning.partitions
                 if hasattr(p.compiled, "step_times")]
        for c in parts:
            c.step_times()  # drop anything timed before
            c.step_timing = True
        try:
            for _ in range(int(runs)):
                self.run(None, input_feed, run_options)
        finally:
            for c in parts:
                c.step_timing = False
        rows = [r for c in parts for r in c.step_times()]
        total = sum(r["mean_us"] for r in rows) or 1.0
        for r in rows:
            r["share"] = r["mean_us"] / total
        return sorted(rows, key=lambda r: -r["mean_us"])

    def release_memory(self) -> int:
        """Return idle arenas and pools to the system without closing the session (runs in
        flight keep theirs; the next run allocates again). Returns the bytes freed."""
        return sum(int(part.compiled.release_memory() or 0)
                   for part in self._partitioning.partitions)

    def warmup(self, input_feed: dict[str, Any] | None = None,
               dims: dict[str, int] | None = None, runs: int = 2) -> dict[str, Any]:
        """Do the compile and planning work ahead of the first real request: runs the model
        ``runs`` times on ``input_feed`` or, by default, on zeros shaped by the declared
        inputs: inputs with a declared shape range at its max shape (the biggest plan), the
        others with symbolic dimensions from ``dims``, else 1. Returns each run's seconds."""
        if input_feed is None:
            input_feed = self._range_feed(dims, which="max")
        import time

        times = []
        for _ in range(max(1, int(runs))):
            t0 = time.perf_counter()
            self.run(None, input_feed)
            times.append(time.perf_counter() - t0)
        return {"run_seconds": times, "first_run_s": times[0],
                "steady_run_s": times[-1], "memory": self.memory_stats()}

    def profiling_summary(self) -> dict[str, Any]:
        """Totals of the profile so far (``enable_profiling``): per op type and per provider
        (microseconds, calls, share of node time), boundary copies, and peak memory; ``table``
        holds the same as aligned text."""
        if self._profiler is None:
            raise InvalidArgument("profiling is off: set SessionOptions.enable_profiling = True")
        return self._profiler.summary(boundary_copies=self._partitioning.boundary_copies,
                                      peak_bytes=self.memory_stats()["peak_bytes"])

    def end_profiling(self) -> str:
        """Write the profile (Chrome trace JSON) and return its path; '' if not profiling."""
        if self._profiler is None:
            return ""
        return self._profiler.write()

    def _check_output_names(self, output_names) -> list[str]:
        all_names = [o.name for o in self._outputs]
        if not output_names:  # None or [] mean every output (as in onnxruntime)
            return all_names
        if isinstance(output_names, str):
            output_names = [output_names]
        known = set(all_names)
        for n in output_names:
            if n not in known:
                raise InvalidArgument(f"'{n}' is not an output of the model{suggest(n, known)}; "
                                      f"outputs: {', '.join(all_names)}")
        return list(output_names)

    def _check_feeds(self, input_feed) -> dict[str, Any]:
        if not isinstance(input_feed, dict):
            raise InvalidArgument(f"input_feed must be a dict of name -> array, not "
                                  f"{type(input_feed).__name__}")
        valid = {i.name for i in self._inputs} | {i.name for i in self._overridable_args}
        feeds: dict[str, Any] = {}
        for name, value in input_feed.items():
            if name not in valid:
                raise InvalidArgument(
                    f"'{name}' is not an input of the model{suggest(name, valid)}; inputs: "
                    f"{', '.join(i.name for i in self._inputs)}")
            feeds[name] = self._check_value(self._input_info[name], value)
        missing = [i for i in self._inputs if i.name not in feeds]
        if missing:
            desc = ", ".join(f"'{i.name}' ({i.type}, shape {i.shape})" for i in missing)
            raise InvalidArgument(f"missing input(s): {desc}")
        for name, rng in self._shape_ranges.items():
            self._check_range(name, rng, feeds.get(name))
        return feeds

    @staticmethod
    def _check_range(name: str, rng, value: Any) -> None:
        """Refuse, before any work, an input outside its declared shape range."""
        shape = getattr(value, "shape", None)
        if shape is None:
            return
        shape = tuple(int(d) for d in shape)
        if len(shape) != len(rng.min):
            raise InvalidArgument(
                f"input '{name}' has rank {len(shape)} (shape {list(shape)}) but its declared "
                f"shape range has rank {len(rng.min)} (min {list(rng.min)}, max "
                f"{list(rng.max)})")
        for axis, (lo, d, hi) in enumerate(zip(rng.min, shape, rng.max)):
            if not lo <= d <= hi:
                raise InvalidArgument(
                    f"input '{name}': dimension {axis} is {d}, outside its declared range "
                    f"[{lo}, {hi}] (shape {list(shape)}; declared min {list(rng.min)}, max "
                    f"{list(rng.max)})")

    def _check_value(self, info: ir.ValueInfo, value: Any) -> Any:
        if info.kind == "sequence":
            if not isinstance(value, (list, tuple)):
                raise InvalidArgument(f"input '{info.name}' expects {info.type_string} (a list "
                                      f"of arrays), got {_describe_value(value)}")
            return [np.asarray(v) for v in value]
        if info.kind == "optional":
            return value if value is None else (
                [np.asarray(v) for v in value] if isinstance(value, (list, tuple))
                else np.asarray(value))
        if info.kind != "tensor":
            return value
        # runtime.Tensor and CUDA arrays (__cuda_array_interface__ / DLPack): kept on device.
        value = _tensor.unwrap_feed(value)
        if _tensor.is_device_value(value):
            return _tensor.check_device_feed(info, value)
        if not isinstance(value, np.ndarray):
            if hasattr(value, "__array__") or isinstance(value, (int, float, bool, np.generic)):
                value = np.asarray(value)
            elif isinstance(value, (list, tuple)):
                # Nested Python lists, as onnxruntime accepts: converted to the declared type.
                try:
                    value = np.asarray(value, dtype=info.dtype)
                except (ValueError, TypeError) as exc:
                    raise InvalidArgument(f"input '{info.name}': the list does not convert to "
                                          f"{info.type_string}: {exc}") from None
            else:
                raise InvalidArgument(f"input '{info.name}': expected {info.type_string} as a "
                                      f"numpy array, got {type(value).__name__}")
        expected = info.dtype
        if expected is not None:
            if expected == np.dtype(object):
                if value.dtype.kind in "US":
                    value = value.astype(object)
                elif value.dtype != object:
                    raise InvalidArgument(
                        f"input '{info.name}': expected {info.type_string}, got "
                        f"{_describe_value(value)}")
            elif value.dtype != expected:
                raise InvalidArgument(
                    f"input '{info.name}': expected {info.type_string} "
                    f"(numpy {expected}), got {_describe_value(value)}"
                    f"{'' if info.shape is None else ' (expected shape ' + str(list(info.shape)) + ')'}")
        if info.shape is not None:
            shape = list(info.shape)
            if value.ndim != len(shape):
                raise InvalidArgument(
                    f"input '{info.name}': expected rank {len(shape)} with shape {shape}, got "
                    f"{_describe_value(value)}")
            for axis, (want, got) in enumerate(zip(shape, value.shape)):
                if isinstance(want, int) and want != got:
                    raise InvalidArgument(
                        f"input '{info.name}': dimension {axis} must be {want} (expected shape "
                        f"{shape}), got {_describe_value(value)}")
        if not (value.flags.c_contiguous and value.flags.aligned):
            value = np.require(value, requirements="CA")  # a copy: the caller's array untouched
        return value

    # ---- misc ----------------------------------------------------------------------------
    def _log_fallback(self) -> None:
        parts = self._partitioning.partitions
        if not self._requested:
            return
        first = self._requested[0]
        total = len(self._partitioning.assignments)
        on_first = sum(1 for a in self._partitioning.assignments.values() if a.provider == first)
        if on_first == total:
            return
        counts: dict[str, list[int]] = {}
        for part in parts:
            c = counts.setdefault(part.provider.name, [0, 0])
            c[0] += len(part.nodes)
            c[1] += 1
        summary = ", ".join(f"{p}: {n} node(s) in {k} partition(s)" for p, (n, k) in counts.items())
        if first in self._unavailable and len(counts) == 1:
            return  # already warned once: the provider is unavailable
        log.warning("%d of %d node(s) left the first provider '%s': %s; %d boundary copies",
                    total - on_first, total, first, summary, self._partitioning.boundary_copies)

    def _save_optimized(self, path: str) -> None:
        import onnx

        proto = onnx.ModelProto()
        proto.CopyFrom(self._model.proto)
        proto.graph.CopyFrom(ir.graph_to_onnx(self._graph))
        imported = {o.domain for o in proto.opset_import}
        for domain, version in self._graph.opsets.items():
            if domain not in imported and (domain != "" or "ai.onnx" not in imported):
                proto.opset_import.append(onnx.helper.make_opsetid(domain, version))
        # Protobuf cannot serialize 2 GB: large models keep their big tensors beside the file
        # (onnxruntime fails there).
        weights = sum(v.nbytes for v in self._graph.initializers.values()
                      if isinstance(v, np.ndarray))
        if weights > _EXTERNAL_DATA_ABOVE:
            data_name = os.path.basename(path) + ".data"
            onnx.save(proto, path, save_as_external_data=True, all_tensors_to_one_file=True,
                      location=data_name, size_threshold=1024)
        else:
            onnx.save(proto, path)

    def close(self) -> None:
        """Release providers' resources; later runs raise."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._direct.clear()
            for p in self._providers:
                p.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
