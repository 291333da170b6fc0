"""The ``ferry`` command line (also ``python -m runtime``)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

EXAMPLES_RUN = """examples:
  ferry run model.onnx
  ferry run model.onnx --input images=batch.npy --providers cpu --repeat 50
  ferry run model.onnx --dim batch=8 --dim seq=128
  ferry run --builtin light_squeezenet      (a model shipped inside the onnx package)
"""

EXAMPLES_INSPECT = """examples:
  ferry inspect model.onnx
  ferry inspect model.onnx --providers openvino,cpu --json
"""


def builtin_model(name: str) -> str:
    """Path of a model that ships inside the onnx package (backend/test/data/light/...)."""
    import onnx

    root = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data")
    for sub in ("light", "pytorch-converted", "pytorch-operator", "simple", "real"):
        for cand in (os.path.join(root, sub, name + ".onnx"),
                     os.path.join(root, sub, name, "model.onnx")):
            if os.path.isfile(cand):
                return cand
    light = sorted(f[:-5] for f in os.listdir(os.path.join(root, "light")) if f.endswith(".onnx"))
    raise SystemExit(f"ferry: no built-in model '{name}'; try one of: {', '.join(light)}")


def _random_input(arg, dims: dict[str, int], rng: np.random.Generator) -> np.ndarray:
    from runtime.ir import onnx_dtype_to_numpy  # noqa: F401  (keeps import errors early)

    shape = []
    for d in arg.shape or []:
        if isinstance(d, int):
            shape.append(d)
        elif isinstance(d, str) and d in dims:
            shape.append(dims[d])
        else:
            shape.append(1)
    type_name = arg.type[len("tensor("):-1] if arg.type.startswith("tensor(") else "float"
    dtype = {"float": np.float32, "double": np.float64, "float16": np.float16,
             "int64": np.int64, "int32": np.int32, "int8": np.int8, "uint8": np.uint8,
             "bool": np.bool_, "string": object}.get(type_name, np.float32)
    if dtype is object:
        return np.array(["ferry"] * int(np.prod(shape)), dtype=object).reshape(shape)
    if np.dtype(dtype).kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    if np.dtype(dtype).kind == "b":
        return rng.integers(0, 2, shape).astype(bool)
    return rng.integers(0, 10, shape).astype(dtype)


def _parse_pairs(items, what: str) -> dict[str, str]:
    out = {}
    for item in items or []:
        if "=" not in item:
            raise SystemExit(f"ferry: --{what} expects NAME=VALUE, got '{item}'")
        k, v = item.split("=", 1)
        out[k] = v
    return out


def _session(args):
    from runtime import InferenceSession, SessionOptions

    so = SessionOptions()
    if getattr(args, "threads", None):
        so.intra_op_num_threads = args.threads
    providers = [p for p in (args.providers or "cpu").split(",") if p]
    path = builtin_model(args.builtin) if getattr(args, "builtin", None) else args.model
    if not path:
        raise SystemExit("ferry: give a MODEL path (or --builtin NAME)")
    t0 = time.perf_counter()
    sess = InferenceSession(path, so, providers=providers)
    return sess, path, time.perf_counter() - t0


def cmd_run(args) -> int:
    sess, path, created = _session(args)
    dims = {k: int(v) for k, v in _parse_pairs(args.dim, "dim").items()}
    files = _parse_pairs(args.input, "input")
    rng = np.random.default_rng(args.seed)
    feeds = {}
    for arg in sess.get_inputs():
        if arg.name in files:
            feeds[arg.name] = np.load(files[arg.name], allow_pickle=False)
        else:
            feeds[arg.name] = _random_input(arg, dims, rng)
    unknown = set(files) - set(feeds)
    if unknown:
        raise SystemExit(f"ferry: --input names not in the model: {', '.join(sorted(unknown))}")
    t0 = time.perf_counter()
    outputs = sess.run(None, feeds)
    first = time.perf_counter() - t0
    times = []
    for _ in range(max(args.repeat, 0)):
        t0 = time.perf_counter()
        sess.run(None, feeds)
        times.append(time.perf_counter() - t0)
    print(f"model      {path}")
    print(f"providers  {', '.join(sess.get_providers())}")
    for name, value in feeds.items():
        print(f"input      {name}: {value.dtype}{list(value.shape)}")
    for arg, value in zip(sess.get_outputs(), outputs):
        if isinstance(value, np.ndarray) and value.dtype.kind in "biuf" and value.size:
            stats = (f"min {value.min():.6g} max {value.max():.6g} "
                     f"mean {value.astype(np.float64).mean():.6g}")
            if value.ndim >= 1 and value.shape[-1] > 1 and value.dtype.kind == "f":
                stats += f" argmax {int(value.reshape(-1, value.shape[-1])[0].argmax())}"
        else:
            stats = ""
        shape = list(value.shape) if isinstance(value, np.ndarray) else type(value).__name__
        dtype = value.dtype if isinstance(value, np.ndarray) else ""
        print(f"output     {arg.name}: {dtype}{shape} {stats}")
    print(f"session    created in {created * 1e3:.1f} ms")
    print(f"first run  {first * 1e3:.2f} ms")
    if times:
        print(f"runs       {len(times)}: median {np.median(times) * 1e3:.2f} ms, "
              f"min {min(times) * 1e3:.2f} ms")
    return 0


def cmd_inspect(args) -> int:
    import collections

    sess, path, created = _session(args)
    info = sess.explain()
    model = sess._model
    if args.json:
        def default(o):
            return str(o)
        print(json.dumps({"model": path, "opsets": model.opsets, **info}, default=default,
                         indent=1))
        return 0
    print(f"model      {path}")
    print("opsets     " + ", ".join(f"{d or 'ai.onnx'}:{v}" for d, v in model.opsets.items()))
    for a in sess.get_inputs():
        print(f"input      {a.name}: {a.type} {a.shape}")
    for a in sess.get_outputs():
        print(f"output     {a.name}: {a.type} {a.shape}")
    hist = collections.Counter(n["op"] for n in info["nodes"])
    print("ops        " + ", ".join(f"{op}×{c}" for op, c in hist.most_common()))
    print(f"passes     {', '.join(info['optimizations_applied']) or '-'}")
    for p in info["partitions"]:
        print(f"partition  #{p['index']} {p['provider']}: {p['nodes']} node(s)")
    if args.nodes:
        for n in info["nodes"]:
            print(f"  {n['node']:40s} {n['op']:20s} -> {n['provider']}  ({n['reason']})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ferry", description="ferry: run and inspect ONNX "
                                     "models with onnxruntime's habits and ferry's kernels")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p):
        p.add_argument("model", nargs="?", help="path of an .onnx file")
        p.add_argument("--builtin", help="a model shipped inside the onnx package "
                       "(e.g. light_squeezenet)")
        p.add_argument("--providers", default="cpu", help="comma-separated, in priority order")
        p.add_argument("--threads", type=int, default=0, help="intra-op threads (0: auto)")

    p_run = sub.add_parser("run", help="run a model once (random inputs unless given)",
                           epilog=EXAMPLES_RUN, formatter_class=argparse.RawTextHelpFormatter)
    common(p_run)
    p_run.add_argument("--input", action="append", metavar="NAME=file.npy")
    p_run.add_argument("--dim", action="append", metavar="SYMBOL=VALUE",
                       help="value of a symbolic dimension for random inputs")
    p_run.add_argument("--repeat", type=int, default=10, help="timed runs after the first")
    p_run.add_argument("--seed", type=int, default=0)
    p_run.set_defaults(func=cmd_run)

    p_ins = sub.add_parser("inspect", help="opsets, ops, inputs/outputs, partitions",
                           epilog=EXAMPLES_INSPECT, formatter_class=argparse.RawTextHelpFormatter)
    common(p_ins)
    p_ins.add_argument("--json", action="store_true")
    p_ins.add_argument("--nodes", action="store_true", help="list every node's provider")
    p_ins.set_defaults(func=cmd_inspect)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from runtime.errors import FerryError

    try:
        return args.func(args)
    except FerryError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"ferry: {type(exc).__name__}: {first}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        print(f"ferry: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
