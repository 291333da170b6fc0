"""Bridge to the C++ kernels (the ``ferry_kernels`` extension built from kernels_cpp/).

The CPU provider works without it (numpy only) and says why in ``explain()``; CI always
builds it. ``make`` turns a :class:`providers.cpu.opset.NativeCall` into a kernel;
``run_call`` makes and runs one in a single step (tests and one-off use).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from providers.cpu.opset import NativeCall

_module = None
_error = ""


def _load():
    global _module, _error
    if _module is None and not _error:
        try:
            import ferry_kernels
        except ImportError as exc:
            _error = f"the C++ extension ferry_kernels is not importable ({exc})"
        else:
            _module = ferry_kernels
    return _module


def available() -> bool:
    """Whether the C++ kernels can be used."""
    return _load() is not None


def unavailable_reason() -> str:
    _load()
    return _error


def module():
    """The ferry_kernels module; raises ImportError when it is not built."""
    m = _load()
    if m is None:
        raise ImportError(_error)
    return m


def _dtype_name(dt) -> str | None:
    return None if dt is None else np.dtype(dt).name


def make(call: NativeCall, in_shapes: Sequence[Sequence[int]], in_dtypes: Sequence[Any],
         constants: dict[int, np.ndarray] | None = None):
    """A ferry_kernels.Kernel for ``call``, given the shapes and dtypes of its inputs (in the
    kernel's input order; ``()``/None for an absent one) and the constant inputs it may pack."""
    fk = module()
    return fk.make_kernel(
        call.kernel, dict(call.params), [list(s) for s in in_shapes],
        [_dtype_name(d) for d in in_dtypes], [list(s) for s in call.output_shapes],
        [_dtype_name(d) for d in call.output_dtypes],
        {int(k): np.ascontiguousarray(v) for k, v in (constants or {}).items()})


def run_call(call: NativeCall, inputs: Sequence[np.ndarray | None]) -> list[np.ndarray]:
    """Make the kernel for ``call`` and run it on ``inputs`` (node inputs; ``call.inputs``
    selects the kernel's). Returns freshly allocated outputs."""
    positions = call.inputs if call.inputs is not None else list(range(len(inputs)))
    kins = [inputs[p] if p is not None and p < len(inputs) else None for p in positions]
    kins = [None if v is None else np.ascontiguousarray(v) for v in kins]
    kernel = make(call, [() if v is None else v.shape for v in kins],
                  [None if v is None else v.dtype for v in kins])
    outs = [np.empty(s, d) for s, d in zip(call.output_shapes, call.output_dtypes)]
    kernel.run(kins, outs)
    return outs
