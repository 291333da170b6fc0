"""ISA detection and the FERRY_MAX_ISA cap (read once at import: checked in subprocesses)."""

from __future__ import annotations

import os
import subprocess
import sys

import ferry_kernels as fk
import pytest

ORDER = ["scalar", "avx2", "avx512"]


def _probe(cap: str | None) -> tuple[str, list[str], str]:
    env = dict(os.environ)
    env.pop("FERRY_MAX_ISA", None)
    if cap is not None:
        env["FERRY_MAX_ISA"] = cap
    code = "import ferry_kernels as fk; print(fk.isa()); print(','.join(fk.supported_isas()))"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    isa, supported = proc.stdout.split()
    return isa, supported.split(","), proc.stderr


def test_supported_isas_best_first():
    sup = fk.supported_isas()
    assert sup[-1] == "scalar"
    assert sup == sorted(sup, key=ORDER.index, reverse=True)
    assert fk.isa() in sup


def test_uncapped_uses_best():
    isa, sup, _ = _probe(None)
    assert isa == sup[0]


@pytest.mark.parametrize("cap", ORDER)
def test_cap(cap):
    isa, sup, _ = _probe(cap)
    # The best supported ISA not above the cap; the supported list ignores the cap.
    want = next(i for i in sup if ORDER.index(i) <= ORDER.index(cap))
    assert isa == want
    assert sup == fk.supported_isas()


def test_bad_cap_is_ignored_with_a_warning():
    isa, sup, err = _probe("sse9")
    assert isa == sup[0]
    assert "FERRY_MAX_ISA" in err
