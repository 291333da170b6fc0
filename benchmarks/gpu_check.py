"""The real GPU check of the CUDA and TensorRT providers, in one command (no network):

    python benchmarks/gpu_check.py OUT_DIR [--budget-s 480] [--runs 20]

Steps, each guarded (a failure is recorded, the next step still runs) and each within what is
left of the time budget (default 8 minutes):

1. environment: CuPy, CUDA device, cuDNN, TensorRT, torch, onnxruntime providers;
2. the provider tests for real (pytest with FERRY_CUDA_REAL=1: no emulation) over
   tests/providers/cuda (minus the conformance file, run as step 3), tests/runtime/
   test_iobinding.py and tests/providers/tensorrt;
3. the onnx node conformance cases the CUDA provider claims, on the GPU, case by case;
4. a small model zoo (the onnx package's ``light`` models): ferry-cuda vs onnxruntime-CPU
   (max error and latency), the IOBinding path with device inputs, a torch-CUDA tensor fed
   through DLPack, and torch-CUDA latency of the same architecture (torchvision, random
   weights) when torch sees a GPU; TensorRT as well when it is available.

Writes OUT_DIR/gpu_check.json, OUT_DIR/gpu_check.md, OUT_DIR/pytest_junit.xml and
OUT_DIR/pytest.log. Exit status 0 when every step ran without failures.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

LIGHT = ["light_squeezenet", "light_shufflenet", "light_resnet50", "light_inception_v1",
         "light_inception_v2", "light_densenet121", "light_bvlc_alexnet", "light_zfnet512",
         "light_vgg19"]
# torchvision constructors of the same architectures (for a latency reference only).
TORCHVISION = {"light_squeezenet": "squeezenet1_0", "light_resnet50": "resnet50",
               "light_densenet121": "densenet121", "light_bvlc_alexnet": "alexnet",
               "light_vgg19": "vgg19", "light_inception_v1": "googlenet"}


EMULATE = False  # --emulate: the harness's own self-test without a GPU


class Budget:
    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()


class BudgetExceeded(Exception):
    """Raised by the watchdog alarm inside a step that overran the whole budget."""


def _watchdog(seconds: float) -> None:
    """A hard stop: a step still running past the budget is interrupted, the report is still
    written (only where SIGALRM exists)."""
    import signal

    if not hasattr(signal, "SIGALRM"):
        return

    def on_alarm(signum, frame):
        raise BudgetExceeded(f"the time budget of {seconds:.0f} s ran out")

    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(max(1, int(seconds)))


def _step(results: dict, name: str, fn, *args, budget: Budget | None = None):
    t0 = time.perf_counter()
    if budget is not None and budget.left() < 15:
        results[name] = {"status": "not run (time budget)", "seconds": 0}
        print(f"[gpu_check] {name}: not run (time budget)", flush=True)
        return
    try:
        out = fn(*args)
        results[name] = {"status": "ok", **(out or {})}
    except Exception as exc:
        results[name] = {"status": "error", "error": f"{type(exc).__name__}: {exc}",
                         "traceback": traceback.format_exc(limit=8)}
    results[name]["seconds"] = round(time.perf_counter() - t0, 2)
    print(f"[gpu_check] {name}: {results[name]['status']} ({results[name]['seconds']} s)",
          flush=True)


# ---- 1. environment ------------------------------------------------------------------------

def environment() -> dict:
    env: dict = {"python": sys.version.split()[0], "platform": platform.platform()}
    try:
        import cupy

        env["cupy"] = cupy.__version__
        env["cuda_runtime"] = cupy.cuda.runtime.runtimeGetVersion()
        env["cuda_driver"] = cupy.cuda.runtime.driverGetVersion()
        n = cupy.cuda.runtime.getDeviceCount()
        env["devices"] = []
        for i in range(n):
            p = cupy.cuda.runtime.getDeviceProperties(i)
            name = p.get("name", b"")
            env["devices"].append({"id": i, "name": name.decode() if isinstance(name, bytes)
                                   else str(name), "memory_bytes": int(p.get("totalGlobalMem", 0))})
        try:
            env["cudnn"] = int(cupy.cuda.cudnn.getVersion())
        except Exception as exc:
            env["cudnn"] = f"unavailable ({type(exc).__name__})"
    except Exception as exc:
        env["cupy"] = f"not importable: {type(exc).__name__}: {exc}"
    for mod in ("tensorrt", "torch", "torchvision", "onnxruntime", "onnx", "numpy"):
        try:
            m = __import__(mod)
            env[mod] = getattr(m, "__version__", "?")
        except Exception as exc:
            env[mod] = f"not importable ({type(exc).__name__})"
    try:
        import torch

        env["torch_cuda"] = bool(torch.cuda.is_available())
    except Exception:
        env["torch_cuda"] = False
    try:
        import onnxruntime

        env["onnxruntime_providers"] = onnxruntime.get_available_providers()
    except Exception:
        pass
    import runtime

    env["ferry_available"] = runtime.get_available_providers()
    env["ferry_unavailable"] = runtime.get_unavailable_providers()
    return env


# ---- 2. pytest on the GPU ------------------------------------------------------------------

def provider_tests(out_dir: str, budget: Budget) -> dict:
    timeout = max(30, min(240, budget.left() - 200))
    junit = os.path.join(out_dir, "pytest_junit.xml")
    import importlib.util

    xdist = ["-n", "0"] if importlib.util.find_spec("xdist") is not None else []
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *xdist,
           "tests/providers/cuda", "tests/runtime/test_iobinding.py", "tests/providers/tensorrt",
           "--ignore", "tests/providers/cuda/test_conformance_emulated.py",
           f"--junitxml={junit}", "-o", "addopts="]
    env = dict(os.environ, FERRY_CUDA_REAL="1")
    env.pop("FERRY_CUDA_EMULATION", None)
    if EMULATE:
        env = dict(os.environ, FERRY_CUDA_EMULATION="1")
        env.pop("FERRY_CUDA_REAL", None)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (os.path.join(ROOT, "build", "lead"), ROOT,
                                                    env.get("PYTHONPATH", "")) if p)
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=timeout, check=False)
        log, rc, timed_out = proc.stdout + proc.stderr, proc.returncode, False
    except subprocess.TimeoutExpired as exc:
        log = (exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) \
            else (exc.stdout or "")
        rc, timed_out = None, True
    with open(os.path.join(out_dir, "pytest.log"), "w") as f:
        f.write(log)
    summary = _junit_summary(junit)
    tail = log.strip().splitlines()[-1] if log.strip() else ""
    return {"returncode": rc, "timed_out": timed_out, "timeout_s": timeout,
            "summary_line": tail, **summary}


def _junit_summary(path: str) -> dict:
    try:
        import xml.etree.ElementTree as ET

        root = ET.parse(path).getroot()
        suites = [root] if root.tag == "testsuite" else list(root)
        tot = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        failed = []
        for s in suites:
            for k in tot:
                tot[k] += int(s.get(k, 0))
            for case in s.iter("testcase"):
                if case.find("failure") is not None or case.find("error") is not None:
                    failed.append(f"{case.get('classname')}::{case.get('name')}")
        tot["failed_tests"] = failed[:200]
        return tot
    except Exception as exc:
        return {"junit": f"unreadable ({type(exc).__name__})"}


# ---- 3. conformance ------------------------------------------------------------------------

def conformance(budget: Budget) -> dict:
    from tests.providers.cuda.cases import ORT_DISAGREES, check_case, claimed_cases

    cases = [c for c in claimed_cases() if c.name not in ORT_DISAGREES]
    limit = budget.left() - 150  # keep time for the model zoo
    t_end = time.monotonic() + max(limit, 10)
    passed, failed, not_run = [], {}, []
    for case in cases:
        if time.monotonic() > t_end:
            not_run.append(case.name)
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                check_case(case)
            passed.append(case.name)
        except Exception as exc:
            failed[case.name] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}" \
                if str(exc) else type(exc).__name__
    return {"claimed": len(cases), "excluded_ort_disagrees": sorted(ORT_DISAGREES),
            "passed": len(passed), "failed": failed,
            "not_run_time_budget": len(not_run)}


# ---- 4. model zoo --------------------------------------------------------------------------

def _light_path(name: str) -> str:
    import onnx

    return os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light",
                        name + ".onnx")


def _median_ms(fn, runs: int, sync=None) -> float:
    fn()
    if sync:
        sync()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append((time.perf_counter() - t0) * 1e3)
    return round(statistics.median(times), 3)


def zoo(budget: Budget, runs: int) -> dict:
    import numpy as np
    import onnxruntime as ort

    import runtime
    from runtime import InferenceSession, Tensor

    trt_ok = "TensorrtExecutionProvider" in runtime.get_available_providers()
    try:
        import torch

        torch_cuda = torch.cuda.is_available() and not EMULATE
    except Exception:
        torch, torch_cuda = None, False
    models = {}
    for name in LIGHT:
        if budget.left() < 20:
            models[name] = {"status": "not run (time budget)"}
            continue
        path = _light_path(name)
        if not os.path.exists(path):
            models[name] = {"status": "missing"}
            continue
        r: dict = {}
        models[name] = r
        try:
            t0 = time.perf_counter()
            sess = InferenceSession(path, providers=["cuda", "cpu"])
            r["create_s"] = round(time.perf_counter() - t0, 3)
            ex = sess.explain()
            r["nodes_on_cuda"] = sum(1 for n in ex["nodes"] if n["provider"] == "cuda")
            r["nodes_total"] = len(ex["nodes"])
            r["ops_not_on_cuda"] = sorted({n["op"] for n in ex["nodes"]
                                           if n["provider"] != "cuda"})
            rng = np.random.default_rng(0)
            feeds = {a.name: rng.standard_normal([d if isinstance(d, int) else 1
                                                  for d in a.shape]).astype(np.float32)
                     for a in sess.get_inputs()}
            got = sess.run(None, feeds)
            oso = ort.SessionOptions()
            oso.log_severity_level = 3
            osess = ort.InferenceSession(path, oso, providers=["CPUExecutionProvider"])
            want = osess.run(None, feeds)
            r["max_abs_err_vs_ort_cpu"] = float(max(np.max(np.abs(g - w))
                                                    for g, w in zip(got, want)))
            r["max_rel_err_vs_ort_cpu"] = float(max(
                np.max(np.abs(g - w)) / (np.max(np.abs(w)) + 1e-12) for g, w in zip(got, want)))
            r["ok"] = bool(all(np.allclose(g, w, rtol=1e-3, atol=1e-4)
                               for g, w in zip(got, want)))
            sync = None
            if not EMULATE:
                import cupy

                sync = cupy.cuda.get_current_stream().synchronize
            r["ferry_cuda_ms"] = _median_ms(lambda s=sess, f=feeds: s.run(None, f), runs)
            r["ort_cpu_ms"] = _median_ms(lambda s=osess, f=feeds: s.run(None, f),
                                         max(3, runs // 4))
            # IOBinding: inputs already on the GPU, outputs left there.
            b = sess.io_binding()
            for k, v in feeds.items():
                b.bind_input(k, Tensor.ortvalue_from_numpy(v, "cuda", 0))
            for o in sess.get_outputs():
                b.bind_output(o.name, "cuda")
            r["ferry_cuda_iobinding_ms"] = _median_ms(
                lambda s=sess, bb=b: s.run_with_iobinding(bb), runs, sync)
            np.testing.assert_allclose(b.copy_outputs_to_cpu()[0], got[0], rtol=1e-4,
                                       atol=1e-5)
            r["copies_per_partition0"] = sess.explain()["partitions"][0]["details"].get(
                "copies")
            if torch_cuda:
                tfeeds = {k: torch.from_numpy(v).cuda() for k, v in feeds.items()}
                tout = sess.run(None, tfeeds)  # zero-copy DLPack / CUDA array interface feeds
                r["torch_feed_matches"] = bool(np.allclose(tout[0], got[0], rtol=1e-5,
                                                           atol=1e-6))
                r["torch_cuda_ms"] = _torchvision_ms(torch, name, feeds, runs)
            if trt_ok and budget.left() > 60:
                r["tensorrt"] = _trt_model(path, feeds, want, runs)
        except Exception as exc:
            r["status"] = "error"
            r["error"] = f"{type(exc).__name__}: {exc}"
            r["traceback"] = traceback.format_exc(limit=6)
    return {"models": models}


def _torchvision_ms(torch, name, feeds, runs):
    arch = TORCHVISION.get(name)
    if arch is None:
        return None
    try:
        import torchvision

        kwargs = {"aux_logits": False, "init_weights": False} if arch == "googlenet" else {}
        model = getattr(torchvision.models, arch)(weights=None, **kwargs).cuda().eval()
        x = torch.from_numpy(next(iter(feeds.values()))).cuda()
        with torch.no_grad():
            return _median_ms(lambda: model(x), runs, torch.cuda.synchronize)
    except Exception as exc:
        return f"error: {type(exc).__name__}: {exc}"


def _trt_model(path, feeds, want, runs):
    import numpy as np

    from runtime import InferenceSession

    out: dict = {}
    try:
        t0 = time.perf_counter()
        sess = InferenceSession(path, providers=["tensorrt", "cuda", "cpu"])
        out["create_s"] = round(time.perf_counter() - t0, 2)
        ex = sess.explain()
        out["nodes_on_tensorrt"] = sum(1 for n in ex["nodes"] if n["provider"] == "tensorrt")
        got = sess.run(None, feeds)
        out["max_abs_err_vs_ort_cpu"] = float(max(np.max(np.abs(g - w))
                                                  for g, w in zip(got, want)))
        out["ms"] = _median_ms(lambda: sess.run(None, feeds), runs)
    except Exception as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
    return out


# ---- report --------------------------------------------------------------------------------

def write_markdown(path: str, res: dict) -> None:
    lines = ["# ferry GPU check", ""]
    if res.get("note"):
        lines += [f"**{res['note']}**", ""]
    env = res.get("environment", {})
    devs = ", ".join(d["name"] for d in env.get("devices", [])) or "none"
    lines += [f"- devices: {devs}", f"- CuPy: {env.get('cupy')}, cuDNN: {env.get('cudnn')}",
              f"- TensorRT: {env.get('tensorrt')}, torch: {env.get('torch')} "
              f"(cuda: {env.get('torch_cuda')})",
              f"- ferry providers available: {env.get('ferry_available')}", ""]
    t = res.get("provider_tests", {})
    lines += ["## Provider tests (real GPU)", "",
              f"status {t.get('status')}: {t.get('tests', '?')} tests, "
              f"{t.get('failures', '?')} failures, {t.get('errors', '?')} errors, "
              f"{t.get('skipped', '?')} skipped; timed out: {t.get('timed_out')}", ""]
    for name in t.get("failed_tests", [])[:50]:
        lines.append(f"- FAILED {name}")
    c = res.get("conformance", {})
    lines += ["", "## Conformance cases claimed by the CUDA provider", "",
              f"status {c.get('status')}: claimed {c.get('claimed')}, passed {c.get('passed')}, "
              f"failed {len(c.get('failed', {}))}, not run (budget) "
              f"{c.get('not_run_time_budget')}", ""]
    for name, why in list(c.get("failed", {}).items())[:80]:
        lines.append(f"- {name}: {why}")
    z = res.get("zoo", {})
    lines += ["", "## Model zoo (onnx light models)", "",
              "| model | cuda nodes | ok vs ORT-CPU | max abs err | ferry-cuda ms | "
              "iobinding ms | ORT-CPU ms | torch-CUDA ms | TensorRT ms |",
              "|---|---|---|---|---|---|---|---|---|"]
    for name, r in z.get("models", {}).items():
        if "error" in r or "nodes_total" not in r:
            lines.append(f"| {name} | {r.get('status', '')} {r.get('error', '')[:80]} "
                         "| | | | | | | |")
            continue
        trt = r.get("tensorrt", {})
        lines.append(
            f"| {name} | {r['nodes_on_cuda']}/{r['nodes_total']} | {r.get('ok')} | "
            f"{r.get('max_abs_err_vs_ort_cpu', ''):.3g} | {r.get('ferry_cuda_ms')} | "
            f"{r.get('ferry_cuda_iobinding_ms')} | {r.get('ort_cpu_ms')} | "
            f"{r.get('torch_cuda_ms', '')} | {trt.get('ms', trt.get('error', ''))} |")
    lines += ["", f"total {res.get('total_seconds')} s", ""]
    with open(path, "w") as f:
        f.write("\n".join(lines))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir")
    ap.add_argument("--budget-s", type=float, default=480.0, help="total time budget")
    ap.add_argument("--runs", type=int, default=20, help="timed runs per model")
    ap.add_argument("--emulate", action="store_true",
                    help="self-test of this script on a machine without a GPU: the CUDA "
                         "provider in host emulation (the results say nothing about a GPU)")
    ap.add_argument("--skip", default="", help="comma-separated steps to skip: "
                                               "tests,conformance,zoo")
    args = ap.parse_args(argv)
    os.makedirs(args.out_dir, exist_ok=True)
    os.chdir(ROOT)
    logging.getLogger("ferry").setLevel(logging.ERROR)
    global EMULATE
    EMULATE = bool(args.emulate)
    if EMULATE:
        os.environ["FERRY_CUDA_EMULATION"] = "1"
    else:
        os.environ.pop("FERRY_CUDA_EMULATION", None)  # the real check never emulates
    budget = Budget(args.budget_s)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    t0 = time.perf_counter()
    res: dict = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    _step(res, "environment", environment)
    res["emulated"] = EMULATE
    if EMULATE:
        res["note"] = "--emulate: host emulation self-test, NOT a GPU result"
    elif not res["environment"].get("devices"):
        res["note"] = "no CUDA device visible to CuPy: the GPU steps did not run"
        skip |= {"tests", "conformance", "zoo"}
    _watchdog(args.budget_s + 20)
    if "tests" not in skip:
        _step(res, "provider_tests", provider_tests, args.out_dir, budget, budget=budget)
    if "conformance" not in skip:
        _step(res, "conformance", conformance, budget, budget=budget)
    if "zoo" not in skip:
        _step(res, "zoo", zoo, budget, args.runs, budget=budget)
    try:
        import signal

        signal.alarm(0)
    except (ImportError, AttributeError):
        pass
    res["total_seconds"] = round(time.perf_counter() - t0, 1)

    def _clean(o):
        if isinstance(o, dict):
            return {str(k): _clean(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [_clean(v) for v in o]
        if isinstance(o, (str, int, float, bool)) or o is None:
            return o
        return str(o)

    with open(os.path.join(args.out_dir, "gpu_check.json"), "w") as f:
        json.dump(_clean(res), f, indent=2)
    write_markdown(os.path.join(args.out_dir, "gpu_check.md"), res)
    print(f"[gpu_check] wrote {args.out_dir}/gpu_check.json and gpu_check.md", flush=True)
    t = res.get("provider_tests", {})
    c = res.get("conformance", {})
    bad = any(res.get(s, {}).get("status") == "error" for s in ("provider_tests",
                                                                 "conformance", "zoo"))
    bad = bad or bool(t.get("failures") or t.get("errors") or t.get("timed_out"))
    bad = bad or bool(c.get("failed")) or not (res["environment"].get("devices") or EMULATE)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
