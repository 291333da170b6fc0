"""Runs the partitions of a session in order and moves tensors across devices at their edges."""

from __future__ import annotations

import time
from typing import Any

from runtime import ir
from runtime.errors import FerryError, RunCancelled, RuntimeException
from runtime.partition import Partitioning
from runtime.tensor import is_device_value, move_value, to_host_value


class RunState:
    """What one run carries: options (terminate flag) and the profiler, if any."""

    def __init__(self, run_options=None, profiler=None, rng=None):
        self.run_options = run_options
        self.profiler = profiler
        self.rng = rng
        timeout = getattr(run_options, "timeout_s", None) if run_options is not None else None
        self.deadline = time.monotonic() + float(timeout) if timeout else None

    def check_cancelled(self) -> None:
        """Raise RunCancelled when terminate was set or the run's timeout passed (checked
        between partitions, between nodes and in every loop iteration)."""
        ro = self.run_options
        if ro is not None and ro.terminate:
            raise RunCancelled("the run was cancelled (RunOptions.terminate was set)")
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise RunCancelled(f"the run exceeded its timeout of {ro.timeout_s} s")

    def plan_control(self) -> dict:
        """Keyword arguments for ferry_kernels.Plan.run: the terminate flag and the time left,
        which the C++ plan loop checks before every step."""
        ro = self.run_options
        control = {}
        flag = getattr(ro, "_terminate_flag", None)
        if flag is not None:
            control["cancel"] = flag
        if self.deadline is not None:
            control["timeout_s"] = max(0.0, self.deadline - time.monotonic())
        return control


class Executor:
    def __init__(self, graph: ir.Graph, partitioning: Partitioning, overridable: set[str]):
        self.graph = graph
        self.partitioning = partitioning
        self.partitions = partitioning.partitions
        self.defaults = {k: v for k, v in graph.initializers.items() if k in overridable}
        self.constants = graph.initializers
        # Last partition that reads each value: it can be dropped after that.
        last_use: dict[str, int] = {}
        for i, part in enumerate(self.partitions):
            for name in part.inputs:
                last_use[name] = i
        self.last_use = last_use
        # Provider producing each partition output: device -> host copies go through it.
        self._producer = {o: part.provider for part in self.partitions for o in part.outputs}

    def run(self, feeds: dict[str, Any], output_names: list[str], run_options=None,
            profiler=None, to_host: bool = True) -> list[Any]:
        """Run once. ``to_host=False`` (IOBinding) leaves outputs on their provider's device."""
        state = RunState(run_options, profiler)
        env: dict[str, Any] = dict(self.defaults)
        env.update(feeds)
        keep = set(output_names)
        for i, part in enumerate(self.partitions):
            state.check_cancelled()
            prov = part.provider
            part_feeds = {}
            for name in part.compiled.inputs:
                if name in env:
                    value = env[name]
                elif name in self.constants:
                    value = self.constants[name]
                else:
                    raise RuntimeException(f"value '{name}' needed by a {prov.name} partition "
                                           "was never produced")
                value = move_value(value, self._producer.get(name), prov)
                part_feeds[name] = value
            try:
                outs = part.compiled.run(part_feeds, state)
            except FerryError:
                raise
            except Exception as exc:
                raise RuntimeException(
                    f"{prov.name} partition failed: {type(exc).__name__}: {exc}") from exc
            env.update(outs)
            for name in part.inputs:
                if self.last_use.get(name) == i and name not in keep and name not in feeds:
                    env.pop(name, None)
        result = []
        for name in output_names:
            if name in env:
                value = env[name]
            elif name in self.constants:
                value = self.constants[name]
            else:
                raise RuntimeException(f"output '{name}' was not produced")
            if not to_host and is_device_value(value):
                result.append(value)
                continue
            owner = self._owner_of(name)
            value = owner.to_host(value) if owner is not None else to_host_value(value)
            result.append(_own(value, feeds, self.constants.get(name)))
        return result

    def _owner_of(self, name: str):
        for part in self.partitions:
            if name in part.outputs:
                return part.provider
        return None


def _own(value: Any, feeds: dict, constant: Any) -> Any:
    """The caller gets arrays it may modify freely: never a feed, a weight, or a view of one."""
    import numpy as np

    if isinstance(value, np.ndarray):
        if value is constant or not value.flags.owndata or any(value is f for f in feeds.values()):
            return np.array(value, copy=True)
        return value
    if isinstance(value, list):
        return [_own(v, feeds, None) for v in value]
    return value
