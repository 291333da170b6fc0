"""GEMM throughput: ferry's sgemm (the "MatMul" kernel, constant B packed once, as in a model)
against numpy's BLAS (OpenBLAS) on the same shapes, same thread count, side by side.

    python benchmarks/gemm.py [--threads 1] [--runs 15]

Prints GFLOP/s for both and the ratio ferry / numpy (higher is better for ferry)."""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SHAPES = [(256, 256, 256), (512, 512, 512), (1024, 1024, 1024), (2048, 2048, 2048),
          (128, 768, 768), (128, 3072, 768), (128, 768, 3072)]  # (M, N, K)


def _median_time(fn, runs: int) -> float:
    fn()
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


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
    # All of ferry's timings first, then all of numpy's, with a pause between: each library's
    # idle worker threads spin for a while after a call, and interleaving the two (shape by
    # shape) let one's spinning workers take the cores from the other at 2+ threads.
    cases = []
    for m, n, k in SHAPES:
        a = rng.standard_normal((m, k)).astype(np.float32)
        b = rng.standard_normal((k, n)).astype(np.float32)
        y = np.empty((m, n), np.float32)
        kern = fk.make_kernel("MatMul", {}, [a.shape, b.shape], ["float32", "float32"],
                              [y.shape], ["float32"], {1: b})
        runs = max(3, args.runs if m * n * k <= 1 << 28 else args.runs // 3)
        cases.append((m, n, k, a, b, y, kern, runs))
    t_ferry = [_median_time(lambda: c[6].run([c[3], None], [c[5]]), c[7]) for c in cases]
    time.sleep(0.5)
    t_numpy = [_median_time(lambda: np.matmul(c[3], c[4]), c[7]) for c in cases]
    for (m, n, k, a, b, y, _, _), t_f, t_n in zip(cases, t_ferry, t_numpy):
        np.testing.assert_allclose(y, a @ b, rtol=1e-3, atol=1e-2)
        flops = 2.0 * m * n * k
        print(f"{f'{m}x{n}x{k}':>18} {flops / t_f / 1e9:11.1f} {flops / t_n / 1e9:11.1f} "
              f"{t_n / t_f:6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
