"""The CPU execution provider: C++ kernels through ferry_kernels, numpy for the long tail."""
