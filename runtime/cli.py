"""The ``ferry`` command line (also ``python -m runtime``).

Commands: ``run`` (one model, random or given inputs), ``bench`` (latency, throughput and memory
against onnxruntime/OpenVINO measured side by side), ``inspect`` (what the session made of a
model) and ``compare`` (the first node where two runtimes disagree). Every error is one line on
stderr and a non-zero exit status; ``FERRY_DEBUG=1`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

EXAMPLES_RUN = """examples:
  ferry run model.onnx
  ferry run model.onnx --input images=batch.npy --providers cpu --repeat 50
  ferry run model.onnx --dim batch=8 --dim seq=128
  ferry run model.onnx --providers openvino,cpu
  ferry run --builtin light_squeezenet      (a model shipped inside the onnx package)

Random inputs: floats from N(0, 1); integers in [0, 10), or [0, 2) for inputs whose name has
'mask', 'type' or 'segment' in it; symbolic dimensions 1 unless given with --dim.
"""

EXAMPLES_BENCH = """examples:
  ferry bench model.onnx
  ferry bench a.onnx b.onnx --baseline onnxruntime,openvino --threads 1,2 --out results/
  ferry bench bert.onnx --batch 1,8,32 --dim seq=128 --duration 10 --warmup 5
  ferry bench --builtin light_resnet50 --duration 2

Every runtime runs the same inputs, in interleaved rounds (the order rotates each round) so
that machine noise hits all alike. Ratios are ferry / baseline: below 1.0, ferry is faster.
--batch sizes the leading dimension of inputs whose leading dimension is symbolic; a model with
a static batch is measured at its own batch (with a note).
"""

EXAMPLES_INSPECT = """examples:
  ferry inspect model.onnx
  ferry inspect model.onnx --providers openvino,cpu --json
  ferry inspect model.onnx --dim N=4 --nodes

The model runs once on random inputs (--no-run skips it) so that the memory plan exists.
"""

EXAMPLES_COMPARE = """examples:
  ferry compare model.onnx                                  (ferry's CPU vs onnxruntime)
  ferry compare model.onnx --providers openvino,cpu --against cpu
  ferry compare model.onnx --providers cpu --against onnxruntime --rtol 1e-3 --atol 1e-4
  ferry compare model.onnx --input x=x.npy --json

Both sides keep every intermediate tensor; the report names the first node, in topological
order, whose output differs beyond |a - b| <= atol + rtol * |b|, and whether its inputs agreed.
Exit status: 0 when everything agrees, 1 when a divergence is found, 2 on errors.
"""


class CliError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# ---- models and inputs ---------------------------------------------------------------------

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
    raise CliError(f"no built-in model '{name}'; try one of: {', '.join(light)}")


_TYPE_TO_NUMPY = {"float": np.float32, "double": np.float64, "float16": np.float16,
                  "int64": np.int64, "int32": np.int32, "int16": np.int16, "int8": np.int8,
                  "uint64": np.uint64, "uint32": np.uint32, "uint16": np.uint16,
                  "uint8": np.uint8, "bool": np.bool_, "string": object}


def _arg_dtype(arg) -> Any:
    """numpy dtype of a NodeArg (``tensor(float)`` -> float32; ml_dtypes for bfloat16...)."""
    name = arg.type[len("tensor("):-1] if arg.type.startswith("tensor(") else ""
    if name in _TYPE_TO_NUMPY:
        return _TYPE_TO_NUMPY[name]
    try:
        import ml_dtypes

        return np.dtype(getattr(ml_dtypes, name))
    except (ImportError, AttributeError, TypeError):
        raise CliError(f"input '{arg.name}' has type {arg.type}: give it with --input "
                       f"{arg.name}=file.npy") from None


def input_shape(arg, dims: dict[str, int], batch: int | None = None) -> list[int]:
    """Concrete shape for a NodeArg: ``batch`` for a symbolic leading dimension, ``dims`` for
    named symbols, 1 for anything else unknown."""
    shape = []
    for axis, d in enumerate(arg.shape or []):
        if isinstance(d, int) and d >= 0:
            shape.append(d)
        elif axis == 0 and batch is not None:
            shape.append(batch)
        elif isinstance(d, str) and d in dims:
            shape.append(dims[d])
        else:
            shape.append(1)
    return shape


def make_feeds(inputs, dims: dict[str, int] | None = None, files: dict[str, str] | None = None,
               seed: int = 0, batch: int | None = None, strict_dims: bool = True
               ) -> dict[str, Any]:
    """Inputs for a session: arrays loaded from ``files`` (name -> .npy path), random values
    matched to each input's type and shape for the others. ``strict_dims``: a symbol in
    ``dims`` that no input uses is an error (bench, with many models, ignores it)."""
    from runtime.compare import int_upper_bound, random_array

    dims, files = dims or {}, files or {}
    names = {a.name for a in inputs}
    unknown = sorted(set(files) - names)
    if unknown:
        raise CliError(f"--input names not in the model: {', '.join(unknown)}; inputs: "
                       f"{', '.join(a.name for a in inputs)}")
    symbols = {d for a in inputs for d in (a.shape or []) if isinstance(d, str)}
    stray = sorted(set(dims) - symbols)
    if stray and strict_dims:
        raise CliError(f"--dim symbols not in the model's inputs: {', '.join(stray)}; symbols: "
                       f"{', '.join(sorted(symbols)) or 'none'}")
    rng = np.random.default_rng(seed)
    feeds = {}
    for arg in inputs:
        if arg.name in files:
            try:
                feeds[arg.name] = np.load(files[arg.name], allow_pickle=False)
            except OSError as exc:
                raise CliError(f"cannot read --input {arg.name}={files[arg.name]}: {exc}") from None
        else:
            feeds[arg.name] = random_array(input_shape(arg, dims, batch), _arg_dtype(arg), rng,
                                           int_upper_bound(arg.name))
    return feeds


def _parse_pairs(items, what: str) -> dict[str, str]:
    out = {}
    for item in items or []:
        if "=" not in item:
            raise CliError(f"--{what} expects NAME=VALUE, got '{item}'")
        k, v = item.split("=", 1)
        out[k] = v
    return out


def _parse_dims(items) -> dict[str, int]:
    dims = {}
    for k, v in _parse_pairs(items, "dim").items():
        try:
            dims[k] = int(v)
        except ValueError:
            raise CliError(f"--dim {k}={v}: the value must be an integer") from None
        if dims[k] < 0:
            raise CliError(f"--dim {k}={v}: the value must be >= 0")
    return dims


def _int_list(text: str | None, what: str) -> list[int]:
    if not text:
        return []
    try:
        values = [int(x) for x in str(text).split(",") if x.strip()]
    except ValueError:
        raise CliError(f"--{what} expects comma-separated integers, got '{text}'") from None
    if any(v < 0 for v in values):
        raise CliError(f"--{what} values must be >= 0, got '{text}'")
    return values


def _providers(text: str | None) -> list[str]:
    return [p.strip() for p in (text or "cpu").split(",") if p.strip()]


def _model_path(args) -> str:
    if getattr(args, "builtin", None):
        return builtin_model(args.builtin)
    if not args.model:
        raise CliError("give a MODEL path (or --builtin NAME)")
    if not os.path.exists(args.model):
        raise CliError(f"model file '{args.model}' does not exist")
    return args.model


def _session(args, path: str | None = None, threads: int | None = None):
    from runtime import InferenceSession, SessionOptions

    so = SessionOptions()
    threads = getattr(args, "threads", None) if threads is None else threads
    if threads:
        so.intra_op_num_threads = threads
    path = path or _model_path(args)
    t0 = time.perf_counter()
    sess = InferenceSession(path, so, providers=_providers(args.providers))
    return sess, path, time.perf_counter() - t0


def _value_summary(value: Any) -> str:
    if not isinstance(value, np.ndarray):
        if isinstance(value, list):
            return f"sequence of {len(value)}"
        return type(value).__name__
    text = f"{value.dtype}{list(value.shape)}"
    if value.dtype.kind in "biuf" and value.size:
        v = value.astype(np.float64)
        text += f" min {v.min():.6g} max {v.max():.6g} mean {v.mean():.6g}"
        if value.ndim >= 1 and value.shape[-1] > 1 and value.dtype.kind == "f":
            text += f" argmax {int(value.reshape(-1, value.shape[-1])[0].argmax())}"
        nonfinite = int(np.size(v) - np.isfinite(v).sum())
        if nonfinite:
            text += f" ({nonfinite} non-finite)"
    return text


# ---- run -----------------------------------------------------------------------------------

def cmd_run(args) -> int:
    sess, path, created = _session(args)
    feeds = make_feeds(sess.get_inputs(), _parse_dims(args.dim), _parse_pairs(args.input, "input"),
                       args.seed)
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
        print(f"output     {arg.name}: {_value_summary(value)}")
    print(f"session    created in {created * 1e3:.1f} ms")
    print(f"first run  {first * 1e3:.2f} ms")
    if times:
        q = np.percentile(times, [50, 90])
        print(f"runs       {len(times)}: median {q[0] * 1e3:.3f} ms, p90 {q[1] * 1e3:.3f} ms, "
              f"min {min(times) * 1e3:.3f} ms")
    if args.profile_nodes > 0:
        rows = sess.profile_plan(feeds, runs=max(args.repeat, 1))
        if not rows:
            print("profile    no C++ plan ran (ORT_PARALLEL, dynamic shapes or another provider)")
        else:
            print(f"profile    per node, mean of {max(args.repeat, 1)} runs, slowest first:")
            for r in rows[:args.profile_nodes]:
                print(f"  {r['mean_us']:10.1f} us {100 * r['share']:5.1f}%  {r['op_type']:<18} "
                      f"{r['kernel']:<16} {r['node']}")
    return 0


# ---- bench ---------------------------------------------------------------------------------

def machine_info() -> dict[str, Any]:
    """CPU model, cores, ISA the kernels use, GPU (if any), library versions."""
    info: dict[str, Any] = {"platform": platform.platform(), "python": platform.python_version(),
                            "cpu_count": os.cpu_count()}
    try:
        info["cpus_usable"] = len(os.sched_getaffinity(0))
    except AttributeError:
        pass
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu_model"] = line.split(":", 1)[1].strip()
                    break
                if line.startswith("flags"):
                    break
    except OSError:
        pass
    info.setdefault("cpu_model", platform.processor() or platform.machine())
    try:
        from providers.cpu import native

        fk = native.module()
        info["ferry_isa"] = fk.isa()
        info["ferry_isas_supported"] = list(fk.supported_isas())
    except ImportError as exc:
        info["ferry_isa"] = f"none (numpy only: {exc})"
    if os.environ.get("FERRY_MAX_ISA"):
        info["FERRY_MAX_ISA"] = os.environ["FERRY_MAX_ISA"]
    info["gpu"] = _gpu_name()
    versions = {}
    for mod in ("numpy", "onnx", "onnxruntime", "openvino"):
        try:
            versions[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001 - absent or broken: not worth failing a benchmark
            pass
    try:
        from importlib import metadata

        versions["ferry"] = metadata.version("ferry")
    except Exception:  # noqa: BLE001 - running from a source tree
        versions["ferry"] = "source tree"
    info["versions"] = versions
    return info


def _gpu_name() -> str | None:
    try:
        r = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                           capture_output=True, text=True, timeout=10, check=False)
        if r.returncode == 0 and r.stdout.strip():
            return "; ".join(s.strip() for s in r.stdout.strip().splitlines())
    except (OSError, subprocess.SubprocessError):
        pass
    root = "/proc/driver/nvidia/gpus"
    if os.path.isdir(root):
        for d in sorted(os.listdir(root)):
            try:
                with open(os.path.join(root, d, "information")) as f:
                    for line in f:
                        if line.startswith("Model:"):
                            return line.split(":", 1)[1].strip()
            except OSError:
                pass
    return None


def _rss_bytes() -> int:
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except ImportError:
        pass
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


def _reset_peak_rss() -> bool:
    """Reset the kernel's resident-set high-water mark (Linux >= 4.0); False if impossible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_rss_bytes() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


class Runner:
    """One runtime under test: ``create(path)`` then ``run(feeds)`` many times."""

    name = "?"

    def create(self, path: str) -> None:
        raise NotImplementedError

    def run(self, feeds: dict[str, Any]) -> None:
        raise NotImplementedError

    def inputs(self):
        return None

    def close(self) -> None:
        pass


class FerryRunner(Runner):
    def __init__(self, providers: list[str], threads: int):
        self.name = "ferry"
        self.providers, self.threads = providers, threads
        self.sess = None

    def create(self, path):
        from runtime import InferenceSession, SessionOptions

        so = SessionOptions()
        if self.threads:
            so.intra_op_num_threads = self.threads
        self.sess = InferenceSession(path, so, providers=self.providers)

    def run(self, feeds):
        self.sess.run(None, feeds)

    def inputs(self):
        return self.sess.get_inputs()

    def close(self):
        if self.sess is not None:
            self.sess.close()


class OrtRunner(Runner):
    name = "onnxruntime"

    def __init__(self, threads: int):
        self.threads = threads
        self.sess = None

    def create(self, path):
        try:
            import onnxruntime as ort
        except ImportError:
            raise CliError("onnxruntime is not installed (pip install onnxruntime)") from None
        so = ort.SessionOptions()
        so.log_severity_level = 3
        if self.threads:
            so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        self.sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])

    def run(self, feeds):
        self.sess.run(None, feeds)


class OpenVinoRunner(Runner):
    name = "openvino"

    def __init__(self, threads: int):
        self.threads = threads
        self.request = None

    def create(self, path):
        try:
            import openvino as ov
        except ImportError:
            raise CliError("openvino is not installed (pip install openvino)") from None
        core = ov.Core()
        config = {"INFERENCE_NUM_THREADS": self.threads} if self.threads else {}
        compiled = core.compile_model(path, "CPU", config)
        self.request = compiled.create_infer_request()

    def run(self, feeds):
        self.request.infer(feeds)


BASELINES: dict[str, Callable[[int], Runner]] = {"onnxruntime": OrtRunner, "ort": OrtRunner,
                                                  "openvino": OpenVinoRunner}
_BASELINE_KEY = {"onnxruntime": "onnxruntime", "ort": "onnxruntime", "openvino": "openvino"}


def _baseline_key(name: str) -> str:
    return _BASELINE_KEY.get(name.lower(), name.lower())


@dataclass
class BenchSettings:
    providers: list[str] = field(default_factory=lambda: ["cpu"])
    baselines: list[str] = field(default_factory=lambda: ["onnxruntime"])
    threads: list[int] = field(default_factory=lambda: [0])
    batches: list[int] = field(default_factory=list)  # empty: the model's own / --dim / 1
    warmup: int = 3
    duration: float = 5.0
    min_runs: int = 5
    dims: dict[str, int] = field(default_factory=dict)
    seed: int = 0


class Progress:
    """A text progress bar on stderr (redrawn in place on a terminal, one line per step
    otherwise)."""

    def __init__(self, total: int, enabled: bool = True, stream=None):
        self.total, self.done = max(total, 1), 0
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self._last = 0.0

    def update(self, label: str, fraction: float = 0.0, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if self.tty:
            if not force and now - self._last < 0.1:
                return
            self._last = now
            frac = min((self.done + min(fraction, 1.0)) / self.total, 1.0)
            width = 30
            fill = round(frac * width)
            self.stream.write(f"\r[{'#' * fill}{'.' * (width - fill)}] {frac * 100:3.0f}% "
                              f"{label[:60]:<60}")
            self.stream.flush()

    def step(self, label: str) -> None:
        self.done += 1
        if not self.enabled:
            return
        if self.tty:
            self.update(label, 0.0, force=True)
        else:
            self.stream.write(f"ferry bench: [{self.done}/{self.total}] {label}\n")
            self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _note(notes: list[str], text: str, quiet: bool) -> None:
    notes.append(text)
    if not quiet:
        sys.stderr.write(f"ferry bench: note: {text}\n")


def _first_line(exc: BaseException) -> str:
    """The informative line of an error message (OpenVINO's start with source locations)."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    summary = [ln.lstrip("- ") for ln in lines if "failed for:" in ln]
    useful = [ln for ln in lines if not ln.startswith(("Exception from ", "Check '"))]
    text = (summary or useful or lines or [""])[0]
    return f"{type(exc).__name__}: {text[:300]}".rstrip(": ")


def _batch_plan(inputs, batches: list[int], label: str, notes: list[str], quiet: bool
                ) -> list[int | None]:
    """Which batch sizes apply: None stands for 'the model's own shapes'."""
    if not batches:
        return [None]
    leading = [(a.name, (a.shape or [None])[0]) for a in inputs if a.shape]
    dynamic = [n for n, d in leading if not isinstance(d, int) or d < 0]
    if dynamic:
        return list(batches)
    static = sorted({d for _, d in leading}) or [1]
    ok = [b for b in batches if b in static]
    skipped = [b for b in batches if b not in static]
    if skipped:
        _note(notes, f"{label}: the leading dimension of every input is static "
              f"({', '.join(f'{n}: {d}' for n, d in leading) or 'no inputs'}); batch "
              f"{','.join(map(str, skipped))} cannot apply, measuring batch "
              f"{','.join(map(str, ok or static))} instead "
              "(export the model with a symbolic batch dimension to vary it)", quiet)
    return list(ok) if ok else [None]


def _stats(times: list[float], batch: int) -> dict[str, Any]:
    arr = np.asarray(times)
    med = float(np.median(arr))
    return {"runs": len(times), "median_ms": med * 1e3,
            "p90_ms": float(np.percentile(arr, 90)) * 1e3, "mean_ms": float(arr.mean()) * 1e3,
            "min_ms": float(arr.min()) * 1e3,
            "stdev_ms": float(statistics.pstdev(times)) * 1e3 if len(times) > 1 else 0.0,
            "throughput_per_s": batch / med if med > 0 else None}


def _model_name(path: str) -> str:
    base = os.path.basename(path)
    if base == "model.onnx":
        base = os.path.basename(os.path.dirname(path)) or base
    return base.removesuffix(".onnx")


def bench(models: list[str], settings: BenchSettings, progress: bool = True,
          quiet: bool = False) -> dict[str, Any]:
    """Measure every model on ferry and each baseline; returns the report (JSON-ready).

    For each model and thread count, each runtime in turn creates its session and runs it once
    (creation time, first-run time and the peak resident memory they add are measured then);
    for each batch size, runtimes warm up and then run in interleaved rounds whose order
    rotates, until ``duration`` seconds per runtime have passed and at least ``min_runs``
    rounds ran.
    """
    for b in settings.baselines:
        if b.lower() not in BASELINES:
            raise CliError(f"unknown baseline '{b}'; choose from onnxruntime, openvino")
    notes: list[str] = []
    results: list[dict[str, Any]] = []
    nbatches = max(len(settings.batches), 1)
    bar = Progress(len(models) * len(settings.threads) * nbatches, progress and not quiet)
    memory = _PeakMemory()
    if not memory.resettable:
        _note(notes, "this system cannot reset the peak-RSS counter: per-runtime memory is "
              "the growth of the process's peak instead", quiet)
    started = time.time()
    try:
        for path in models:
            name = _model_name(path)
            for threads in settings.threads:
                runners: list[Runner] = [FerryRunner(settings.providers, threads)]
                runners += [BASELINES[b.lower()](threads) for b in settings.baselines]
                created: dict[str, dict[str, Any]] = {}
                live: list[Runner] = []
                plan: list[int | None] = [None]
                feeds: dict[str, Any] = {}
                for r in runners:
                    bar.update(f"{name} t={threads or 'auto'}: creating {r.name}", force=True)
                    memory.start()
                    t0 = time.perf_counter()
                    try:
                        r.create(path)
                        entry = {"create_ms": (time.perf_counter() - t0) * 1e3}
                        if r is runners[0]:
                            plan = _batch_plan(r.inputs(), settings.batches, name, notes, quiet)
                            feeds = make_feeds(r.inputs(), settings.dims, None, settings.seed,
                                               plan[0], strict_dims=False)
                        t0 = time.perf_counter()
                        r.run(feeds)  # many runtimes allocate their buffers at the first run
                        entry["first_run_ms"] = (time.perf_counter() - t0) * 1e3
                        entry["peak_rss_delta_mb"] = memory.added_mb()
                    except Exception as exc:
                        if isinstance(exc, CliError) and r is runners[0]:
                            raise  # ferry cannot even make inputs: a usage error
                        created[r.name] = {"error": _first_line(exc)}
                        _note(notes, f"{name}: {r.name} failed to load or run the model: "
                              f"{_first_line(exc)}", quiet)
                        r.close()
                        if r is runners[0]:
                            break
                        continue
                    created[r.name] = entry
                    live.append(r)
                if runners[0] not in live:
                    for _ in range(nbatches):
                        bar.step(f"{name}: ferry failed")
                    results.append({"model": name, "path": path, "threads": threads,
                                    "batch": None, "runtimes": created, "ratios": {}})
                    continue
                for _ in range(nbatches - len(plan)):
                    bar.step(f"{name}: batch skipped")
                for batch in plan:
                    results.append(_bench_one(name, path, threads, batch, live, created,
                                              settings, bar, notes, quiet))
                    bar.step(f"{name} t={threads or 'auto'} batch {results[-1]['batch']}")
                for r in live:
                    r.close()
    finally:
        bar.close()
    return {"ferry_bench": 1, "created": datetime.datetime.now(datetime.timezone.utc)
            .isoformat(timespec="seconds"), "elapsed_s": round(time.time() - started, 2),
            "machine": machine_info(),
            "settings": {"providers": settings.providers, "baselines": settings.baselines,
                         "threads": settings.threads, "batches": settings.batches,
                         "warmup": settings.warmup, "duration_s": settings.duration,
                         "min_runs": settings.min_runs, "dims": settings.dims,
                         "seed": settings.seed},
            "process_peak_rss_mb": memory.process_peak_mb(),
            "results": results, "notes": notes}


def _release_free_memory() -> None:
    """Collect garbage and hand free heap pages back to the OS, so that memory the previous
    runtime freed is not silently reused by the next one (which would hide its growth)."""
    import gc

    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the measurement is a little less fair
        pass


class _PeakMemory:
    """Peak resident memory added by a step, via the kernel's resettable high-water mark;
    keeps the process's overall peak across resets."""

    def __init__(self):
        self.resettable = _reset_peak_rss()
        self._overall = _peak_rss_bytes()
        self._base = 0

    def start(self) -> None:
        self._overall = max(self._overall, _peak_rss_bytes())
        _release_free_memory()
        if self.resettable:
            _reset_peak_rss()
        self._base = _rss_bytes() if self.resettable else _peak_rss_bytes()

    def added_mb(self) -> float:
        peak = _peak_rss_bytes()
        self._overall = max(self._overall, peak)
        return max(peak - self._base, 0) / 2**20

    def process_peak_mb(self) -> float:
        return max(self._overall, _peak_rss_bytes()) / 2**20


def _bench_one(name, path, threads, batch, live: list[Runner], created, settings: BenchSettings,
               bar: Progress, notes, quiet) -> dict[str, Any]:
    ferry = live[0]
    feeds = make_feeds(ferry.inputs(), settings.dims, None, settings.seed, batch,
                       strict_dims=False)
    shapes = {k: list(v.shape) for k, v in feeds.items()}
    real_batch = next((v.shape[0] for v in feeds.values()
                       if isinstance(v, np.ndarray) and v.ndim), 1)
    label = f"{name} t={threads or 'auto'} batch {real_batch}"
    runtimes: dict[str, dict[str, Any]] = {}
    ok: list[Runner] = []
    for r in live:
        entry = dict(created[r.name])
        runtimes[r.name] = entry
        try:
            for _ in range(settings.warmup):
                r.run(feeds)
        except Exception as exc:  # noqa: BLE001 - a runtime failing on this input is a result
            entry["error"] = _first_line(exc)
            _note(notes, f"{label}: {r.name} failed: {entry['error']}", quiet)
            continue
        ok.append(r)
    for name_, entry in created.items():  # runtimes that failed at creation stay in the row
        runtimes.setdefault(name_, dict(entry))
    times: dict[str, list[float]] = {r.name: [] for r in ok}
    budget = settings.duration * max(len(ok), 1)
    t_start = time.perf_counter()
    rounds = 0
    failed: set[str] = set()
    while ok:
        order = ok[rounds % len(ok):] + ok[:rounds % len(ok)]
        for r in order:
            if r.name in failed:
                continue
            t0 = time.perf_counter()
            try:
                r.run(feeds)
            except Exception as exc:  # noqa: BLE001
                runtimes[r.name]["error"] = _first_line(exc)
                failed.add(r.name)
                continue
            times[r.name].append(time.perf_counter() - t0)
        rounds += 1
        elapsed = time.perf_counter() - t_start
        bar.update(f"{label}: round {rounds}", elapsed / budget if budget else 1.0)
        if (elapsed >= budget and rounds >= settings.min_runs) or len(failed) == len(ok):
            break
    for r in ok:
        if times[r.name]:
            runtimes[r.name].update(_stats(times[r.name], real_batch))
    ratios = {}
    f = runtimes.get("ferry", {})
    for b in settings.baselines:
        key = _baseline_key(b)
        other = runtimes.get(key, {})
        if "median_ms" in f and "median_ms" in other and other["median_ms"] > 0:
            ratios[key] = f["median_ms"] / other["median_ms"]
    return {"model": name, "path": path, "threads": threads, "batch": int(real_batch),
            "inputs": shapes, "rounds": rounds, "runtimes": runtimes, "ratios": ratios}


def _fmt(v, spec=".3f", missing="–") -> str:
    return missing if v is None else format(v, spec)


def bench_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: settings, machine, one table row per model/threads/batch."""
    s, m = report["settings"], report["machine"]
    baselines = []
    for b in s["baselines"]:
        key = _baseline_key(b)
        if key not in baselines:
            baselines.append(key)
    lines = [f"# ferry bench ({report['created']})", "",
             f"- machine: {m.get('cpu_model')}, {m.get('cpus_usable', m.get('cpu_count'))} "
             f"usable CPU(s), ferry kernels ISA: {m.get('ferry_isa')}"
             + (f", GPU: {m['gpu']}" if m.get("gpu") else ""),
             (f"- ferry providers: {','.join(s['providers'])}; baselines: "
              f"{', '.join(baselines) or 'none'}; warmup {s['warmup']}, "
              f"{s['duration_s']:g} s per runtime per row (interleaved rounds), "
              f"at least {s['min_runs']} runs"),
             "- versions: " + ", ".join(f"{k} {v}" for k, v in m.get("versions", {}).items()),
             ("- ratio = ferry median / baseline median (below 1.0: ferry is faster); "
              "create = session creation; memory = peak resident memory added by creating the "
              "session and its first run (both measured once per model and thread count)"),
             ""]
    head = ["model", "threads", "batch", "ferry median ms", "ferry p90 ms", "ferry items/s"]
    for b in baselines:
        head += [f"{b} median ms", f"ratio ferry/{b}"]
    head += ["create ms (" + " / ".join(["ferry"] + baselines) + ")",
             "memory MB (" + " / ".join(["ferry"] + baselines) + ")"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + " --- |" * len(head))
    for r in report["results"]:
        rt = r["runtimes"]
        f = rt.get("ferry", {})
        row = [r["model"], str(r["threads"] or "auto"), str(r["batch"] or "–")]
        if "median_ms" in f:
            row += [_fmt(f["median_ms"]), _fmt(f["p90_ms"]), _fmt(f["throughput_per_s"], ".1f")]
        else:
            row += [f"error: {f.get('error', 'not measured')}", "–", "–"]
        for b in baselines:
            o = rt.get(b, {})
            row += [_fmt(o.get("median_ms")) if "median_ms" in o else
                    ("error" if "error" in o else "–"), _fmt(r["ratios"].get(b), ".2f")]
        row.append(" / ".join(_fmt(rt.get(k, {}).get("create_ms"), ".0f")
                              for k in ["ferry"] + baselines))
        row.append(" / ".join(_fmt(rt.get(k, {}).get("peak_rss_delta_mb"), ".0f")
                              for k in ["ferry"] + baselines))
        lines.append("| " + " | ".join(row) + " |")
    errors = [(r["model"], k, v["error"]) for r in report["results"]
              for k, v in r["runtimes"].items() if "error" in v]
    if report["notes"] or errors:
        lines += ["", "Notes:", ""]
        lines += [f"- {n}" for n in report["notes"]]
    return "\n".join(lines) + "\n"


def bench_plots(report: dict[str, Any], out_dir: str) -> list[str]:
    """latency.png (median per runtime) and ratio.png (ferry / baseline); needs matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in report["results"] if "median_ms" in r["runtimes"].get("ferry", {})]
    if not rows:
        return []
    labels = [f"{r['model']}\nt={r['threads'] or 'auto'} b={r['batch']}" for r in rows]
    names = []
    for r in rows:
        for k in r["runtimes"]:
            if k not in names:
                names.append(k)
    written = []
    x = np.arange(len(rows))
    width = 0.8 / max(len(names), 1)
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(rows) + 2), 4.5))
    for i, n in enumerate(names):
        vals = [r["runtimes"].get(n, {}).get("median_ms", np.nan) for r in rows]
        ax.bar(x + (i - (len(names) - 1) / 2) * width, vals, width, label=n)
    ax.set_xticks(x, labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("median latency (ms)")
    if len(rows) > 1:
        ax.set_yscale("log")
    ax.set_title("ferry bench: median latency (lower is better)")
    ax.legend()
    fig.tight_layout()
    path = os.path.join(out_dir, "latency.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    written.append(path)
    baselines = [n for n in names if n != "ferry"]
    if baselines:
        fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(rows) + 2), 4.5))
        for i, b in enumerate(baselines):
            vals = [r["ratios"].get(b, np.nan) for r in rows]
            ax.bar(x + (i - (len(baselines) - 1) / 2) * (0.8 / len(baselines)), vals,
                   0.8 / len(baselines), label=f"ferry / {b}")
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_xticks(x, labels, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel("latency ratio (below 1: ferry faster)")
        ax.set_title("ferry bench: ratio of medians")
        ax.legend()
        fig.tight_layout()
        path = os.path.join(out_dir, "ratio.png")
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written


def write_bench_report(report: dict[str, Any], out_dir: str, stem: str = "bench"
                       ) -> dict[str, Any]:
    """Write ``stem``.json, ``stem``.md and the PNG plots into ``out_dir``; returns the paths
    written and a note when plots were skipped."""
    os.makedirs(out_dir, exist_ok=True)
    written = {"json": os.path.join(out_dir, f"{stem}.json"),
               "markdown": os.path.join(out_dir, f"{stem}.md"), "plots": []}
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        report["notes"].append("plots skipped: matplotlib is not installed "
                               "(pip install matplotlib)")
    else:
        written["plots"] = bench_plots(report, out_dir)
        report["plots"] = [os.path.basename(p) for p in written["plots"]]
    md = bench_markdown(report)
    if report.get("plots"):
        md += "\n" + "\n".join(f"![{p[:-4]}]({p})" for p in report["plots"]) + "\n"
    with open(written["markdown"], "w") as f:
        f.write(md)
    with open(written["json"], "w") as f:
        json.dump(report, f, indent=1, default=str)
    return written


def cmd_bench(args) -> int:
    models = list(args.model or [])
    if args.builtin:
        models += [builtin_model(b) for b in args.builtin.split(",")]
    if not models:
        raise CliError("give at least one MODEL path (or --builtin NAME)")
    for m in models:
        if not os.path.exists(m):
            raise CliError(f"model file '{m}' does not exist")
    if args.duration < 0:
        raise CliError("--duration must be >= 0")
    baselines = [b for b in (args.baseline or "").split(",") if b.strip()]
    if args.baseline.strip().lower() == "none":
        baselines = []
    settings = BenchSettings(
        providers=_providers(args.providers), baselines=baselines,
        threads=_int_list(args.threads, "threads") or [0],
        batches=[b for b in _int_list(args.batch, "batch")], warmup=max(args.warmup, 0),
        duration=args.duration, min_runs=max(args.min_runs, 1), dims=_parse_dims(args.dim),
        seed=args.seed)
    if any(b == 0 for b in settings.batches):
        raise CliError("--batch sizes must be >= 1")
    report = bench(models, settings, progress=not args.no_progress, quiet=args.quiet)
    if args.out:
        written = write_bench_report(report, args.out)
        md = bench_markdown(report)
        print(md, end="")
        print(f"\nwrote {written['markdown']}, {written['json']}"
              + "".join(f", {p}" for p in written["plots"]))
        if not written["plots"]:
            print("plots skipped: " + ("matplotlib is not installed" if not _has_matplotlib()
                                       else "nothing was measured"))
    else:
        print(bench_markdown(report), end="")
    measured = any("median_ms" in r["runtimes"].get("ferry", {}) for r in report["results"])
    return 0 if measured else 1


def _has_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


# ---- inspect -------------------------------------------------------------------------------

def _proto_summary(path: str) -> dict[str, Any]:
    import onnx

    proto = onnx.load(path, load_external_data=False)
    g = proto.graph
    inits = {i.name for i in g.initializer}

    def shape(vi):
        t = vi.type
        if t.WhichOneof("value") != "tensor_type" or not t.tensor_type.HasField("shape"):
            return None
        return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                for d in t.tensor_type.shape.dim]

    def typ(vi):
        t = vi.type
        if t.WhichOneof("value") == "tensor_type":
            name = onnx.helper.tensor_dtype_to_string(t.tensor_type.elem_type)
            return f"tensor({name.rsplit('.', 1)[-1].lower()})"
        return t.WhichOneof("value") or "?"

    return {"opsets": {(i.domain or ""): i.version for i in proto.opset_import},
            "ir_version": proto.ir_version, "producer": f"{proto.producer_name} "
            f"{proto.producer_version}".strip(),
            "nodes_in_file": len(g.node),
            "ops": dict(collections.Counter(
                (n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}::{n.op_type}")
                for n in g.node).most_common()),
            "inputs": [{"name": v.name, "type": typ(v), "shape": shape(v)} for v in g.input
                       if v.name not in inits],
            "outputs": [{"name": v.name, "type": typ(v), "shape": shape(v)} for v in g.output]}


def inspect_model(path: str, providers: list[str], threads: int = 0, run: bool = True,
                  dims: dict[str, int] | None = None, seed: int = 0) -> dict[str, Any]:
    """Everything ``ferry inspect`` shows, as a dict."""
    from runtime import InferenceSession, SessionOptions
    from runtime.errors import NotImplemented as FerryNotImplemented

    info: dict[str, Any] = {"model": path, **_proto_summary(path)}
    so = SessionOptions()
    if threads:
        so.intra_op_num_threads = threads
    try:
        t0 = time.perf_counter()
        sess = InferenceSession(path, so, providers=providers)
        info["session_create_ms"] = (time.perf_counter() - t0) * 1e3
    except FerryNotImplemented as exc:
        lines = str(exc).splitlines()
        info["error"] = lines[0]
        info["unsupported"] = [ln.strip() for ln in lines[1:] if ln.strip()]
        return info
    info["inputs"] = [{"name": a.name, "type": a.type, "shape": a.shape}
                      for a in sess.get_inputs()]
    info["outputs"] = [{"name": a.name, "type": a.type, "shape": a.shape}
                       for a in sess.get_outputs()]
    if run:
        feeds = make_feeds(sess.get_inputs(), dims or {}, None, seed)
        t0 = time.perf_counter()
        sess.run(None, feeds)
        info["first_run_ms"] = (time.perf_counter() - t0) * 1e3
        info["run_inputs"] = {k: list(v.shape) for k, v in feeds.items()}
    ex = sess.explain()
    info.update(ex)
    info.setdefault("nodes_before_optimization", info["nodes_in_file"])
    info.setdefault("nodes_after_optimization", len(sess._graph.nodes))
    info["ops_after_optimization"] = dict(collections.Counter(
        (n["op"] if n["domain"] in ("", "ai.onnx") else f"{n['domain']}::{n['op']}")
        for n in ex["nodes"]).most_common())
    # ops the optimizer made (fused kernels) are those absent from the file
    info["fused_ops"] = {op: c for op, c in info["ops_after_optimization"].items()
                         if op not in info["ops"]}
    folded = sum(p["details"].get("nodes_folded_at_compile", 0) or 0 for p in ex["partitions"])
    info["nodes_folded_at_compile"] = folded
    first = ex["providers_requested"][0] if ex["providers_requested"] else "cpu"
    not_first: dict[str, dict[str, Any]] = {}
    for n in ex["nodes"]:
        if n["provider"] != first:
            op = n["op"] if n["domain"] in ("", "ai.onnx") else f"{n['domain']}::{n['op']}"
            e = not_first.setdefault(op, {"count": 0, "reason": n["not_taken_by"].get(first) or
                                          n["reason"], "ran_on": set()})
            e["count"] += 1
            e["ran_on"].add(n["provider"])
    for e in not_first.values():
        e["ran_on"] = sorted(p for p in e["ran_on"] if p)
    info["not_run_by_first_provider"] = {"provider": first, "ops": not_first}
    mem = ex["memory"]
    mem["plans"] = sum(len(p["details"].get("plans", [])) for p in ex["partitions"])
    sess.close()
    return info


def _mb(n: int) -> str:
    return f"{n / 2**20:.2f} MB" if n >= 2**16 else f"{n} B"


def cmd_inspect(args) -> int:
    path = _model_path(args)
    info = inspect_model(path, _providers(args.providers), args.threads, not args.no_run,
                         _parse_dims(args.dim), args.seed)
    if args.json:
        def default(o):
            if isinstance(o, set):
                return sorted(o)
            return str(o)
        print(json.dumps(info, default=default, indent=1))
        return 0 if "error" not in info else 1
    print(f"model      {path}")
    print(f"producer   {info['producer'] or '-'} (IR version {info['ir_version']})")
    print("opsets     " + ", ".join(f"{d or 'ai.onnx'}:{v}" for d, v in info["opsets"].items()))
    for a in info["inputs"]:
        print(f"input      {a['name']}: {a['type']} {a['shape']}")
    for a in info["outputs"]:
        print(f"output     {a['name']}: {a['type']} {a['shape']}")
    print("ops        " + ", ".join(f"{op}×{c}" for op, c in info["ops"].items()))
    if "error" in info:
        print(f"session    cannot be created: {info['error']}")
        print(f"unsupported {len(info['unsupported'])} node(s):")
        for ln in info["unsupported"]:
            print(f"  {ln}")
        return 1
    if info["providers_unavailable"]:
        for p, why in info["providers_unavailable"].items():
            print(f"provider   {p} unavailable: {why}")
    print(f"providers  {', '.join(info['providers_used'])}")
    print(f"optimized  {', '.join(info['optimizations_applied']) or 'no pass changed the graph'}; "
          f"nodes {info['nodes_before_optimization']} -> {info['nodes_after_optimization']}"
          + (f" ({info['nodes_folded_at_compile']} more folded to constants at compile time)"
             if info["nodes_folded_at_compile"] else ""))
    if info["fused_ops"]:
        print("fused      " + ", ".join(f"{op}×{c}" for op, c in info["fused_ops"].items()))
    for p in info["partitions"]:
        d = p["details"]
        extra = ""
        if "static_shapes" in d:
            extra = ("; static shapes: one C++ plan per input shape" if d["static_shapes"]
                     else "; dynamic shapes: run node by node")
        print(f"partition  #{p['index']} {p['provider']}: {p['nodes']} node(s){extra}")
    nf = info["not_run_by_first_provider"]
    if nf["ops"]:
        print(f"not on {nf['provider']} (fell back):")
        for op, e in nf["ops"].items():
            print(f"  {op}×{e['count']} -> {', '.join(e['ran_on']) or '-'}: {e['reason']}")
    else:
        print(f"fallback   none: every node runs on {nf['provider']}")
    nodes = info["nodes"]
    if args.nodes or len(nodes) <= 60:
        print("nodes:")
        for n in nodes:
            print(f"  {n['node'][:40]:40s} {n['op']:18s} -> {n['provider']}  ({n['reason']})")
    else:
        groups = collections.Counter((n["op"], n["provider"], n["reason"]) for n in nodes)
        print(f"nodes      {len(nodes)} (grouped; --nodes lists each):")
        for (op, prov, reason), c in groups.most_common():
            print(f"  {op + '×' + str(c):24s} -> {prov}  ({reason})")
    mem = info["memory"]
    if mem["plans"]:
        ratio = mem["naive_bytes"] / mem["planned_arena_bytes"] if mem["planned_arena_bytes"] \
            else float("inf")
        print(f"memory     arena {_mb(mem['planned_arena_bytes'])} for intermediates vs "
              f"{_mb(mem['naive_bytes'])} if each had its own buffer ({ratio:.1f}x less), "
              f"{mem['plans']} plan(s)" + (f"; inputs {info['run_inputs']}"
                                           if "run_inputs" in info else ""))
    elif args.no_run:
        print("memory     no plan yet (plans are made at the first run; drop --no-run)")
    else:
        print("memory     no arena plan (partitions run value by value)")
    return 0


# ---- compare -------------------------------------------------------------------------------

def cmd_compare(args) -> int:
    from runtime.compare import compare_model

    path = _model_path(args)
    if args.rtol < 0 or args.atol < 0:
        raise CliError("--rtol and --atol must be >= 0")
    feeds = None
    files = _parse_pairs(args.input, "input")
    dims = _parse_dims(args.dim)
    if files or dims:
        sess, _, _ = _session(args, path)
        feeds = make_feeds(sess.get_inputs(), dims, files, args.seed)
        sess.close()
    against = args.against
    report = compare_model(path, _providers(args.providers),
                           against if against.lower() in ("onnxruntime", "ort")
                           else _providers(against),
                           feeds=feeds, dims=dims, rtol=args.rtol, atol=args.atol,
                           seed=args.seed, threads=args.threads)
    if args.json:
        print(json.dumps(report.to_dict(), indent=1, default=str))
    else:
        print(f"model      {path}")
        print(report.summary())
    return 0 if report.ok else 1


# ---- the parser ----------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ferry", description="ferry: run, benchmark, inspect and compare ONNX "
                     "models with onnxruntime's habits and ferry's kernels",
                     epilog="run 'ferry COMMAND --help' for a command's options and examples")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def common(p, many=False):
        if many:
            p.add_argument("model", nargs="*", help="paths of .onnx files")
            p.add_argument("--builtin", help="models shipped inside the onnx package, "
                           "comma-separated (e.g. light_squeezenet)")
        else:
            p.add_argument("model", nargs="?", help="path of an .onnx file")
            p.add_argument("--builtin", help="a model shipped inside the onnx package "
                           "(e.g. light_squeezenet)")
        p.add_argument("--providers", default="cpu",
                       help="ferry providers, comma-separated, in priority order (default: cpu)")

    def inputs(p):
        p.add_argument("--input", action="append", metavar="NAME=file.npy",
                       help="an input's value (others are random, matched to type and shape)")
        p.add_argument("--dim", action="append", metavar="SYMBOL=VALUE",
                       help="value of a symbolic dimension for random inputs (default 1)")
        p.add_argument("--seed", type=int, default=0, help="seed of the random inputs")

    fmt = argparse.RawDescriptionHelpFormatter
    p_run = sub.add_parser("run", help="run a model (random inputs unless given)",
                           description="Run a model; print its outputs' summary and timing.",
                           epilog=EXAMPLES_RUN, formatter_class=fmt)
    common(p_run)
    inputs(p_run)
    p_run.add_argument("--threads", type=int, default=0, help="intra-op threads (0: auto)")
    p_run.add_argument("--repeat", type=int, default=10, help="timed runs after the first")
    p_run.add_argument("--profile-nodes", type=int, default=0, metavar="N",
                       help="then time each node of the C++ plan over --repeat runs and print "
                       "the N slowest (InferenceSession.profile_plan)")
    p_run.set_defaults(func=cmd_run)

    p_bench = sub.add_parser("bench", help="latency, throughput, memory vs onnxruntime/openvino",
                             description="Benchmark models on ferry and baselines, side by side.",
                             epilog=EXAMPLES_BENCH, formatter_class=fmt)
    common(p_bench, many=True)
    p_bench.add_argument("--dim", action="append", metavar="SYMBOL=VALUE",
                         help="value of a symbolic dimension (e.g. seq=128)")
    p_bench.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    p_bench.add_argument("--baseline", default="onnxruntime",
                         help="comma-separated: onnxruntime, openvino, or none "
                         "(default: onnxruntime)")
    p_bench.add_argument("--threads", default="0",
                         help="intra-op threads, comma-separated for several (0: auto)")
    p_bench.add_argument("--batch",
                         help="batch sizes for a symbolic leading dimension, e.g. 1,8,32")
    p_bench.add_argument("--warmup", type=int, default=3, help="untimed runs first (default 3)")
    p_bench.add_argument("--duration", type=float, default=5.0,
                         help="seconds of timed runs per runtime per configuration (default 5)")
    p_bench.add_argument("--min-runs", type=int, default=5,
                         help="at least this many timed runs each (default 5)")
    p_bench.add_argument("--out", metavar="DIR",
                         help="write bench.md, bench.json and PNG plots into DIR")
    p_bench.add_argument("--no-progress", action="store_true", help="no progress bar")
    p_bench.add_argument("--quiet", action="store_true", help="no progress bar, no notes")
    p_bench.set_defaults(func=cmd_bench)

    p_ins = sub.add_parser("inspect", help="opsets, ops, providers per node, fusions, memory plan",
                           description="What a session makes of a model.",
                           epilog=EXAMPLES_INSPECT, formatter_class=fmt)
    common(p_ins)
    p_ins.add_argument("--threads", type=int, default=0, help="intra-op threads (0: auto)")
    p_ins.add_argument("--dim", action="append", metavar="SYMBOL=VALUE",
                       help="value of a symbolic dimension for the run that makes the memory plan")
    p_ins.add_argument("--seed", type=int, default=0)
    p_ins.add_argument("--no-run", action="store_true",
                       help="do not run the model (no memory plan is shown)")
    p_ins.add_argument("--json", action="store_true", help="everything as JSON")
    p_ins.add_argument("--nodes", action="store_true",
                       help="list every node even for large models")
    p_ins.set_defaults(func=cmd_inspect)

    p_cmp = sub.add_parser("compare", help="first node where two runtimes disagree",
                           description="Compare every intermediate tensor of two runtimes.",
                           epilog=EXAMPLES_COMPARE, formatter_class=fmt)
    common(p_cmp)
    inputs(p_cmp)
    p_cmp.add_argument("--against", default="onnxruntime",
                       help="'onnxruntime' or a ferry provider list (default: onnxruntime)")
    p_cmp.add_argument("--rtol", type=float, default=1e-3, help="relative tolerance (1e-3)")
    p_cmp.add_argument("--atol", type=float, default=1e-4, help="absolute tolerance (1e-4)")
    p_cmp.add_argument("--threads", type=int, default=0, help="intra-op threads (0: auto)")
    p_cmp.add_argument("--json", action="store_true", help="the full report as JSON")
    p_cmp.set_defaults(func=cmd_compare)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from runtime.errors import FerryError

    if os.environ.get("FERRY_DEBUG"):
        return args.func(args)
    import warnings

    def one_line(message, category, filename, lineno, file=None, line=None):
        print(f"ferry: warning: {str(message).splitlines()[0]}", file=sys.stderr)

    try:
        with warnings.catch_warnings():
            warnings.showwarning = one_line
            return args.func(args)
    except CliError as exc:
        print(f"ferry: {exc}", file=sys.stderr)
        return 2
    except FerryError as exc:
        first = str(exc).splitlines()[0] if str(exc) else ""
        print(f"ferry: {type(exc).__name__}: {first}".rstrip(": "), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ferry: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - one line, never a traceback (FERRY_DEBUG=1 shows it)
        text = str(exc).strip().splitlines()
        print(f"ferry: {type(exc).__name__}: {text[0] if text else ''} "
              "(FERRY_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
