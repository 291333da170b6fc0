"""GEMM throughput: ferry's sgemm (the "MatMul" kernel, constant B packed once, as in a model)
against numpy's BLAS (OpenBLAS) on the same shapes, same thread count, side by side.

    python benchmarks/gemm.py [--threads 1] [--runs 15]

Prints GFLOP/s for both (medians) and the ratio of ferry's throughput to numpy's (higher is
better for ferry): the median of paired runs' ratios (at 1 thread run after run; at more, blocks
of three runs each, apart, each after 30 ms of warm-up runs)."""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SHAPES = [(256, 256, 256), (512, 512, 512), (1024, 1024, 1024), (2048, 2048, 2048),
          (128, 768, 768), (128, 3072, 768), (128, 768, 3072)]  # (M, N, K)


def warm_median_time(fn, runs: int, warm_s: float = 0.03) -> float:
    """Median of `runs` timed calls after calling fn for warm_s seconds (at least once)."""
    t0 = time.perf_counter()
    fn()
    while time.perf_counter() - t0 < warm_s:
        fn()
    ts = []
    for _ in range(runs):
        t1 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t1)
    return float(np.median(ts))


def _time_once(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args(argv)
    # numpy's BLAS thread count must be set before numpy loads it: re-exec if needed.
    want = str(args.threads)
    if os.environ.get("OPENBLAS_NUM_THREADS") != want:
        env = dict(os.environ, OPENBLAS_NUM_THREADS=want, OMP_NUM_THREADS=want,
                   MKL_NUM_THREADS=want)
        os.execve(sys.executable, [sys.executable, *sys.argv], env)
    import ferry_kernels as fk

    fk.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    print(f"threads={args.threads} isa={fk.isa()}")
    print(f"{'M x N x K':>18} {'ferry GF/s':>11} {'numpy GF/s':>11} {'ratio':>6}")
    cases = []
    for m, n, k in SHAPES:
        a = rng.standard_normal((m, k)).astype(np.float32)
        b = rng.standard_normal((k, n)).astype(np.float32)
        y, y_np = np.empty((m, n), np.float32), np.empty((m, n), np.float32)
        kern = fk.make_kernel("MatMul", {}, [a.shape, b.shape], ["float32", "float32"],
                              [y.shape], ["float32"], {1: b})
        runs = max(3, args.runs if m * n * k <= 1 << 28 else args.runs // 3)
        cases.append((m, n, k, a, b, y, y_np, kern, runs))
    for m, n, k, a, b, y, y_np, kern, runs in cases:
        ferry = functools.partial(kern.run, [a, None], [y])
        blas = functools.partial(np.matmul, a, b, out=y_np)
        ferry(), blas()
        if args.threads == 1:
            # Run after run, pairs' ratios: this machine's speed drifts from one second to the
            # next, and a pair taken back to back sees the same phase.
            tf, tn = [], []
            for _ in range(runs):
                tf.append(_time_once(ferry))
                tn.append(_time_once(blas))
        else:
            # Blocks of runs with a pause between: each library's idle workers spin for a while
            # after a call (OpenBLAS's for more than 50 ms), and back-to-back alternation let
            # one's spinning workers take the cores from the other. After the pause, this VM's
            # cores run slow for a few milliseconds (1.2 ms, then 0.8, 0.6, ... 0.33 ms for
            # 256^3, either library): each block first runs its library for 30 ms, so that
            # the timed runs see the steady state, not the ramp. Which goes first alternates.
            tf, tn = [], []
            for i in range(max(3, runs // 3)):
                for lib in ((ferry, blas) if i % 2 == 0 else (blas, ferry)):
                    time.sleep(0.15)
                    (tf if lib is ferry else tn).append(warm_median_time(lib, 3))
        np.testing.assert_allclose(y, y_np, rtol=1e-3, atol=1e-2)
        ratio = float(np.median(np.array(tn) / np.array(tf)))
        flops = 2.0 * m * n * k
        print(f"{f'{m}x{n}x{k}':>18} {flops / np.median(tf) / 1e9:11.1f} "
              f"{flops / np.median(tn) / 1e9:11.1f} {ratio:6.2f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
