"""ferry vs onnxruntime, each runtime in its own process, runs alternating (the README's table).

    python benchmarks/compare_separate.py light_resnet50 mobilenet_v2 bert_base ...
    python benchmarks/compare_separate.py resnet50 --threads 2 --pairs 30

Models are paths or names: light_* are the onnx package's models, other names come from the
zoo cache (benchmarks/zoo.py). For each thread count, one worker process per runtime holds its
session; the driver asks them for a turn at a time (30 ms of untimed runs, then three timed
runs whose median is the turn's time), alternating which goes first, with a pause between
turns, and reports the median of the pairs' ratios (ferry / onnxruntime) with its quartiles,
and each runtime's median time.

Why processes: at 2 threads, in one process the runtime that ran last keeps its worker threads
spinning into the other's run and takes the cores. Why pairs: this machine's speed drifts by
10-30% from one minute to the next, so medians taken minutes apart (one runtime, then the
other) compare phases, not runtimes; a pair is taken within a second.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare_ort import model_path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = r'''
import sys, time, numpy as np, os, json
sys.path.insert(0, os.environ["FERRY_ROOT"])
which, path, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
rng = np.random.default_rng(0)
if which == "ferry":
    from runtime import InferenceSession, SessionOptions
    so = SessionOptions(); so.intra_op_num_threads = threads
    s = InferenceSession(path, so, providers=["cpu"])
else:
    import onnxruntime as ort
    so = ort.SessionOptions(); so.intra_op_num_threads = threads; so.inter_op_num_threads = 1
    s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
sys.path.insert(0, os.path.join(os.environ["FERRY_ROOT"], "benchmarks"))
from compare_ort import feeds_for
f = feeds_for(s, rng)
for _ in range(3): s.run(None, f)
print("ready", flush=True)
for line in sys.stdin:
    if not line.startswith("run"): break
    warm_s, timed = float(line.split()[1]), int(line.split()[2])
    t0 = time.perf_counter(); s.run(None, f)
    while time.perf_counter() - t0 < warm_s: s.run(None, f)
    ts = []
    for _ in range(timed):
        t0 = time.perf_counter(); s.run(None, f); ts.append(time.perf_counter() - t0)
    print(json.dumps(float(np.median(ts))), flush=True)
'''
# Between two turns: long enough for the previous runtime's idle workers to stop spinning
# (ferry's spin 20 ms, onnxruntime's less). A turn first runs the model for WARM_S (at least
# once), untimed: those runs take the cost of workers that have slept, of caches the other
# runtime emptied, and of this VM's slow first milliseconds after an idle pause (a 256^3 GEMM
# takes 3.5x its steady time right after 0.3 s idle, and ~5 ms to get back to it, in either
# library). Then TIMED_PER_TURN runs are timed and their median is the turn's time, so that a
# pair compares both runtimes' steady-state latency, short models included.
PAUSE_S = 0.05
WARM_S = 0.03
TIMED_PER_TURN = 3


class Worker:
    def __init__(self, which: str, path: str, threads: int):
        env = dict(os.environ, FERRY_ROOT=ROOT, PYTHONPATH=os.pathsep.join([ROOT] + sys.path))
        self.p = subprocess.Popen([sys.executable, "-c", WORKER, which, path, str(threads)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                  env=env)
        line = self.p.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"{which} worker failed to start on {path}")

    def run(self) -> float:
        self.p.stdin.write(f"run {WARM_S} {TIMED_PER_TURN}\n")
        self.p.stdin.flush()
        return json.loads(self.p.stdout.readline())

    def close(self) -> None:
        self.p.stdin.close()
        self.p.wait()


def compare(path: str, threads: int, pairs: int, min_s: float) -> tuple[float, ...]:
    """(ratio median, q25, q75, ferry median s, onnxruntime median s)."""
    ferry, ort = Worker("ferry", path, threads), Worker("ort", path, threads)
    try:
        tf, to = [], []
        t_end = time.perf_counter() + min_s
        i = 0
        while i < pairs or time.perf_counter() < t_end:
            first, second = (ferry, ort) if i % 2 == 0 else (ort, ferry)
            a = first.run()
            time.sleep(PAUSE_S)
            b = second.run()
            time.sleep(PAUSE_S)
            f, o = (a, b) if first is ferry else (b, a)
            tf.append(f)
            to.append(o)
            i += 1
            if i >= 10 * pairs:
                break
    finally:
        ferry.close()
        ort.close()
    r = np.array(tf) / np.array(to)
    return (float(np.median(r)), float(np.percentile(r, 25)), float(np.percentile(r, 75)),
            float(np.median(tf)), float(np.median(to)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    ap.add_argument("--pairs", type=int, default=20, help="at least this many pairs")
    ap.add_argument("--seconds", type=float, default=8.0, help="and at least this long")
    args = ap.parse_args(argv)
    print("| model | threads | ferry ms | onnxruntime ms | ratio ferry/ORT (quartiles) |")
    print("| --- | --- | --- | --- | --- |")
    for m in args.models:
        path = model_path(m)
        for t in (int(x) for x in args.threads.split(",")):
            r, q1, q3, tf, to = compare(path, t, args.pairs, args.seconds)
            print(f"| {m} | {t} | {tf * 1e3:.2f} | {to * 1e3:.2f} | {r:.2f} ({q1:.2f}-{q3:.2f}) |",
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
