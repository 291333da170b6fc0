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

    def write(self) -> str:
        with self._lock:
            data = list(self.events)
        with open(self.path, "w") as f:
            json.dump(data, f)
        return self.path
