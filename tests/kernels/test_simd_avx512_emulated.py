"""The AVX-512 paths of the elementwise, pool, softmax and normalization kernels on any CPU:
their loops are compiled against an emulated immintrin.h (tests/kernels/emulated_simd512) and
compared with the scalar loops, as are the real AVX2 loops where the CPU has AVX2. This is
what checks the AVX-512 code on machines without AVX-512 (the module dispatches to it only
when CPUID and XCR0 allow)."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SRC = os.path.join(ROOT, "kernels_cpp", "src")
INC = os.path.join(ROOT, "kernels_cpp", "include")
EMU = os.path.join(ROOT, "tests", "kernels", "emulated_simd512")
FAMILIES = ["elementwise/f32_elementwise", "pool/f32_pool", "softmax/f32_softmax",
            "normalization/f32_normalization", "conv/depthwise"]


def _compile(cxx, src, obj, flags):
    proc = subprocess.run([cxx, "-O1", "-std=c++17", *flags, f"-I{INC}", "-c", src, "-o", obj],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                    reason="x86 kernels")
def test_avx512_loops_emulated_against_scalar(tmp_path):
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.skip("no C++ compiler to build the emulation harness")
    objs = []
    for fam in FAMILIES:
        name = os.path.basename(fam)
        for isa, flags in (("scalar", []), ("avx512", ["-D__AVX512F__", f"-I{EMU}"]),
                           ("avx2", ["-mavx2", "-mfma", "-mf16c"])):
            obj = str(tmp_path / f"{name}_{isa}.o")
            _compile(cxx, os.path.join(SRC, f"{fam}__{isa}.cpp"), obj, flags)
            objs.append(obj)
    exe = str(tmp_path / "harness")
    build = subprocess.run([cxx, "-O1", "-std=c++17", f"-I{SRC}", f"-I{INC}", "-o", exe,
                            os.path.join(EMU, "harness.cc"), *objs], capture_output=True,
                           text=True, timeout=300, check=False)
    assert build.returncode == 0, build.stderr[-4000:]
    proc = subprocess.run([exe], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "TOTAL 0 mismatches" in proc.stdout
    assert "avx512 normalization checked" in proc.stdout
    assert "avx512 depthwise checked" in proc.stdout
