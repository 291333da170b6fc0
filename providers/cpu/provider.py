"""The CPU execution provider: claims every node with an implementation in the op registry and
compiles each partition into a :class:`providers.cpu.partition.CpuPartition`."""

from __future__ import annotations

from typing import Iterable

from providers.base import Capability, CompileContext, ExecutionProvider, OptionSpec
from providers.cpu import opset
from runtime import ir


class CPUProvider(ExecutionProvider):
    name = "cpu"
    ort_name = "CPUExecutionProvider"
    device = "cpu"
    option_specs = {
        "use_native_kernels": OptionSpec(
            bool, True, doc="run ops on ferry's C++ kernels where one exists (False: numpy only)"),
        "use_plan": OptionSpec(
            bool, True, doc="compile static-shape partitions into one C++ plan with a memory "
                            "arena (False: run node by node)"),
        "plan_cache_size": OptionSpec(
            int, 16, doc="compiled plans kept per partition (one per input-shape signature)",
            validate=lambda v: None if v >= 1 else "must be >= 1"),
    }

    @classmethod
    def availability(cls) -> tuple[bool, str]:
        return True, ""

    def capability(self, graph: ir.Graph, nodes: Iterable[ir.Node]) -> Capability:
        cap = Capability()
        for node in nodes:
            reason = unsupported_reason(graph, node)
            if reason is None:
                cap.claimed.add(node)
            else:
                cap.reasons[node] = reason
        return cap

    def compile(self, subgraph: ir.Graph, context: CompileContext):
        from providers.cpu.partition import CpuPartition

        return CpuPartition(subgraph, self, context)


def unsupported_reason(graph: ir.Graph, node: ir.Node) -> str | None:
    """None when the CPU provider can run ``node`` (and every node of its subgraphs)."""
    version = graph.opset(node.domain)
    impl = opset.get(node.op_type, node.domain, version)
    if impl is None:
        known = opset.versions_of(node.op_type, node.domain)
        dom = node.domain or "ai.onnx"
        if known:
            return (f"no CPU implementation of {dom}::{node.op_type} for opset {version} "
                    f"(implemented since-versions: {known})")
        return f"no CPU implementation of {dom}::{node.op_type}"
    for sub in node.subgraphs():
        for g, inner in sub.walk():
            why = unsupported_reason(g, inner)
            if why is not None:
                return f"subgraph node {inner.display}: {why}"
    return None
