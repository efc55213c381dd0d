"""Every generated Triton kernel compiled by Triton's real compiler for an H100/H200 (sm_90), on the CPU.

    pytest tests/test_triton_compile.py
    python tests/triton_aot.py nets/si_alexnet.net      # the same kernels' registers, grids, warps

The interpreter tests (test_triton_kernels.py) check what the kernels compute; the interpreter runs
them in numpy, so they cannot tell whether the compiler accepts them, or how it lays them out. Here
each kernel a network launches in a training step, at the launch's own argument types and options
(tests/triton_aot.py says how they are recorded without a GPU; it runs as a process of its own), goes
to a cubin, and each must:
- compile;
- call no libdevice function (extern_elementwise), which the interpreter could not run;
- use no shared memory: every kernel here is elementwise, a gather or a scatter, so shared memory
  would only mean registers reshuffled between layouts, with barriers, on every step;
- spill no register to local memory;
- fit its grid in CUDA's limits (x below 2^31, y and z at most 65535).
The same holds of a model in float16 and in bfloat16 (which the interpreter cannot run), whose kernels
compute in float32.
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest

import netdsl
from conftest import SEED_NETS
from kernel_names import expected_kernels

TESTS = Path(__file__).resolve().parent
NETS = TESTS.parent / "nets"
GRID_LIMITS = (2**31 - 1, 65535, 65535)

EDGE_CASES = {
    "lrn_wider_than_group": ("6x3x5", "type = lrn\nsize = 9"),
    "lrn_one_channel": ("5x6x2", "type = lrn\nsize = 1"),
    "lrn_4_pixels_a_thread": ("38x8x8", "type = lrn"),    # 64-pixel maps
    "lrn_2_pixels_a_thread": ("38x7x6", "type = lrn"),    # 42-pixel maps
    "maxpool_pad_ceil": ("5x12x12", "type = maxpool\nsize = 3\nstride = 2\npad = 1\nround = ceil"),
    "maxpool_gaps": ("2x8x9", "type = maxpool\nsize = 2\nstride = 3"),  # some inputs in no window
    "si_no_scale_1": ("3x9x9", "type = siconv\nfilters = 6\nsize = 3\npad = 1\nscales = 0.7, 1.5, 2"),
    "si_one_scale": ("2x7x8", "type = siconv\nfilters = 6\nsize = 3\nscales = 1"),
    "lrn_within": ("6x9x7", "type = lrn\nregion = within\nsize = 3"),
    "lrn_within_wide": ("4x55x55", "type = lrn\nregion = within\nsize = 5"),
}


def compile_for_hopper(paths, batch, dtype="float32"):
    """tests/triton_aot.py's report on the networks' kernels: {path: [kernel, ...]}."""
    result = subprocess.run([sys.executable, str(TESTS / "triton_aot.py"), "--json", "--batch", str(batch),
                             "--dtype", dtype, *map(str, paths)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def seed_networks():
    return compile_for_hopper([NETS / f"{name}.net" for name in SEED_NETS], batch=128)


@pytest.fixture(scope="module")
def edge_cases(tmp_path_factory):
    folder = tmp_path_factory.mktemp("edge_cases")
    for name, (shape, layer) in EDGE_CASES.items():
        (folder / f"{name}.net").write_text(
            f"[data]\ntype = data\nshape = {shape}\n[layer]\n{layer}\n[prob]\ntype = softmax\n")
    return {Path(path).stem: kernels for path, kernels in
            compile_for_hopper(sorted(folder.glob("*.net")), batch=3).items()}, folder


def assert_compiled_cleanly(net, kernels):
    assert {(k["layer"], k["kernel"]) for k in kernels} == expected_kernels(net), "every kernel launched was compiled"
    for k in kernels:
        name = f"{k['layer']} {k['kernel']}"
        assert k["target"] == "sm_90a", name
        assert all(0 < n <= limit for n, limit in zip(k["grid"], GRID_LIMITS)), f"{name} grid {k['grid']}"
        assert not k["libdevice"], f"{name} calls libdevice"
        assert k["shared"] == 0, f"{name} uses {k['shared']} bytes of shared memory"
        assert k["local"] == k["stack"] == 0, f"{name} spills registers"
        assert k["registers"] > 0, name


@pytest.mark.parametrize("name", SEED_NETS)
def test_seed_network_kernels_compile_for_hopper(seed_networks, name):
    path = NETS / f"{name}.net"
    assert_compiled_cleanly(netdsl.parse_file(path), seed_networks[str(path)])


@pytest.mark.parametrize("name", EDGE_CASES)
def test_edge_case_kernels_compile_for_hopper(edge_cases, name):
    kernels, folder = edge_cases
    assert_compiled_cleanly(netdsl.parse_file(folder / f"{name}.net"), kernels[name])


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_kernels_compile_for_hopper(dtype):
    """si_alexnet's LRN, max-pool and 3-scale SI kernels and the MNIST-scale network's 6-scale ones."""
    paths = [NETS / "si_alexnet.net", NETS / "mnist_scale_si.net"]
    kernels = compile_for_hopper(paths, batch=128, dtype=dtype)
    for path in paths:
        assert_compiled_cleanly(netdsl.parse_file(path), kernels[str(path)])
