"""Graph optimizations, one pass per file, applied by level like onnxruntime's.

ORT_DISABLE_ALL runs nothing. ORT_ENABLE_BASIC runs the provider-independent passes (their
results are standard ONNX any provider can run) until nothing changes. ORT_ENABLE_EXTENDED and
ORT_ENABLE_ALL add the fusions into the CPU provider's kernels (ops of the ``ferry`` domain,
documented in runtime/optimizer/README.md); they run only when the CPU provider comes first
in the session's provider list, since only it runs those ops and a fusion must not pull nodes
away from a provider the user put ahead of it.

Every pass takes an ``ir.Graph``, edits it in place, returns whether it changed anything, and
never changes what the graph computes (up to float rounding of folded arithmetic).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from runtime import ir
from runtime.errors import FerryError, InvalidGraph
from runtime.optimizer.activation_patterns import (fuse_gelu, fuse_gelu_tanh, fuse_hard_swish,
                                                   fuse_layer_norm, fuse_silu)
from runtime.optimizer.attention_fusion import fuse_attention
from runtime.optimizer.cleanup import merge_reshape_chains, remove_noop_casts_and_reshapes
from runtime.optimizer.constant_folding import fold_constants
from runtime.optimizer.conv_bn_folding import fold_batchnorm_mul_add, fold_conv_batchnorm
from runtime.optimizer.cse import eliminate_common_subexpressions
from runtime.optimizer.dead_code import remove_dead_code
from runtime.optimizer.identity import remove_identities
from runtime.optimizer.kernel_fusion import (fold_transposes_into_matmul, fuse_batchnorm_activation,
                                             fuse_conv, fuse_gemm,
                                             fuse_reshape_gemm_reshape)
from runtime.optimizer.nchwc_layout import convert_to_nchwc
from runtime.optimizer.pad_fusion import fuse_pad_into_conv
from runtime.optimizer.shape_folding import collapse_shape_chains, fold_static_shapes
from runtime.options import GraphOptimizationLevel

log = logging.getLogger("ferry")

BASIC_PASSES = [remove_identities, fold_constants, fold_static_shapes, collapse_shape_chains,
                remove_noop_casts_and_reshapes, merge_reshape_chains,
                eliminate_common_subexpressions, fold_conv_batchnorm, fold_batchnorm_mul_add,
                fuse_pad_into_conv, remove_dead_code]

# Order matters: patterns become single ops first, so the kernel fusions can absorb them.
# Shape-chain collapse and no-op Reshape removal run again after the attention fusion: its
# head-merge Reshape usually becomes a no-op.
EXTENDED_PASSES = [fuse_silu, fuse_hard_swish, fuse_gelu, fuse_gelu_tanh, fuse_layer_norm,
                   fuse_conv, fuse_batchnorm_activation, fuse_gemm, fuse_reshape_gemm_reshape,
                   fuse_attention,
                   fold_transposes_into_matmul, collapse_shape_chains,
                   remove_noop_casts_and_reshapes, remove_dead_code]

# Layout (all): once, after the fusions it builds on; dead code removal drops the constants
# it replaced.
LAYOUT_PASSES = [convert_to_nchwc, remove_dead_code]

_MAX_ROUNDS = 8


@dataclass
class OptimizationReport:
    """What the optimizer did: node counts and how often each pass changed the graph."""

    nodes_before: int = 0
    nodes_after: int = 0
    applied: dict[str, int] = field(default_factory=dict)

    def names(self) -> list[str]:
        return list(self.applied)


def _run(passes, graph: ir.Graph, report: OptimizationReport) -> None:
    for _ in range(_MAX_ROUNDS):
        changed = False
        for p in passes:
            try:
                fired = p(graph)
            except FerryError:
                raise
            except Exception as exc:  # a pass must never turn a model into a crash
                raise InvalidGraph(f"graph optimization '{p.__name__}' failed on this model: "
                                   f"{type(exc).__name__}: {exc} (set graph_optimization_level "
                                   "to ORT_DISABLE_ALL to run it unoptimized)") from exc
            if fired:
                report.applied[p.__name__] = report.applied.get(p.__name__, 0) + 1
                changed = True
        if not changed:
            return


def optimize(graph: ir.Graph, level: GraphOptimizationLevel, *, cpu_fusions: bool = True
             ) -> tuple[ir.Graph, OptimizationReport]:
    """Run the passes of ``level`` on ``graph`` (in place). ``cpu_fusions``: whether the
    extended fusions into ferry's CPU kernels may run (the CPU provider comes first)."""
    report = OptimizationReport(nodes_before=len(graph.nodes))
    level = GraphOptimizationLevel(level)
    if level >= GraphOptimizationLevel.ORT_ENABLE_BASIC:
        _run(BASIC_PASSES, graph, report)
    if level >= GraphOptimizationLevel.ORT_ENABLE_EXTENDED and cpu_fusions:
        _run(EXTENDED_PASSES, graph, report)
        if level >= GraphOptimizationLevel.ORT_ENABLE_ALL:
            _run(LAYOUT_PASSES, graph, report)
        if any(n.domain == "ferry" for n in graph.nodes):
            graph.opsets.setdefault("ferry", 1)
    report.nodes_after = len(graph.nodes)
    log.debug("optimizer: %d -> %d nodes; passes %s", report.nodes_before, report.nodes_after,
              report.applied)
    return graph, report
