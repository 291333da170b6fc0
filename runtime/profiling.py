"""Chrome-trace profiling in onnxruntime's event format.

Each event is ``{"cat": "Node"|"Session", "name", "ph": "X", "ts", "dur", "pid", "tid",
"args": {"op_name", "provider", "input_type_shape", "output_type_shape"}}`` with times in
microseconds since the session started profiling. Open the file in chrome://tracing or Perfetto.
While profiling is on, CPU partitions run node by node so that every node is timed.
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

import numpy as np


def _type_shape(values) -> list[dict[str, list[int]]]:
    out = []
    for v in values:
        if isinstance(v, np.ndarray):
            out.append({str(v.dtype): list(v.shape)})
        elif v is not None:
            out.append({type(v).__name__: []})
    return out


class Profiler:
    def __init__(self, prefix: str):
        stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
        self.path = os.path.abspath(f"{prefix}_{stamp}_{os.getpid()}_{id(self):x}.json")
        self.start = time.perf_counter_ns()
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def now(self) -> int:
        return time.perf_counter_ns()

    def _us(self, t: int) -> float:
        return (t - self.start) / 1000.0

    def add(self, cat: str, name: str, t0: int, args: dict | None = None) -> None:
        t1 = time.perf_counter_ns()
        ev = {"cat": cat, "pid": os.getpid(), "tid": threading.get_ident() % 100000,
              "dur": round((t1 - t0) / 1000.0, 3), "ts": round(self._us(t0), 3), "ph": "X",
              "name": name, "args": args or {}}
        with self._lock:
            self.events.append(ev)

    def node_event(self, node, provider: str, t0: int, inputs, outputs) -> None:
        self.add("Node", f"{node.name}_kernel_time", t0, {
            "op_name": node.op_type, "provider": provider,
            "input_type_shape": _type_shape(inputs),
            "output_type_shape": _type_shape(outputs)})

    def summary(self, boundary_copies: int = 0, peak_bytes: int = 0) -> dict[str, Any]:
        """Per op type and per provider: total microseconds, calls, share of node time."""
        with self._lock:
            nodes = [e for e in self.events if e["cat"] == "Node"]
            runs = sum(1 for e in self.events if e["name"] == "model_run")
        total = sum(e["dur"] for e in nodes) or 1.0

        def table(key: str) -> list[dict[str, Any]]:
            acc: dict[str, list[float]] = {}
            for e in nodes:
                k = e["args"].get(key, "?")
                a = acc.setdefault(k, [0.0, 0])
                a[0] += e["dur"]
                a[1] += 1
            rows = [{"name": k, "total_us": round(v[0], 1), "calls": v[1],
                     "share": round(v[0] / total, 4)} for k, v in acc.items()]
            return sorted(rows, key=lambda r: -r["total_us"])

        by_op, by_provider = table("op_name"), table("provider")
        lines = [f"{'op type':<28}{'total ms':>10}{'calls':>8}{'share':>8}"]
        lines += [f"{r['name']:<28}{r['total_us'] / 1000:>10.2f}{r['calls']:>8}"
                  f"{r['share']:>8.1%}" for r in by_op]
        lines += ["", f"{'provider':<28}{'total ms':>10}{'calls':>8}{'share':>8}"]
        lines += [f"{r['name']:<28}{r['total_us'] / 1000:>10.2f}{r['calls']:>8}"
                  f"{r['share']:>8.1%}" for r in by_provider]
        lines += ["", f"runs {runs}, boundary copies per run {boundary_copies}, "
                      f"peak arena bytes {peak_bytes}"]
        return {"runs": runs, "by_op": by_op, "by_provider": by_provider,
                "boundary_copies": boundary_copies, "peak_bytes": peak_bytes,
                "table": "\n".join(lines)}

    def write(self) -> str:
        with self._lock:
            data = list(self.events)
        with open(self.path, "w") as f:
            json.dump(data, f)
        return self.path
