"""TensorRT provider: claimed subgraphs are serialized to ONNX, parsed by TensorRT's ONNX
parser and built into engines.

- **Capability**: the whole graph is offered to the parser (``supports_model_v2`` on
  TensorRT 10, ``supports_model`` before); nodes it rejects are left to the next provider in
  the chain (list ``["tensorrt", "cuda", "cpu"]`` to get cuda, then cpu). A partition whose
  parse or build fails at compile time is handed down the chain as well.
- **Engines**: built for static input shapes at compile time; for dynamic inputs, from the
  optimization profile options (``trt_profile_min_shapes`` / ``opt`` / ``max``, ORT's
  syntax ``name:1x3x224x224,...``), else from the session's declared input shape ranges
  (``SessionOptions.set_input_shape_range``), or else per concrete input-shape signature at
  run time.
- **Caches**: with ``trt_engine_cache_enable`` engines are stored under
  ``trt_engine_cache_path`` by a key hashing the subgraph bytes, input shapes, precision,
  TensorRT version and GPU name (never the model path: see providers/tensorrt/keys.py). With
  ``trt_timing_cache_enable`` one timing cache per TensorRT version and GPU is loaded and saved
  (``trt_timing_cache_path``, default: the engine cache path).
- Tensors move between host and device as for the cuda provider (same counters).

Not implemented: INT8 calibration (``trt_int8_enable`` raises), data-dependent output shapes.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable
from typing import Any

import numpy as np

from providers.base import Capability, CompileContext, CompiledPartition, OptionSpec
from providers.cuda import backend as _backend
from providers.cuda.provider import CUDAProvider
from providers.tensorrt import keys
from runtime import ir
from runtime.errors import NotImplemented as FerryNotImplemented
from runtime.errors import ProviderOptionError

log = logging.getLogger("ferry")


def _profile_option(doc: str) -> OptionSpec:
    def check(v):
        try:
            keys.parse_profile_shapes(v)
        except ProviderOptionError as exc:
            return str(exc)
        return None

    return OptionSpec(str, "", doc=doc, validate=check)


def _positive(v):
    return None if v > 0 else "must be > 0"


def _trt():
    import tensorrt

    return tensorrt


def trt_version() -> str:
    try:
        return str(_trt().__version__)
    except Exception:
        return ""


class TensorRTProvider(CUDAProvider):
    name = "tensorrt"
    ort_name = "TensorrtExecutionProvider"
    device = "cuda:0"
    option_specs = {
        "device_id": OptionSpec(int, 0, doc="CUDA device ordinal",
                                validate=lambda v: None if v >= 0 else "must be >= 0"),
        "trt_fp16_enable": OptionSpec(bool, False, doc="allow FP16 kernels"),
        "trt_int8_enable": OptionSpec(bool, False, doc="INT8 (needs calibration; not "
                                                       "implemented: must stay off)"),
        "trt_int8_calibration_table_name": OptionSpec(str, ""),
        "trt_max_workspace_size": OptionSpec(int, 1 << 30, doc="builder workspace bytes",
                                             validate=_positive),
        "trt_engine_cache_enable": OptionSpec(bool, False, doc="store built engines on disk"),
        "trt_engine_cache_path": OptionSpec(str, "", doc="folder of the engine cache "
                                                         "(default: the current directory)"),
        "trt_timing_cache_enable": OptionSpec(bool, False, doc="reuse kernel timings"),
        "trt_timing_cache_path": OptionSpec(str, "", doc="folder of the timing cache "
                                                         "(default: the engine cache path)"),
        "trt_profile_min_shapes": _profile_option("profile minimum shapes: in:1x3x224x224,..."),
        "trt_profile_opt_shapes": _profile_option("profile optimum shapes"),
        "trt_profile_max_shapes": _profile_option("profile maximum shapes"),
        "trt_dump_subgraphs": OptionSpec(bool, False, doc="write each subgraph's ONNX next to "
                                                          "the engine cache"),
    }

    @classmethod
    def parse_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        parsed = super().parse_options(options)
        keys.validate_profiles(*(keys.parse_profile_shapes(parsed[f"trt_profile_{k}_shapes"])
                                 for k in ("min", "opt", "max")))
        if parsed["trt_int8_enable"]:
            raise ProviderOptionError(
                "provider 'tensorrt': trt_int8_enable needs INT8 calibration, which this "
                "ferry version does not implement; leave it off (FP16: trt_fp16_enable)")
        return parsed

    @classmethod
    def availability(cls) -> tuple[bool, str]:
        try:
            import tensorrt  # noqa: F401
        except Exception as exc:
            return False, (f"TensorRT is not importable ({type(exc).__name__}: {exc}); "
                           "install ferry[tensorrt]")
        ok, reason = _backend.probe_cuda()
        if not ok:
            return False, reason
        return True, ""

    def __init__(self, options: dict[str, Any] | None = None, session_options: Any = None):
        super().__init__(options, session_options)
        self._timing_lock = threading.Lock()
        self._timing_cache_bytes: bytes | None = None
        o = self.options
        self.profiles = {k: keys.parse_profile_shapes(o[f"trt_profile_{k}_shapes"])
                         for k in ("min", "opt", "max")}
        self.cache_dir = o["trt_engine_cache_path"] or os.getcwd()
        self.timing_dir = o["trt_timing_cache_path"] or self.cache_dir

    # ---- capability ------------------------------------------------------------------------
    def capability(self, graph: ir.Graph, nodes: Iterable[ir.Node]) -> Capability:
        cap = Capability()
        nodes = list(nodes)
        try:
            supported = self._parser_support(graph)
        except Exception as exc:
            for n in nodes:
                cap.reasons[n] = f"TensorRT's ONNX parser could not examine the model: {exc}"
            return cap
        index = {id(n): i for i, n in enumerate(graph.nodes)}
        for n in nodes:
            if index.get(id(n)) in supported:
                cap.claimed.add(n)
            else:
                cap.reasons[n] = "TensorRT's ONNX parser does not support this node here"
        return cap

    def _parser_support(self, graph: ir.Graph) -> set[int]:
        """Indices (into graph.nodes) of the nodes the parser supports."""
        trt = _trt()
        data = model_bytes(graph)
        logger = trt.Logger(trt.Logger.ERROR)
        builder = trt.Builder(logger)
        network = builder.create_network(_network_flags(trt))
        parser = trt.OnnxParser(network, logger)
        out: set[int] = set()
        if hasattr(parser, "supports_model_v2"):
            parser.supports_model_v2(data)
            for i in range(parser.num_subgraphs):
                if parser.is_subgraph_supported(i):
                    out.update(int(k) for k in parser.get_subgraph_nodes(i))
            return out
        _ok, subgraphs = parser.supports_model(data)
        for node_ids, ok in subgraphs:
            if ok:
                out.update(int(k) for k in node_ids)
        return out

    def compile(self, subgraph: ir.Graph, context: CompileContext) -> TrtPartition:
        return TrtPartition(subgraph, self, context)

    # ---- caches --------------------------------------------------------------------------
    def precision(self) -> str:
        return keys.precision_tag(self.options["trt_fp16_enable"], False)

    def gpu_name(self) -> str:
        return self.backend.gpu_name()

    def timing_cache_path(self) -> str:
        return os.path.join(self.timing_dir,
                            keys.timing_cache_file_name(trt_version(), self.gpu_name()))

    def load_timing_cache(self) -> bytes:
        with self._timing_lock:
            if self._timing_cache_bytes is None:
                data = b""
                if self.options["trt_timing_cache_enable"]:
                    try:
                        with open(self.timing_cache_path(), "rb") as f:
                            data = f.read()
                    except OSError:
                        data = b""
                self._timing_cache_bytes = data
            return self._timing_cache_bytes

    def store_timing_cache(self, data: bytes) -> None:
        with self._timing_lock:
            self._timing_cache_bytes = data
            if self.options["trt_timing_cache_enable"] and data:
                _atomic_write(self.timing_cache_path(), data)


def _network_flags(trt) -> int:
    flag = getattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH", None)
    try:
        major = int(str(trt.__version__).split(".")[0])
    except ValueError:
        major = 10
    if flag is None or major >= 10:
        return 0  # TensorRT 10: explicit batch is the only mode
    return 1 << int(flag)


def _atomic_write(path: str, data: bytes) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def model_bytes(graph: ir.Graph) -> bytes:
    """The subgraph as a standalone ONNX model, serialized deterministically. Only what
    decides the engine goes in: the graph gets a fixed name and keeps the value_info of its own
    values only, so equal subgraphs of different models share cache keys."""
    import dataclasses

    import onnx
    from onnx import helper

    used = ir.used_names(graph)
    graph = dataclasses.replace(
        graph, name="ferry_trt_subgraph", doc_string="",
        value_info={k: v for k, v in graph.value_info.items() if k in used})

    opsets = [helper.make_opsetid(d, v) for d, v in sorted(graph.opsets.items())]
    if not any(o.domain == "" for o in opsets):
        opsets.append(helper.make_opsetid("", graph.opset("")))
    model = helper.make_model(ir.graph_to_onnx(graph), opset_imports=opsets,
                              producer_name="ferry")
    try:
        model.ir_version = helper.find_min_ir_version_for(opsets, ignore_unknown=True)
    except Exception:
        pass
    model.ir_version = max(model.ir_version, 7)
    return model.SerializeToString(deterministic=True) if _supports_deterministic(onnx) \
        else model.SerializeToString()


def _supports_deterministic(onnx_mod) -> bool:
    try:
        onnx_mod.ModelProto().SerializeToString(deterministic=True)
        return True
    except TypeError:
        return False


class _Engine:
    def __init__(self, engine, key: str):
        self.engine = engine
        self.key = key
        self.context = engine.create_execution_context()
        self.lock = threading.Lock()
        trt = _trt()
        self.inputs, self.outputs = [], []
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                self.inputs.append(name)
            else:
                self.outputs.append(name)
        self.dtypes = {n: np.dtype(trt.nptype(engine.get_tensor_dtype(n)))
                       for n in self.inputs + self.outputs}


class TrtPartition(CompiledPartition):
    def __init__(self, graph: ir.Graph, provider: TensorRTProvider, context: CompileContext):
        self.provider = provider
        self.graph = graph
        # The session's declared input shape ranges: a profile when no trt_profile_* is given.
        self.shape_ranges = dict(context.input_shape_ranges)
        self.inputs = graph.input_names
        self.outputs = graph.output_names
        self.bytes = model_bytes(graph)
        self._engines: dict = {}
        self._lock = threading.Lock()
        self.cache_hits = 0
        self.builds = 0
        if provider.options["trt_dump_subgraphs"]:
            _atomic_write(os.path.join(provider.cache_dir, f"{graph.name}.onnx"), self.bytes)
        self._check_parse()
        self.static_shapes = self._static_input_shapes()
        if self.static_shapes is not None:
            self._engine_for(self.static_shapes)
        elif self._profile_spec() is not None:
            self._engine_for(None)

    def _check_parse(self) -> None:
        trt = _trt()
        logger = trt.Logger(trt.Logger.ERROR)
        builder = trt.Builder(logger)
        network = builder.create_network(_network_flags(trt))
        parser = trt.OnnxParser(network, logger)
        if not parser.parse(self.bytes):
            errs = [str(parser.get_error(i).desc()) for i in range(parser.num_errors)]
            raise FerryNotImplemented("TensorRT's ONNX parser rejected the subgraph: "
                                      + "; ".join(errs[:3]))

    def _static_input_shapes(self) -> dict | None:
        shapes = {}
        for vi in self.graph.inputs:
            if vi.shape is None or not all(isinstance(d, int) for d in vi.shape):
                return None
            shapes[vi.name] = tuple(vi.shape)
        return shapes

    def _profile_spec(self) -> dict | None:
        """name -> (min, opt, max) when the profile options cover every dynamic input; when
        no profile option is given, from the session's declared input shape ranges."""
        p = self.provider.profiles
        if not p["min"]:
            if not getattr(self, "shape_ranges", None):
                return None
            return keys.profile_from_ranges(
                [(vi.name, None if vi.shape is None else tuple(vi.shape))
                 for vi in self.graph.inputs], self.shape_ranges)
        spec = {}
        for vi in self.graph.inputs:
            static = vi.shape is not None and all(isinstance(d, int) for d in vi.shape)
            if vi.name in p["min"]:
                spec[vi.name] = (p["min"][vi.name], p["opt"][vi.name], p["max"][vi.name])
            elif static:
                s = tuple(vi.shape)
                spec[vi.name] = (s, s, s)
            else:
                return None
        return spec

    def _fits_profile(self, spec, shapes) -> bool:
        for name, (lo, _, hi) in spec.items():
            s = shapes.get(name)
            if s is None or len(s) != len(lo) or any(not a <= d <= c for a, d, c in
                                                      zip(lo, s, hi)):
                return False
        return True

    def _engine_for(self, shapes: dict | None) -> _Engine:
        """The engine for concrete ``shapes`` (or the profile engine when ``shapes`` is None
        or fits the user's profile)."""
        spec = self._profile_spec()
        if spec is not None and (shapes is None or self._fits_profile(spec, shapes)):
            sig = ("profile",)
        else:
            spec = {n: (s, s, s) for n, s in shapes.items()}
            sig = tuple(sorted(shapes.items()))
        eng = self._engines.get(sig)
        if eng is not None:
            return eng
        with self._lock:
            eng = self._engines.get(sig)
            if eng is None:
                eng = self._engines[sig] = self._build(spec)
        return eng

    def _build(self, spec: dict) -> _Engine:
        p = self.provider
        trt = _trt()
        key = keys.engine_cache_key(self.bytes, spec, p.precision(), trt_version(), p.gpu_name())
        path = os.path.join(p.cache_dir, keys.engine_file_name(key))
        logger = trt.Logger(trt.Logger.WARNING)
        runtime = trt.Runtime(logger)
        if p.options["trt_engine_cache_enable"] and os.path.exists(path):
            with open(path, "rb") as f:
                engine = runtime.deserialize_cuda_engine(f.read())
            if engine is not None:
                self.cache_hits += 1
                return _Engine(engine, key)
            log.warning("TensorRT engine cache file %s could not be loaded; rebuilding", path)
        builder = trt.Builder(logger)
        network = builder.create_network(_network_flags(trt))
        parser = trt.OnnxParser(network, logger)
        if not parser.parse(self.bytes):
            raise FerryNotImplemented("TensorRT's ONNX parser rejected the subgraph")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE,
                                     int(p.options["trt_max_workspace_size"]))
        if p.options["trt_fp16_enable"]:
            config.set_flag(trt.BuilderFlag.FP16)
        cache = config.create_timing_cache(p.load_timing_cache())
        config.set_timing_cache(cache, ignore_mismatch=False)
        dynamic = any(lo != hi for lo, _, hi in spec.values())
        needs_profile = dynamic or any(
            any(d < 0 for d in network.get_input(i).shape) for i in range(network.num_inputs))
        if needs_profile:
            prof = builder.create_optimization_profile()
            for i in range(network.num_inputs):
                name = network.get_input(i).name
                lo, mid, hi = spec[name]
                prof.set_shape(name, lo, mid, hi)
            config.add_optimization_profile(prof)
        with self.provider.backend.device_scope():
            serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise RuntimeError("TensorRT failed to build an engine for the subgraph")
        data = bytes(serialized)
        p.store_timing_cache(bytes(config.get_timing_cache().serialize()))
        if p.options["trt_engine_cache_enable"]:
            _atomic_write(path, data)
        engine = runtime.deserialize_cuda_engine(data)
        self.builds += 1
        return _Engine(engine, key)

    def run(self, feeds: dict[str, Any], run_state: Any = None) -> dict[str, Any]:
        b = self.provider.backend
        cp = b.cupy
        with b.device_scope():
            arrays = {}
            for n in self.inputs:
                v = feeds[n]
                if not b.is_device_array(v):
                    v = self.provider.to_device(v)
                arrays[n] = cp.ascontiguousarray(b.unwrap(v))
            eng = self._engine_for({n: tuple(a.shape) for n, a in arrays.items()})
            outs = {}
            with eng.lock:
                ctx = eng.context
                keep = []
                for n in eng.inputs:
                    a = arrays[n]
                    if a.dtype != eng.dtypes[n]:
                        a = a.astype(eng.dtypes[n])
                    keep.append(a)
                    ctx.set_input_shape(n, tuple(a.shape))
                    ctx.set_tensor_address(n, int(a.data.ptr))
                for n in eng.outputs:
                    shape = tuple(ctx.get_tensor_shape(n))
                    if any(d < 0 for d in shape):
                        raise FerryNotImplemented(
                            f"TensorRT output '{n}' has a data-dependent shape {shape}")
                    out = cp.empty(shape, dtype=eng.dtypes[n])
                    ctx.set_tensor_address(n, int(out.data.ptr))
                    outs[n] = out
                stream = cp.cuda.get_current_stream()
                if not ctx.execute_async_v3(stream.ptr):
                    raise RuntimeError("TensorRT execution failed")
            result = {}
            for n in self.outputs:
                v = outs[n]
                vi = self.graph.lookup_info(n)
                want = vi.dtype if vi is not None and vi.elem_type else None
                if want is not None and v.dtype != want:
                    v = v.astype(want)  # e.g. an engine that computes int64 as int32
                result[n] = v
            return result

    def explain(self) -> dict[str, Any]:
        spec = self._profile_spec()
        source = None if spec is None else (
            "trt_profile_options" if self.provider.profiles["min"] else "input_shape_ranges")
        return {"device": self.provider.backend.device, "engines": len(self._engines),
                "profile_source": source,
                "profile": None if spec is None else {
                    n: [list(lo), list(mid), list(hi)] for n, (lo, mid, hi) in spec.items()},
                "engine_keys": [e.key for e in self._engines.values()],
                "engine_cache_hits": self.cache_hits, "engines_built": self.builds,
                "precision": self.provider.precision(),
                "copies": self.provider.stats.snapshot(), "plans": []}
