"""What the graph optimizer buys: latency at ORT_ENABLE_ALL vs ORT_DISABLE_ALL, and ferry at
ALL vs onnxruntime at ORT_ENABLE_ALL, with node counts (ferry's after ALL; onnxruntime's after
ORT_ENABLE_EXTENDED, from its saved optimized model).

    python benchmarks/optimizer_levels.py bert_base gpt2_small resnet50 mobilenet_v2 \
        [--threads 1] [--rounds 2]

Models: names starting with light_ are the onnx package's; others come from the zoo cache
(benchmarks/zoo.py; FERRY_ZOO_CACHE). Every (runtime, level) runs in its own fresh process (3
warm-up runs, then at least 4 s or 10 runs; median); the rounds alternate the configurations
and the best median of the rounds is kept, which is what a noisy shared machine allows.
Inputs: batch 1, symbolic sequence dims 128, token ids random, masks ones."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ZOO = os.environ.get("FERRY_ZOO_CACHE", os.path.expanduser("~/.cache/ferry/zoo"))

CHILD = r'''
import json, os, sys, time
import numpy as np
sys.path.insert(0, os.environ["FERRY_ROOT"])
which, path, threads, level = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
if which == "ferry":
    from runtime import InferenceSession, SessionOptions
    so = SessionOptions()
    so.intra_op_num_threads = threads
    so.graph_optimization_level = level
    s = InferenceSession(path, so, providers=["cpu"])
    nodes = s.explain()["nodes_after_optimization"]
else:
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel(level)
    s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    nodes = None
sys.path.insert(0, os.path.join(os.environ["FERRY_ROOT"], "benchmarks"))
from compare_ort import feeds_for
feeds = feeds_for(s, np.random.default_rng(0))
for _ in range(3):
    s.run(None, feeds)
times = []
t_end = time.perf_counter() + 4
while (len(times) < 10 or time.perf_counter() < t_end) and len(times) < 400:
    t0 = time.perf_counter()
    s.run(None, feeds)
    times.append(time.perf_counter() - t0)
print(json.dumps({"median_s": float(np.median(times)), "nodes": nodes}))
'''

CONFIGS = [("ferry", 0), ("ferry", 99), ("ort", 99)]


def model_path(name: str) -> str:
    if name.startswith("light_"):
        import onnx
        return os.path.join(os.path.dirname(onnx.__file__), "backend/test/data/light",
                            name + ".onnx")
    return os.path.join(ZOO, name + ".onnx")


def run_child(which: str, path: str, threads: int, level: int) -> dict:
    env = dict(os.environ, FERRY_ROOT=ROOT,
               PYTHONPATH=os.pathsep.join([ROOT] + [p for p in sys.path if p]))
    out = subprocess.run([sys.executable, "-c", CHILD, which, path, str(threads), str(level)],
                         check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def ort_extended_nodes(path: str) -> int:
    import onnx
    import onnxruntime as ort
    with tempfile.TemporaryDirectory() as tmp:
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        so.optimized_model_filepath = os.path.join(tmp, "opt.onnx")
        ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        return len(onnx.load(so.optimized_model_filepath, load_external_data=False).graph.node)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args(argv)
    import onnx
    print(f"threads {args.threads}; ms are best-of-{args.rounds} medians")
    print("| model | nodes | ferry ALL | ORT EXTENDED | DISABLE_ALL ms | ALL ms | ORT ALL ms "
          "| ALL / DISABLE_ALL | ferry ALL / ORT ALL |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.models:
        path = model_path(name)
        before = len(onnx.load(path, load_external_data=False).graph.node)
        best: dict = {}
        nodes_after = None
        for _ in range(args.rounds):
            for which, level in CONFIGS:
                r = run_child(which, path, args.threads, level)
                key = (which, level)
                best[key] = min(best.get(key, float("inf")), r["median_s"])
                if key == ("ferry", 99):
                    nodes_after = r["nodes"]
        off, on, ref = best[("ferry", 0)], best[("ferry", 99)], best[("ort", 99)]
        print(f"| {name} | {before} | {nodes_after} | {ort_extended_nodes(path)} "
              f"| {off * 1e3:.1f} | {on * 1e3:.1f} | {ref * 1e3:.1f} | {on / off:.2f} "
              f"| {on / ref:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
