"""The CUDA provider's tests run its kernels in host emulation (numpy) by default: every test
in this folder gets ``FERRY_CUDA_EMULATION=1`` unless it removes it. On a GPU machine,
``FERRY_CUDA_REAL=1`` (set by benchmarks/gpu_check.py) runs the same tests on CuPy."""

from __future__ import annotations

import logging
import os

import pytest

REAL_GPU = os.environ.get("FERRY_CUDA_REAL", "").strip() == "1"


@pytest.fixture(autouse=True)
def cuda_emulation(monkeypatch):
    if REAL_GPU:
        monkeypatch.delenv("FERRY_CUDA_EMULATION", raising=False)
    else:
        monkeypatch.setenv("FERRY_CUDA_EMULATION", "1")
    # The emulation notice is logged once per provider instance; keep test output quiet.
    logger = logging.getLogger("ferry")
    old = logger.level
    logger.setLevel(logging.ERROR)
    yield
    logger.setLevel(old)
