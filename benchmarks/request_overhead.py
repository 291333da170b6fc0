"""Per-request cost around the kernels: one MatMul + bias (M x K x N, 128 x 768 x 768 by
default), ferry's direct path for repeated requests against its full path and onnxruntime.

    python benchmarks/request_overhead.py [--m 128 --k 768 --n 768] [--blocks 40]

One process, 1 thread. The three ways take turns in blocks (20 ms of untimed runs, then five
timed, the median kept); each block's time is compared with onnxruntime's block next to it.
"ferry (full path)" passes a RunOptions, which takes the full path (feed checks, executor,
partition lookups) on every request; "ferry" repeats a signature it has seen and goes straight
to the plan. The Python between a request and its plan costs little when warm (~40 us) but
more right after the kernels have emptied the caches, which is the case that matters.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gemm import warm_median_time


def model(m: int, k: int, n: int):
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array((rng.standard_normal((k, n)) * 0.02).astype(np.float32), "w")
    b = numpy_helper.from_array((rng.standard_normal(n) * 0.02).astype(np.float32), "b")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["t"]), helper.make_node("Add", ["t", "b"], ["y"])],
        "linear", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, m, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, m, n])], [w, b])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    return proto


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--m", type=int, default=128)
    ap.add_argument("--k", type=int, default=768)
    ap.add_argument("--n", type=int, default=768)
    ap.add_argument("--blocks", type=int, default=40)
    args = ap.parse_args(argv)
    import onnxruntime as ort

    from runtime import InferenceSession, RunOptions, SessionOptions

    data = model(args.m, args.k, args.n).SerializeToString()
    so = SessionOptions()
    so.intra_op_num_threads = 1
    sess = InferenceSession(data, so, providers=["cpu"])
    oo = ort.SessionOptions()
    oo.intra_op_num_threads = 1
    ref = ort.InferenceSession(data, oo, providers=["CPUExecutionProvider"])
    feeds = {"x": np.random.default_rng(1).standard_normal((1, args.m, args.k)).astype(np.float32)}
    np.testing.assert_allclose(sess.run(None, feeds)[0], ref.run(None, feeds)[0],
                               rtol=1e-4, atol=1e-4)
    ways = {"ferry": lambda: sess.run(None, feeds),
            "ferry (full path)": lambda: sess.run(None, feeds, RunOptions()),
            "onnxruntime": lambda: ref.run(None, feeds)}
    times: dict[str, list[float]] = {w: [] for w in ways}
    names = list(ways)
    for i in range(args.blocks):
        for w in names[i % 3:] + names[:i % 3]:
            times[w].append(warm_median_time(ways[w], 5, warm_s=0.02))
    base = np.array(times["onnxruntime"])
    print(f"{args.m}x{args.k}x{args.n} MatMul + bias, 1 thread, {args.blocks} blocks")
    print(f"{'':>20} {'median us':>10} {'/ onnxruntime (quartiles)':>28}")
    for w in names:
        t = np.array(times[w])
        r = t / base
        print(f"{w:>20} {np.median(t) * 1e6:10.0f} {np.median(r):10.3f} "
              f"({np.percentile(r, 25):.3f}-{np.percentile(r, 75):.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
