"""Settings for the whole test process.

The tests run the generated Triton kernels in Triton's interpreter, on the CPU. Whether Triton's own
functions (tl.zeros, ...) are interpreted or compiled is fixed when triton is first imported, so
TRITON_INTERPRET is set here, before any test module can import it. tests/triton_aot.py, which
compiles for a real GPU, runs as a process of its own.

Fixtures shared by several test modules live here.
"""
import os
import subprocess

import pytest

os.environ["TRITON_INTERPRET"] = "1"


@pytest.fixture
def small_disk(tmp_path):
    """A 600 KiB tmpfs, mounted for the test (needs root; skipped, saying why, where it cannot be)."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(mount_point)],
                             capture_output=True, text=True, timeout=300)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True, timeout=300)
