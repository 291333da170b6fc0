"""Graph optimizations, one pass per file, applied by level like onnxruntime's.

Levels: ORT_DISABLE_ALL runs nothing; ORT_ENABLE_BASIC and above run the provider-independent
passes listed in BASIC_PASSES. Every pass takes and returns an ``ir.Graph`` and never changes
what the graph computes.
"""

from __future__ import annotations

from runtime import ir
from runtime.optimizer.dead_code import remove_dead_code
from runtime.optimizer.identity import remove_identities
from runtime.options import GraphOptimizationLevel

BASIC_PASSES = [remove_identities, remove_dead_code]


def optimize(graph: ir.Graph, level: GraphOptimizationLevel) -> tuple[ir.Graph, list[str]]:
    """Run the passes of ``level``; returns the graph and the names of passes that changed it."""
    applied: list[str] = []
    if level >= GraphOptimizationLevel.ORT_ENABLE_BASIC:
        for p in BASIC_PASSES:
            if p(graph):
                applied.append(p.__name__)
    return graph, applied
