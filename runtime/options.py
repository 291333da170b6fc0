"""Session and run options, named and shaped as in onnxruntime."""

from __future__ import annotations

import enum
import json
import math
import os
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from runtime.errors import InvalidArgument


class GraphOptimizationLevel(enum.IntEnum):
    """How much the graph optimizer may rewrite (ORT's enum names and values)."""

    ORT_DISABLE_ALL = 0
    ORT_ENABLE_BASIC = 1
    ORT_ENABLE_EXTENDED = 2
    ORT_ENABLE_ALL = 99


class ExecutionMode(enum.IntEnum):
    ORT_SEQUENTIAL = 0
    ORT_PARALLEL = 1


def _cgroup_cpu_limit() -> float | None:
    """CPUs granted by a container's CPU quota (cgroup v2 cpu.max or v1 cfs), if any."""
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:
            quota, period = f.read().split()[:2]
        if quota != "max":
            return int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        with open("/sys/fs/cgroup/cpu/cpu.cfs_quota_us") as f:
            quota = int(f.read())
        with open("/sys/fs/cgroup/cpu/cpu.cfs_period_us") as f:
            period = int(f.read())
        if quota > 0 and period > 0:
            return quota / period
    except (OSError, ValueError):
        pass
    return None


def default_thread_count() -> int:
    """Threads we may use: CPU affinity of this process, capped by a container's CPU quota.

    ``os.cpu_count()`` reports the host's cores, which oversubscribes inside containers and
    under taskset; onnxruntime makes the same choice.
    """
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    quota = _cgroup_cpu_limit()
    if quota is not None:
        n = min(n, max(1, math.ceil(quota)))
    return max(1, n)


def _check_int(name: str, value: Any, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidArgument(f"SessionOptions.{name} must be an integer >= {minimum}, got {value!r}")
    return value


# Config entry holding declared input shape ranges as JSON (the same data as
# SessionOptions.set_input_shape_range), for tools that only pass string entries.
SHAPE_RANGES_CONFIG_KEY = "session.input_shape_ranges"
# Config entry: "0" skips the run at the largest declared shapes at session creation.
PLAN_AT_CREATION_CONFIG_KEY = "session.input_shape_ranges.plan_at_creation"
# onnxruntime's entry: "0" makes idle pool workers sleep at once instead of spinning (20 ms)
# for the next job. The pool is the process's: the last session created sets it.
ALLOW_SPINNING_CONFIG_KEY = "session.intra_op.allow_spinning"


@dataclass(frozen=True)
class ShapeRange:
    """The shapes one input may take: ``min <= shape <= max`` in every dimension; ``opt`` is
    the shape compiled providers (TensorRT) tune for."""

    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]

    def as_dict(self) -> dict[str, list[int]]:
        return {"min": list(self.min), "opt": list(self.opt), "max": list(self.max)}

    def contains(self, shape) -> bool:
        return len(shape) == len(self.min) and all(
            lo <= int(d) <= hi for lo, d, hi in zip(self.min, shape, self.max))


def _check_dim(what: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise InvalidArgument(f"{what} must be a non-negative integer, got {value!r}")
    return int(value)


def _check_shape(what: str, shape: Any) -> tuple[int, ...]:
    if isinstance(shape, (str, bytes)) or not hasattr(shape, "__iter__"):
        raise InvalidArgument(f"{what} must be a list of integers, got {shape!r}")
    return tuple(_check_dim(f"{what}[{i}]", d) for i, d in enumerate(shape))


def make_shape_range(name: str, min_shape: Any, max_shape: Any,
                     opt_shape: Any = None) -> ShapeRange:
    """A validated :class:`ShapeRange` (same rank, ``min <= opt <= max``); ``opt`` defaults
    to ``max``."""
    if not isinstance(name, str) or not name:
        raise InvalidArgument(f"an input shape range needs the input's name, got {name!r}")
    lo = _check_shape(f"min shape of input '{name}'", min_shape)
    hi = _check_shape(f"max shape of input '{name}'", max_shape)
    mid = hi if opt_shape is None else _check_shape(f"opt shape of input '{name}'", opt_shape)
    if not len(lo) == len(mid) == len(hi):
        raise InvalidArgument(
            f"shape range of input '{name}': min {list(lo)}, opt {list(mid)} and max "
            f"{list(hi)} must have the same rank")
    for axis, (a, b, c) in enumerate(zip(lo, mid, hi)):
        if not a <= b <= c:
            raise InvalidArgument(
                f"shape range of input '{name}': dimension {axis} needs min <= opt <= max, "
                f"got {a} / {b} / {c} (min {list(lo)}, opt {list(mid)}, max {list(hi)})")
    return ShapeRange(lo, mid, hi)


def _parse_ranges_json(text: str) -> dict[str, ShapeRange]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InvalidArgument(f"session config entry '{SHAPE_RANGES_CONFIG_KEY}' is not JSON "
                              f"({exc}); write {{\"input\": {{\"min\": [1, 3], \"max\": "
                              "[8, 3]}}") from None
    if not isinstance(data, dict):
        raise InvalidArgument(f"session config entry '{SHAPE_RANGES_CONFIG_KEY}' must be a JSON "
                              "object of input name -> {\"min\", \"max\", \"opt\"}")
    out = {}
    for name, spec in data.items():
        if not isinstance(spec, dict) or not {"min", "max"} <= set(spec) or \
                set(spec) - {"min", "max", "opt"}:
            raise InvalidArgument(
                f"session config entry '{SHAPE_RANGES_CONFIG_KEY}': input '{name}' needs an "
                f"object with keys min, max and optionally opt, got {spec!r}")
        out[name] = make_shape_range(name, spec["min"], spec["max"], spec.get("opt"))
    return out


class SessionOptions:
    """Options for :class:`runtime.InferenceSession` (onnxruntime's names).

    ``intra_op_num_threads = 0`` means "choose": the CPUs this process may use (affinity and
    container quota respected). ``strict_providers = True`` turns off the fallback chain: the
    session fails, naming every node, when the providers asked for cannot run the whole graph.
    ``memory_limit_bytes`` caps any single tensor the session would allocate (0: no cap beyond
    a default guard of half the machine's memory).

    Input shapes: :meth:`add_free_dimension_override_by_name` /
    :meth:`add_free_dimension_override_by_denotation` fix a symbolic dimension for the whole
    session (as in onnxruntime); :meth:`set_input_shape_range` declares the shapes an input
    may take (validated against the model at creation, enforced at every run, used to plan
    memory and to compile OpenVINO / TensorRT partitions for the range).
    """

    def __init__(self) -> None:
        self.graph_optimization_level = GraphOptimizationLevel.ORT_ENABLE_ALL
        self.intra_op_num_threads = 0
        self.inter_op_num_threads = 0
        self.execution_mode = ExecutionMode.ORT_SEQUENTIAL
        self.enable_profiling = False
        self.profile_file_prefix = "ferry_profile"
        self.optimized_model_filepath = ""
        self.log_severity_level = 2
        self.log_verbosity_level = 0
        self.logid = ""
        self.enable_mem_pattern = True
        self.enable_cpu_mem_arena = True
        self.enable_mem_reuse = True
        self.use_deterministic_compute = False
        self.strict_providers = False
        self.memory_limit_bytes = 0
        self._config: dict[str, str] = {}
        self._free_dims_by_name: dict[str, int] = {}
        self._free_dims_by_denotation: dict[str, int] = {}
        self._shape_ranges: dict[str, ShapeRange] = {}

    # --- input shapes ----------------------------------------------------------------------
    def add_free_dimension_override_by_name(self, dim_name: str, dim_value: int) -> None:
        """Every dimension named ``dim_name`` (a symbolic dim of the model's inputs) is
        ``dim_value`` for the whole session (onnxruntime's method)."""
        if not isinstance(dim_name, str) or not dim_name:
            raise InvalidArgument(f"dimension name must be a non-empty string, got {dim_name!r}")
        self._free_dims_by_name[dim_name] = _check_dim(
            f"free dimension override '{dim_name}'", dim_value)

    def add_free_dimension_override_by_denotation(self, dim_denotation: str,
                                                  dim_value: int) -> None:
        """Every input dimension with this denotation (``DATA_BATCH``, ``DATA_CHANNEL``...)
        is ``dim_value`` for the whole session (onnxruntime's method)."""
        if not isinstance(dim_denotation, str) or not dim_denotation:
            raise InvalidArgument("dimension denotation must be a non-empty string, got "
                                  f"{dim_denotation!r}")
        self._free_dims_by_denotation[dim_denotation] = _check_dim(
            f"free dimension override '{dim_denotation}'", dim_value)

    @property
    def free_dimension_overrides(self) -> dict[str, dict[str, int]]:
        """The overrides given so far: ``{"by_name": {...}, "by_denotation": {...}}``."""
        return {"by_name": dict(self._free_dims_by_name),
                "by_denotation": dict(self._free_dims_by_denotation)}

    def set_input_shape_range(self, name: str, min_shape, max_shape, opt_shape=None) -> None:
        """Declare that input ``name`` takes shapes between ``min_shape`` and ``max_shape``
        (per dimension, inclusive); ``opt_shape`` (default: ``max_shape``) is the shape
        TensorRT tunes for. Dimensions with min == max become static. A later call for the
        same input replaces the earlier one."""
        self._shape_ranges[name] = make_shape_range(name, min_shape, max_shape, opt_shape)

    def clear_input_shape_ranges(self) -> None:
        self._shape_ranges.clear()
        self._config.pop(SHAPE_RANGES_CONFIG_KEY, None)

    def get_input_shape_ranges(self) -> dict[str, ShapeRange]:
        """Declared ranges: name -> :class:`ShapeRange` (the config entry's ones included)."""
        out = {}
        text = self._config.get(SHAPE_RANGES_CONFIG_KEY)
        if text:
            out.update(_parse_ranges_json(text))
        out.update(self._shape_ranges)
        return out

    # --- validated properties -----------------------------------------------------------
    @property
    def graph_optimization_level(self) -> GraphOptimizationLevel:
        return self._graph_optimization_level

    @graph_optimization_level.setter
    def graph_optimization_level(self, value) -> None:
        try:
            self._graph_optimization_level = GraphOptimizationLevel(value)
        except ValueError:
            valid = ", ".join(f"{m.name}={m.value}" for m in GraphOptimizationLevel)
            raise InvalidArgument(
                f"graph_optimization_level {value!r} is not one of: {valid}") from None

    @property
    def execution_mode(self) -> ExecutionMode:
        return self._execution_mode

    @execution_mode.setter
    def execution_mode(self, value) -> None:
        try:
            self._execution_mode = ExecutionMode(value)
        except ValueError:
            raise InvalidArgument(
                f"execution_mode {value!r} is not ORT_SEQUENTIAL or ORT_PARALLEL") from None

    @property
    def intra_op_num_threads(self) -> int:
        return self._intra

    @intra_op_num_threads.setter
    def intra_op_num_threads(self, value) -> None:
        self._intra = _check_int("intra_op_num_threads", value)

    @property
    def inter_op_num_threads(self) -> int:
        return self._inter

    @inter_op_num_threads.setter
    def inter_op_num_threads(self, value) -> None:
        self._inter = _check_int("inter_op_num_threads", value)

    @property
    def log_severity_level(self) -> int:
        return self._log_severity

    @log_severity_level.setter
    def log_severity_level(self, value) -> None:
        value = _check_int("log_severity_level", value)
        if value > 4:
            raise InvalidArgument("log_severity_level must be 0 (verbose) .. 4 (fatal)")
        self._log_severity = value

    @property
    def memory_limit_bytes(self) -> int:
        return self._memory_limit

    @memory_limit_bytes.setter
    def memory_limit_bytes(self, value) -> None:
        self._memory_limit = _check_int("memory_limit_bytes", value)

    # --- ORT's free-form configuration entries --------------------------------------------
    def add_session_config_entry(self, key: str, value: str) -> None:
        key, value = str(key), str(value)
        if key == SHAPE_RANGES_CONFIG_KEY:
            _parse_ranges_json(value)  # refuse a bad declaration here, not at creation
        elif key in (PLAN_AT_CREATION_CONFIG_KEY, ALLOW_SPINNING_CONFIG_KEY) and value not in (
                "0", "1"):
            raise InvalidArgument(f"session config entry '{key}' must be '0' or '1', got "
                                  f"{value!r}")
        self._config[key] = value

    def get_session_config_entry(self, key: str) -> str:
        if key not in self._config:
            raise InvalidArgument(f"session config entry '{key}' is not set")
        return self._config[key]

    def resolved_intra_op_threads(self) -> int:
        return self.intra_op_num_threads or default_thread_count()

    def effective_memory_limit(self) -> int:
        """Largest single tensor we agree to allocate, in bytes."""
        if self.memory_limit_bytes:
            return self.memory_limit_bytes
        try:
            total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            total = 16 << 30
        return total // 2

    def __repr__(self) -> str:
        fields = ("graph_optimization_level", "intra_op_num_threads", "inter_op_num_threads",
                  "execution_mode", "enable_profiling", "strict_providers")
        inner = ", ".join(f"{f}={getattr(self, f)!r}" for f in fields)
        return f"SessionOptions({inner})"


class RunOptions:
    """Per-call options of :meth:`InferenceSession.run` (onnxruntime's names).

    Setting ``terminate = True`` from another thread stops a run in progress with
    :class:`runtime.errors.RunCancelled` before its next node or kernel step (also inside a
    C++ plan). ``timeout_s`` (ferry's) bounds one run's time, checked at the same points.
    """

    def __init__(self) -> None:
        self.log_severity_level = 2
        self.log_verbosity_level = 0
        self.logid = ""
        self.run_tag = ""
        self.timeout_s: float | None = None
        self.only_execute_path_to_fetches = False
        self._terminate = threading.Event()
        # The same flag as one byte the C++ plan loop reads between steps.
        self._terminate_flag = np.zeros(1, np.uint8)
        self._config: dict[str, str] = {}

    @property
    def terminate(self) -> bool:
        return self._terminate.is_set()

    @terminate.setter
    def terminate(self, value: bool) -> None:
        if value:
            self._terminate.set()
            self._terminate_flag[0] = 1
        else:
            self._terminate.clear()
            self._terminate_flag[0] = 0

    @property
    def log_tag(self) -> str:
        return self.run_tag

    @log_tag.setter
    def log_tag(self, value: str) -> None:
        self.run_tag = value

    def add_run_config_entry(self, key: str, value: str) -> None:
        self._config[str(key)] = str(value)

    def get_run_config_entry(self, key: str) -> str:
        if key not in self._config:
            raise InvalidArgument(f"run config entry '{key}' is not set")
        return self._config[key]
