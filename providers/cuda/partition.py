"""A compiled CUDA partition: runs its nodes' kernels on the device, keeps shape arithmetic on
the host, and (optionally) replays static-shape runs as a captured CUDA graph.

Values inside a run live in one of two places: ``dev`` (device arrays) or ``host`` (numpy).
Shape/Size results are host values by nature; small shape computations whose inputs are all on
the host (Shape -> Gather -> Concat -> Reshape's target) run on the host with numpy, so that
a Reshape never waits for the GPU. A kernel input that decides an output shape (Reshape's
shape, Slice's starts...) is read on the host; if it was computed on the device it is copied
back once (counted as a ``shape_sync``: a stall worth knowing about).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import numpy as np

from providers.base import CompileContext, CompiledPartition
from providers.cuda.kernels import KernelContext, lookup
from runtime import ir
from runtime.errors import NotImplemented as FerryNotImplemented

log = logging.getLogger("ferry")

# Host-side shape arithmetic only for small values (elements).
HOST_LIMIT = 4096


def _root(a):
    """The array owning ``a``'s memory (views chain through ``.base``)."""
    while getattr(a, "base", None) is not None and hasattr(a.base, "shape"):
        a = a.base
    return a


class TransferStats:
    """Host <-> device traffic of one provider instance (the session's explain() shows it)."""

    FIELDS = ("h2d", "d2h", "h2d_bytes", "d2h_bytes", "internal_h2d", "shape_syncs",
              "weights_uploaded", "weights_bytes")

    def __init__(self):
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            for f in self.FIELDS:
                setattr(self, f, 0)

    def add(self, **kw) -> None:
        with self._lock:
            for k, v in kw.items():
                setattr(self, k, getattr(self, k) + int(v))

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {f: getattr(self, f) for f in self.FIELDS}


class _Step:
    __slots__ = ("attrs", "inputs", "kernel", "node", "num_outputs", "outputs")

    def __init__(self, node, kernel):
        self.node = node
        self.kernel = kernel
        self.attrs = dict(node.attrs)
        self.inputs = list(node.inputs)
        self.outputs = list(node.outputs)
        self.num_outputs = len(node.outputs)


class CudaPartition(CompiledPartition):
    def __init__(self, graph: ir.Graph, provider, context: CompileContext):
        self.provider = provider
        self.backend = provider.backend
        self.graph = graph
        self.inputs = graph.input_names
        self.outputs = graph.output_names
        overridable = {n for n in context.overridable if n in graph.initializers}
        self.constants = {k: v for k, v in graph.initializers.items() if k not in overridable}
        self._dev_constants: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.steps: list[_Step] = []
        for node in ir.topological_sort(graph):
            k = lookup(node.op_type, node.domain, graph.opset(node.domain))
            if k is None:
                raise FerryNotImplemented(f"no CUDA kernel for node {node.display}")
            if node.op_type == "Constant":
                # Evaluated once here: a constant then reaches the device once, not per run.
                ctx = KernelContext(xp=np, on_device=False, opset=graph.opset(""),
                                    num_outputs=1, node_name=node.name)
                self.constants[node.outputs[0]] = np.asarray(k.call(ctx, [], node.attrs)[0])
                continue
            self.steps.append(_Step(node, k))
        # Index of the last step reading each value: freed after it (device memory is dear).
        keep = set(self.outputs)
        self.last_use: dict[str, int] = {}
        for i, st in enumerate(self.steps):
            for name in st.inputs:
                if name and name not in keep:
                    self.last_use[name] = i
        self.cache: dict = {}  # per-shape choices (conv algorithms), shared by runs
        self.host_nodes: set[str] = set()
        self._graphs: dict = {}       # shape signature -> captured CUDA graph entry
        self._graph_state: dict = {}  # shape signature -> "eager-ok" / "failed"
        self.graph_replays = 0
        self.runs = 0

    # ---- values --------------------------------------------------------------------------
    def _device_constant(self, name: str):
        d = self._dev_constants.get(name)
        if d is None:
            host = self.constants[name]
            d = self.backend.upload(host)
            with self._lock:
                self._dev_constants.setdefault(name, d)
                d = self._dev_constants[name]
            self.provider.stats.add(weights_uploaded=1, weights_bytes=host.nbytes)
        return d

    def run(self, feeds: dict[str, Any], run_state: Any = None) -> dict[str, Any]:
        b = self.backend
        self.runs += 1
        if self.provider.options.get("enable_cuda_graph") and not b.emulated:
            out = self._run_with_graph(feeds, run_state)
            if out is not None:
                return out
        with b.device_scope(), b.errstate():
            outs, _ = self._run_eager(feeds, run_state)
        return outs

    def _run_eager(self, feeds, run_state, wrap=True):
        """One run, node by node; returns (outputs, whether any host<->device traffic or host
        computation happened inside)."""
        b = self.backend
        stats = self.provider.stats
        dev: dict[str, Any] = {}
        host: dict[str, Any] = {}
        traffic = [False]
        for name, v in feeds.items():
            if b.is_device_array(v):
                dev[name] = b.unwrap(v)
            elif isinstance(v, np.ndarray):
                host[name] = v
            else:
                dev[name] = b.unwrap(b.from_foreign(v))
        constants = self.constants

        def get_host(name):
            v = host.get(name)
            if v is not None:
                return v
            if name in constants:
                return constants[name]
            v = b.download(dev[name])
            stats.add(shape_syncs=1)
            traffic[0] = True
            host[name] = v
            return v

        def get_dev(name):
            v = dev.get(name)
            if v is not None:
                return v
            if name in host:
                v = b.upload(host[name])
                stats.add(internal_h2d=1)
                traffic[0] = True
                dev[name] = v
                return v
            if name in constants:
                return self._device_constant(name)
            raise KeyError(name)

        xp = b.xp
        for i, st in enumerate(self.steps):
            k = st.kernel
            names = st.inputs
            present = [n for n in names if n]
            on_host = k.host_output or (
                k.host_ok and all(n in host or n in constants for n in present)
                and sum(int(np.prod(np.shape(host[n] if n in host else constants[n])))
                        for n in present) <= HOST_LIMIT)
            if k.host_output:
                args = [None if not n else (host[n] if n in host else dev[n] if n in dev
                                            else constants[n]) for n in names]
            elif on_host:
                args = [get_host(n) if n else None for n in names]
            else:
                args = [None if not n else (get_host(n) if j in k.shape_inputs else get_dev(n))
                        for j, n in enumerate(names)]
            if on_host and not k.host_output:
                # Host shape arithmetic: fine for CUDA graphs (shapes are fixed per signature);
                # only actual transfers (counted above) rule a capture out.
                self.host_nodes.add(st.node.name)
            ctx = KernelContext(xp=np if on_host else xp, on_device=not on_host,
                                opset=self.graph.opset(st.node.domain),
                                num_outputs=st.num_outputs, node_name=st.node.name,
                                cache=self.cache, backend=b, options=self.provider.options)
            if run_state is not None and hasattr(run_state, "check_cancelled"):
                run_state.check_cancelled()
            try:
                results = k.call(ctx, args, st.attrs)
            except Exception as exc:
                exc.add_note(f"in CUDA kernel of node {st.node.display}")
                raise
            for name, val in zip(st.outputs, results):
                if not name:
                    continue
                if on_host or b.emulated:
                    (host if on_host else dev)[name] = \
                        val if isinstance(val, np.ndarray) else np.asarray(val)
                else:
                    dev[name] = val if hasattr(val, "__cuda_array_interface__") \
                        else xp.asarray(val)
            for name in present:
                if self.last_use.get(name) == i:
                    dev.pop(name, None)
                    host.pop(name, None)
        out: dict[str, Any] = {}
        # Outputs never alias a weight or a feed (Identity, Reshape... return views).
        owned = {id(_root(v)) for v in constants.values()}
        owned.update(id(_root(v)) for v in self._dev_constants.values())
        owned.update(id(_root(b.unwrap(v))) for v in feeds.values() if hasattr(v, "shape"))
        for name in self.outputs:
            if name in dev:
                v = dev[name]
                if id(_root(v)) in owned:
                    v = v.copy()
                out[name] = b.wrap(v) if wrap else v
            elif name in host:
                v = host[name]  # a host value (Shape...): the executor moves it if needed
                out[name] = np.array(v, copy=True) if id(_root(v)) in owned else v
            elif name in constants:
                out[name] = np.array(constants[name], copy=True)  # never hand out our own
        return out, traffic[0]

    # ---- CUDA graphs -----------------------------------------------------------------------
    def _run_with_graph(self, feeds, run_state):
        """Replay a captured CUDA graph for a shape signature seen before with no host work in
        between; None when the eager path must run (first time, or capture impossible)."""
        b = self.backend
        cp = b.cupy
        if not all(b.is_device_array(v) for v in feeds.values()):
            return None
        sig = tuple((n, tuple(v.shape), v.dtype.str) for n, v in sorted(feeds.items()))
        entry = self._graphs.get(sig)
        state = self._graph_state.get(sig)
        with b.device_scope():
            if entry is None:
                if state == "failed":
                    return None
                if state is None:
                    outs, traffic = self._run_eager(feeds, run_state)
                    self._graph_state[sig] = "failed" if traffic else "eager-ok"
                    return outs
                try:
                    entry = self._capture(feeds, run_state)
                except Exception as exc:  # capture is an optimization: run eagerly
                    log.warning("CUDA graph capture failed for a cuda partition (%s); running "
                                "it without graphs", exc)
                    self._graph_state[sig] = "failed"
                    return None
                self._graphs[sig] = entry
            static_in, static_out, graph, stream, _pool = entry
            cur = cp.cuda.get_current_stream()
            with stream:
                stream.wait_event(cur.record())
                for n, v in feeds.items():
                    static_in[n][...] = v
                graph.launch(stream)
                result = {n: v.copy() for n, v in static_out.items()}
            cur.wait_event(stream.record())
            self.graph_replays += 1
            return result

    def _capture(self, feeds, run_state):
        """Capture one run of the partition into a CUDA graph. Everything the graph touches is
        allocated from a private memory pool kept alive with the graph: a buffer the graph
        writes can then never be handed to anybody else between replays."""
        cp = self.backend.cupy
        static_in = {n: cp.array(v, copy=True) for n, v in feeds.items()}
        pool = cp.cuda.MemoryPool()
        stream = cp.cuda.Stream(non_blocking=True)
        with cp.cuda.using_allocator(pool.malloc), stream:
            # Warm-up on this stream and pool: the capture then reuses cached blocks.
            self._run_eager(static_in, run_state)
            stream.synchronize()
            stream.begin_capture()
            try:
                static_out, _ = self._run_eager(static_in, run_state)
            finally:
                graph = stream.end_capture()
        return static_in, static_out, graph, stream, pool

    def explain(self) -> dict[str, Any]:
        algos = {str(k[1]): v for k, v in self.cache.items()
                 if isinstance(k, tuple) and k and k[0] == "conv_algo"}
        return {
            "device": self.backend.device,
            "emulated": self.backend.emulated,
            "nodes": len(self.steps),
            "ops": sorted({st.node.op_type for st in self.steps}),
            "host_nodes": sorted(self.host_nodes),
            "copies": self.provider.stats.snapshot(),
            "conv_algorithms": algos,
            "cuda_graph": {"enabled": bool(self.provider.options.get("enable_cuda_graph")),
                           "captured_signatures": len(self._graphs),
                           "replays": self.graph_replays},
            "plans": [],
        }
