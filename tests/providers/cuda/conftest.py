"""The CUDA provider's tests run its kernels in host emulation (numpy) by default: every test
in this folder gets ``FERRY_CUDA_EMULATION=1`` unless it removes it. On a GPU machine,
``FERRY_CUDA_REAL=1`` (set by benchmarks/gpu_check.py) runs the same tests on CuPy."""

from __future__ import annotations

import pytest

from tests.conftest import REAL_GPU  # noqa: F401  (imported from here by the tests)


@pytest.fixture(autouse=True)
def _every_test_emulated(cuda_emulation):
    yield
