"""The OpenVINO execution provider: OpenVINO's ``query_model`` decides which nodes it takes;
each partition is compiled by OpenVINO once at session creation.

Options use ORT's OpenVINO EP names (``device_type``, ``precision``, ``num_streams``,
``num_of_threads``, ``cache_dir``, ``enable_dynamic_shapes``). The default precision is FP32
with ``INFERENCE_PRECISION_HINT=f32`` so results match the other providers (OpenVINO would
otherwise pick bf16 on AMX CPUs and f16 on GPUs).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from providers.base import Capability, CompileContext, ExecutionProvider, OptionSpec
from providers.openvino import config as ovconfig
from runtime import ir

log = logging.getLogger("ferry")


def _non_negative(v: int) -> str | None:
    return None if v >= 0 else "must be >= 0"


class OpenVINOProvider(ExecutionProvider):
    name = "openvino"
    ort_name = "OpenVINOExecutionProvider"
    device = "cpu"  # tensors cross as host numpy arrays whatever device OpenVINO computes on
    option_specs = {
        "device_type": OptionSpec(
            str, "CPU", doc="OpenVINO device: CPU, GPU, GPU.<n>, NPU, AUTO, AUTO:<list>, "
                            "HETERO:<list>, MULTI:<list>",
            validate=ovconfig.validate_device_syntax),
        "precision": OptionSpec(
            str, "FP32", choices=("FP32", "FP16", "BF16", "ACCURACY"),
            doc="inference precision hint; ACCURACY keeps the model's own precision"),
        "num_streams": OptionSpec(
            int, 1, doc="OpenVINO execution streams (parallel infer requests)",
            validate=lambda v: None if v >= 1 else "must be >= 1"),
        "num_of_threads": OptionSpec(
            int, 0, doc="CPU inference threads; 0 = the session's intra_op_num_threads if set, "
                        "else OpenVINO's choice", validate=_non_negative),
        "cache_dir": OptionSpec(
            str, "", doc="folder for compiled blobs reused across sessions (keyed by model, "
                         "shapes, device, settings and OpenVINO version)"),
        "enable_dynamic_shapes": OptionSpec(
            bool, False, doc="compile partitions with symbolic dims once with dynamic shapes "
                             "(False: compile per input shape at its first run)"),
    }

    def __init__(self, options=None, session_options=None):
        super().__init__(options, session_options)
        import openvino as ov

        self.core = ov.Core()
        self.device_spec = ovconfig.parse_device(self.options["device_type"])
        available = list(self.core.available_devices)
        ovconfig.check_available(self.device_spec, available, self.name)
        threads = int(self.options["num_of_threads"] or 0)
        if not threads and session_options is not None:
            threads = int(getattr(session_options, "intra_op_num_threads", 0) or 0)
        self.threads = threads
        hardware = list(self.device_spec.devices) or available
        # query_model refuses a bare "AUTO" (no candidate list): ask about what it may pick.
        self.query_device = (self.device_spec.text if self.device_spec.devices or
                             self.device_spec.meta is None
                             else f"{self.device_spec.meta}:{','.join(hardware)}")
        self.compile_config = ovconfig.compile_properties(self.options, self.device_spec,
                                                          threads, hardware)
        self._checker = None
        self._partitions: list = []

    @classmethod
    def availability(cls) -> tuple[bool, str]:
        try:
            import openvino as ov
        except Exception as exc:  # noqa: BLE001 - availability never raises
            return False, (f"OpenVINO is not importable ({type(exc).__name__}: {exc}); "
                           "install ferry[openvino]")
        try:
            devices = ov.Core().available_devices
        except Exception as exc:  # noqa: BLE001 - availability never raises
            return False, f"OpenVINO could not list its devices: {exc}"
        if not devices:
            return False, "OpenVINO reports no available device"
        return True, ""

    def capability(self, graph: ir.Graph, nodes: Iterable[ir.Node]) -> Capability:
        from providers.openvino.capability import CapabilityChecker

        if self._checker is None:
            self._checker = CapabilityChecker(self.core, self.query_device,
                                              self.compile_config)
        # Initializers that are also graph inputs may be overridden at run time: not constants.
        inputs = set(graph.input_names)
        constants = {k for k in graph.initializers if k not in inputs}
        return self._checker.capability(graph, nodes, constants)

    def compile(self, subgraph: ir.Graph, context: CompileContext):
        from providers.openvino.partition import OpenVINOPartition

        part = OpenVINOPartition(self, subgraph, context)
        self._partitions.append(part)
        return part

    def close(self) -> None:
        for part in self._partitions:
            part.close()
        self._partitions.clear()
