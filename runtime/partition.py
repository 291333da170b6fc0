"""Partitioning: which provider runs which node, as subgraphs that keep the graph acyclic.

1. **Claims.** Providers are asked in the user's order; the first that claims a node keeps it
   (``exclude_ops`` removes ops from a provider's claim). Every provider's reason for not
   taking a node is kept for :meth:`Partitioning.explain`.
2. **Grouping.** Nodes are ordered topologically, preferring at each step a ready node of the
   same provider as the last one placed; maximal runs of one provider in that order are the
   partitions. Any execution order is acyclic by construction, and the preference keeps
   independent branches of one provider together.
3. **Fragments.** A partition smaller than its provider's ``min_subgraph_size`` goes to the next
   provider in the chain that claims its nodes, and grouping runs again.
4. **Compile.** Each partition is compiled by its provider; a failure hands its nodes to the
   next provider that claims them (logged once with the reason), and grouping runs again.
"""

from __future__ import annotations

import collections
import heapq
import logging
from dataclasses import dataclass, field
from typing import Any

from providers.base import CompileContext, CompiledPartition, ExecutionProvider
from runtime import ir
from runtime import errors
from runtime.errors import InvalidGraph

log = logging.getLogger("ferry")


@dataclass
class Partition:
    provider: ExecutionProvider
    nodes: list[ir.Node]
    inputs: list[str]
    outputs: list[str]
    compiled: CompiledPartition | None = None


@dataclass
class NodeAssignment:
    node: ir.Node
    provider: str | None
    reason: str
    refused: dict[str, str] = field(default_factory=dict)  # provider -> why not


@dataclass
class Partitioning:
    partitions: list[Partition]
    assignments: dict[str, NodeAssignment]  # node name -> assignment
    boundary_copies: int = 0

    def explain(self) -> list[dict[str, Any]]:
        return [{"node": a.node.name, "op": a.node.op_type, "domain": a.node.domain,
                 "provider": a.provider, "reason": a.reason, "not_taken_by": dict(a.refused)}
                for a in self.assignments.values()]


def _exclusion(provider: ExecutionProvider, node: ir.Node) -> str | None:
    excluded = provider.options.get("exclude_ops") or []
    tags = {node.op_type, f"{node.domain or 'ai.onnx'}::{node.op_type}"}
    if tags & set(excluded):
        return f"excluded by the provider option exclude_ops={','.join(excluded)}"
    return None


def _schedule(order: list[ir.Node], owner: dict[ir.Node, int], graph: ir.Graph) -> list[ir.Node]:
    """Topological order that keeps nodes of one provider consecutive where it can."""
    producers = {}
    for n in order:
        for o in n.outputs:
            if o:
                producers[o] = n
    deps: dict[ir.Node, set[ir.Node]] = {}
    users: dict[ir.Node, list[ir.Node]] = collections.defaultdict(list)
    for n in order:
        ds = {producers[i] for i in ir.node_all_inputs(n) if i in producers}
        deps[n] = ds
        for d in ds:
            users[d].append(n)
    index = {n: i for i, n in enumerate(order)}
    remaining = {n: len(deps[n]) for n in order}
    ready: dict[int, list] = collections.defaultdict(list)  # provider index -> heap
    for n in order:
        if remaining[n] == 0:
            heapq.heappush(ready[owner[n]], (index[n], id(n), n))
    out: list[ir.Node] = []
    current = None
    while len(out) < len(order):
        if current is None or not ready.get(current):
            # switch to the provider whose earliest ready node comes first
            candidates = [(h[0][0], p) for p, h in ready.items() if h]
            if not candidates:
                raise InvalidGraph("the graph has a cycle")
            current = min(candidates)[1]
        _, _, n = heapq.heappop(ready[current])
        out.append(n)
        for u in users[n]:
            remaining[u] -= 1
            if remaining[u] == 0:
                heapq.heappush(ready[owner[u]], (index[u], id(u), u))
    return out


def _boundaries(graph: ir.Graph, groups: list[list[ir.Node]]):
    """Inputs and outputs of each group of nodes."""
    graph_outputs = set(graph.output_names)
    consumers_of: dict[str, set[int]] = collections.defaultdict(set)
    for gi, nodes in enumerate(groups):
        for n in nodes:
            for i in ir.node_all_inputs(n):
                consumers_of[i].add(gi)
    result = []
    for gi, nodes in enumerate(groups):
        produced = {o for n in nodes for o in n.outputs if o}
        inputs: list[str] = []
        for n in nodes:
            for i in ir.node_all_inputs(n):
                if i not in produced and i not in inputs:
                    inputs.append(i)
        outputs = [o for n in nodes for o in n.outputs
                   if o and (o in graph_outputs or consumers_of[o] - {gi})]
        result.append((inputs, outputs))
    return result


def _subgraph(graph: ir.Graph, nodes: list[ir.Node], inputs: list[str], outputs: list[str],
              name: str) -> ir.Graph:
    """An ir.Graph holding ``nodes``, with constant inputs turned into initializers."""
    inits = {i: graph.initializers[i] for i in inputs if i in graph.initializers}

    def info(n: str) -> ir.ValueInfo:
        vi = graph.lookup_info(n)
        return ir.ValueInfo(n, vi.elem_type, vi.shape, vi.kind, vi.type_proto) if vi else \
            ir.ValueInfo(n)

    return ir.Graph(name=name, nodes=list(nodes),
                    inputs=[info(i) for i in inputs if i not in inits or i in graph.input_names],
                    outputs=[info(o) for o in outputs], initializers=inits,
                    value_info=graph.value_info, opsets=graph.opsets, parent=graph.parent)


def partition_graph(graph: ir.Graph, providers: list[ExecutionProvider],
                    context: CompileContext) -> Partitioning:
    """Assign nodes to providers and compile partitions (see the module docstring)."""
    order = ir.topological_sort(graph)
    names = [p.name for p in providers]
    # claims[i] = nodes provider i is willing to run; refusals[node][provider] = reason
    claims: list[set[ir.Node]] = []
    refusals: dict[ir.Node, dict[str, str]] = collections.defaultdict(dict)
    for p in providers:
        cap = p.capability(graph, order)
        claimed = set()
        for n in cap.claimed:
            why = _exclusion(p, n)
            if why:
                refusals[n][p.name] = why
            else:
                claimed.add(n)
        for n, why in cap.reasons.items():
            refusals[n][p.name] = why
        for n in order:
            if n not in claimed and p.name not in refusals[n]:
                refusals[n][p.name] = "not claimed"
        claims.append(claimed)

    # owner[n] = index of the provider running n; -1 = nobody can
    demoted: dict[ir.Node, int] = {}  # node -> first provider index still allowed

    def assign() -> dict[ir.Node, int]:
        owner = {}
        for n in order:
            start = demoted.get(n, 0)
            owner[n] = next((i for i in range(start, len(providers)) if n in claims[i]), -1)
        return owner

    compiled_cache: dict[tuple[int, frozenset], CompiledPartition] = {}
    for _attempt in range(4 * len(providers) + 4):
        owner = assign()
        orphans = [n for n in order if owner[n] < 0]
        if orphans:
            raise _unassigned_error(graph, orphans, refusals, names)
        sched = _schedule(order, owner, graph)
        groups: list[list[ir.Node]] = []
        for n in sched:
            if groups and owner[groups[-1][0]] == owner[n]:
                groups[-1].append(n)
            else:
                groups.append([n])
        # Fragments below min_subgraph_size go down the chain.
        changed = False
        for nodes in groups:
            pi = owner[nodes[0]]
            if len(nodes) < int(providers[pi].options.get("min_subgraph_size", 1) or 1):
                for n in nodes:
                    if any(n in claims[j] for j in range(pi + 1, len(providers))):
                        demoted[n] = pi + 1
                        refusals[n][providers[pi].name] = (
                            f"partition of {len(nodes)} node(s) is below min_subgraph_size="
                            f"{providers[pi].options['min_subgraph_size']}")
                        changed = True
        if changed:
            continue
        bounds = _boundaries(graph, groups)
        partitions = []
        failed = False
        for gi, (nodes, (ins, outs)) in enumerate(zip(groups, bounds)):
            pi = owner[nodes[0]]
            prov = providers[pi]
            key = (pi, frozenset(id(n) for n in nodes))
            comp = compiled_cache.get(key)
            if comp is None:
                sub = _subgraph(graph, nodes, ins, outs, f"{graph.name}_part{gi}_{prov.name}")
                try:
                    comp = prov.compile(sub, context)
                except Exception as exc:
                    nxt = [j for j in range(pi + 1, len(providers))
                           if any(n in claims[j] for n in nodes)]
                    if not nxt:
                        raise
                    log.warning("provider '%s' failed to compile a partition of %d node(s) "
                                "(%s); handing it to '%s'", prov.name, len(nodes), exc,
                                providers[nxt[0]].name)
                    for n in nodes:
                        demoted[n] = pi + 1
                        refusals[n][prov.name] = f"compile failed: {exc}"
                    failed = True
                    break
                compiled_cache[key] = comp
            partitions.append(Partition(prov, nodes, ins, outs, comp))
        if failed:
            continue
        assignments = {}
        for n in order:
            pi = owner[n]
            refused = {p: why for p, why in refusals[n].items() if p != providers[pi].name}
            reason = "claimed" if pi == 0 else (
                f"fallback: {'; '.join(f'{p}: {w}' for p, w in refused.items())}")
            assignments[n.name] = NodeAssignment(n, providers[pi].name, reason, refused)
        copies = 0
        device_of = {}
        for part in partitions:
            for o in part.outputs:
                device_of[o] = part.provider.device
        for part in partitions:
            for i in part.inputs:
                if i in device_of and device_of[i] != part.provider.device:
                    copies += 1
        return Partitioning(partitions, assignments, copies)
    raise errors.NotImplemented("partitioning did not settle (providers keep failing to compile)")


def _unassigned_error(graph: ir.Graph, orphans: list[ir.Node],
                      refusals: dict, names: list[str]) -> errors.NotImplemented:
    lines = []
    for n in orphans[:10]:
        types = []
        for i in n.inputs:
            vi = graph.lookup_info(i) if i else None
            if not i:
                types.append("-")
            elif i in graph.initializers:
                arr = graph.initializers[i]
                types.append(f"{i}: tensor({arr.dtype})")
            else:
                types.append(f"{i}: {vi.type_string if vi else '?'}")
        tried = "; ".join(f"{p}: {refusals[n].get(p, 'not asked')}" for p in names)
        lines.append(f"node '{n.name}' op {n.domain or 'ai.onnx'}::{n.op_type} "
                     f"(opset {graph.opset(n.domain)}), inputs [{', '.join(types)}] — "
                     f"tried {tried}")
    more = f" (and {len(orphans) - 10} more)" if len(orphans) > 10 else ""
    return errors.NotImplemented(f"{len(orphans)} node(s) cannot run on any provider in the chain "
                          f"[{', '.join(names)}]{more}:\n  " + "\n  ".join(lines))
