"""The CUDA execution provider (CuPy kernels; host emulation for tests)."""
