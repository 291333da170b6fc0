"""Helpers for testing the C++ kernels behind the CPU ops (elementwise, activations, pools,
normalizations, softmax, tensor ops) through their registered ``native=`` lowerings.

An op is lowered exactly as the CPU provider does (``providers.cpu.opset``), run with
``providers.cpu.native.run_call`` on 1 and 2 threads, with constant inputs packed at make time
and passed at run time, and compared with onnxruntime (the oracle) on a one-node model.
Results must be bitwise identical across thread counts (no kernel splits a reduction).

Each family's test module keeps its cases in a ``run_all_cases()`` that runs in-process for
the active ISA and, through ``run_in_subprocess``, under every lower ISA this CPU supports
(FERRY_MAX_ISA is read once at import).
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from providers.cpu import native, opset
from tests.providers.cpu.node_case_runner import ort_run, single_node_model


def ort_outputs(op: str, version: int, inputs: dict, outputs=("y",), **attrs) -> list:
    """onnxruntime's outputs for a one-node model (None inputs are absent)."""
    model = single_node_model(op, inputs, list(outputs), version, **attrs)
    feeds = {k: np.asarray(v) for k, v in inputs.items() if v is not None}
    return ort_run(model, feeds)


def lower(op: str, version: int, inputs: list, attrs: dict, num_outputs: int | None = None):
    """The NativeCall of the op's registered lowering (None when it stays on numpy)."""
    impl = opset.get(op, "", version)
    assert impl is not None and impl.native is not None, f"{op}-{version} has no lowering"
    full = impl.attrs_with_defaults(attrs)
    if num_outputs is not None:
        full["_num_outputs"] = num_outputs
    return impl.native(list(inputs), full)


def native_outputs(op: str, version: int, inputs: list, attrs: dict,
                   num_outputs: int | None = None, pack_constants: bool = True) -> list:
    call = lower(op, version, inputs, attrs, num_outputs)
    assert call is not None, f"{op}-{version} did not lower for {[_desc(v) for v in inputs]}"
    return native.run_call(call, inputs, pack_constants=pack_constants)


def _desc(v) -> str:
    return "None" if v is None else f"{v.dtype}{list(v.shape)}"


def check_native(op: str, version: int, inputs: dict, attrs: dict | None = None,
                 outputs=("y",), rtol: float = 1e-5, atol: float = 1e-6, expected=None,
                 threads=(1, 2)) -> list:
    """Native outputs (all thread counts, constants packed or not) against ``expected``
    (default: onnxruntime's). Returns the native outputs."""
    import ferry_kernels as fk

    attrs = dict(attrs or {})
    if expected is None:
        expected = ort_outputs(op, version, inputs, outputs, **attrs)
    values = list(inputs.values())
    first = None
    old = fk.get_num_threads()
    try:
        for t in threads:
            fk.set_num_threads(t)
            for pack in (True, False):
                got = native_outputs(op, version, values, attrs, len(outputs), pack)
                where = f"{op}-{version} {[_desc(v) for v in values]} {attrs} threads={t}"
                for i, e in enumerate(expected):
                    g = got[i]
                    assert g.dtype == np.asarray(e).dtype, f"{where}: dtype {g.dtype}"
                    assert g.shape == np.shape(e), f"{where}: shape {g.shape} != {np.shape(e)}"
                    np.testing.assert_allclose(g.astype(np.float64),
                                               np.asarray(e).astype(np.float64), rtol=rtol,
                                               atol=atol, err_msg=f"{where} output {i}")
                if first is None:
                    first = got
                else:
                    for a, b in zip(first, got):
                        assert a.tobytes() == b.tobytes(), f"{where}: differs across runs"
    finally:
        fk.set_num_threads(old)
    return first


def check_numpy_and_native(op: str, version: int, inputs: dict, outputs=("y",), rtol=1e-5,
                           atol=1e-6, output_types=None, **attrs) -> None:
    """The numpy op against onnxruntime, then the C++ kernel when the op lowers."""
    from tests.providers.cpu.node_case_runner import compare_with_ort

    extra = {} if output_types is None else {"output_types": output_types}
    compare_with_ort(op, inputs, list(outputs), version, rtol=rtol, atol=atol, **extra, **attrs)
    impl = opset.get(op, "", version)
    if native.available() and impl.native is not None:
        if lower(op, version, list(inputs.values()), attrs, len(outputs)) is not None:
            check_native(op, version, inputs, attrs, outputs, rtol=rtol, atol=atol)


def lower_isas() -> list[str]:
    """The ISAs this CPU supports below the active one (each tested in a subprocess)."""
    if not native.available():
        return []
    fk = native.module()
    return [i for i in fk.supported_isas() if i != fk.isa()]


def run_script_capped(script: str, isa: str, timeout: int = 600) -> str:
    """Run ``python -c script`` from the repository root with the ISA capped at ``isa`` (read
    once at import, so every cap needs its own interpreter); returns its stdout."""
    env = dict(os.environ, FERRY_MAX_ISA=isa)
    env["PYTHONPATH"] = os.pathsep.join([ROOT] + [p for p in sys.path if p])
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, (proc.stdout[-2000:] + proc.stderr[-6000:])
    return proc.stdout


def run_in_subprocess(module: str, isa: str, func: str = "run_all_cases") -> None:
    """Run ``module.func()`` in a fresh interpreter with the ISA capped at ``isa``."""
    run_script_capped("import ferry_kernels as fk; "
                      f"assert fk.isa() == {isa!r}, fk.isa(); "
                      f"from {module} import {func}; {func}()", isa, timeout=900)
