"""emulation: the onnx node conformance cases whose every node the CUDA provider claims, run
on its kernels under numpy host emulation (strict: no CPU fallback)."""

from __future__ import annotations

import warnings

import pytest

from tests.providers.cuda.cases import ORT_DISAGREES, check_case, claimed_cases

pytestmark = pytest.mark.emulation

_CASES = claimed_cases()


def test_the_provider_claims_a_broad_set_of_cases():
    assert len(_CASES) > 500


@pytest.mark.parametrize("case", _CASES, ids=[c.name for c in _CASES])
def test_node_case(case):
    if case.name in ORT_DISAGREES:
        pytest.skip("onnx reference and onnxruntime disagree; ferry follows onnxruntime")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        check_case(case)
