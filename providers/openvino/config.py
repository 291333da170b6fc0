"""OpenVINO device names and the properties a compile passes, from ORT-style provider options.

``device_type`` follows ORT's OpenVINO EP: a hardware device (``CPU``, ``GPU``, ``GPU.1``,
``NPU``) or a meta device with a priority list (``AUTO``, ``AUTO:GPU,CPU``, ``HETERO:GPU,CPU``,
``MULTI:GPU,CPU``). The syntax is checked when options are parsed (no OpenVINO needed); the
devices themselves are checked against ``Core.available_devices`` when the provider is made.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from runtime.errors import ProviderOptionError

META_DEVICES = ("AUTO", "HETERO", "MULTI")
_HW = re.compile(r"^(CPU|GPU|NPU)(\.\d+)?$")

# precision option -> INFERENCE_PRECISION_HINT ("ACCURACY" keeps the model's own types)
PRECISION_HINTS = {"FP32": "f32", "FP16": "f16", "BF16": "bf16"}


@dataclass(frozen=True)
class DeviceSpec:
    """A parsed ``device_type``: the string OpenVINO compiles for and its hardware devices."""

    text: str  # what compile_model gets, e.g. "HETERO:GPU,CPU"
    meta: str | None  # "AUTO" / "HETERO" / "MULTI" or None for a hardware device
    devices: tuple[str, ...]  # hardware devices named (empty for a bare "AUTO")


def parse_device(value: str) -> DeviceSpec:
    """Parse ``device_type``; raises ValueError with a one-line reason on bad syntax."""
    text = value.strip().upper().replace(" ", "")
    if not text:
        raise ValueError("is empty")
    head, sep, tail = text.partition(":")
    if head in META_DEVICES:
        devices = tuple(d for d in tail.split(",") if d) if sep else ()
        if head != "AUTO" and not devices:
            raise ValueError(f"{head} needs a device list, e.g. {head}:GPU,CPU")
        bad = [d for d in devices if not _HW.match(d)]
        if bad:
            raise ValueError(f"unknown device {bad[0]!r} in {value!r}; devices are CPU, GPU, "
                             "GPU.<n>, NPU")
        if len(set(devices)) != len(devices):
            raise ValueError(f"a device is listed twice in {value!r}")
        return DeviceSpec(f"{head}:{','.join(devices)}" if devices else head, head, devices)
    if sep or not _HW.match(text):
        raise ValueError(f"{value!r} is not a device; use CPU, GPU, GPU.<n>, NPU, AUTO, "
                         "AUTO:<devices>, HETERO:<devices> or MULTI:<devices>")
    return DeviceSpec(text, None, (text,))


def validate_device_syntax(value: str) -> str | None:
    try:
        parse_device(value)
    except ValueError as exc:
        return str(exc)
    return None


def check_available(spec: DeviceSpec, available: list[str], provider: str) -> None:
    """Raise ProviderOptionError when a named device is not on this machine."""
    plain = {a.split(".")[0] for a in available}
    for dev in spec.devices:
        ok = dev in available if "." in dev else (dev in available or dev in plain)
        if not ok:
            raise ProviderOptionError(
                f"provider '{provider}': option 'device_type' = {spec.text!r}: device {dev} is "
                f"not available on this machine; available OpenVINO devices: "
                f"{', '.join(available) or 'none'}")
    if spec.meta and not available:
        raise ProviderOptionError(f"provider '{provider}': no OpenVINO device is available")


def hardware_properties(options: dict, device: str, threads: int) -> dict:
    """Properties for one hardware device (CPU, GPU.0, ...) from the provider options."""
    props: dict = {}
    precision = options["precision"]
    if precision == "ACCURACY":
        props["EXECUTION_MODE_HINT"] = "ACCURACY"
    else:
        props["INFERENCE_PRECISION_HINT"] = PRECISION_HINTS[precision]
    if options["num_streams"]:
        props["NUM_STREAMS"] = int(options["num_streams"])
    if threads and device.split(".")[0] == "CPU":
        props["INFERENCE_NUM_THREADS"] = int(threads)
    return props


def compile_properties(options: dict, spec: DeviceSpec, threads: int,
                       hardware: list[str]) -> dict:
    """The config dict for ``Core.compile_model`` (without the cache directory).

    A meta device gets the hardware settings through DEVICE_PROPERTIES for every hardware
    device it may pick (``hardware``: the ones it names, or all available for a bare AUTO)."""
    if spec.meta is None:
        return hardware_properties(options, spec.text, threads)
    per_device = {d: hardware_properties(options, d, threads) for d in hardware}
    return {"DEVICE_PROPERTIES": per_device} if per_device else {}
