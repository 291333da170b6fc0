"""Latency of ferry vs onnxruntime, measured side by side in one process.

    python benchmarks/compare_ort.py                      # the onnx package's light models
    python benchmarks/compare_ort.py model.onnx --threads 1 --runs 50
    python benchmarks/compare_ort.py mobilenet_v2 bert_base --threads 1   # zoo / light names

Both runtimes get the same inputs and the same thread count; runs alternate between them so
that machine noise hits both alike; the table reports medians and the ratio ferry / ORT
(below 1.0: ferry is faster), the median of the back-to-back pairs' ratios. Use it at one
thread: at two, the runtime that ran last leaves its worker threads spinning into the other's
run (compare_separate.py runs each in its own process for that). Nothing here is a test:
timings never gate CI.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

LIGHT = ["light_squeezenet", "light_resnet50", "light_densenet121", "light_inception_v2",
         "light_inception_v1", "light_shufflenet", "light_bvlc_alexnet", "light_zfnet512",
         "light_vgg19"]


def light_path(name: str) -> str:
    import onnx

    return os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light",
                        name + ".onnx")


def model_path(arg: str) -> str:
    """A path, a light_* name, or a zoo name (benchmarks/zoo.py's cache)."""
    if os.path.exists(arg) or arg.endswith(".onnx"):
        return arg
    if arg.startswith("light_"):
        return light_path(arg)
    zoo = os.environ.get("FERRY_ZOO_CACHE", os.path.expanduser("~/.cache/ferry/zoo"))
    return os.path.join(zoo, arg + ".onnx")


def feeds_for(sess, rng) -> dict:
    """Random inputs; a symbolic batch is 1 and any other symbolic dim 128 (a sequence length),
    as in compare_separate.py. Integer inputs: ids, an all-ones attention mask, zero type ids."""
    feeds = {}
    for arg in sess.get_inputs():
        shape = [d if isinstance(d, int) else (1 if i == 0 else 128)
                 for i, d in enumerate(arg.shape)]
        kind = arg.type
        if "float" in kind:
            feeds[arg.name] = rng.standard_normal(shape).astype(np.float32)
        elif "int64" in kind:
            if "mask" in arg.name:
                feeds[arg.name] = np.ones(shape, np.int64)
            elif "type" in arg.name:
                feeds[arg.name] = np.zeros(shape, np.int64)
            else:
                feeds[arg.name] = rng.integers(0, 1000, shape).astype(np.int64)
        else:
            raise SystemExit(f"unsupported input type {kind} for {arg.name}")
    return feeds


def measure(path: str, threads: int, runs: int, warmup: int) -> dict:
    import onnxruntime as ort

    from runtime import InferenceSession, SessionOptions

    so = SessionOptions()
    so.intra_op_num_threads = threads
    t0 = time.perf_counter()
    ours = InferenceSession(path, so, providers=["cpu"])
    create_ours = time.perf_counter() - t0
    oso = ort.SessionOptions()
    oso.intra_op_num_threads = threads
    oso.inter_op_num_threads = 1
    t0 = time.perf_counter()
    theirs = ort.InferenceSession(path, oso, providers=["CPUExecutionProvider"])
    create_theirs = time.perf_counter() - t0
    feeds = feeds_for(theirs, np.random.default_rng(0))
    for _ in range(warmup):
        ours.run(None, feeds)
        theirs.run(None, feeds)
    a, b = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        ours.run(None, feeds)
        a.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        theirs.run(None, feeds)
        b.append(time.perf_counter() - t0)
    ma, mb = statistics.median(a), statistics.median(b)
    # The ratio is the median of each back-to-back pair's ratio: on a shared machine whose speed
    # drifts (here: whole phases 1.3x apart), a pair sees one phase; medians of each side's
    # times can come from different ones.
    pairs = sorted(x / y for x, y in zip(a, b))
    q = statistics.quantiles(pairs, n=4) if len(pairs) > 1 else [pairs[0]] * 3
    return {"model": os.path.basename(path), "threads": threads, "ferry_ms": ma * 1e3,
            "ort_ms": mb * 1e3, "ratio": q[1], "ratio_q25": q[0], "ratio_q75": q[2],
            "create_ferry_ms": create_ours * 1e3, "create_ort_ms": create_theirs * 1e3}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("models", nargs="*", help="model paths (default: the light models)")
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    args = p.parse_args(argv)
    paths = [model_path(m) for m in args.models] or [light_path(n) for n in LIGHT]
    print("| model | threads | ferry ms | onnxruntime ms | ratio ferry/ORT (quartiles) |")
    print("| --- | --- | --- | --- | --- |")
    for path in paths:
        for t in (int(x) for x in args.threads.split(",")):
            r = measure(path, t, args.runs, args.warmup)
            print(f"| {r['model']} | {t} | {r['ferry_ms']:.2f} | {r['ort_ms']:.2f} | "
                  f"{r['ratio']:.2f} ({r['ratio_q25']:.2f}-{r['ratio_q75']:.2f}) |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
