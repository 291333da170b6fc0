"""A ferry partition compiled by OpenVINO.

The subgraph is written as an ONNX model (its constant inputs become initializers), read by
OpenVINO's ONNX frontend and compiled once at session creation. Partitions with symbolic input
dims are compiled once with bounded dims (``ov.Dimension(min, max)``) when the session declares
shape ranges for all of them (``SessionOptions.set_input_shape_range``); else with dynamic
shapes when ``enable_dynamic_shapes`` is set; otherwise, like ORT's OpenVINO EP, once per
input-shape signature at the first run of that signature (a few signatures are kept).

Runs take an infer request from a pool (one per concurrent run), bind inputs without copies
(contiguous, writeable, matching dtype), and write outputs whose shape is known in advance
straight into fresh numpy arrays the caller then owns; other outputs are copied once out of the
request's memory.
"""

from __future__ import annotations

import collections
import hashlib
import json
import logging
import os
import threading
import time
from typing import Any

import numpy as np

from providers.base import CompileContext, CompiledPartition
from providers.openvino import export
from runtime import ir

log = logging.getLogger("ferry")

# Outputs at least this large are bound to preallocated arrays (no copy); smaller ones are
# cheaper to copy than to wrap in an ov.Tensor.
_PREALLOC_BYTES = 16 << 10
_MAX_SHAPE_ENTRIES = 8
# Partitions with this many bytes of weights are handed over through a file (protobuf's limit
# is 2 GiB per message).
_EXTERNAL_DATA_BYTES = 1 << 30
CACHE_FORMAT = "ferry-openvino-cache-1"


def build_model(subgraph: ir.Graph, context: CompileContext) -> tuple[Any, list, list]:
    """The subgraph as an ONNX ModelProto; returns (proto, input ValueInfos, output names)."""
    overridable = set(context.overridable or ())
    inits = {k: v for k, v in subgraph.initializers.items() if k not in overridable}
    inputs = []
    for name in [v.name for v in subgraph.inputs] + [k for k in subgraph.initializers
                                                     if k in overridable]:
        if name in inits or any(v.name == name for v in inputs):
            continue
        vi = export.typed_info(subgraph, name)
        if vi.kind != "tensor" or vi.elem_type not in export.NUMPY_TYPES:
            raise ValueError(f"input '{name}' has type {vi.type_string if vi.elem_type else '?'}"
                             ", which an OpenVINO partition cannot take")
        inputs.append(vi)
    outputs = []
    for v in subgraph.outputs:
        vi = export.typed_info(subgraph, v.name)
        if vi.elem_type and vi.elem_type not in export.NUMPY_TYPES:
            raise ValueError(f"output '{v.name}' has type {vi.type_string}")
        outputs.append(vi)
    boundary = {v.name for v in inputs} | {v.name for v in outputs} | set(inits)
    vis = export.inner_value_info(subgraph, subgraph.nodes, boundary)
    opsets = dict(context.opsets or {})
    opsets.update(subgraph.opsets)
    proto = export.make_model(subgraph.nodes, inputs, outputs, inits, vis, opsets,
                              subgraph.name or "partition")
    return proto, inputs, [v.name for v in outputs]


def bounded_shapes(in_infos: list, ranges: dict) -> dict[str, list[tuple[int, int]]] | None:
    """name -> [(lo, hi) per dim] for every input of the partition, from the session's
    declared shape ranges (``ranges``: name -> ShapeRange); None when some input with a
    dynamic dim has no declared range (an inner value, or an input left undeclared)."""
    out = {}
    for vi in in_infos:
        rng = ranges.get(vi.name)
        if rng is not None and (vi.shape is None or len(vi.shape) == len(rng.min)):
            dims = []
            for axis, (lo, hi) in enumerate(zip(rng.min, rng.max)):
                d = vi.shape[axis] if vi.shape is not None else None
                # A fixed dim of the model wins (the range was checked to contain it).
                dims.append((d, d) if isinstance(d, int) and d >= 0 else (int(lo), int(hi)))
            out[vi.name] = dims
            continue
        static = _static_shape(vi)
        if static is None:
            return None
        out[vi.name] = [(d, d) for d in static]
    return out


def _static_shape(vi: ir.ValueInfo) -> tuple | None:
    if vi.shape is None or any(not isinstance(d, int) or d < 0 for d in vi.shape):
        return None
    return tuple(vi.shape)


class _Entry:
    """One compiled model and its pool of infer requests."""

    def __init__(self, compiled, input_names: list[str], output_names: list[str],
                 loaded_from_cache: bool | None):
        self.compiled = compiled
        self.loaded_from_cache = loaded_from_cache
        self.in_index = [_port_index(compiled.inputs, n, i) for i, n in enumerate(input_names)]
        self.out_index = [_port_index(compiled.outputs, n, i) for i, n in enumerate(output_names)]
        self.in_plan = [(i, np.dtype(compiled.inputs[i].get_element_type().to_dtype()))
                        for i in self.in_index]
        # out_plan[pos] = (source, port): source >= 0 indexes prealloc_plan (written in place),
        # -1 = copy out of the request, -2-k = same port as output k (copy of that value).
        self.prealloc_plan: list[tuple] = []
        self.out_plan: list[tuple[int, int]] = []
        first_pos: dict[int, int] = {}
        for pos, idx in enumerate(self.out_index):
            if idx in first_pos:
                self.out_plan.append((-2 - first_pos[idx], idx))
                continue
            first_pos[idx] = pos
            port = compiled.outputs[idx]
            dtype = np.dtype(port.get_element_type().to_dtype())
            ps = port.get_partial_shape()
            shape = tuple(int(d) for d in ps.to_shape()) if ps.is_static else None
            if shape is not None and int(np.prod(shape)) * dtype.itemsize >= _PREALLOC_BYTES:
                self.out_plan.append((len(self.prealloc_plan), idx))
                self.prealloc_plan.append((idx, shape, dtype))
            else:
                self.out_plan.append((-1, idx))
        self._free: list = []
        self._lock = threading.Lock()
        self.requests_created = 0

    def acquire(self):
        with self._lock:
            if self._free:
                return self._free.pop()
            self.requests_created += 1
        return self.compiled.create_infer_request()

    def release(self, req) -> None:
        with self._lock:
            self._free.append(req)


def _port_index(ports, name: str, default: int) -> int:
    """Index of the port carrying tensor ``name`` (the frontend keeps ONNX order; names make
    sure of it)."""
    if default < len(ports) and name in ports[default].get_names():
        return default
    for i, p in enumerate(ports):
        if name in p.get_names():
            return i
    return default


class OpenVINOPartition(CompiledPartition):
    def __init__(self, provider, subgraph: ir.Graph, context: CompileContext):
        import openvino as ov

        self._ov = ov
        self.provider = provider
        self.name = subgraph.name
        self.node_count = len(subgraph.nodes)
        proto, in_infos, out_names = build_model(subgraph, context)
        self.inputs = [v.name for v in in_infos]
        self.outputs = out_names
        self._in_infos = in_infos
        self._model, self._digest = _read(provider.core, proto, subgraph.initializers)
        self._static = all(_static_shape(v) is not None for v in in_infos)
        dyn = bool(provider.options["enable_dynamic_shapes"])
        self.bounds = None if self._static else bounded_shapes(
            in_infos, context.input_shape_ranges)
        if self._static:
            self.shape_mode = "static"
        elif self.bounds is not None:
            # Declared ranges cover every dynamic input: one compile for the whole range.
            self.shape_mode = "bounded"
        elif dyn:
            self.shape_mode = "dynamic"
        else:
            self.shape_mode = "per-shape"
        self._entries: collections.OrderedDict = collections.OrderedDict()
        self._entries_lock = threading.Lock()
        self._key_locks: dict[tuple, threading.Lock] = {}
        self._compiles = 0
        self._cache_dirs: dict[str, None] = {}  # ordered set
        self._main: _Entry | None = None
        if self.shape_mode == "bounded":
            self._model.reshape({name: self._ov.PartialShape(
                [self._ov.Dimension(lo, hi) for lo, hi in dims])
                for name, dims in self.bounds.items()})
            self._main = self._compile(self._model, ("bounded",) + tuple(
                (name, tuple(dims)) for name, dims in self.bounds.items()))
        elif self.shape_mode != "per-shape":
            self._main = self._compile(self._model, None)
        self._effective = self._effective_properties(self._main)
        self._note_precision()

    # ---- compile --------------------------------------------------------------------------
    def _version(self) -> str:
        """OpenVINO's build string: part of every cache key, so an upgrade never loads a
        blob another version wrote."""
        return self._ov.get_version()

    def _cache_dir(self, shapes: tuple | None, config: dict) -> str | None:
        root = self.provider.options["cache_dir"]
        if not root:
            return None
        h = hashlib.sha256()
        h.update(CACHE_FORMAT.encode())
        h.update(self._version().encode())
        h.update(json.dumps({"device": self.provider.device_spec.text,
                             "config": config, "shapes": shapes}, sort_keys=True,
                            default=str).encode())
        h.update(self._digest.encode())
        key = h.hexdigest()[:40]
        path = os.path.join(root, "openvino", key)
        os.makedirs(path, exist_ok=True)
        meta = os.path.join(path, "ferry_cache.json")
        if not os.path.exists(meta):
            tmp = f"{meta}.{os.getpid()}.{threading.get_ident()}.tmp"
            with open(tmp, "w") as f:
                json.dump({"format": CACHE_FORMAT, "openvino": self._version(),
                           "device": self.provider.device_spec.text, "config": config,
                           "shapes": shapes, "partition": self.name,
                           "model_sha256": self._digest},
                          f, indent=1, default=str)
            os.replace(tmp, meta)
        return path

    def _compile(self, model, shapes: tuple | None) -> _Entry:
        config = dict(self.provider.compile_config)
        cache = self._cache_dir(shapes, config)
        if cache is not None:
            config["CACHE_DIR"] = cache
            self._cache_dirs[cache] = None
        t0 = time.perf_counter()
        compiled = self.provider.core.compile_model(model, self.provider.device_spec.text,
                                                    config)
        with self._entries_lock:
            self._compiles += 1
        loaded = None
        if cache is not None:
            try:
                loaded = bool(compiled.get_property("LOADED_FROM_CACHE"))
            except Exception:  # noqa: BLE001 - not every device has it
                loaded = None
        log.debug("openvino: compiled %s for %s in %.1f ms (shapes %s, cache %s)", self.name,
                  self.provider.device_spec.text, (time.perf_counter() - t0) * 1e3, shapes,
                  loaded)
        return _Entry(compiled, self.inputs, self.outputs, loaded)

    def _entry_for(self, arrays: list) -> _Entry:
        if self._main is not None:
            return self._main
        key = tuple(tuple(a.shape) for a in arrays)
        with self._entries_lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                return entry
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        # One compile per new shape even when several runs bring it at once; runs of shapes
        # already compiled do not wait for it.
        with key_lock:
            with self._entries_lock:
                entry = self._entries.get(key)
            if entry is not None:
                return entry
            try:
                model = self._model.clone()
                model.reshape({name: self._ov.PartialShape(list(shape))
                               for name, shape in zip(self.inputs, key)})
                entry = self._compile(model, key)
            except BaseException:
                with self._entries_lock:
                    self._key_locks.pop(key, None)
                raise
            first = False
            with self._entries_lock:
                # Published and unlocked together: a later run finds the entry, never a
                # missing entry without its lock.
                self._entries[key] = entry
                self._key_locks.pop(key, None)
                if len(self._entries) > _MAX_SHAPE_ENTRIES:
                    self._entries.popitem(last=False)
                if self._effective is None:
                    self._effective = self._effective_properties(entry)
                    first = True
            if first:
                self._note_precision()
            return entry

    def _note_precision(self) -> None:
        """Say so when the device ignored the requested precision (FP16 on a CPU without it)."""
        want = {"FP16": "f16", "BF16": "bf16"}.get(self.provider.options["precision"])
        got = (self._effective or {}).get("precision")
        if want and got and got != want:
            log.warning("openvino: precision %s requested but %s runs it in %s",
                        self.provider.options["precision"], self.provider.device_spec.text, got)

    def _effective_properties(self, entry: _Entry | None) -> dict | None:
        if entry is None:
            return None
        out = {}
        for key, prop in (("precision", "INFERENCE_PRECISION_HINT"),
                          ("execution_devices", "EXECUTION_DEVICES"),
                          ("num_streams", "NUM_STREAMS"),
                          ("num_threads", "INFERENCE_NUM_THREADS"),
                          ("execution_mode", "EXECUTION_MODE_HINT")):
            try:
                value = entry.compiled.get_property(prop)
            except Exception:  # noqa: BLE001,S112
                continue  # meta devices do not answer every property
            out[key] = _plain(value)
        return out

    # ---- run ------------------------------------------------------------------------------
    def run(self, feeds: dict[str, Any], run_state: Any) -> dict[str, Any]:
        tensor = self._ov.Tensor
        arrays = [feeds[n] for n in self.inputs]
        entry = self._main or self._entry_for(arrays)
        profiler = run_state.profiler if run_state is not None else None
        t0 = profiler.now() if profiler is not None else 0
        req = entry.acquire()
        # The request shares these arrays' memory but does not keep them alive: the Python
        # tensors (which hold the arrays) must outlive infer().
        keep = []
        try:
            for (idx, dtype), arr in zip(entry.in_plan, arrays):
                if (type(arr) is not np.ndarray or arr.dtype != dtype
                        or not arr.flags.c_contiguous or not arr.flags.writeable):
                    arr = _bindable(arr, dtype)
                t = tensor(arr, shared_memory=True)
                keep.append(t)
                req.set_input_tensor(idx, t)
            bufs = []
            for idx, shape, dtype in entry.prealloc_plan:
                buf = np.empty(shape, dtype)
                t = tensor(buf, shared_memory=True)
                keep.append(t)
                req.set_output_tensor(idx, t)
                bufs.append(buf)
            req.infer()
            values = []
            for source, idx in entry.out_plan:
                if source >= 0:
                    values.append(bufs[source])
                elif source == -1:
                    # The request's own memory is reused by its next run: copy once.
                    values.append(req.get_output_tensor(idx).data.copy())
                else:  # a second name for a port already returned: its own copy
                    values.append(values[-2 - source].copy())
        finally:
            entry.release(req)
            del keep
        if profiler is not None:
            profiler.add("Node", f"{self.name}_openvino", t0,
                         {"provider": "openvino", "nodes": self.node_count})
        return dict(zip(self.outputs, values))

    # ---- report ---------------------------------------------------------------------------
    def explain(self) -> dict[str, Any]:
        opts = self.provider.options
        info: dict[str, Any] = {
            "openvino_version": self._ov.get_version(),
            "device_type": self.provider.device_spec.text,
            "precision_requested": opts["precision"],
            "shape_mode": self.shape_mode,
            "compiles": self._compiles,
            "nodes": self.node_count,
        }
        if self.bounds is not None and self.shape_mode == "bounded":
            info["input_bounds"] = {n: [list(d) for d in dims] for n, dims in self.bounds.items()}
        eff = self._effective or {}
        info["precision"] = eff.get("precision", _requested_precision(opts["precision"]))
        info["execution_devices"] = eff.get("execution_devices")
        # Before the first compile (per-shape mode) the configured values stand in.
        configured = {"num_streams": opts["num_streams"],
                      "num_threads": self.provider.threads or None,
                      "execution_mode": "ACCURACY" if opts["precision"] == "ACCURACY" else None}
        for key in ("num_streams", "num_threads", "execution_mode"):
            if key in eff:
                info[key] = eff[key]
            elif configured[key] is not None:
                info[key] = configured[key]
        if self._cache_dirs:
            entries = [self._main] if self._main else list(self._entries.values())
            info["cache"] = {"dirs": list(self._cache_dirs),
                             "loaded_from_cache": [e.loaded_from_cache for e in entries]}
        return info

    def close(self) -> None:
        self._main = None
        self._entries.clear()


def _read(core, proto, initializers: dict) -> tuple[Any, str]:
    """The ONNX model read by OpenVINO, and the SHA-256 of its bytes (the cache key's part).

    Protobuf cannot serialize 2 GiB: big partitions go through a temporary file with external
    data (OpenVINO maps or reads the weights while reading the model; the files are removed
    right after)."""
    size = sum(getattr(a, "nbytes", 0) for a in initializers.values())
    if size < _EXTERNAL_DATA_BYTES:
        data = proto.SerializeToString()
        return core.read_model(data, b""), hashlib.sha256(data).hexdigest()
    import shutil
    import tempfile

    import onnx

    tmp = tempfile.mkdtemp(prefix="ferry_openvino_")
    try:
        path = os.path.join(tmp, "partition.onnx")
        onnx.save_model(proto, path, save_as_external_data=True, all_tensors_to_one_file=True,
                        location="partition.weights", size_threshold=1024)
        h = hashlib.sha256()
        for name in ("partition.onnx", "partition.weights"):
            full = os.path.join(tmp, name)
            if os.path.exists(full):
                with open(full, "rb") as f:
                    for chunk in iter(lambda: f.read(1 << 24), b""):
                        h.update(chunk)
        return core.read_model(path), h.hexdigest()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _requested_precision(precision: str) -> str:
    return {"FP32": "f32 (requested)", "FP16": "f16 (requested)", "BF16": "bf16 (requested)",
            "ACCURACY": "model precision (ACCURACY)"}[precision]


def _plain(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "get_type_name"):  # ov.Type: "f32"
        return value.get_type_name()
    if hasattr(value, "name"):  # OpenVINO enums: ExecutionMode.ACCURACY -> "ACCURACY"
        return value.name
    return str(value)


def _bindable(arr: Any, dtype: np.dtype) -> np.ndarray:
    """An array OpenVINO can share: contiguous, writeable (its wrapper demands it), of the
    compiled input's dtype. Copies only when one of those does not hold."""
    arr = np.asarray(arr)
    if arr.dtype != dtype:
        arr = arr.astype(dtype)
    if not arr.flags.c_contiguous or not arr.flags.writeable:
        arr = np.array(arr, copy=True, order="C")
    return arr
