"""Single convolutions and pools: ferry's C++ kernel vs onnxruntime on a one-node model, same
thread count, medians of many runs.

    python benchmarks/conv.py [--threads 1] [--runs 40] [--only conv|depthwise|pool]

The shapes are the hot layers of the benchmark models: ResNet-50's 3x3 and 1x1 convolutions,
the first 7x7/2 and 3x3/2 convolutions, DenseNet's 3x3 128->32, MobileNetV2's depthwise and
pointwise layers, Inception's 3x3 pools. onnxruntime runs at ORT_ENABLE_ALL, so its
convolutions are MLAS's NCHWc kernels with the layout reorders included. All of ferry's
timings are taken first, then all of onnxruntime's, with a pause between: at 2 threads one
runtime's idle workers spin for a while after a run and would take the cores from the other.
Outputs are checked against onnxruntime's. Prints ms and ratios (below 1.0: ferry is faster).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# (name, C, H, M, k, stride, pad, group)
CONVS = [
    ("resnet 3x3 64", 64, 56, 64, 3, 1, 1, 1),
    ("resnet 3x3 128", 128, 28, 128, 3, 1, 1, 1),
    ("resnet 3x3 256", 256, 14, 256, 3, 1, 1, 1),
    ("resnet 3x3 512", 512, 7, 512, 3, 1, 1, 1),
    ("resnet 3x3/2 256", 256, 28, 256, 3, 2, 1, 1),
    ("resnet 1x1 64->256", 64, 56, 256, 1, 1, 0, 1),
    ("resnet 1x1 256->64", 256, 56, 64, 1, 1, 0, 1),
    ("resnet 1x1/2 1024->2048", 1024, 14, 2048, 1, 2, 0, 1),
    ("first 7x7/2", 3, 224, 64, 7, 2, 3, 1),
    ("first 3x3/2", 3, 224, 32, 3, 2, 1, 1),
    ("densenet 3x3 128->32", 128, 28, 32, 3, 1, 1, 1),
    ("mobilenet 1x1 24->144", 24, 56, 144, 1, 1, 0, 1),
    ("mobilenet 1x1 144->24", 144, 56, 24, 1, 1, 0, 1),
]
DEPTHWISE = [
    ("dw 3x3 144x56", 144, 56, 144, 3, 1, 1, 144),
    ("dw 3x3/2 96x112", 96, 112, 96, 3, 2, 1, 96),
    ("dw 3x3 32x112", 32, 112, 32, 3, 1, 1, 32),
    ("dw 3x3 192x28", 192, 28, 192, 3, 1, 1, 192),
    ("dw 3x3 384x14", 384, 14, 384, 3, 1, 1, 384),
    ("dw 3x3 960x7", 960, 7, 960, 3, 1, 1, 960),
    ("dw 5x5 240x28 (efficientnet)", 240, 28, 240, 5, 1, 2, 240),
]
# (op, C, H, k, stride, pad)
POOLS = [
    ("AveragePool", 1024, 7, 3, 1, 1),
    ("MaxPool", 1024, 7, 3, 1, 1),
    ("AveragePool", 576, 14, 3, 1, 1),
    ("AveragePool", 256, 28, 3, 1, 1),
    ("MaxPool", 64, 112, 3, 2, 1),
    ("MaxPool", 192, 56, 3, 2, 1),
    ("MaxPool", 576, 14, 3, 2, 1),
]


def _median(fn, runs: int) -> float:
    fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _conv_case(fk, helper, numpy_helper, TP, rng, c, h, m, k, s, p, g):
    x = rng.standard_normal((1, c, h, h)).astype(np.float32)
    w = (rng.standard_normal((m, c // g, k, k)) * 0.1).astype(np.float32)
    b = rng.standard_normal(m).astype(np.float32)
    oh = (h + 2 * p - k) // s + 1
    y = np.empty((1, m, oh, oh), np.float32)
    params = {"group": g, "strides": [s, s], "pads": [p] * 4, "activation": "relu"}
    kern = fk.make_kernel("Conv", params, [x.shape, w.shape, b.shape], ["float32"] * 3,
                          [y.shape], ["float32"], {1: w, 2: b})
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], group=g, strides=[s, s],
                              pads=[p] * 4),
             helper.make_node("Relu", ["c"], ["y"])]
    graph = helper.make_graph(nodes, "conv", [helper.make_tensor_value_info("x", TP.FLOAT, x.shape)],
                              [helper.make_tensor_value_info("y", TP.FLOAT, y.shape)],
                              [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    flops = 2.0 * m * (c // g) * k * k * oh * oh
    return x, y, (lambda: kern.run([x, None, None], [y])), graph, flops


def _pool_case(fk, helper, TP, rng, op, c, h, k, s, p):
    x = rng.standard_normal((1, c, h, h)).astype(np.float32)
    oh = (h + 2 * p - k) // s + 1
    y = np.empty((1, c, oh, oh), np.float32)
    kern = fk.make_kernel(op, {"kernel_shape": [k, k], "strides": [s, s], "pads_begin": [p, p],
                               "pads_end": [p, p]}, [x.shape], ["float32"], [y.shape],
                          ["float32"])
    node = helper.make_node(op, ["x"], ["y"], kernel_shape=[k, k], strides=[s, s], pads=[p] * 4)
    graph = helper.make_graph([node], "pool", [helper.make_tensor_value_info("x", TP.FLOAT, x.shape)],
                              [helper.make_tensor_value_info("y", TP.FLOAT, y.shape)])
    return x, y, (lambda: kern.run([x], [y])), graph, 0.0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--only", choices=["conv", "depthwise", "pool"])
    args = ap.parse_args(argv)
    import ferry_kernels as fk
    import onnxruntime as ort
    from onnx import TensorProto as TP
    from onnx import helper, numpy_helper

    fk.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    cases = []
    if args.only in (None, "conv"):
        cases += [(n, _conv_case(fk, helper, numpy_helper, TP, rng, *cfg)) for n, *cfg in CONVS]
    if args.only in (None, "depthwise"):
        cases += [(n, _conv_case(fk, helper, numpy_helper, TP, rng, *cfg))
                  for n, *cfg in DEPTHWISE]
    if args.only in (None, "pool"):
        cases += [(f"{op} {k}x{k}/{s} {c}x{h}", _pool_case(fk, helper, TP, rng, op, c, h, k, s, p))
                  for op, c, h, k, s, p in POOLS]
    t_ferry = [_median(case[2], args.runs) for _, case in cases]
    time.sleep(0.5)
    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    so.inter_op_num_threads = 1
    t_ort = []
    for name, (x, y, _, graph, _) in cases:
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        sess = ort.InferenceSession(model.SerializeToString(), so,
                                    providers=["CPUExecutionProvider"])
        np.testing.assert_allclose(y, sess.run(None, {"x": x})[0], rtol=1e-3, atol=1e-3,
                                   err_msg=name)
        t_ort.append(_median(lambda: sess.run(None, {"x": x}), args.runs))
    print(f"threads={args.threads} isa={fk.isa()}")
    print(f"{'case':32} {'ferry ms':>9} {'ORT ms':>8} {'ratio':>6} {'ferry GF/s':>11}")
    for (name, case), tf, to in zip(cases, t_ferry, t_ort):
        gf = f"{case[4] / tf / 1e9:11.1f}" if case[4] else " " * 11
        print(f"{name:32} {tf * 1e3:9.3f} {to * 1e3:8.3f} {tf / to:6.2f} {gf}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
