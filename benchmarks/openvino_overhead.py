"""What ferry's OpenVINO provider costs on top of OpenVINO itself, measured side by side.

    python benchmarks/openvino_overhead.py                       # tiny MLP + a few light models
    python benchmarks/openvino_overhead.py model.onnx --threads 1 --runs 200

For each model, three contestants run the same inputs with the same settings (CPU, f32
precision hint, one stream, the same thread count):

- ``ferry``: ``InferenceSession(..., providers=["openvino"])``, ``sess.run``;
- ``ov_lean``: OpenVINO called directly the cheapest way we know (one infer request, inputs
  bound with ``shared_memory=True``, ``infer()``, outputs copied out);
- ``ov_infer``: OpenVINO's usual call, ``request.infer(feeds)`` (returns copies).

Runs alternate between the contestants so machine noise hits all alike; the table shows median
latencies and the ratios ferry / ov_lean and ferry / ov_infer (1.0 = no overhead). Nothing here
is a test: timings never gate CI.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

LIGHT = ["light_squeezenet", "light_shufflenet", "light_resnet50"]


def light_path(name: str) -> str:
    import onnx

    return os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light",
                        name + ".onnx")


def tiny_mlp() -> bytes:
    """A 3-node model on a [1, 64] input: per-call overhead dominates its latency."""
    import onnx
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)
    w = rng.standard_normal((64, 64)).astype(np.float32)
    b = rng.standard_normal(64).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]),
             helper.make_node("Add", ["h", "b"], ["hb"]),
             helper.make_node("Relu", ["hb"], ["y"])]
    graph = helper.make_graph(
        nodes, "tiny_mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])],
        initializer=[onnx.numpy_helper.from_array(w, "w"), onnx.numpy_helper.from_array(b, "b")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]
                             ).SerializeToString()


def feeds_for(sess, rng) -> dict:
    feeds = {}
    for arg in sess.get_inputs():
        shape = [d if isinstance(d, int) else 1 for d in arg.shape]
        if "float" not in arg.type:
            raise SystemExit(f"unsupported input type {arg.type} for {arg.name}")
        feeds[arg.name] = rng.standard_normal(shape).astype(np.float32)
    return feeds


def measure(name: str, model, threads: int, runs: int, warmup: int) -> dict:
    import openvino as ov

    from runtime import InferenceSession

    opts = {"device_type": "CPU", "precision": "FP32", "num_streams": 1,
            "num_of_threads": threads}
    t0 = time.perf_counter()
    sess = InferenceSession(model, providers=[("openvino", opts)])
    create_ferry = time.perf_counter() - t0
    details = [p["details"] for p in sess.explain()["partitions"]]
    if any(p["provider"] != "openvino" for p in sess.explain()["partitions"]):
        print(f"  note: {name} is not entirely on OpenVINO", file=sys.stderr)
    feeds = feeds_for(sess, np.random.default_rng(0))

    core = ov.Core()
    config = {"INFERENCE_PRECISION_HINT": "f32", "NUM_STREAMS": 1,
              "INFERENCE_NUM_THREADS": threads}
    t0 = time.perf_counter()
    ov_model = core.read_model(model) if isinstance(model, str) else core.read_model(model, b"")
    compiled = core.compile_model(ov_model, "CPU", config)
    create_ov = time.perf_counter() - t0
    req = compiled.create_infer_request()
    in_index = {n: next(i for i, p in enumerate(compiled.inputs) if n in p.get_names())
                for n in feeds}
    n_out = len(compiled.outputs)

    def run_ferry():
        return sess.run(None, feeds)

    def run_lean():
        for n, x in feeds.items():
            req.set_input_tensor(in_index[n], ov.Tensor(x, shared_memory=True))
        req.infer()
        return [req.get_output_tensor(i).data.copy() for i in range(n_out)]

    def run_infer():
        return list(req.infer(feeds).values())

    contestants = {"ferry": run_ferry, "ov_lean": run_lean, "ov_infer": run_infer}
    ref = run_lean()
    for got in (run_ferry(), run_infer()):
        for g, r in zip(got, ref):
            np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-5)
    for _ in range(warmup):
        for fn in contestants.values():
            fn()
    times = {k: [] for k in contestants}
    for _ in range(runs):
        for k, fn in contestants.items():
            t = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"model": name, "create_ferry_s": create_ferry, "create_ov_s": create_ov,
            "precision": details[0].get("precision") if details else None, **med}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="*", help="ONNX files (default: tiny MLP + light models)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=10)
    args = ap.parse_args(argv)
    if args.models:
        targets = [(os.path.basename(p), p) for p in args.models]
    else:
        targets = [("tiny_mlp", tiny_mlp())] + [(n, light_path(n)) for n in LIGHT]
    import openvino as ov

    print(f"OpenVINO {ov.get_version()}, threads={args.threads}, runs={args.runs} "
          "(median latency)")
    header = (f"{'model':<20} {'ferry':>10} {'ov_lean':>10} {'ov_infer':>10} "
              f"{'ferry/lean':>10} {'ferry/infer':>11} {'create f/ov (s)':>16}")
    print(header)
    print("-" * len(header))
    for name, model in targets:
        r = measure(name, model, args.threads, args.runs, args.warmup)
        print(f"{name:<20} {r['ferry'] * 1e3:>8.3f}ms {r['ov_lean'] * 1e3:>8.3f}ms "
              f"{r['ov_infer'] * 1e3:>8.3f}ms {r['ferry'] / r['ov_lean']:>10.3f} "
              f"{r['ferry'] / r['ov_infer']:>11.3f} "
              f"{r['create_ferry_s']:>7.2f}/{r['create_ov_s']:<7.2f}", flush=True)


if __name__ == "__main__":
    main()
