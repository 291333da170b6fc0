"""Bridge from the op registry's :class:`NativeCall` lowerings to ``ferry_kernels``.

The C++ module is imported lazily so that ferry still imports (and runs everything on numpy)
when the extension is missing; :func:`available` says whether it is there.

    call = impl.native(inputs, attrs)            # a NativeCall, or None for numpy
    outputs = native.run_call(call, inputs)      # make the kernel and run it once
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from providers.cpu.opset import NativeCall

_module: Any = None
_error: str | None = None


def _load() -> Any:
    global _module, _error
    if _module is None and _error is None:
        try:
            import ferry_kernels

            _module = ferry_kernels
        except ImportError as exc:  # the wheel was built without the extension
            _error = f"ferry_kernels could not be imported: {exc}"
    return _module


def module() -> Any:
    """The ``ferry_kernels`` module; raises ImportError when it is not available."""
    fk = _load()
    if fk is None:
        raise ImportError(_error)
    return fk


def available() -> bool:
    """True when the C++ kernels can be used."""
    return _load() is not None


def unavailable_reason() -> str:
    """Why :func:`available` is False ("" when it is True)."""
    _load()
    return _error or ""


def contiguous(v: np.ndarray) -> np.ndarray:
    """``v`` as an aligned C-contiguous array of the same shape."""
    if v.flags.c_contiguous and v.flags.aligned:
        return v
    return np.require(v, requirements="CA")  # keeps 0-d arrays 0-d


def _dtype_name(dt: Any) -> str | None:
    return None if dt is None else np.dtype(dt).name


def make(call: NativeCall, in_shapes: Sequence[Sequence[int] | None],
         in_dtypes: Sequence[Any], constants: dict[int, np.ndarray] | None = None) -> Any:
    """Make the ``ferry_kernels.Kernel`` for ``call``.

    ``in_shapes``/``in_dtypes`` describe the kernel's inputs, already selected and ordered by
    ``call.inputs`` (``None`` dtype for an absent optional input). ``constants`` maps kernel input
    positions to values known at plan time (weights), which the kernel may pre-pack; at run time
    those inputs may then be passed as None.
    """
    fk = module()
    shapes = [None if dt is None else [int(d) for d in s]
              for s, dt in zip(in_shapes, in_dtypes)]
    consts = {int(j): contiguous(np.asarray(v)) for j, v in (constants or {}).items()
              if v is not None}
    return fk.make_kernel(call.kernel, dict(call.params), shapes,
                          [_dtype_name(d) for d in in_dtypes],
                          [[int(d) for d in s] for s in call.output_shapes],
                          [_dtype_name(d) for d in call.output_dtypes], consts)


def kernel_inputs(call: NativeCall, inputs: Sequence[np.ndarray | None]) -> list:
    """The node's inputs selected and ordered as the kernel takes them (``call.inputs``)."""
    if call.inputs is None:
        return list(inputs)
    return [inputs[p] if p is not None and p < len(inputs) else None for p in call.inputs]


def run_call(call: NativeCall, inputs: Sequence[np.ndarray | None],
             pack_constants: bool = True) -> list[np.ndarray]:
    """Make the kernel of ``call`` for these node inputs and run it once; returns its outputs.

    ``inputs`` are the node's inputs as given to the ``native=`` lowering (``None`` for absent
    ones). With ``pack_constants`` the inputs listed in ``call.constant_inputs`` are handed to
    the kernel at make time (the path weights take in a plan) and passed as None at run time.
    """
    kins = [None if v is None else contiguous(np.asarray(v))
            for v in kernel_inputs(call, inputs)]
    consts = {j: kins[j] for j in call.constant_inputs
              if pack_constants and j < len(kins) and kins[j] is not None}
    kernel = make(call, [() if v is None else v.shape for v in kins],
                  [None if v is None else v.dtype for v in kins], consts)
    outs = [np.empty(tuple(s), np.dtype(d)) for s, d in zip(call.output_shapes,
                                                             call.output_dtypes)]
    kernel.run([None if j in consts else v for j, v in enumerate(kins)], outs)
    return outs
