"""ORT_SEQUENTIAL vs ORT_PARALLEL latency, ferry and onnxruntime side by side.

    python benchmarks/parallel.py [--intra 1] [--inter 2] [--seconds 3] [--min-runs 20]
                                  [--rounds 2] [models ...]

Models: the onnx package's light_* models and ``branchy`` (a crafted model: 4 independent
Conv chains joined by a Concat). Every (runtime, mode) pair runs in a fresh process (3 warm-up
runs, then at least --min-runs runs and --seconds seconds; median), --rounds times alternating;
the best median is kept. Separate processes matter on small machines: one runtime's spinning
workers would otherwise take the cores from the other. Prints one row per model:
median ms for sequential and parallel, and the speedup, for each runtime.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_MODELS = ["light_inception_v2", "light_densenet121", "light_squeezenet", "branchy"]

CODE = r'''
import json, os, sys, time
import numpy as np
sys.path.insert(0, os.environ["FERRY_ROOT"])
which, path, mode, intra, inter, n, secs = sys.argv[1:8]
intra, inter, n, secs = int(intra), int(inter), int(n), float(secs)
if which == "ferry":
    from runtime import InferenceSession, SessionOptions
    from runtime.options import ExecutionMode
    so = SessionOptions()
    so.intra_op_num_threads = intra
    so.inter_op_num_threads = inter if mode == "parallel" else 1
    so.execution_mode = (ExecutionMode.ORT_PARALLEL if mode == "parallel"
                         else ExecutionMode.ORT_SEQUENTIAL)
    s = InferenceSession(path, so, providers=["cpu"])
else:
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = intra
    so.inter_op_num_threads = inter if mode == "parallel" else 1
    so.execution_mode = (ort.ExecutionMode.ORT_PARALLEL if mode == "parallel"
                         else ort.ExecutionMode.ORT_SEQUENTIAL)
    s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
rng = np.random.default_rng(0)
feeds = {i.name: rng.standard_normal([d if isinstance(d, int) else 1 for d in i.shape])
         .astype(np.float32) for i in s.get_inputs()}
for _ in range(3):
    s.run(None, feeds)
ts = []
end = time.perf_counter() + secs
while len(ts) < n or time.perf_counter() < end:
    t0 = time.perf_counter()
    s.run(None, feeds)
    ts.append(time.perf_counter() - t0)
    if len(ts) >= 2000:
        break
print(json.dumps(float(np.median(ts))))
'''


def branchy_model(path: str, branches: int = 4, depth: int = 3) -> None:
    """x [1, 32, 28, 28] -> `branches` chains of `depth` 3x3 Conv+Relu -> Concat."""
    rng = np.random.default_rng(0)
    c = 32
    nodes, inits, ends = [], [], []
    for b in range(branches):
        prev = "x"
        for d in range(depth):
            w = (rng.standard_normal((c, c, 3, 3)) / np.sqrt(9 * c)).astype(np.float32)
            inits.append(numpy_helper.from_array(w, f"w{b}_{d}"))
            nodes.append(helper.make_node("Conv", [prev, f"w{b}_{d}"], [f"c{b}_{d}"],
                                          pads=[1, 1, 1, 1]))
            nodes.append(helper.make_node("Relu", [f"c{b}_{d}"], [f"r{b}_{d}"]))
            prev = f"r{b}_{d}"
        ends.append(prev)
    nodes.append(helper.make_node("Concat", ends, ["y"], axis=1))
    graph = helper.make_graph(
        nodes, "branchy", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, 28, 28])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, c * branches, 28, 28])],
        inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def model_path(name: str, tmp: str) -> str:
    if name == "branchy":
        path = os.path.join(tmp, "branchy.onnx")
        if not os.path.exists(path):
            branchy_model(path)
        return path
    return os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light",
                        name + ".onnx")


def measure(which, path, mode, args) -> float:
    env = dict(os.environ, FERRY_ROOT=ROOT,
               PYTHONPATH=os.pathsep.join([ROOT] + [p for p in sys.path if p]))
    out = subprocess.run(
        [sys.executable, "-c", CODE, which, path, mode, str(args.intra), str(args.inter),
         str(args.min_runs), str(args.seconds)],
        check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*", default=DEFAULT_MODELS)
    ap.add_argument("--intra", type=int, default=1)
    ap.add_argument("--inter", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--min-runs", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    print(f"intra_op {args.intra}, inter_op {args.inter} (parallel); median ms, best of "
          f"{args.rounds} rounds; speedup = sequential / parallel")
    print(f"{'model':22s} | {'ferry seq':>9s} {'ferry par':>9s} {'x':>5s} | "
          f"{'ort seq':>9s} {'ort par':>9s} {'x':>5s}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            path = model_path(name, tmp)
            best = {}
            for _ in range(args.rounds):
                for which in ("ferry", "ort"):
                    for mode in ("sequential", "parallel"):
                        t = measure(which, path, mode, args)
                        best[which, mode] = min(best.get((which, mode), t), t)
            fs, fp = best["ferry", "sequential"], best["ferry", "parallel"]
            os_, op = best["ort", "sequential"], best["ort", "parallel"]
            print(f"{name:22s} | {fs * 1e3:9.2f} {fp * 1e3:9.2f} {fs / fp:5.2f} | "
                  f"{os_ * 1e3:9.2f} {op * 1e3:9.2f} {os_ / op:5.2f}", flush=True)


if __name__ == "__main__":
    main()
