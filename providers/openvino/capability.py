"""Which ONNX nodes OpenVINO can run: ``Core.query_model`` mapped back to ferry's nodes.

The whole graph is converted once (``convert_partially``: ops OpenVINO has no conversion for
become framework nodes instead of failing the conversion) with every node renamed to a unique
token, and queried once. OpenVINO ops are traced back to ONNX nodes by that token (friendly
names are the token, or start with it), by the tensor names they carry (an ONNX output name),
and, for the helper ops a conversion creates without either, by the node that consumes them.
A node none of whose ops could be traced (folded away, fused into a neighbour) is asked about
on its own: a one-node model with its real constant inputs, converted and queried; answers are
cached by the node's signature.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable

import numpy as np

from providers.base import Capability
from providers.openvino import export, known_issues
from runtime import ir

log = logging.getLogger("ferry")

_TOKEN = "__ferry_ov_node_"
_PLUMBING = {"Parameter", "Result"}
_BIG_WEIGHT_BYTES = 1 << 20


def _first_line(exc: BaseException) -> str:
    """The informative line of an OpenVINO exception (they start with source locations)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    for ln in lines:
        if ln.startswith("--") or "No conversion rule" in ln or "not supported" in ln.lower():
            return ln.lstrip("- ").strip()
    useful = [ln for ln in lines if not ln.startswith(("Exception from", "Check '"))]
    text = (useful or lines or [type(exc).__name__])[0]
    return text[:200]


def _is_framework_node(op) -> bool:
    """An op the frontend could not convert (kept as a placeholder by convert_partially)."""
    kind = op.get_type_name()
    return "FrameworkNode" in kind or "NotSupported" in kind


class CapabilityChecker:
    """Answers "can OpenVINO run this node on this device" for one provider instance."""

    def __init__(self, core, device: str, config: dict):
        self.core = core
        self.device = device
        self.config = config
        self._single_cache: dict[str, str | None] = {}

    # ---- entry point --------------------------------------------------------------------
    def capability(self, graph: ir.Graph, nodes: Iterable[ir.Node],
                   constants: set[str] | None = None) -> Capability:
        nodes = list(nodes)
        cap = Capability()
        candidates = []
        consts = set(graph.initializers) if constants is None else constants
        for n in nodes:
            why = self._type_problem(graph, n) or known_issues.known_issue(graph, n, consts)
            if why:
                cap.reasons[n] = why
            else:
                candidates.append(n)
        if not candidates:
            return cap
        verdicts = self._whole_graph(graph, candidates)
        for n in candidates:
            if n in verdicts:
                why = verdicts[n]
            else:
                why = self._single(graph, n, constants)
            if why is None:
                cap.claimed.add(n)
            else:
                cap.reasons[n] = why
        return cap

    # ---- filters ------------------------------------------------------------------------
    @staticmethod
    def _type_problem(graph: ir.Graph, node: ir.Node) -> str | None:
        for name in list(ir.node_all_inputs(node)) + [o for o in node.outputs if o]:
            why = export.value_type_problem(graph, name)
            if why:
                return f"OpenVINO partition boundary: {why}"
        return None

    # ---- the whole graph at once ---------------------------------------------------------
    def _whole_graph(self, graph: ir.Graph, candidates: list[ir.Node]) -> dict:
        """node -> reason (None = supported) for the nodes the whole-graph query could trace."""
        try:
            model, token_of = self._convert_whole(graph)
            supported = set(self.core.query_model(model, self.device, self.config))
        except Exception as exc:  # noqa: BLE001 - any failure only means: ask node by node
            log.info("openvino: whole-graph query failed (%s); querying node by node",
                     _first_line(exc))
            return {}
        node_of_token = {t: n for n, t in token_of.items()}
        producer = {o: n for n in graph.nodes for o in n.outputs if o}
        owner: dict = {}  # ov op -> ferry node
        ops = list(model.get_ordered_ops())
        for op in ops:
            if op.get_type_name() in _PLUMBING:
                continue
            fname = op.get_friendly_name()
            node = node_of_token.get(fname)
            if node is None and fname.startswith(_TOKEN):
                node = node_of_token.get(fname.split("/")[0].split(":")[0])
            if node is None:
                for out in op.outputs():
                    for tname in out.get_names():
                        if tname in producer:
                            node = producer[tname]
                            break
                    if node is not None:
                        break
            if node is not None:
                owner[op] = node
        # Untraced helper ops belong to the one node that consumes them (walking backwards so
        # chains of helpers resolve).
        for op in reversed(ops):
            if op in owner or op.get_type_name() in _PLUMBING:
                continue
            users = set()
            for out in op.outputs():
                for inp in out.get_target_inputs():
                    user = inp.get_node()
                    if user.get_type_name() == "Result":
                        continue
                    users.add(owner.get(user))
            if len(users) == 1 and None not in users:
                owner[op] = users.pop()
        by_node: dict = {}
        for op, node in owner.items():
            by_node.setdefault(node, []).append(op)
        verdicts = {}
        cand = set(candidates)
        for node, node_ops in by_node.items():
            if node not in cand:
                continue
            fw = [op for op in node_ops if _is_framework_node(op)]
            if fw:
                verdicts[node] = (f"OpenVINO has no conversion for "
                                  f"{node.domain or 'ai.onnx'}::{node.op_type} "
                                  f"(opset {graph.opset(node.domain)})")
                continue
            missing = [op for op in node_ops
                       if op.get_friendly_name() not in supported and
                       op.get_type_name() != "Constant"]
            if not missing:
                verdicts[node] = None
            # else: no verdict. A device may refuse an op only because a neighbour could not
            # be converted (unknown input shapes); the one-node query decides.
        # Framework nodes with nested graphs (If/Loop bodies that failed) are traced above; a
        # node whose ops are all missing falls through to the one-node query.
        return verdicts

    def _convert_whole(self, graph: ir.Graph):
        from openvino.frontend import FrontEndManager

        taken = ir.used_names(graph)
        token_of = {}
        renamed = []
        for i, n in enumerate(graph.nodes):
            token = f"{_TOKEN}{i}"
            while token in taken:
                token += "_"
            token_of[n] = token
            renamed.append(ir.Node(n.op_type, n.inputs, n.outputs, n.attrs, token, n.domain))
        inputs = [export.typed_info(graph, v.name) for v in graph.inputs
                  if v.name not in graph.initializers]
        # Big weights become typed inputs: the answer does not depend on their values, and the
        # query model stays small (no copy of the weights, no 2 GiB protobuf limit).
        inits = {}
        for k, v in graph.initializers.items():
            if getattr(v, "nbytes", 0) > _BIG_WEIGHT_BYTES and v.dtype != object:
                inputs.append(ir.ValueInfo(k, ir.numpy_dtype_to_onnx(v.dtype), tuple(v.shape)))
            else:
                inits[k] = v
        outputs = [export.typed_info(graph, v.name) for v in graph.outputs]
        vis = [v for v in graph.value_info.values() if v.kind == "tensor" and v.elem_type]
        proto = export.make_model(renamed, inputs, outputs, inits, vis,
                                  graph.opsets, graph.name or "graph")
        data = proto.SerializeToString()
        fe = FrontEndManager().load_by_framework("onnx")
        input_model = fe.load(_as_stream(data))
        model = fe.convert_partially(input_model)
        return model, token_of

    # ---- one node at a time --------------------------------------------------------------
    def _single(self, graph: ir.Graph, node: ir.Node, constants: set[str] | None) -> str | None:
        try:
            proto, key = self._single_model(graph, node, constants)
        except Exception as exc:  # noqa: BLE001 - becomes the node's refusal reason
            return f"cannot build a one-node model for OpenVINO: {exc}"
        if key in self._single_cache:
            return self._single_cache[key]
        why = self._query_single(proto, node)
        self._single_cache[key] = why
        return why

    def _single_model(self, graph: ir.Graph, node: ir.Node, constants: set[str] | None):
        consts = set(graph.initializers) if constants is None else constants
        inputs, inits = [], {}
        h = hashlib.sha256()
        h.update(f"{node.domain}::{node.op_type}@{graph.opset(node.domain)}".encode())
        for name in ir.node_all_inputs(node):
            if name in consts and name in graph.initializers:
                arr = np.asarray(graph.initializers[name])
                inits[name] = arr
                h.update(f"c:{name}:{arr.dtype}:{arr.shape}".encode())
                h.update(arr.tobytes() if arr.dtype != object else repr(arr).encode())
            else:
                vi = export.typed_info(graph, name)
                if not vi.elem_type:
                    raise ValueError(f"the type of input '{name}' is unknown (shape inference "
                                     "could not tell)")
                inputs.append(vi)
                h.update(f"i:{vi.elem_type}:{vi.shape}".encode())
        outputs = []
        for o in node.outputs:
            if o:
                vi = graph.lookup_info(o)
                outputs.append(vi if vi is not None else ir.ValueInfo(o))
        clone = ir.Node(node.op_type, node.inputs, node.outputs, node.attrs, "node", node.domain)
        proto = export.make_model([clone], inputs, outputs, inits, [], graph.opsets, "single")
        # Attributes (nested graphs included) and names are all in the proto's node.
        h.update(proto.graph.node[0].SerializeToString())
        return proto, h.hexdigest()

    def _query_single(self, proto, node: ir.Node) -> str | None:
        from openvino.frontend import FrontEndManager

        try:
            fe = FrontEndManager().load_by_framework("onnx")
            model = fe.convert(fe.load(_as_stream(proto.SerializeToString())))
        except Exception as exc:  # noqa: BLE001 - OpenVINO raises several types
            return f"OpenVINO cannot convert {node.op_type}: {_first_line(exc)}"
        try:
            supported = set(self.core.query_model(model, self.device, self.config))
        except Exception as exc:  # noqa: BLE001 - becomes the node's refusal reason
            return f"OpenVINO query_model failed: {_first_line(exc)}"
        for op in model.get_ordered_ops():
            if op.get_type_name() in _PLUMBING or op.get_type_name() == "Constant":
                continue
            if op.get_friendly_name() not in supported:
                return (f"OpenVINO device {self.device} does not support "
                        f"{op.get_type_name()} (from {node.op_type})")
        return None


def _as_stream(data: bytes):
    import io

    return io.BytesIO(data)
