"""Settings for the whole test process.

The tests run the generated Triton kernels in Triton's interpreter, on the CPU. Whether Triton's own
functions (tl.zeros, ...) are interpreted or compiled is fixed when triton is first imported, so
TRITON_INTERPRET is set here, before any test module can import it. tests/triton_aot.py, which
compiles for a real GPU, runs as a process of its own.
"""
import os

os.environ["TRITON_INTERPRET"] = "1"
