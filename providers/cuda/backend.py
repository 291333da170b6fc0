"""The array module behind the CUDA provider: CuPy on a GPU, numpy in host emulation.

Kernels are written against ``xp`` (the array module) so that CI machines without a GPU can
run their logic. Host emulation is for tests only and is never chosen silently: it is on only
when the environment variable ``FERRY_CUDA_EMULATION=1`` is set. In emulation a "device" array
is an :class:`EmulatedDeviceArray` (a numpy array marked as living on the emulated device), so
host/device copies at partition boundaries happen and are counted exactly as on a GPU.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import numpy as np

EMULATION_ENV = "FERRY_CUDA_EMULATION"


def emulation_requested() -> bool:
    """True when the tests asked for host emulation (``FERRY_CUDA_EMULATION=1``)."""
    return os.environ.get(EMULATION_ENV, "").strip().lower() in ("1", "true", "yes", "on")


class EmulatedDeviceArray(np.ndarray):
    """A numpy array standing for memory on the emulated CUDA device."""

    __array_priority__ = -1.0


def probe_cuda() -> tuple[bool, str]:
    """(True, "") when CuPy imports and sees a CUDA device; else (False, the reason)."""
    try:
        import cupy
    except Exception as exc:  # ImportError, or a CUDA driver error raised at import
        return False, (f"CuPy is not importable ({type(exc).__name__}: {exc}); "
                       "install ferry[cuda]")
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        return False, f"no usable CUDA device ({type(exc).__name__}: {exc})"
    if count < 1:
        return False, "no CUDA device found"
    return True, ""


class Backend:
    """One device: its array module and the host <-> device transfers."""

    def __init__(self, device_id: int = 0, emulated: bool | None = None):
        self.device_id = int(device_id)
        self.emulated = emulation_requested() if emulated is None else bool(emulated)
        if self.emulated:
            self.xp = np
            self.cupy = None
        else:
            import cupy

            self.cupy = cupy
            self.xp = cupy
            count = cupy.cuda.runtime.getDeviceCount()
            if not 0 <= self.device_id < count:
                raise ValueError(f"device_id {self.device_id} is out of range: this machine "
                                 f"has {count} CUDA device(s)")

    # ---- identity --------------------------------------------------------------------------
    @property
    def device(self) -> str:
        return f"cuda:{self.device_id}"

    def gpu_name(self) -> str:
        if self.emulated:
            return "emulated"
        props = self.cupy.cuda.runtime.getDeviceProperties(self.device_id)
        name = props.get("name", b"")
        return name.decode() if isinstance(name, bytes) else str(name)

    def device_scope(self):
        """Context manager making this device current (no-op in emulation)."""
        if self.emulated:
            return _NullScope()
        return self.cupy.cuda.Device(self.device_id)

    # ---- arrays ----------------------------------------------------------------------------
    def is_device_array(self, value: Any) -> bool:
        if self.emulated:
            return isinstance(value, EmulatedDeviceArray)
        cp = self.cupy
        return isinstance(value, cp.ndarray) and value.device.id == self.device_id

    def unwrap(self, value: Any) -> Any:
        """A device value as the kernels' array type (emulation: a plain ndarray view)."""
        if self.emulated and isinstance(value, EmulatedDeviceArray):
            return value.view(np.ndarray)
        return value

    def wrap(self, value: Any) -> Any:
        """A kernel result as a device value handed outside the partition."""
        if self.emulated and isinstance(value, np.ndarray) and \
                not isinstance(value, EmulatedDeviceArray):
            return value.view(EmulatedDeviceArray)
        return value

    def upload(self, host: Any) -> Any:
        """Host -> device copy (kernel array type, not wrapped)."""
        if self.emulated:
            return np.array(host, copy=True)
        with self.cupy.cuda.Device(self.device_id):
            return self.cupy.asarray(host)

    def download(self, dev: Any) -> np.ndarray:
        """Device -> host copy as a plain numpy array."""
        if self.emulated:
            return np.array(np.asarray(dev).view(np.ndarray), copy=True)
        if isinstance(dev, np.ndarray):
            return dev
        return self.cupy.asnumpy(dev)

    def from_foreign(self, value: Any) -> Any:
        """A device array of another library (``__cuda_array_interface__``/DLPack) as ours,
        without a copy where the library allows."""
        if self.emulated:
            return np.asarray(value).view(EmulatedDeviceArray)
        cp = self.cupy
        if isinstance(value, cp.ndarray):
            return value
        with cp.cuda.Device(self.device_id):
            if hasattr(value, "__cuda_array_interface__"):
                return cp.asarray(value)
            return cp.from_dlpack(value)

    def synchronize(self) -> None:
        if not self.emulated:
            with self.cupy.cuda.Device(self.device_id):
                self.cupy.cuda.get_current_stream().synchronize()

    def set_memory_limit(self, nbytes: int) -> None:
        """Cap the CuPy memory pool of this device (0: no cap)."""
        if self.emulated or nbytes <= 0:
            return
        with self.cupy.cuda.Device(self.device_id):
            self.cupy.get_default_memory_pool().set_limit(size=int(nbytes))

    def errstate(self):
        """numpy warns on inf/nan arithmetic that CUDA does silently: silence it in emulation."""
        if self.emulated:
            return np.errstate(all="ignore")
        return _NullScope()


class _NullScope:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


_backends: dict[tuple[int, bool], Backend] = {}
_lock = threading.Lock()


def get_backend(device_id: int = 0, emulated: bool | None = None) -> Backend:
    """The shared backend of a device (one per device and mode)."""
    emu = emulation_requested() if emulated is None else bool(emulated)
    key = (int(device_id), emu)
    with _lock:
        b = _backends.get(key)
        if b is None:
            b = _backends[key] = Backend(device_id, emu)
        return b


def is_device_value(value: Any) -> bool:
    """Whether ``value`` is a CUDA array (ours, CuPy's, or any with the CUDA array interface or
    a CUDA DLPack device)."""
    if isinstance(value, EmulatedDeviceArray):
        return True
    if isinstance(value, np.ndarray):
        return False
    if hasattr(value, "__cuda_array_interface__"):
        return True
    dev = getattr(value, "__dlpack_device__", None)
    if dev is not None and hasattr(value, "__dlpack__"):
        try:
            kind = int(dev()[0])
        except Exception:
            return False
        return kind in (2, 3, 13)  # kDLCUDA, kDLCUDAHost, kDLCUDAManaged
    return False


def device_id_of(value: Any) -> int:
    if isinstance(value, EmulatedDeviceArray):
        return 0
    dev = getattr(value, "device", None)
    if dev is not None and hasattr(dev, "id"):
        return int(dev.id)
    get = getattr(value, "__dlpack_device__", None)
    if get is not None:
        try:
            return int(get()[1])
        except Exception:
            pass
    return 0


def to_numpy(value: Any) -> np.ndarray:
    """Any array (host or device) as a host numpy array; device memory is copied."""
    if isinstance(value, EmulatedDeviceArray):
        return np.array(value.view(np.ndarray), copy=True)
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "__cuda_array_interface__") or is_device_value(value):
        get = getattr(value, "get", None)  # cupy
        if callable(get):
            return get()
        import cupy

        return cupy.asnumpy(cupy.asarray(value) if hasattr(value, "__cuda_array_interface__")
                            else cupy.from_dlpack(value))
    if hasattr(value, "__dlpack__") and not hasattr(value, "__array__"):
        return np.from_dlpack(value)
    return np.asarray(value)
