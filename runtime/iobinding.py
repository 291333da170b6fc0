"""IOBinding: bind a run's inputs and outputs to device memory, as onnxruntime's.

    binding = sess.io_binding()
    binding.bind_input("x", x_gpu)                      # a runtime.Tensor / CuPy / DLPack array
    binding.bind_cpu_input("mask", mask_numpy)
    binding.bind_output("y", "cuda")                    # result left on the GPU
    binding.bind_output("z", preallocated_tensor)       # result written into your buffer
    sess.run_with_iobinding(binding)
    y = binding.get_outputs()[0]                        # runtime.Tensor on cuda
    host = binding.copy_outputs_to_cpu()

ORT's pointer form works too: ``bind_input(name, "cuda", 0, np.float32, shape, ptr)``.
Inputs bound on the device reach a cuda partition without a host round trip.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Any

import numpy as np

from runtime.errors import InvalidArgument
from runtime.tensor import (
    Tensor,
    _cuda_backend,
    _parse_device,
    is_device_value,
    to_host_value,
    unwrap_feed,
)


@dataclass
class _OutputBinding:
    name: str
    device: str
    device_id: int
    buffer: Tensor | None = None


def _from_pointer(device: str, device_id: int, element_type, shape, ptr: int) -> Tensor:
    """An array over memory the caller owns (ORT's buffer_ptr arguments)."""
    if element_type is None or shape is None:
        raise InvalidArgument("binding a raw buffer_ptr needs element_type and shape")
    dtype = np.dtype(element_type)
    shape = tuple(int(d) for d in shape)
    count = int(np.prod(shape)) if shape else 1
    nbytes = count * dtype.itemsize
    if device == "cpu":
        buf = (ctypes.c_char * nbytes).from_address(int(ptr))
        return Tensor(np.frombuffer(buf, dtype=dtype, count=count).reshape(shape), "cpu")
    b = _cuda_backend(device_id)
    if b.emulated:
        # Emulated device memory is host memory: the pointer is a host address.
        buf = (ctypes.c_char * nbytes).from_address(int(ptr))
        arr = np.frombuffer(buf, dtype=dtype, count=count).reshape(shape)
        return Tensor(b.wrap(arr), "cuda", device_id)
    cp = b.cupy
    mem = cp.cuda.UnownedMemory(int(ptr), nbytes, owner=None, device_id=device_id)
    arr = cp.ndarray(shape, dtype=dtype, memptr=cp.cuda.MemoryPointer(mem, 0))
    return Tensor(arr, "cuda", device_id)


def _as_tensor(value: Any, device_type: str | None = None, device_id: int = 0) -> Tensor:
    t = value if isinstance(value, Tensor) else Tensor.from_array(value)
    if device_type is not None:
        dev, idx = _parse_device(device_type, device_id)
        if dev != t.device_name() or (dev == "cuda" and idx != t.device_id()):
            # The caller said where the data should be: move it there (as ORT copies).
            t = Tensor.ortvalue_from_numpy(t.numpy(), dev, idx)
    return t


class IOBinding:
    """Inputs and outputs of one session bound to memory on chosen devices."""

    def __init__(self, session):
        self._session = session
        self._inputs: dict[str, Any] = {}
        self._outputs: list[_OutputBinding] = []
        self._results: list[Tensor] | None = None

    # ---- inputs ----------------------------------------------------------------------------
    def bind_input(self, name: str, device_type: Any = "cpu", device_id: int = 0,
                   element_type=None, shape=None, buffer_ptr: int | None = None) -> None:
        """Bind an input: ``bind_input(name, array_or_tensor)`` (any numpy / runtime.Tensor /
        CuPy / DLPack array, used where it lives), or ORT's form
        ``bind_input(name, device_type, device_id, element_type, shape, buffer_ptr)``."""
        if not isinstance(device_type, str):
            self._inputs[name] = unwrap_feed(_as_tensor(device_type))
            return
        dev, idx = _parse_device(device_type, device_id)
        if buffer_ptr is None:
            raise InvalidArgument(f"bind_input('{name}', '{device_type}', ...): give the "
                                  "array itself or a buffer_ptr with element_type and shape")
        self._inputs[name] = unwrap_feed(_from_pointer(dev, idx, element_type, shape,
                                                       buffer_ptr))

    def bind_ortvalue_input(self, name: str, value: Tensor) -> None:
        self._inputs[name] = unwrap_feed(_as_tensor(value))

    def bind_cpu_input(self, name: str, array) -> None:
        """Bind a host array (copied to a device only when a device partition reads it)."""
        self._inputs[name] = np.asarray(to_host_value(unwrap_feed(array)))

    def clear_binding_inputs(self) -> None:
        self._inputs.clear()

    # ---- outputs ---------------------------------------------------------------------------
    def bind_output(self, name: str, device_type: Any = "cpu", device_id: int = 0,
                    element_type=None, shape=None, buffer_ptr: int | None = None) -> None:
        """Bind an output to a device (``"cpu"``/``"cuda"``: the session allocates it) or to a
        preallocated buffer: ``bind_output(name, tensor_or_array)`` or ORT's pointer form."""
        self._outputs = [o for o in self._outputs if o.name != name]
        if not isinstance(device_type, str):
            t = _as_tensor(device_type)
            self._outputs.append(_OutputBinding(name, t.device_name(), t.device_id(), t))
            return
        dev, idx = _parse_device(device_type, device_id)
        buf = None
        if buffer_ptr is not None:
            buf = _from_pointer(dev, idx, element_type, shape, buffer_ptr)
        elif dev == "cuda":
            _cuda_backend(idx)  # fail now, not after the run, when there is no CUDA
        self._outputs.append(_OutputBinding(name, dev, idx, buf))

    def bind_ortvalue_output(self, name: str, value: Tensor) -> None:
        self.bind_output(name, value)

    def clear_binding_outputs(self) -> None:
        self._outputs.clear()
        self._results = None

    # ---- synchronization -------------------------------------------------------------------
    def _sync(self, values) -> None:
        seen = set()
        for v in values:
            if is_device_value(v):
                from providers.cuda import backend as be

                idx = be.device_id_of(v)
                if idx not in seen:
                    seen.add(idx)
                    _cuda_backend(idx).synchronize()

    def synchronize_inputs(self) -> None:
        """Wait until work queued on the inputs' devices is done (before the run reads them)."""
        self._sync(self._inputs.values())

    def synchronize_outputs(self) -> None:
        """Wait until the outputs are written (before another stream reads them)."""
        self._sync([t._value for t in (self._results or [])])

    # ---- results ---------------------------------------------------------------------------
    def get_outputs(self) -> list[Tensor]:
        if self._results is None:
            raise InvalidArgument("no outputs yet: call session.run_with_iobinding(binding)")
        return list(self._results)

    get_outputs_as_ortvaluevector = get_outputs

    def copy_outputs_to_cpu(self) -> list[np.ndarray]:
        return [np.array(t.numpy(), copy=True) for t in self.get_outputs()]

    # ---- the run (called by InferenceSession.run_with_iobinding) ---------------------------
    def _run(self, run_options=None) -> None:
        sess = self._session
        outputs = self._outputs or [_OutputBinding(o.name, "cpu", 0)
                                    for o in sess.get_outputs()]
        names = sess._check_output_names([o.name for o in outputs])
        feeds = sess._check_feeds(dict(self._inputs))
        profiler = sess._profiler
        t0 = profiler.now() if profiler is not None else 0
        values = sess._executor.run(feeds, names, run_options, profiler, to_host=False)
        results = []
        for ob, value in zip(outputs, values):
            if any(value is f for f in feeds.values()):
                value = value.copy()  # never hand back the caller's input as an output
            results.append(self._place(ob, value))
        if profiler is not None:
            profiler.add("Session", "model_run_with_iobinding", t0)
        self._results = results

    def _provider_for(self, device: str, device_id: int):
        for p in self._session._providers:
            if p.device == f"{device}:{device_id}":
                return p
        return None

    def _place(self, ob: _OutputBinding, value: Any) -> Tensor:
        """Put one output where it was bound (a copy only when it is elsewhere)."""
        on_device = is_device_value(value)
        if ob.device == "cpu":
            if on_device:
                owner = self._session._executor._owner_of(ob.name)
                value = owner.to_host(value) if owner is not None and owner.device != "cpu" \
                    else to_host_value(value)
            host = value
        else:
            prov = self._provider_for(ob.device, ob.device_id)
            if not on_device or (on_device and _device_id(value) != ob.device_id):
                host = to_host_value(value)
                if prov is not None:
                    value = prov.to_device(host)
                else:
                    value = Tensor.ortvalue_from_numpy(host, "cuda", ob.device_id)._value
        if ob.buffer is None:
            return Tensor(value if ob.device != "cpu" else np.asarray(host), ob.device,
                          ob.device_id)
        buf = ob.buffer
        src_shape = list(np.shape(value)) if ob.device == "cpu" else list(value.shape)
        src_dtype = np.dtype(value.dtype)
        if buf.shape() != src_shape or np.dtype(buf._value.dtype) != src_dtype:
            raise InvalidArgument(
                f"output '{ob.name}': the bound buffer is {np.dtype(buf._value.dtype)} "
                f"{buf.shape()} but the result is {src_dtype} {src_shape}")
        dst = buf._value
        if isinstance(dst, np.ndarray):
            np.copyto(dst.view(np.ndarray), np.asarray(value).view(np.ndarray))
        else:
            dst[...] = value
        return buf


def _device_id(value) -> int:
    from providers.cuda import backend as be

    return be.device_id_of(value)
