"""Kernel sources: triton/ (Triton, Python), cuda/ (CUDA C), cpu/ (C++ for the native extension)."""
