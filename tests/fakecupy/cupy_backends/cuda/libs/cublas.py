"""CuPy's cuBLAS bindings load libcublas: here, the stand-in (tests/fakecupy/libcublas_fake.cpp)."""
import cupy

cupy._cublas()
