"""Run the benchmark zoo through ``ferry bench`` and regenerate benchmarks/results/latest.md.

    python benchmarks/suite.py                              # the whole zoo, 1 and 2 threads
    python benchmarks/suite.py --models light_squeezenet,resnet50 --duration 2
    python benchmarks/suite.py --light-only --threads 1 --baseline onnxruntime,openvino
    python benchmarks/suite.py --batch 1,8 --plots           # PNG plots beside latest.md

Torch-exported models are exported on first use and cached (see benchmarks/zoo.py); a model
that cannot be had (torch/transformers missing) is listed under the table's notes. Results go
to ``--out`` (default benchmarks/results): ``latest.md`` (the table for the README) and
``latest.json`` (every measurement and the machine). Timings are never a test: run this on a
quiet machine and paste the table into README.md.
"""

from __future__ import annotations

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import zoo

from runtime import cli


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--models", help=f"comma-separated subset of: {', '.join(zoo.ALL)}")
    p.add_argument("--light-only", action="store_true", help="only the onnx package's models")
    p.add_argument("--exported-only", action="store_true", help="only the torch-exported ones")
    p.add_argument("--providers", default="cpu", help="ferry providers (default cpu)")
    p.add_argument("--baseline", default="onnxruntime", help="onnxruntime,openvino or none")
    p.add_argument("--threads", default="1,2", help="comma-separated (default 1,2)")
    p.add_argument("--batch", help="batch sizes for models with a symbolic batch (e.g. 1,8)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--duration", type=float, default=5.0,
                   help="seconds per runtime per row (default 5)")
    p.add_argument("--min-runs", type=int, default=5)
    p.add_argument("--cache", help="zoo cache folder (default ~/.cache/ferry/zoo)")
    p.add_argument("--no-export", action="store_true",
                   help="skip exported models that are not cached yet")
    p.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"),
                   help="folder for latest.md / latest.json (default benchmarks/results)")
    p.add_argument("--plots", action="store_true", help="also write latency.png and ratio.png")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--note", action="append", default=[],
                   help="a line for the table's notes (e.g. how busy the machine was)")
    args = p.parse_args(argv)

    if args.models:
        names = [n.strip() for n in args.models.split(",") if n.strip()]
    elif args.light_only:
        names = list(zoo.LIGHT)
    elif args.exported_only:
        names = list(zoo.EXPORTED)
    else:
        names = list(zoo.ALL)
    try:
        resolved = zoo.resolve(names, args.cache, build=not args.no_export)
    except ValueError as exc:
        print(f"suite: {exc}", file=sys.stderr)
        return 2
    paths = [path for _, path, _ in resolved if path]
    missing = [f"{name}: skipped ({note})" for name, path, note in resolved if not path]
    if not paths:
        print("suite: no model could be had:\n  " + "\n  ".join(missing), file=sys.stderr)
        return 1
    baselines = [] if args.baseline.strip().lower() == "none" else \
        [b for b in args.baseline.split(",") if b.strip()]
    try:
        settings = cli.BenchSettings(
            providers=cli._providers(args.providers), baselines=baselines,
            threads=cli._int_list(args.threads, "threads") or [0],
            batches=cli._int_list(args.batch, "batch"), warmup=args.warmup,
            duration=args.duration, min_runs=max(args.min_runs, 1))
        report = cli.bench(paths, settings, progress=not args.quiet, quiet=args.quiet)
    except cli.CliError as exc:
        print(f"suite: {exc}", file=sys.stderr)
        return 2
    report["notes"] = args.note + missing + report["notes"]
    report["zoo"] = {name: {"path": path, "note": note} for name, path, note in resolved}
    os.makedirs(args.out, exist_ok=True)
    if args.plots:
        written = cli.write_bench_report(report, args.out, stem="latest")
    else:
        import json

        written = {"markdown": os.path.join(args.out, "latest.md"),
                   "json": os.path.join(args.out, "latest.json")}
        with open(written["markdown"], "w") as f:
            f.write(cli.bench_markdown(report))
        with open(written["json"], "w") as f:
            json.dump(report, f, indent=1, default=str)
    print(cli.bench_markdown(report), end="")
    print(f"\nwrote {written['markdown']} and {written['json']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
