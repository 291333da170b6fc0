"""The NCHWc layout pass (ORT_ENABLE_ALL, CPU first): convolutions and what sits between them
move to the channels-blocked layout of providers/cpu/ops/nchwc.py, as onnxruntime's
NchwcTransformer does.

Why: in NCHW a convolution's GEMM packs its activations on every run (a pass over the input
that few output channels do not amortize), and a depthwise or pooling kernel has to
interleave channels to fill vectors. In NCHWc the 8 channels of a pixel are already one
vector: the conv broadcasts input values straight from memory against weights packed once,
and depthwise convs and pools do one 8-wide operation per tap.

The walk goes in execution order with a map "NCHW value -> its NCHWc twin":
- Conv / FusedConv with constant float weights, M % 8 == 0 and group 1 (C % 8 == 0, or C < 8:
  the first layer reads plain NCHW) or depthwise (group = C = M) -> ``NchwcConv``; its input
  takes the twin, or a ``ReorderInput`` made once per value.
- BatchNormalization (inference) / FusedBatchNormalization with constant parameters on a twin
  -> a 1x1 depthwise ``NchwcConv`` (per-channel scale and bias, activation fused).
- MaxPool (values only) / AveragePool (2-D), GlobalAveragePool / GlobalMaxPool on a twin ->
  their NCHWc ops (the global pools give plain [N, C, 1, 1] back).
- Element-wise activations, and Add/Sub/Mul/Div/Max/Min/Sum whose tensor operands are twins,
  scalars, or per-channel [n, C, 1, 1] values (reshaped to [n, C/8, 1, 1, 8]: SE blocks) ->
  the same op on twins. Concat on the channel axis of twins -> Concat on the block axis.
- Any other reader of a value that only has a twin gets a ``ReorderOutput`` (once), written
  under the value's own name; so do graph outputs.

Which kernel runs a blocked conv is decided when it is lowered, on its real shapes
(providers/cpu/ops/nchwc.py): 3x3 stride-1 convs large enough for Winograd take the Winograd
kernel in its NCHWc form, the others the direct NchwcConv.
"""

from __future__ import annotations

import os

import numpy as np

from runtime import ir
from runtime.optimizer.graph_view import STANDARD, GraphView, is_inference_batchnorm, make_node

FERRY = "ferry"
BLOCK = 8
_F32 = 1  # TensorProto.FLOAT

UNARY = {"Relu", "Sigmoid", "Tanh", "LeakyRelu", "HardSigmoid", "HardSwish", "Clip", "Elu",
         "Selu", "Softplus", "Softsign", "Abs", "Neg", "Exp", "Sqrt", "Erf", "Gelu", "Mish",
         "Identity"}
FERRY_UNARY = {"Silu", "Gelu"}
BINARY = {"Add", "Sub", "Mul", "Div", "Max", "Min", "Sum"}


def enabled() -> bool:
    """FERRY_NCHWC=0 turns the pass off (A/B measurements)."""
    return os.environ.get("FERRY_NCHWC", "1") != "0"


class _Layout:
    def __init__(self, graph: ir.Graph):
        self.graph = graph
        self.view = GraphView(graph)
        self.twin: dict[str, str] = {}        # NCHW name -> NCHWc name
        self.channels: dict[str, int] = {}    # NCHW name -> C (for twins)
        self.needs_output: set[str] = set()   # names only a twin holds (not yet reordered back)
        self.nodes: list[ir.Node] = []
        self.changed = False

    # ---- helpers -----------------------------------------------------------------------
    def _shape4(self, name: str):
        s = self.view.shape(name)
        return s if s is not None and len(s) == 4 else None

    def _new_twin(self, name: str, c: int, shape4=None) -> str:
        tw = self.view.new_name(f"{name}_nchwc")
        self.twin[name] = tw
        self.channels[name] = c
        s = shape4 if shape4 is not None else self._shape4(name)
        shape5 = None
        if s is not None:
            shape5 = (s[0], c // BLOCK, s[2], s[3], BLOCK)
        self.graph.value_info[tw] = ir.ValueInfo(tw, _F32, shape5)
        return tw

    def _reorder_in(self, name: str, c: int, base: ir.Node) -> str:
        if name in self.twin:
            return self.twin[name]
        tw = self._new_twin(name, c)
        s = self._shape4(name)
        if s is not None and s[2] == 1 and s[3] == 1:  # one pixel: the same bytes, a view
            self._reshape_blocked(name, c, tw, base)
        else:
            self.nodes.append(make_node(self.view, "ReorderInput", [name], [tw], domain=FERRY,
                                        base=base))
        return tw

    def _reshape_blocked(self, name: str, c: int, out: str, base: ir.Node) -> None:
        """out = name (C values per image, one pixel) viewed as [n, C/8, 1, 1, 8]."""
        shape = self.view.add_initializer(f"{name}_nchwc_shape",
                                          np.array([-1, c // BLOCK, 1, 1, BLOCK], np.int64))
        self.nodes.append(make_node(self.view, "Reshape", [name, shape], [out], base=base))

    def _materialize(self, name: str, base: ir.Node | None) -> None:
        if name not in self.needs_output:
            return
        self.needs_output.discard(name)
        self.nodes.append(make_node(self.view, "ReorderOutput", [self.twin[name]], [name],
                                    domain=FERRY, base=base))

    def _produce_twin(self, out: str, c: int, shape4=None) -> str:
        tw = self._new_twin(out, c, shape4)
        self.needs_output.add(out)
        return tw

    def _is_f32(self, name: str) -> bool:
        return self.view.elem_type(name) == _F32

    # ---- conversions -------------------------------------------------------------------
    def _conv(self, node: ir.Node) -> bool:
        conv = node.domain in STANDARD and node.op_type == "Conv" or \
            node.domain == FERRY and node.op_type == "FusedConv"
        if not conv or len(node.inputs) < 2:
            return False
        x, wname = node.inputs[0], node.inputs[1]
        w = self.view.const(wname)
        if w is None or w.dtype != np.float32 or w.ndim != 4 or not self._is_f32(x):
            return False
        b = node.inputs[2] if len(node.inputs) > 2 else ""
        z = node.inputs[3] if len(node.inputs) > 3 else ""
        if (b and not self._is_f32(b)) or (z and not self._is_f32(z)):
            return False
        if z and (z not in self.twin and (self._shape4(z) is None or
                                          self._shape4(z) != self._shape4(node.outputs[0]))):
            return False  # a residual that broadcasts (or of unknown shape) stays NCHW
        group = int(node.attrs.get("group", 1))
        m, cg = int(w.shape[0]), int(w.shape[1])
        c = cg * group
        if m % BLOCK:
            return False
        depthwise = group > 1 and group == c == m and cg == 1
        if depthwise:
            layout = "nchwc"
        elif group != 1:
            return False
        elif c % BLOCK == 0:
            layout = "nchwc"
        elif c < BLOCK and x not in self.twin:
            layout = "nchw"
        else:
            return False
        if depthwise and c % BLOCK:
            return False
        xin = x if layout == "nchw" else self._reorder_in(x, c, node)
        inputs = [xin, wname, b]
        if z:
            inputs.append(self._reorder_in(z, m, node))
        while inputs and not inputs[-1]:
            inputs.pop()
        attrs = dict(node.attrs)
        if layout == "nchw":
            attrs["input_layout"] = "nchw"
        out = self._produce_twin(node.outputs[0], m)
        self.nodes.append(ir.Node("NchwcConv", inputs, [out], attrs,
                                  node.name or self.view.new_name("NchwcConv"), FERRY))
        return True

    def _batchnorm(self, node: ir.Node) -> bool:
        fused = node.domain == FERRY and node.op_type == "FusedBatchNormalization"
        if not (fused or is_inference_batchnorm(node)) or node.inputs[0] not in self.twin:
            return False
        params = [self.view.const(n) for n in node.inputs[1:5]]
        c = self.channels[node.inputs[0]]
        if any(p is None or p.shape != (c,) for p in params):
            return False
        scale, bias, mean, var = (p.astype(np.float64) for p in params)
        k = scale / np.sqrt(var + float(node.attrs.get("epsilon", 1e-5)))
        w = self.view.add_initializer(f"{node.name or 'bn'}_nchwc_scale",
                                      k.astype(np.float32).reshape(c, 1, 1, 1))
        b = self.view.add_initializer(f"{node.name or 'bn'}_nchwc_bias",
                                      (bias - mean * k).astype(np.float32))
        attrs = {"group": c, "kernel_shape": [1, 1]}
        if fused:
            for key in ("activation", "activation_params"):
                if key in node.attrs:
                    attrs[key] = node.attrs[key]
        out = self._produce_twin(node.outputs[0], c)
        self.nodes.append(ir.Node("NchwcConv", [self.twin[node.inputs[0]], w, b], [out], attrs,
                                  node.name or self.view.new_name("NchwcConv"), FERRY))
        return True

    def _pool(self, node: ir.Node) -> bool:
        if node.domain not in STANDARD or not node.inputs or node.inputs[0] not in self.twin:
            return False
        x = node.inputs[0]
        op = node.op_type
        if op in ("GlobalAveragePool", "GlobalMaxPool"):
            self.nodes.append(ir.Node("Nchwc" + op, [self.twin[x]], list(node.outputs),
                                      dict(node.attrs), node.name or self.view.new_name(op),
                                      FERRY))
            return True
        if op not in ("MaxPool", "AveragePool") or len(node.attrs.get("kernel_shape", [])) != 2:
            return False
        if op == "MaxPool" and (len(node.outputs) > 1 and node.outputs[1]):
            return False  # Indices are NCHW positions
        out = self._produce_twin(node.outputs[0], self.channels[x])
        self.nodes.append(ir.Node("Nchwc" + op, [self.twin[x]], [out], dict(node.attrs),
                                  node.name or self.view.new_name(op), FERRY))
        return True

    def _channel_operand(self, name: str, c: int, base: ir.Node) -> str | None:
        """An operand broadcast against an NCHWc value: the name to use, or None."""
        if name in self.twin:
            return self.twin[name] if self.channels[name] == c else None
        s = self.view.shape(name)
        if s is None or len(s) > 4 or not self._is_f32(name):
            return None
        s4 = (1,) * (4 - len(s)) + tuple(s)
        if all(d == 1 for d in s4):
            return name  # a scalar in any rank up to 4 broadcasts the same in 5-D
        if s4[2:] != (1, 1) or s4[1] != c:
            if len(s) == 4 and s[1] == c and self.view.const(name) is None:
                return self._reorder_in(name, c, base)  # a full NCHW operand: one reorder
            return None
        const = self.view.const(name)
        if const is not None:
            return self.view.add_initializer(
                f"{name}_nchwc", np.ascontiguousarray(const.reshape(-1, c // BLOCK, 1, 1, BLOCK)))
        if len(s) == 4:
            return self._reorder_in(name, c, base)  # [n, C, 1, 1]: a Reshape (a view)
        out = self.view.new_name(f"{name}_nchwc")
        self._reshape_blocked(name, c, out, base)
        return out

    def _elementwise(self, node: ir.Node) -> bool:
        std = node.domain in STANDARD
        op = node.op_type
        if not node.inputs or not node.outputs or len(node.outputs) != 1:
            return False
        if (std and op in UNARY) or (node.domain == FERRY and op in FERRY_UNARY):
            x = node.inputs[0]
            if x not in self.twin:
                return False
            out = self._produce_twin(node.outputs[0], self.channels[x], self._shape4(x))
            self.nodes.append(ir.Node(op, [self.twin[x], *node.inputs[1:]], [out],
                                      dict(node.attrs), node.name, node.domain))
            return True
        if not (std and op in BINARY):
            return False
        blocked = [i for i in node.inputs if i in self.twin]
        if not blocked:
            return False
        c = self.channels[blocked[0]]
        staged, twins = len(self.nodes), set(self.twin)
        inputs = []
        for i in node.inputs:
            r = self._channel_operand(i, c, node)
            if r is None:  # undo the reorders and Reshapes made for this node
                del self.nodes[staged:]
                for name in set(self.twin) - twins:
                    del self.twin[name], self.channels[name]
                return False
            inputs.append(r)
        out = self._produce_twin(node.outputs[0], c)
        self.nodes.append(ir.Node(op, inputs, [out], dict(node.attrs), node.name, node.domain))
        return True

    def _concat(self, node: ir.Node) -> bool:
        if not (node.domain in STANDARD and node.op_type == "Concat") or not node.inputs:
            return False
        axis = int(node.attrs.get("axis", 0))
        if axis not in (1, -3) or not any(i in self.twin for i in node.inputs):
            return False
        # Inputs without a twin are reordered in when their channels are whole blocks: one
        # pass over them, not one over every other input (DenseNet concatenates a few new
        # channels to many).
        channels = []
        for i in node.inputs:
            s = self._shape4(i)
            ci = self.channels[i] if i in self.twin else (s[1] if s is not None else None)
            if not isinstance(ci, int) or ci % BLOCK or not self._is_f32(i):
                return False
            channels.append(ci)
        inputs = [self._reorder_in(i, ci, node) for i, ci in zip(node.inputs, channels)]
        out = self._produce_twin(node.outputs[0], sum(channels))
        self.nodes.append(ir.Node("Concat", inputs, [out], {"axis": 1}, node.name,
                                  node.domain))
        return True

    # ---- the walk ----------------------------------------------------------------------
    def run(self) -> bool:
        for node in ir.topological_sort(self.graph):
            if any(node.subgraphs()):
                converted = False
            else:
                converted = (self._conv(node) or self._batchnorm(node) or self._pool(node)
                             or self._elementwise(node) or self._concat(node))
            if converted:
                self.changed = True
                continue
            for name in ir.node_all_inputs(node):
                if name:
                    self._materialize(name, node)
            self.nodes.append(node)
        for name in self.graph.output_names:
            self._materialize(name, None)
        if self.changed:
            self.graph.nodes = self.nodes
        return self.changed


def convert_to_nchwc(graph: ir.Graph) -> bool:
    """Move convolutions and their neighbours to the NCHWc layout (see the module doc)."""
    if not enabled():
        return False
    if any(n.domain == FERRY and n.op_type in ("NchwcConv", "ReorderInput") for n in graph.nodes):
        return False  # already converted (a saved optimized model loaded again)
    return _Layout(graph).run()
