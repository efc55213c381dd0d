"""Settings for the whole test process.

The tests run the generated Triton kernels in Triton's interpreter, on the CPU. Whether Triton's own
functions (tl.zeros, ...) are interpreted or compiled is fixed when triton is first imported, so
TRITON_INTERPRET is set here, before any test module can import it. tests/triton_aot.py, which
compiles for a real GPU, runs as a process of its own.

Fixtures and assertions shared by several test modules live here (imported by name:
`from conftest import one_line_error`).
"""
import os
import subprocess
from pathlib import Path

import pytest

os.environ["TRITON_INTERPRET"] = "1"


NETS = Path(__file__).resolve().parent.parent / "nets"
# The canon of issue 20 (VGG16, the ResNets, GoogLeNet, the one-GPU and Caffe AlexNets): tests/test_canon.py
# holds them against plain-PyTorch references. The tests that compile or trace every network at full
# size take the seed networks, the rest of nets/, which reach every layer type but batch norm, sums and heads.
CANON = ("alexnet_1gpu", "caffe_alexnet", "googlenet", "resnet18", "resnet50", "vgg16")
SEED_NETS = sorted(path.stem for path in NETS.glob("*.net") if path.stem not in CANON)


# The slow tier: modules that train, start processes, compile kernels or run them in Triton's
# interpreter. `pytest -m "not slow"` runs the rest, the language, code generation and unit tests,
# in under a minute on 2 cores; `pytest` runs everything (CI and the README's second command).
SLOW_MODULES = {
    "test_runner", "test_runner_faults", "test_runner_kill", "test_runner_signals", "test_runner_reference",
    "test_distributed", "test_distributed_faults", "test_fault_matrix", "test_multinode", "test_ensemble",
    "test_precision", "test_provenance", "test_inspect", "test_invariance", "test_scale_eval", "test_time",
    "test_triton_kernels", "test_triton_compile", "test_canon", "test_export", "test_cli", "test_data_prepare",
    "test_fashion_mnist", "test_mnist_scale", "test_bench_kernels", "test_experiment_scripts", "test_placement",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.module.__name__ in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)


def one_line_error(capsys, code, *words) -> str:
    """The one line a user error prints: exit status 2, one line on stderr, no traceback, each of
    `words` in it."""
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, err
    return err.strip()


def cli_train(net, data, out, *flags) -> int:
    """`netdsl train NET [--data DATA] --out OUT --workers 0 FLAGS...` through the command line's own
    entry point, for the tests of what the command prints and exits with; the tests that only need
    a trained run call netdsl.train."""
    from netdsl import cli

    argv = ["train", str(net), "--out", str(out), "--workers", "0"]
    if data is not None:
        argv += ["--data", str(data)]
    return cli.main(argv + [str(flag) for flag in flags])


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
