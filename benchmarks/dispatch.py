"""Per-node dispatch cost: a chain of N tiny Adds, ferry vs onnxruntime, side by side.

    python benchmarks/dispatch.py --nodes 200 --runs 2000

Reports the median run time divided by the node count (microseconds per node) for both.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np
from onnx import TensorProto, helper

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def chain_model(n: int):
    nodes = [helper.make_node("Add", ["x" if i == 0 else f"t{i - 1}", "one"],
                              [f"t{i}" if i < n - 1 else "y"]) for i in range(n)]
    graph = helper.make_graph(
        nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
        [helper.make_tensor("one", TensorProto.FLOAT, [4], [1.0] * 4)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def main(argv=None) -> int:
    import onnxruntime as ort

    from runtime import GraphOptimizationLevel, InferenceSession, SessionOptions

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--nodes", type=int, default=200)
    p.add_argument("--runs", type=int, default=2000)
    args = p.parse_args(argv)
    data = chain_model(args.nodes).SerializeToString()
    so = SessionOptions()
    so.intra_op_num_threads = 1
    so.graph_optimization_level = GraphOptimizationLevel.ORT_DISABLE_ALL
    ours = InferenceSession(data, so)
    oso = ort.SessionOptions()
    oso.intra_op_num_threads = 1
    oso.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    theirs = ort.InferenceSession(data, oso, providers=["CPUExecutionProvider"])
    feeds = {"x": np.zeros(4, np.float32)}
    assert np.array_equal(ours.run(None, feeds)[0], theirs.run(None, feeds)[0])
    a, b = [], []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        ours.run(None, feeds)
        a.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        theirs.run(None, feeds)
        b.append(time.perf_counter() - t0)
    per_a = statistics.median(a) / args.nodes * 1e6
    per_b = statistics.median(b) / args.nodes * 1e6
    print(f"{args.nodes} Adds: ferry {per_a:.3f} us/node, onnxruntime {per_b:.3f} us/node, "
          f"ratio {per_a / per_b:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
