"""What passes ask of a graph: who produces and who reads each value, which values are
constants, which names must survive (graph outputs, values nested graphs read), and how to
swap a matched group of nodes for a replacement while keeping the node list in order."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from runtime import ir

# Ops whose outputs differ between runs with equal inputs: never folded or merged.
NONDETERMINISTIC_OPS = {"RandomNormal", "RandomUniform", "RandomNormalLike",
                        "RandomUniformLike", "Multinomial", "Bernoulli"}

STANDARD = ("", "ai.onnx")


def is_op(node: ir.Node | None, *op_types: str) -> bool:
    return node is not None and node.domain in STANDARD and node.op_type in op_types


def is_inference_batchnorm(node: ir.Node | None) -> bool:
    """BatchNormalization in inference: the five inputs, no training mode, only Y read."""
    return is_op(node, "BatchNormalization") and len(node.inputs) == 5 and \
        not int(node.attrs.get("training_mode", 0)) and not any(o for o in node.outputs[1:])


class GraphView:
    """A snapshot of ``graph``'s wiring. Passes build one, match, then edit through
    :meth:`replace` / :meth:`rename_uses`, and :meth:`commit` at the end."""

    def __init__(self, graph: ir.Graph):
        self.graph = graph
        self.producer: dict[str, ir.Node] = {}
        self.readers: dict[str, list[ir.Node]] = defaultdict(list)
        for node in graph.nodes:
            for o in node.outputs:
                if o:
                    self.producer[o] = node
            for i in ir.node_all_inputs(node):
                if i:
                    self.readers[i].append(node)
        self.input_names = set(graph.input_names)
        self.protected = set(graph.output_names)
        for node in graph.nodes:
            for sub in node.subgraphs():
                self.protected |= sub.outer_references()
        self._removed: set[int] = set()
        self._replacement: dict[int, list[ir.Node]] = {}
        self._taken = ir.used_names(graph)

    # ---- queries -------------------------------------------------------------------------
    def const(self, name: str) -> np.ndarray | None:
        """The value of a graph constant (an initializer the caller cannot override)."""
        if not name or name in self.input_names:
            return None
        return self.graph.initializers.get(name)

    def only_reader(self, name: str) -> ir.Node | None:
        """The single node reading ``name`` (read once), if nothing else may see it."""
        if name in self.protected:
            return None
        rs = self.readers.get(name, [])
        if len(rs) != 1 or rs[0].inputs.count(name) != 1:
            return None
        return rs[0]

    def shape(self, name: str) -> tuple | None:
        """Static or symbolic shape from shape inference (ints, str symbols, None)."""
        c = self.const(name)
        if c is not None:
            return tuple(c.shape)
        vi = self.graph.lookup_info(name)
        return None if vi is None else vi.shape

    def static_shape(self, name: str) -> tuple[int, ...] | None:
        s = self.shape(name)
        if s is None or not all(isinstance(d, int) for d in s):
            return None
        return tuple(s)

    def elem_type(self, name: str) -> int:
        c = self.const(name)
        if c is not None:
            try:
                return ir.numpy_dtype_to_onnx(c.dtype)
            except Exception:
                return 0
        vi = self.graph.lookup_info(name)
        return 0 if vi is None else vi.elem_type

    def alive(self, node: ir.Node) -> bool:
        return id(node) not in self._removed

    # ---- edits ---------------------------------------------------------------------------
    def new_name(self, prefix: str) -> str:
        name = ir.unique_name(prefix, self._taken)
        self._taken.add(name)
        return name

    def add_initializer(self, prefix: str, value: np.ndarray) -> str:
        name = self.new_name(prefix)
        self.graph.initializers[name] = value
        return name

    def replace(self, matched: list[ir.Node], new_nodes: list[ir.Node]) -> None:
        """Drop ``matched``; ``new_nodes`` take the place of the last of them in the list."""
        order = {id(n): k for k, n in enumerate(self.graph.nodes)}
        last = max(matched, key=lambda n: order[id(n)])
        for n in matched:
            self._removed.add(id(n))
        self._replacement[id(last)] = list(new_nodes)
        for n in new_nodes:
            for o in n.outputs:
                if o:
                    self.producer[o] = n

    def commit(self) -> None:
        nodes: list[ir.Node] = []
        for n in self.graph.nodes:
            nodes.extend(self._replacement.get(id(n), []))
            if id(n) not in self._removed:
                nodes.append(n)
        self.graph.nodes = nodes


def rename_uses(graph: ir.Graph, mapping: dict[str, str]) -> None:
    """Readers of each key read its value instead (chains resolved), nested graphs included
    through their outer references are left alone (callers protect those names)."""
    if not mapping:
        return

    def resolve(name: str) -> str:
        seen = set()
        while name in mapping and name not in seen:
            seen.add(name)
            name = mapping[name]
        return name

    for node in graph.nodes:
        node.inputs = [resolve(i) if i else i for i in node.inputs]


def make_node(view: GraphView, op_type: str, inputs: list[str], outputs: list[str],
              attrs: dict | None = None, domain: str = "", base: ir.Node | None = None
              ) -> ir.Node:
    name = view.new_name((base.name or base.op_type) + f"_{op_type}" if base else op_type)
    return ir.Node(op_type=op_type, inputs=inputs, outputs=outputs, attrs=dict(attrs or {}),
                   name=name, domain=domain)
