"""LSTM and GRU latency: ferry's C++ kernels vs its numpy path vs onnxruntime, 1 thread.

    python benchmarks/rnn.py [--seconds 1.5] [--rounds 2] [--threads 1]

Each case is one node with W, R and B as initializers (packed at session creation). Every
runtime runs in a fresh process of its own (3 warm-up runs, then the median over at least
`--seconds` and 10 runs), `--rounds` times alternating; the best median is kept. "numpy" is
ferry with the node's C++ lowering switched off (the path these ops took before the kernels).
numpy's BLAS is held to the same thread count. Prints ms and the ratios to onnxruntime.
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

# (op, batch, seq, input, hidden)
CASES = [
    ("LSTM", 1, 64, 256, 256),
    ("LSTM", 1, 64, 256, 512),
    ("LSTM", 16, 64, 256, 256),
    ("GRU", 1, 64, 256, 256),
    ("GRU", 1, 64, 256, 512),
    ("GRU", 16, 64, 256, 256),
]

CHILD = r'''
import json, os, sys, time
import numpy as np
sys.path.insert(0, os.environ["FERRY_ROOT"])
which, path, threads, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
if which in ("ferry", "numpy"):
    from runtime import InferenceSession, SessionOptions
    if which == "numpy":
        from providers.cpu import opset
        for op in ("LSTM", "GRU"):
            opset.get(op, "", 14).native = None
    so = SessionOptions(); so.intra_op_num_threads = threads
    s = InferenceSession(path, so, providers=["cpu"])
else:
    import onnxruntime as ort
    so = ort.SessionOptions(); so.intra_op_num_threads = threads; so.inter_op_num_threads = 1
    s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
i = s.get_inputs()[0]
x = np.random.default_rng(0).standard_normal(i.shape).astype(np.float32)
f = {i.name: x}
for _ in range(3):
    s.run(None, f)
ts = []
t_end = time.perf_counter() + seconds
while len(ts) < 10 or time.perf_counter() < t_end:
    t0 = time.perf_counter(); s.run(None, f); ts.append(time.perf_counter() - t0)
print(json.dumps(float(np.median(ts))))
'''


def make_model(op: str, batch: int, seq: int, inp: int, hidden: int) -> onnx.ModelProto:
    g = 4 if op == "LSTM" else 3
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((1, g * hidden, inp)) / np.sqrt(inp)).astype(np.float32)
    r = (rng.standard_normal((1, g * hidden, hidden)) / np.sqrt(hidden)).astype(np.float32)
    b = (rng.standard_normal((1, 2 * g * hidden)) * 0.1).astype(np.float32)
    outs = ["Y", "Y_h"] + (["Y_c"] if op == "LSTM" else [])
    node = helper.make_node(op, ["X", "W", "R", "B"], outs, hidden_size=hidden)
    graph = helper.make_graph(
        [node], op.lower(),
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [seq, batch, inp])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outs],
        initializer=[numpy_helper.from_array(v, n) for v, n in ((w, "W"), (r, "R"), (b, "B"))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    return model


def one(which: str, path: str, threads: int, seconds: float) -> float:
    t = str(threads)
    env = dict(os.environ, FERRY_ROOT=ROOT, OPENBLAS_NUM_THREADS=t, OMP_NUM_THREADS=t,
               MKL_NUM_THREADS=t, PYTHONPATH=os.pathsep.join([ROOT] + sys.path))
    out = subprocess.run([sys.executable, "-c", CHILD, which, path, t, str(seconds)],
                         check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=1.5)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip-numpy", action="store_true", help="leave out the numpy path")
    args = ap.parse_args()
    runtimes = ["ferry", "ort"] + ([] if args.skip_numpy else ["numpy"])
    with tempfile.TemporaryDirectory() as tmp:
        for op, batch, seq, inp, hidden in CASES:
            path = os.path.join(tmp, f"{op}_{batch}_{seq}_{inp}_{hidden}.onnx")
            onnx.save(make_model(op, batch, seq, inp, hidden), path)
            best = {k: float("inf") for k in runtimes}
            for _ in range(args.rounds):
                for k in runtimes:
                    best[k] = min(best[k], one(k, path, args.threads, args.seconds))
            row = (f"{op:4s} batch {batch:2d} seq {seq} in {inp} hidden {hidden:3d} "
                   f"{args.threads}t: ferry {best['ferry'] * 1e3:7.2f} ms, "
                   f"ort {best['ort'] * 1e3:7.2f} ms, ferry/ort {best['ferry'] / best['ort']:.2f}")
            if "numpy" in best:
                row += (f" | numpy path {best['numpy'] * 1e3:7.2f} ms, "
                        f"numpy/ort {best['numpy'] / best['ort']:.2f}")
            print(row, flush=True)


if __name__ == "__main__":
    main()
