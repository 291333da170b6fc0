"""NchwcConv (direct convolution into the NCHWc layout) against ferry's NCHW "Conv" kernel on
the same shapes: medians of many alternated runs, bias + ReLU fused in both, outputs cross-checked.

    python benchmarks/nchwc_conv.py [--threads 1] [--runs 30] [--only SUBSTRING]

Prints ms and GFLOP/s (2 * M * C * KH * KW * OH * OW flops) for both, and the ratio of their
times (below 1.0: NchwcConv is faster).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# (name, C, H, M, k, stride, pad, input layout)
SHAPES = [
    ("1x1 64->256 56", 64, 56, 256, 1, 1, 0, "nchwc"),
    ("1x1 144->24 56", 144, 56, 24, 1, 1, 0, "nchwc"),
    ("1x1 32->16 112", 32, 112, 16, 1, 1, 0, "nchwc"),
    ("1x1 960->160 7", 960, 7, 160, 1, 1, 0, "nchwc"),
    ("1x1 256->64 56", 256, 56, 64, 1, 1, 0, "nchwc"),
    ("3x3 64->64 56", 64, 56, 64, 3, 1, 1, "nchwc"),
    ("3x3/2 128->128 28", 128, 28, 128, 3, 2, 1, "nchwc"),
    ("3x3 256->256 14", 256, 14, 256, 3, 1, 1, "nchwc"),
    ("3x3 512->512 7", 512, 7, 512, 3, 1, 1, "nchwc"),
    ("3x3/2 3->32 224 nchw", 3, 224, 32, 3, 2, 1, "nchw"),
    ("7x7/2 3->64 224 nchw", 3, 224, 64, 7, 2, 3, "nchw"),
]


def _medians(fa, fb, runs: int) -> tuple[float, float]:
    """Medians of fa's and fb's times, the runs alternated (a shared machine's load hits both
    alike)."""
    fa()
    fb()
    ta, tb = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        fa()
        t1 = time.perf_counter()
        fb()
        t2 = time.perf_counter()
        ta.append(t1 - t0)
        tb.append(t2 - t1)
    return float(np.median(ta)), float(np.median(tb))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--only", default="")
    args = ap.parse_args()
    import ferry_kernels as fk

    fk.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    print(f"isa {fk.isa()}, {args.threads} thread(s), medians of {args.runs} runs")
    print(f"{'shape':24s} {'nchwc ms':>9s} {'GFLOP/s':>8s} {'conv ms':>9s} {'GFLOP/s':>8s} "
          f"{'ratio':>6s}")
    for name, c, h, m, k, s, p, layout in SHAPES:
        if args.only and args.only not in name:
            continue
        x = rng.standard_normal((1, c, h, h)).astype(np.float32)
        w = (rng.standard_normal((m, c, k, k)) / np.sqrt(c * k * k)).astype(np.float32)
        b = rng.standard_normal(m).astype(np.float32)
        oh = (h + 2 * p - k) // s + 1
        params = {"group": 1, "strides": [s, s], "dilations": [1, 1], "pads": [p] * 4,
                  "kernel_shape": [k, k], "activation": "relu"}
        conv = fk.make_kernel("Conv", params, [x.shape, w.shape, b.shape], ["float32"] * 3,
                              [(1, m, oh, oh)], ["float32"], {1: w, 2: b})
        y_ref = np.empty((1, m, oh, oh), np.float32)
        xb = x if layout == "nchw" else np.ascontiguousarray(
            x.reshape(1, c // 8, 8, h, h).transpose(0, 1, 3, 4, 2))
        nk = fk.make_kernel("NchwcConv", dict(params, input_layout=layout),
                            [xb.shape, w.shape, b.shape], ["float32"] * 3,
                            [(1, m // 8, oh, oh, 8)], ["float32"], {1: w, 2: b})
        y = np.empty((1, m // 8, oh, oh, 8), np.float32)
        t_n, t_c = _medians(lambda: nk.run([xb, None, None], [y]),
                            lambda: conv.run([x, None, None], [y_ref]), args.runs)
        ref = y_ref.reshape(1, m // 8, 8, oh, oh).transpose(0, 1, 3, 4, 2)
        err = float(np.abs(y - ref).max())
        flops = 2.0 * m * c * k * k * oh * oh
        print(f"{name:24s} {t_n * 1e3:9.3f} {flops / t_n / 1e9:8.1f} {t_c * 1e3:9.3f} "
              f"{flops / t_c / 1e9:8.1f} {t_n / t_c:6.2f}" + (f"  MISMATCH {err:.2e}"
                                                              if err > 1e-3 else ""))


if __name__ == "__main__":
    main()
