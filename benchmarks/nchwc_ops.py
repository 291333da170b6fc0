"""NCHWc kernels against ferry's NCHW ones, one op at a time (1 thread by default).

NchwcDepthwiseConv vs "Conv" with group = C (MobileNetV2 / EfficientNet depthwise shapes),
the NCHW <-> NCHWc reorders (GB/s: bytes read + written), NchwcMaxPool vs "MaxPool".
Each time is the median of --runs runs; each kernel runs in warm blocks (see timed).

    PYTHONPATH=build/wt:. python benchmarks/nchwc_ops.py [--threads 1] [--runs 60]
"""

from __future__ import annotations

import argparse
import time

import ferry_kernels as fk
import numpy as np

F = "float32"


def to_nchwc(x):
    n, c, h, w = x.shape
    return np.ascontiguousarray(x.reshape(n, c // 8, 8, h, w).transpose(0, 1, 3, 4, 2))


def timed(pairs, runs, rounds=3):
    """pairs: [(kernel, ins, outs)]; median seconds of each. Each kernel runs in blocks of
    runs / rounds after a warm-up (its data warm in cache, as after the previous layer), the
    blocks alternating between the kernels so that drift on a shared machine hits both."""
    times = [[] for _ in pairs]
    for _ in range(rounds):
        for j, (k, i, o) in enumerate(pairs):
            for _ in range(2):
                k.run(i, o)
            for _ in range(max(1, runs // rounds)):
                t0 = time.perf_counter()
                k.run(i, o)
                times[j].append(time.perf_counter() - t0)
    return [float(np.median(t)) for t in times]


def depthwise(c, h, k, s, runs, act="relu"):
    rng = np.random.default_rng(0)
    p = k // 2
    x = rng.standard_normal((1, c, h, h)).astype(np.float32)
    wt = rng.standard_normal((c, 1, k, k)).astype(np.float32)
    b = rng.standard_normal(c).astype(np.float32)
    o = (h + 2 * p - k) // s + 1
    attrs = {"group": c, "strides": [s, s], "dilations": [1, 1], "pads": [p] * 4,
             "kernel_shape": [k, k], "activation": act}
    ins = [x.shape, wt.shape, b.shape]
    ref = fk.make_kernel("Conv", attrs, ins, [F] * 3, [(1, c, o, o)], [F], {1: wt, 2: b})
    xc = to_nchwc(x)
    new = fk.make_kernel("NchwcDepthwiseConv", attrs, [xc.shape, wt.shape, b.shape], [F] * 3,
                         [(1, c // 8, o, o, 8)], [F], {1: wt, 2: b})
    y = np.empty((1, c, o, o), np.float32)
    yc = np.empty((1, c // 8, o, o, 8), np.float32)
    t_ref, t_new = timed([(ref, [x, None, None], [y]), (new, [xc, None, None], [yc])], runs)
    return t_ref, t_new


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=60)
    args = ap.parse_args()
    fk.set_num_threads(args.threads)
    print(f"isa {fk.isa()}, {args.threads} thread(s), median of {args.runs}")
    print(f"{'depthwise (relu)':34s} {'NCHW Conv':>10s} {'NCHWc':>10s} {'ratio':>6s}")
    for c, h, k, s in [(96, 112, 3, 2), (144, 56, 3, 1), (144, 56, 3, 2), (192, 28, 3, 1),
                       (192, 28, 3, 2), (384, 14, 3, 1), (576, 14, 3, 1), (576, 14, 3, 2),
                       (960, 7, 3, 1), (672, 14, 5, 2), (1152, 7, 5, 1), (144, 56, 1, 1)]:
        t_ref, t_new = depthwise(c, h, k, s, args.runs)
        label = f"{c}x{h}x{h} {k}x{k}/{s}" + (" (BN-like)" if k == 1 else "")
        print(f"{label:34s} {t_ref * 1e6:8.1f}us {t_new * 1e6:8.1f}us {t_new / t_ref:6.2f}")

    rng = np.random.default_rng(0)
    print("reorders (GB/s = bytes read + written per second)")
    for shape in [(1, 144, 56, 56), (1, 32, 112, 112), (1, 576, 14, 14), (1, 960, 7, 7)]:
        x = rng.standard_normal(shape).astype(np.float32)
        n, c, h, w = shape
        bs = (n, c // 8, h, w, 8)
        ki = fk.make_kernel("NchwcReorderInput", {}, [shape], [F], [bs], [F])
        ko = fk.make_kernel("NchwcReorderOutput", {}, [bs], [F], [shape], [F])
        yb = np.empty(bs, np.float32)
        yo = np.empty(shape, np.float32)
        t_in, t_out = timed([(ki, [x], [yb]), (ko, [yb], [yo])], args.runs)
        gb = 2 * x.nbytes / 1e9
        print(f"  {shape!s:20s} in {t_in * 1e6:7.1f}us {gb / t_in:6.1f} GB/s   "
              f"out {t_out * 1e6:7.1f}us {gb / t_out:6.1f} GB/s   "
              f"(numpy copy {x.nbytes / 1e6:.2f} MB)")

    print("pools")
    pools = [("NchwcMaxPool", "MaxPool", 64, 112, 3, 2, 1),
             ("NchwcMaxPool", "MaxPool", 192, 28, 3, 1, 1),
             ("NchwcAveragePool", "AveragePool", 192, 28, 3, 1, 1)]
    for name_new, name_ref, c, h, k, s, p in pools:
        x = rng.standard_normal((1, c, h, h)).astype(np.float32)
        o = (h + 2 * p - k) // s + 1
        params = {"kernel_shape": [k, k], "strides": [s, s], "dilations": [1, 1],
                  "pads_begin": [p, p], "pads_end": [p, p]}
        ref = fk.make_kernel(name_ref, params, [x.shape], [F], [(1, c, o, o)], [F])
        xc = to_nchwc(x)
        new = fk.make_kernel(name_new, params, [xc.shape], [F], [(1, c // 8, o, o, 8)], [F])
        y = np.empty((1, c, o, o), np.float32)
        yc = np.empty((1, c // 8, o, o, 8), np.float32)
        t_ref, t_new = timed([(ref, [x], [y]), (new, [xc], [yc])], args.runs)
        label = f"{name_new} {c}x{h}x{h} {k}x{k}/{s}"
        print(f"  {label:34s} NCHW {t_ref * 1e6:8.1f}us NCHWc {t_new * 1e6:8.1f}us "
              f"ratio {t_new / t_ref:5.2f}")


if __name__ == "__main__":
    main()
