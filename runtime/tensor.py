"""``runtime.Tensor``: an OrtValue-like tensor that lives on the host (numpy) or on a CUDA
device (CuPy; in the tests' host emulation, numpy marked as device memory).

    t = Tensor.ortvalue_from_numpy(x, "cuda", 0)   # copies x to GPU 0
    t.device_name(), t.shape(), t.data_type()      # "cuda", [2, 3], "tensor(float)"
    y = t.numpy()                                  # back to the host (a copy)
    u = Tensor.from_dlpack(torch_cuda_tensor)      # zero-copy from any DLPack producer

It also holds the helpers the session and executor use to accept device arrays
(``__cuda_array_interface__``/DLPack objects) and to move values across partition boundaries.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from runtime.errors import InvalidArgument

_DLPACK_CPU = 1
_DLPACK_CUDA = 2


def _parse_device(device_type: str | None, device_id: int = 0) -> tuple[str, int]:
    dt = (device_type or "cpu").strip().lower()
    if ":" in dt:
        dt, _, idx = dt.partition(":")
        device_id = int(idx)
    if dt in ("cuda", "gpu"):
        return "cuda", int(device_id)
    if dt == "cpu":
        return "cpu", 0
    raise InvalidArgument(f"unknown device type '{device_type}'; use 'cpu' or 'cuda'")


def _cuda_backend(device_id: int):
    from providers.cuda import backend as be

    if not be.emulation_requested():
        ok, reason = be.probe_cuda()
        if not ok:
            raise InvalidArgument(f"cannot place a tensor on cuda:{device_id}: {reason}")
    return be.get_backend(device_id)


class Tensor:
    """A tensor on a device, as onnxruntime's OrtValue (the subset ferry implements)."""

    __slots__ = ("_device", "_device_id", "_value")

    def __init__(self, value: Any, device_type: str = "cpu", device_id: int = 0):
        """Wrap an array that already lives on ``device_type`` (no copy). Prefer the
        constructors below."""
        self._device, self._device_id = _parse_device(device_type, device_id)
        self._value = value

    # ---- constructors ----------------------------------------------------------------------
    @classmethod
    def ortvalue_from_numpy(cls, array, device_type: str = "cpu", device_id: int = 0
                            ) -> Tensor:
        """A tensor holding ``array``: on the CPU it shares memory with a C-contiguous numpy
        array (as ORT); on cuda the data is copied to the device."""
        dev, idx = _parse_device(device_type, device_id)
        arr = np.asarray(array)
        if dev == "cpu":
            return cls(np.ascontiguousarray(arr), "cpu")
        b = _cuda_backend(idx)
        return cls(b.wrap(b.upload(np.ascontiguousarray(arr))), "cuda", idx)

    from_numpy = ortvalue_from_numpy

    @classmethod
    def ortvalue_from_shape_and_type(cls, shape, element_type=np.float32,
                                     device_type: str = "cpu", device_id: int = 0) -> Tensor:
        """An uninitialized tensor (for preallocated outputs)."""
        dev, idx = _parse_device(device_type, device_id)
        dtype = np.dtype(element_type)
        if dev == "cpu":
            return cls(np.empty(tuple(shape), dtype=dtype), "cpu")
        b = _cuda_backend(idx)
        if b.emulated:
            return cls(b.wrap(np.empty(tuple(shape), dtype=dtype)), "cuda", idx)
        with b.device_scope():
            return cls(b.xp.empty(tuple(shape), dtype=dtype), "cuda", idx)

    @classmethod
    def from_array(cls, value: Any) -> Tensor:
        """Wrap any array without copying: numpy, CuPy, or an object with
        ``__cuda_array_interface__`` / ``__dlpack__``."""
        if isinstance(value, Tensor):
            return value
        from providers.cuda import backend as be

        if be.is_device_value(value):
            idx = be.device_id_of(value)
            b = _cuda_backend(idx)
            return cls(b.wrap(b.from_foreign(value)), "cuda", idx)
        if isinstance(value, np.ndarray):
            return cls(value, "cpu")
        if hasattr(value, "__dlpack__") and not hasattr(value, "__array__"):
            return cls(np.from_dlpack(value), "cpu")
        return cls(np.asarray(value), "cpu")

    @classmethod
    def from_dlpack(cls, obj: Any) -> Tensor:
        """Zero-copy import of a DLPack producer (an object with ``__dlpack__``, or a legacy
        capsule for CPU memory)."""
        if isinstance(obj, Tensor):
            return obj
        get_dev = getattr(obj, "__dlpack_device__", None)
        kind, idx = (get_dev() if get_dev is not None else (_DLPACK_CPU, 0))
        if int(kind) == _DLPACK_CPU:
            return cls(np.from_dlpack(obj), "cpu")
        if int(kind) == _DLPACK_CUDA:
            b = _cuda_backend(int(idx))
            if b.emulated:
                raise InvalidArgument("a CUDA DLPack tensor cannot be imported in host "
                                      "emulation (there is no GPU)")
            with b.device_scope():
                return cls(b.cupy.from_dlpack(obj), "cuda", int(idx))
        raise InvalidArgument(f"DLPack device type {kind} is not supported (cpu and cuda are)")

    # ---- OrtValue's accessors --------------------------------------------------------------
    def device_name(self) -> str:
        return self._device

    def device_id(self) -> int:
        return self._device_id

    def shape(self) -> list[int]:
        return [int(d) for d in self._value.shape]

    def element_type(self):
        return np.dtype(self._value.dtype).type

    def data_type(self) -> str:
        from runtime import ir

        return f"tensor({ir.tensor_type_name(ir.numpy_dtype_to_onnx(self._value.dtype))})"

    def is_tensor(self) -> bool:
        return True

    def has_value(self) -> bool:
        return self._value is not None

    def numpy(self) -> np.ndarray:
        """The data on the host: the array itself on the CPU, a copy from a device."""
        if self._device == "cpu":
            return self._value
        from providers.cuda import backend as be

        return be.to_numpy(self._value)

    def data_ptr(self) -> int:
        v = self._value
        if isinstance(v, np.ndarray):
            return int(v.ctypes.data)
        return int(v.data.ptr)

    def update_inplace(self, array) -> None:
        """Overwrite the data with a host array of the same shape and type."""
        arr = np.asarray(array)
        if list(arr.shape) != self.shape() or arr.dtype != self._value.dtype:
            raise InvalidArgument(f"update_inplace: expected {self._value.dtype} "
                                  f"{self.shape()}, got {arr.dtype} {list(arr.shape)}")
        if self._device == "cpu" or isinstance(self._value, np.ndarray):
            np.copyto(np.asarray(self._value).view(np.ndarray), arr)
        else:
            self._value.set(np.ascontiguousarray(arr))

    # ---- DLPack ----------------------------------------------------------------------------
    def __dlpack__(self, stream=None, **kwargs):
        v = self._value
        if isinstance(v, np.ndarray):
            # Host memory (also in host emulation, where "device" memory is host memory).
            return v.view(np.ndarray).__dlpack__(**kwargs) if kwargs else \
                v.view(np.ndarray).__dlpack__()
        return v.__dlpack__(stream=stream, **kwargs) if stream is not None else \
            v.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        v = self._value
        if isinstance(v, np.ndarray):
            return (_DLPACK_CPU, 0)
        return v.__dlpack_device__()

    to_dlpack = __dlpack__

    def __repr__(self) -> str:
        where = self._device if self._device == "cpu" else f"{self._device}:{self._device_id}"
        return f"Tensor({self.data_type()}, shape={self.shape()}, device={where})"


OrtValue = Tensor


# ---- helpers for the session and the executor -----------------------------------------

def is_device_value(value: Any) -> bool:
    from providers.cuda import backend as be

    if isinstance(value, Tensor):
        return value._device != "cpu"
    return be.is_device_value(value)


def unwrap_feed(value: Any) -> Any:
    """A run() feed as the executor takes it: numpy for host data, the device array (ours,
    zero-copy from another library's CUDA array) for device data. Leaves other values alone."""
    if isinstance(value, Tensor):
        return value._value
    if isinstance(value, np.ndarray):
        return value
    from providers.cuda import backend as be

    if be.is_device_value(value):
        b = _cuda_backend(be.device_id_of(value))
        return b.wrap(b.from_foreign(value))
    if hasattr(value, "__dlpack__") and not hasattr(value, "__array__"):
        try:
            return np.from_dlpack(value)  # a host DLPack producer: zero-copy
        except (TypeError, BufferError, RuntimeError):
            return value
    return value


def move_value(value: Any, src: Any, dst: Any) -> Any:
    """Move a value across a partition boundary, from the provider that produced it (``src``,
    None for feeds and initializers) to the provider about to read it (``dst``). Device ->
    host copies go through the producer (which counts them), host -> device through ``dst``."""
    if dst.device == "cpu":
        if src is not None and src.device != "cpu":
            return src.to_host(value)
        if is_device_value(value):  # a device feed read by a host partition
            from providers.cuda import backend as be

            return be.to_numpy(value)
        return value
    if dst.is_on_device(value):
        return value
    if src is not None and src.device not in ("cpu", dst.device):
        value = src.to_host(value)
    return dst.to_device(value)


def to_host_value(value: Any) -> Any:
    """Any value (array, device array, list of them) on the host."""
    if isinstance(value, list):
        return [to_host_value(v) for v in value]
    if is_device_value(value):
        from providers.cuda import backend as be

        return be.to_numpy(value)
    return value


def check_device_feed(info: Any, value: Any) -> Any:
    """Validate a device-resident feed against the model input ``info`` (dtype, rank, fixed
    dims), as the session does for numpy feeds; returns it C-contiguous."""
    expected = info.dtype
    got = np.dtype(value.dtype)
    desc = f"{got} device array of shape {list(value.shape)}"
    if expected is not None and got != expected:
        raise InvalidArgument(f"input '{info.name}': expected {info.type_string} (numpy "
                              f"{expected}), got {desc}")
    if info.shape is not None:
        shape = list(info.shape)
        if len(value.shape) != len(shape):
            raise InvalidArgument(f"input '{info.name}': expected rank {len(shape)} with shape "
                                  f"{shape}, got {desc}")
        for axis, (want, have) in enumerate(zip(shape, value.shape)):
            if isinstance(want, int) and want != have:
                raise InvalidArgument(f"input '{info.name}': dimension {axis} must be {want} "
                                      f"(expected shape {shape}), got {desc}")
    flags = getattr(value, "flags", None)
    if flags is not None and not flags.c_contiguous:
        if isinstance(value, np.ndarray):
            value = np.ascontiguousarray(value.view(np.ndarray)).view(type(value))
        else:
            import cupy

            value = cupy.ascontiguousarray(value)
    return value
