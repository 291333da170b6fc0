"""Loading: a path, bytes or a ModelProto becomes a checked, shape-inferred ``LoadedModel``.

Untrusted input is the normal case here: bad bytes raise :class:`InvalidProtobuf`, a malformed
graph :class:`InvalidGraph`, and external data is read only from files inside the model's own
folder (no absolute paths, no ``..``, no symlink that leads out).
"""

from __future__ import annotations

import itertools
import logging
import os
import sys
from dataclasses import dataclass, field

import numpy as np
import onnx
import onnx.defs
import onnx.inliner
from google.protobuf.message import DecodeError
from onnx import TensorProto

from runtime import ir
from runtime.errors import (FerryError, InvalidArgument, InvalidGraph, InvalidProtobuf, NoSuchFile,
                            UnsafeModel)

# Opset versions this runtime knows, per domain: newer ones are refused with a clear error
# rather than run with guessed semantics.
MAX_KNOWN_OPSET = {"": onnx.defs.onnx_opset_version(), "ai.onnx.ml": 5,
                   "ai.onnx.preview.training": 1, "com.microsoft": 1, "ferry": 1}


# Checker complaints about models onnxruntime runs without trouble: accepted with a warning.
_BENIGN_CHECKER_MESSAGES = (
    "Field 'shape' of 'type' is required but missing",
)

log = logging.getLogger("ferry")


@dataclass
class LoadedModel:
    proto: onnx.ModelProto            # metadata; big weights cleared (see graph.initializers)
    graph: ir.Graph
    path: str | None                  # file the model came from, if any
    base_dir: str | None              # folder external data is confined to
    opsets: dict[str, int] = field(default_factory=dict)
    functions: dict[tuple[str, str], onnx.FunctionProto] = field(default_factory=dict)
    input_shapes: InputShapeReport | None = None


def _parse_bytes(data: bytes) -> onnx.ModelProto:
    if not data:
        raise InvalidProtobuf("the model is empty (0 bytes)")
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise InvalidProtobuf(f"the bytes are not an ONNX model (protobuf parse failed: {exc})") \
            from None
    if not model.HasField("graph"):
        raise InvalidProtobuf("the bytes parse as protobuf but hold no ONNX graph "
                              "(not an ONNX model, or truncated)")
    return model


def _confined_path(base_dir: str, location: str, tensor_name: str) -> str:
    """Absolute path of an external-data file, refusing anything outside ``base_dir``."""
    if not location:
        raise UnsafeModel(f"tensor '{tensor_name}': external data has no location")
    if os.path.isabs(location) or location.startswith(("/", "\\")) or ":" in location[:3]:
        raise UnsafeModel(f"tensor '{tensor_name}': external data location '{location}' is an "
                          "absolute path; only files inside the model's folder are read")
    parts = location.replace("\\", "/").split("/")
    if ".." in parts:
        raise UnsafeModel(f"tensor '{tensor_name}': external data location '{location}' leaves "
                          "the model's folder ('..' is refused)")
    root = os.path.realpath(base_dir)
    full = os.path.realpath(os.path.join(root, location))
    if os.path.commonpath([root, full]) != root:
        raise UnsafeModel(f"tensor '{tensor_name}': external data location '{location}' "
                          "resolves outside the model's folder (symlink?)")
    if not os.path.isfile(full):
        raise NoSuchFile(f"tensor '{tensor_name}': external data file '{location}' not found in "
                         f"{root}")
    return full


def _expected_nbytes(t: TensorProto) -> int | None:
    n = 1
    for d in t.dims:
        if d < 0:
            raise InvalidGraph(f"tensor '{t.name}' has a negative dimension {d}")
        n *= int(d)
    if t.data_type in (TensorProto.STRING, TensorProto.UNDEFINED):
        return None
    if t.data_type not in TensorProto.DataType.values():
        raise InvalidGraph(f"tensor '{t.name}' has an unknown element type {t.data_type}")
    if t.data_type in (TensorProto.INT4, TensorProto.UINT4):
        return (n + 1) // 2
    if t.data_type == getattr(TensorProto, "FLOAT4E2M1", -1):
        return (n + 1) // 2
    itemsize = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(t.data_type)).itemsize
    return n * itemsize


def _all_tensors(model: onnx.ModelProto):
    """Every TensorProto of the model, including those in attributes of nested graphs."""
    def from_graph(g: onnx.GraphProto):
        yield from g.initializer
        for sp in g.sparse_initializer:
            yield sp.values
            yield sp.indices
        for node in g.node:
            for a in node.attribute:
                if a.HasField("t"):
                    yield a.t
                yield from a.tensors
                if a.HasField("g"):
                    yield from from_graph(a.g)
                for sub in a.graphs:
                    yield from from_graph(sub)
    yield from from_graph(model.graph)


def _load_external_data(model: onnx.ModelProto, base_dir: str | None, limit: int) -> None:
    for t in _all_tensors(model):
        if t.data_location != TensorProto.EXTERNAL:
            continue
        info = {e.key: e.value for e in t.external_data}
        if base_dir is None:
            raise UnsafeModel(
                f"tensor '{t.name}' uses external data, but the model was given as bytes or a "
                "ModelProto with no folder: load it from its path, or set the session config "
                "entry 'session.model_external_initializers_file_folder_path'")
        full = _confined_path(base_dir, info.get("location", ""), t.name)
        try:
            offset = int(info.get("offset", 0) or 0)
            length = int(info["length"]) if info.get("length") else None
        except ValueError:
            raise InvalidGraph(f"tensor '{t.name}': bad external data offset/length") from None
        size = os.path.getsize(full)
        expected = _expected_nbytes(t)
        if length is None:
            length = expected if expected is not None else size - offset
        if offset < 0 or length < 0 or offset + length > size:
            raise InvalidGraph(f"tensor '{t.name}': external data [{offset}, {offset + length}) "
                               f"lies outside '{info.get('location')}' ({size} bytes)")
        if expected is not None and length != expected:
            raise InvalidGraph(f"tensor '{t.name}': external data holds {length} bytes, its "
                               f"shape and type need {expected}")
        if length > limit:
            raise UnsafeModel(f"tensor '{t.name}' needs {length} bytes, over the memory limit")
        with open(full, "rb") as f:
            f.seek(offset)
            t.raw_data = f.read(length)
        t.data_location = TensorProto.DEFAULT
        del t.external_data[:]


def _check_inline_tensors(model: onnx.ModelProto, limit: int) -> None:
    """Refuse tensors whose declared size disagrees with their data (hostile or truncated)."""
    for t in _all_tensors(model):
        if t.data_location == TensorProto.EXTERNAL:
            continue
        expected = _expected_nbytes(t)
        if expected is None:
            continue
        if expected > limit:
            raise UnsafeModel(f"tensor '{t.name}' declares {expected} bytes, over the memory "
                              f"limit of {limit} bytes")
        if expected > _SKELETON_MIN_BYTES:
            continue  # checked where it is decoded (ir.tensor_to_numpy): no copy here
        if t.HasField("raw_data") or t.raw_data:
            if len(t.raw_data) != expected:
                raise InvalidGraph(f"tensor '{t.name}' has {len(t.raw_data)} bytes of raw data; "
                                   f"its shape {list(t.dims)} and type need {expected}")


@dataclass
class InputShapeSpec:
    """What the session options say about input shapes (see runtime/options.py)."""

    by_name: dict[str, int] = field(default_factory=dict)
    by_denotation: dict[str, int] = field(default_factory=dict)
    ranges: dict = field(default_factory=dict)  # name -> options.ShapeRange

    def __bool__(self) -> bool:
        return bool(self.by_name or self.by_denotation or self.ranges)


@dataclass
class InputShapeReport:
    """What :func:`apply_input_shapes` did: fixed dims and the effective ranges."""

    overrides_applied: dict[str, int] = field(default_factory=dict)  # "name"/"denotation" -> v
    overrides_unused: list[str] = field(default_factory=list)
    ranges: dict = field(default_factory=dict)  # name -> ShapeRange, narrowed to the model
    fixed_by_ranges: dict[str, dict[int, int]] = field(default_factory=dict)
    # symbol -> (min, opt, max) of the symbolic dims the declared ranges bound
    symbols: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    # inputs with no declared range whose dynamic dims are all bound through shared symbols
    derived: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"free_dimension_overrides": dict(self.overrides_applied),
                "free_dimension_overrides_unused": list(self.overrides_unused),
                "input_shape_ranges": {n: r.as_dict() for n, r in self.ranges.items()},
                "dims_fixed_by_ranges": {n: dict(d) for n, d in self.fixed_by_ranges.items()},
                "ranges_derived_from_shared_dims": list(self.derived)}


def _fix_symbol(graph: onnx.GraphProto, symbol: str, value: int) -> None:
    """Every top-level dimension named ``symbol`` becomes ``value`` (inputs, outputs and
    value_info: one name is one size throughout the graph)."""
    for vi in itertools.chain(graph.input, graph.output, graph.value_info):
        if vi.type.WhichOneof("value") != "tensor_type" or not vi.type.tensor_type.HasField(
                "shape"):
            continue
        for d in vi.type.tensor_type.shape.dim:
            if d.WhichOneof("value") == "dim_param" and d.dim_param == symbol:
                d.dim_value = value


def apply_input_shapes(proto: onnx.ModelProto, spec: InputShapeSpec) -> InputShapeReport:
    """Apply free-dimension overrides and declared shape ranges to ``proto``'s graph inputs
    (in place, before shape inference, so that fixed sizes propagate and static folding can
    fire). Ranges are checked against the declared inputs: the name must be an input, the rank
    equal, fixed dims inside the range; a symbol shared by several inputs gets the intersection
    of their ranges. Dims whose range is a single value become static."""
    from runtime.errors import suggest
    from runtime.options import ShapeRange

    report = InputShapeReport()
    graph = proto.graph
    init_names = {t.name for t in graph.initializer}
    inputs = {vi.name: vi for vi in graph.input if vi.name not in init_names}

    def dims_of(vi):
        tp = vi.type
        if tp.WhichOneof("value") != "tensor_type" or not tp.tensor_type.HasField("shape"):
            return None
        return tp.tensor_type.shape.dim

    # 1. Free-dimension overrides (onnxruntime's semantics: by symbol name or denotation).
    used: set[str] = set()
    for vi in inputs.values():
        for d in dims_of(vi) or ():
            if d.WhichOneof("value") == "dim_param" and d.dim_param in spec.by_name:
                used.add(f"name:{d.dim_param}")
                report.overrides_applied[d.dim_param] = spec.by_name[d.dim_param]
            elif d.denotation and d.denotation in spec.by_denotation:
                value = spec.by_denotation[d.denotation]
                if d.WhichOneof("value") == "dim_value" and d.dim_value != value:
                    raise InvalidArgument(
                        f"free dimension override '{d.denotation}' = {value}: input "
                        f"'{vi.name}' declares that dimension as {d.dim_value}")
                used.add(f"denotation:{d.denotation}")
                report.overrides_applied[d.denotation] = value
                if d.WhichOneof("value") == "dim_param":
                    _fix_symbol(graph, d.dim_param, value)
                d.dim_value = value
    for sym, value in spec.by_name.items():
        if f"name:{sym}" in used:
            _fix_symbol(graph, sym, value)
    report.overrides_unused = sorted(
        [n for n in spec.by_name if f"name:{n}" not in used]
        + [n for n in spec.by_denotation if f"denotation:{n}" not in used])
    if report.overrides_unused:
        log.warning("free dimension override(s) %s match no dimension of the model's inputs",
                    ", ".join(repr(n) for n in report.overrides_unused))

    # 2. Ranges against the declared inputs.
    bounds: dict[str, tuple[list[int], list[int], list[int]]] = {}
    symbols: dict[str, list[tuple[str, int]]] = {}
    for name, rng in spec.ranges.items():
        if name not in inputs:
            why = " (it is an initializer)" if name in init_names else ""
            raise InvalidArgument(
                f"input shape range for '{name}': the model has no such input{why}"
                f"{suggest(name, inputs)}; inputs: {', '.join(inputs) or 'none'}")
        vi = inputs[name]
        if vi.type.WhichOneof("value") != "tensor_type":
            raise InvalidArgument(f"input shape range for '{name}': the input is not a tensor")
        lo, mid, hi = list(rng.min), list(rng.opt), list(rng.max)
        dims = dims_of(vi)
        if dims is not None:
            if len(dims) != len(lo):
                declared = [d.dim_value if d.WhichOneof("value") == "dim_value" else
                            (d.dim_param or "?") for d in dims]
                raise InvalidArgument(
                    f"input shape range for '{name}' has rank {len(lo)} but the model declares "
                    f"rank {len(dims)} (shape {declared})")
            for axis, d in enumerate(dims):
                kind = d.WhichOneof("value")
                if kind == "dim_value":
                    if not lo[axis] <= d.dim_value <= hi[axis]:
                        raise InvalidArgument(
                            f"input shape range for '{name}': dimension {axis} is fixed at "
                            f"{d.dim_value} by the model, outside the declared range "
                            f"[{lo[axis]}, {hi[axis]}]")
                    lo[axis] = mid[axis] = hi[axis] = d.dim_value
                elif kind == "dim_param" and d.dim_param:
                    symbols.setdefault(d.dim_param, []).append((name, axis))
        bounds[name] = (lo, mid, hi)
    # One symbol is one size: inputs sharing it get the intersection of their ranges.
    for sym, uses in symbols.items():
        a = max(bounds[n][0][ax] for n, ax in uses)
        b = min(bounds[n][2][ax] for n, ax in uses)
        if a > b:
            desc = ", ".join(f"'{n}' dim {ax} in [{bounds[n][0][ax]}, {bounds[n][2][ax]}]"
                             for n, ax in uses)
            raise InvalidArgument(f"input shape ranges disagree on dimension '{sym}', which "
                                  f"several inputs share: {desc} have no size in common")
        for n, ax in uses:
            lo, mid, hi = bounds[n]
            lo[ax], hi[ax] = a, b
            mid[ax] = min(max(mid[ax], a), b)
        first = bounds[uses[0][0]][1][uses[0][1]]
        report.symbols[sym] = (a, first, b)
    # An undeclared input whose dynamic dims all share a bound symbol has a range too.
    for name, vi in inputs.items():
        dims = dims_of(vi)
        if name in bounds or not dims or vi.type.WhichOneof("value") != "tensor_type":
            continue
        kinds = [d.WhichOneof("value") for d in dims]
        if not all(k == "dim_value" or (k == "dim_param" and d.dim_param in report.symbols)
                   for k, d in zip(kinds, dims)):
            continue
        if all(k == "dim_value" for k in kinds):
            continue  # static: nothing to bound
        b3 = [[d.dim_value] * 3 if k == "dim_value" else list(report.symbols[d.dim_param])
              for k, d in zip(kinds, dims)]
        bounds[name] = tuple([x[i] for x in b3] for i in range(3))
        report.derived.append(name)
    # 3. Single-valued dims become static.
    for name, (lo, mid, hi) in bounds.items():
        report.ranges[name] = ShapeRange(tuple(lo), tuple(mid), tuple(hi))
        dims = dims_of(inputs[name])
        if dims is None:
            continue
        for axis, d in enumerate(dims):
            if d.WhichOneof("value") == "dim_value" or lo[axis] != hi[axis]:
                continue
            report.fixed_by_ranges.setdefault(name, {})[axis] = lo[axis]
            if d.WhichOneof("value") == "dim_param" and d.dim_param:
                _fix_symbol(graph, d.dim_param, lo[axis])
            d.dim_value = lo[axis]
    return report


def load_model(model, *, external_data_dir: str | None = None,
               memory_limit: int = 1 << 40, check: bool = True,
               input_shapes: InputShapeSpec | None = None) -> LoadedModel:
    """Load and validate a model from a path, bytes or an ``onnx.ModelProto``.

    ``input_shapes``: free-dimension overrides and shape ranges, applied to the graph inputs
    before shape inference (the report lands in ``LoadedModel.input_shapes``)."""
    path = None
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        if not os.path.exists(path):
            raise NoSuchFile(f"model file '{path}' does not exist")
        if os.path.isdir(path):
            raise InvalidArgument(f"'{path}' is a folder, not a model file")
        with open(path, "rb") as f:
            proto = _parse_bytes(f.read())
        base_dir = os.path.dirname(os.path.abspath(path))
    elif isinstance(model, (bytes, bytearray, memoryview)):
        proto = _parse_bytes(bytes(model))
        base_dir = external_data_dir
    elif isinstance(model, onnx.ModelProto):
        proto = onnx.ModelProto()
        proto.CopyFrom(model)
        base_dir = external_data_dir
    else:
        raise InvalidArgument(
            f"a model must be a path, bytes or an onnx.ModelProto, not {type(model).__name__}")

    if not proto.HasField("graph"):
        raise InvalidGraph("the model has no graph")
    opsets: dict[str, int] = {}
    for imp in proto.opset_import:
        dom = "" if imp.domain in ("", "ai.onnx") else imp.domain
        opsets[dom] = int(imp.version)
    if not proto.opset_import and proto.ir_version < 3:
        opsets[""] = 1
    for dom, ver in opsets.items():
        known = MAX_KNOWN_OPSET.get(dom)
        if known is not None and ver > known:
            raise InvalidGraph(f"the model imports opset {ver} of domain "
                               f"'{dom or 'ai.onnx'}'; ferry knows up to {known}")
        if ver < 1:
            raise InvalidGraph(f"opset version {ver} for domain '{dom or 'ai.onnx'}' is invalid")

    _load_external_data(proto, base_dir, memory_limit)
    _check_inline_tensors(proto, memory_limit)
    shape_report = apply_input_shapes(proto, input_shapes) if input_shapes else \
        InputShapeReport()

    # The checker and shape inference serialize the model they get; on a skeleton without the
    # big weights (each replaced by an input of the same type and shape, what inference needs)
    # that is fast and stays under protobuf's 2 GB limit. Weights were checked above.
    skeleton, weights = _skeleton(proto)
    _check_declared_dims(skeleton.graph)
    _check_attribute_types(skeleton.graph, opsets)
    inferred = _validate_and_infer(skeleton, check)
    graph = ir.graph_from_onnx(inferred.graph, opsets=opsets, base_dir=base_dir)
    placeholders = {t.name for t in weights} - {vi.name for vi in proto.graph.input}
    graph.inputs = [v for v in graph.inputs if v.name not in placeholders]
    for t in weights:
        if t.name in graph.initializers:
            raise InvalidGraph(f"initializer '{t.name}' is defined twice")
        graph.initializers[t.name] = ir.tensor_to_numpy(t, base_dir)
        # The weights now live in graph.initializers: the proto keeps only their metadata, so
        # a big model is not held twice.
        t.ClearField("raw_data")
    functions = {(f.domain, f.name): f for f in proto.functions}
    return LoadedModel(proto=proto, graph=graph, path=path, base_dir=base_dir, opsets=opsets,
                       functions=functions, input_shapes=shape_report)


def _graphs(graph: onnx.GraphProto):
    """``graph`` and every graph nested in its nodes' attributes."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from _graphs(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    yield from _graphs(g)


def _check_declared_dims(graph: onnx.GraphProto) -> None:
    """Negative declared dimensions and element types onnx does not define are refused
    (onnxruntime does too); onnx's shape inference would otherwise abort the whole process on
    some of them."""
    def tensor_types(tp: onnx.TypeProto):
        """The tensor types in ``tp``, through sequences and optionals."""
        which = tp.WhichOneof("value")
        if which in ("tensor_type", "sparse_tensor_type"):
            yield getattr(tp, which)
        elif which == "sequence_type":
            yield from tensor_types(tp.sequence_type.elem_type)
        elif which == "optional_type":
            yield from tensor_types(tp.optional_type.elem_type)

    defined = set(TensorProto.DataType.values())
    for g in _graphs(graph):
        for vi in itertools.chain(g.input, g.output, g.value_info):
            for tt in tensor_types(vi.type):
                if tt.elem_type not in defined:
                    raise InvalidGraph(f"value '{vi.name}' has an unknown element type "
                                       f"{tt.elem_type}")
                for d in tt.shape.dim:
                    if d.HasField("dim_value") and d.dim_value < 0:
                        raise InvalidGraph(f"value '{vi.name}' declares a negative dimension "
                                           f"({d.dim_value})")


_SKELETON_MIN_BYTES = 4096


def _validate_and_infer_here(skeleton: onnx.ModelProto, check: bool):
    """Checker, function inlining and shape inference -> (inferred model, checker warning)."""
    warning = ""
    if check:
        try:
            onnx.checker.check_model(skeleton)
        except onnx.checker.ValidationError as exc:
            msg = str(exc).strip().splitlines()
            text = " ".join(msg[:3])
            if not any(b in text for b in _BENIGN_CHECKER_MESSAGES):
                raise InvalidGraph("the model fails onnx.checker: " + text) from None
            warning = text
        except Exception as exc:  # the checker's C++ side can raise other types on garbage
            raise InvalidGraph(f"the model fails onnx.checker: {exc}") from None
    if skeleton.functions:
        # Model-local functions become plain nodes, so every pass and provider sees real ops.
        try:
            skeleton = onnx.inliner.inline_local_functions(skeleton)
        except Exception as exc:
            raise InvalidGraph(f"the model's local functions cannot be inlined: {exc}") from None
    try:
        inferred = onnx.shape_inference.infer_shapes(skeleton, strict_mode=False, data_prop=True)
    except Exception:
        # Shape inference is a help, not a requirement: custom ops or odd models may defeat it.
        inferred = skeleton
    return inferred, warning


def _validate_and_infer(skeleton: onnx.ModelProto, check: bool) -> onnx.ModelProto:
    """onnx's C++ checker and shape inference abort or crash the process on some malformed
    attribute values they do not range-check. On Linux they run in a forked child (cheap: the
    skeleton has no weights), so a hostile model costs an InvalidGraph, not the host process.
    FERRY_VALIDATE_IN_PROCESS=1 runs them here instead."""
    if sys.platform != "linux" or os.environ.get("FERRY_VALIDATE_IN_PROCESS") == "1":
        inferred, warning = _validate_and_infer_here(skeleton, check)
    else:
        inferred, warning = _in_child(skeleton, check)
    if warning:
        log.warning("onnx.checker: %s (accepted, as onnxruntime does)", warning)
    return inferred


def _in_child(skeleton: onnx.ModelProto, check: bool):
    import json
    import signal

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never returns
        code = 0
        try:
            os.close(r)
            # A crash here is the expected outcome on a hostile model and is reported by the
            # parent as InvalidGraph; a traceback dump from an inherited faulthandler (pytest
            # enables one) would only read like a crash of the host.
            import faulthandler

            faulthandler.disable()
            try:
                inferred, warning = _validate_and_infer_here(skeleton, check)
                head = {"ok": True, "warning": warning}
                body = inferred.SerializeToString()
            except FerryError as exc:
                head, body, code = {"ok": False, "error": str(exc)}, b"", 0
            data = json.dumps(head).encode() + b"\n" + body
            view = memoryview(data)
            while view:
                view = view[os.write(w, view):]
        except BaseException:
            code = 3
        finally:
            os._exit(code)
    os.close(w)
    chunks = []
    with os.fdopen(r, "rb") as f:
        while True:
            chunk = f.read(1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    data = b"".join(chunks)
    if os.WIFSIGNALED(status) or not data:
        sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
        name = signal.Signals(sig).name if sig else f"exit {os.WEXITSTATUS(status)}"
        raise InvalidGraph(f"onnx's checker/shape inference crashed on this model ({name}): "
                           "the model is malformed")
    head_raw, _, body = data.partition(b"\n")
    head = json.loads(head_raw)
    if not head["ok"]:
        raise InvalidGraph(head["error"])
    inferred = onnx.ModelProto()
    inferred.ParseFromString(body)
    return inferred, head.get("warning", "")


def _skeleton(proto: onnx.ModelProto) -> tuple[onnx.ModelProto, list[TensorProto]]:
    """``proto`` without its big top-level initializers (returned apart), each declared as a
    graph input of its type and shape instead. Small ones stay: shape inference reads their
    values (Reshape targets, Slice bounds...)."""
    skel = onnx.ModelProto()
    try:
        for f in ("ir_version", "producer_name", "producer_version", "domain", "model_version",
                  "doc_string"):
            setattr(skel, f, getattr(proto, f))
        skel.graph.name, skel.graph.doc_string = proto.graph.name, proto.graph.doc_string
    except UnicodeDecodeError:
        # Invalid UTF-8 in a name or doc string (onnxruntime loads such models): copy the
        # whole message at the protobuf level instead, then drop what the skeleton rebuilds.
        skel.CopyFrom(proto)
        for field in ("node", "input", "output", "value_info", "initializer",
                      "sparse_initializer"):
            skel.graph.ClearField(field)
        for field in ("opset_import", "metadata_props", "functions"):
            skel.ClearField(field)
    skel.opset_import.extend(proto.opset_import)
    skel.metadata_props.extend(proto.metadata_props)
    skel.functions.extend(proto.functions)
    src, g = proto.graph, skel.graph
    g.node.extend(src.node)
    g.input.extend(src.input)
    g.output.extend(src.output)
    g.value_info.extend(src.value_info)
    g.sparse_initializer.extend(src.sparse_initializer)
    declared = {vi.name for vi in src.input}
    weights = []
    for t in src.initializer:
        size = _expected_nbytes(t)
        if size is not None and size > _SKELETON_MIN_BYTES and t.data_type != TensorProto.STRING:
            weights.append(t)
            if t.name not in declared:
                g.input.append(onnx.helper.make_tensor_value_info(t.name, t.data_type, t.dims))
        else:
            g.initializer.append(t)
    return skel, weights


_ATTR_TYPE_NAMES = {v: k for k, v in onnx.AttributeProto.AttributeType.items()}


def _check_attribute_types(graph: onnx.GraphProto, opsets: dict[str, int]) -> None:
    """Each attribute of a standard op has the type its schema declares (onnxruntime refuses
    the model otherwise; running it with a guessed value would be wrong)."""
    for g in _graphs(graph):
        for node in g.node:
            domain = "" if node.domain in ("", "ai.onnx") else node.domain
            if domain not in ("", "ai.onnx.ml") or domain not in opsets:
                continue
            if node.op_type == "Split" and domain == "":
                n_out = next((a.i for a in node.attribute if a.name == "num_outputs"), None)
                if n_out is not None and n_out != len(node.output):
                    raise InvalidGraph(f"node '{node.name or node.op_type}' (Split): "
                                       f"num_outputs={n_out} but the node has "
                                       f"{len(node.output)} output(s)")
            try:
                schema = onnx.defs.get_schema(node.op_type, opsets[domain], domain)
            except Exception:
                continue  # unknown op: reported by the partitioner, naming the node
            for attr in node.attribute:
                spec = schema.attributes.get(attr.name)
                if spec is None or attr.ref_attr_name:
                    continue
                if attr.type != onnx.AttributeProto.UNDEFINED and \
                        int(attr.type) != int(spec.type):
                    raise InvalidGraph(
                        f"node '{node.name or node.op_type}' ({node.op_type}): attribute "
                        f"'{attr.name}' must be {_ATTR_TYPE_NAMES.get(int(spec.type))}, got "
                        f"{_ATTR_TYPE_NAMES.get(int(attr.type))}")
