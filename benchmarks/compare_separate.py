"""ferry vs onnxruntime, each runtime in its own process (the README's table).

    python benchmarks/compare_separate.py light_resnet50 mobilenet_v2 bert_base ...

Names starting with light_ are the onnx package's models; others come from the zoo cache
(benchmarks/zoo.py). For 1 and 2 threads, each runtime runs in a fresh process (at least 4 s
or 10 runs after 3 warm-up runs; median), twice, alternating; the better of the two medians
is kept. Separate processes matter at 2 threads: in one process the other runtime's worker
threads keep spinning after its run and take the cores (what `ferry bench`'s interleaved
rounds suffer from). Prints "T t: ferry ms / onnxruntime ms = ratio"."""
import json
import os
import subprocess
import sys

Z = os.environ.get("FERRY_ZOO_CACHE", os.path.expanduser("~/.cache/ferry/zoo"))
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CODE = r'''
import sys, time, numpy as np, os, json
sys.path.insert(0, os.environ["FERRY_ROOT"])
which, path, threads, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
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
ts = []
t_end = time.perf_counter() + 4
while len(ts) < n or time.perf_counter() < t_end:
    t0 = time.perf_counter(); s.run(None, f); ts.append(time.perf_counter() - t0)
    if len(ts) > 400: break
print(json.dumps(float(np.median(ts))))
'''
def one(which, path, t):
    env = dict(os.environ, FERRY_ROOT=ROOT, PYTHONPATH=os.pathsep.join([ROOT] + sys.path))
    out = subprocess.run([sys.executable, "-c", CODE, which, path, str(t), "10"], check=True,
                         capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])
import onnx


def light(n):
    return os.path.join(os.path.dirname(onnx.__file__), "backend/test/data/light", n + ".onnx")


models = sys.argv[1:]
for m in models:
    path = light(m) if m.startswith("light_") else f"{Z}/{m}.onnx"
    row = [m]
    for t in (1, 2):
        fs, os_ = [], []
        for _ in range(2):
            fs.append(one("ferry", path, t)); os_.append(one("ort", path, t))
        fm, om = min(fs), min(os_)
        row.append(f"{t}t: {fm*1e3:.1f} / {om*1e3:.1f} = {fm/om:.2f}")
    print(" | ".join(row), flush=True)
