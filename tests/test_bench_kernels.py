"""bench/kernels.py, the GPU benchmark of the triton backend, run end to end on the CPU.

    pytest tests/test_bench_kernels.py

The benchmark's figures need an H100 or H200, and a GPU's time is scarce, so the script itself is
checked here: with --device cpu it builds every case, checks every implementation against eager,
times them (Triton's interpreter, the wall clock: the times mean nothing) and writes its JSON, on a
small network with each kernel type, split over two groups. No time is asserted.
"""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

import netdsl

BENCH = Path(__file__).resolve().parent.parent / "bench" / "kernels.py"

SMALL_NET = """
# An SI conv, LRN and overlapping max-pool twice over two groups, the second conv in its group
[net]
name   = small
groups = 2
[data]
type  = data
shape = 3x27x27
[conv1]
type    = siconv
filters = 8
size    = 5
stride  = 2
scales  = 0.63, 1, 1.59
neuron  = relu
[rnorm1]
type = lrn
[pool1]
type   = maxpool
size   = 3
stride = 2
[conv2]
type    = siconv
filters = 12
size    = 3
pad     = 1
connect = group
scales  = 0.794, 1.26
neuron  = relu
[rnorm2]
type = lrn
size = 3
[pool2]
type   = maxpool
size   = 3
stride = 2
pad    = 1
[fc3]
type    = fc
outputs = 10
[prob]
type = softmax
"""


def run_bench(*args, env=None, unset=()):
    """bench/kernels.py with `args`, in this environment plus `env` and less the variables `unset`."""
    environment = {key: value for key, value in os.environ.items() if key not in unset}
    return subprocess.run([sys.executable, str(BENCH), *args], capture_output=True, text=True,
                          env={**environment, **(env or {})}, timeout=300)


def test_every_case_runs_and_agrees_with_eager(tmp_path):
    (tmp_path / "small.net").write_text(SMALL_NET)
    result = run_bench("--device", "cpu", "--batch", "2", "--repeats", "1", "--no-compile",
                       "--nets", str(tmp_path / "small.net"), "--json", str(tmp_path / "out.json"),
                       env={"TRITON_INTERPRET": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "out.json").read_text())

    net = netdsl.parse_string(SMALL_NET)
    kernel_layers = [layer.name for layer in net.layers if layer.type in ("lrn", "maxpool", "siconv")]
    assert [case["case"].split()[1] for case in report["kernels"]] == kernel_layers
    for case in report["kernels"]:
        implementations = {row["implementation"] for row in case["results"]}
        assert "triton" in implementations and any(name.startswith("eager") for name in implementations)
        for row in case["results"]:
            assert "failed" not in row, f"{case['case']}: {row}"
            assert row["ms"] > 0 and row["GB/s"] > 0 and row["vs eager"] > 0
            assert row["error"] < 1e-5, f"{case['case']}: {row['implementation']} differs from eager"
        assert case["bytes"] > 0
    assert {(row["net"], row["backend"], row["batch"]) for row in report["networks"]} == \
        {("small", "torch", 2), ("small", "triton", 2)}
    assert all(row["images/s"] > 0 for row in report["networks"])


def test_float16_cases_are_checked_against_float32_eager(tmp_path):
    """--dtype float16: every kernel's output within one float16 rounding of eager in float32, and the
    training steps under autocast. (Eager LRN has no float16 on the CPU; that row reports its failure.)"""
    (tmp_path / "small.net").write_text(SMALL_NET)
    result = run_bench("--device", "cpu", "--batch", "2", "--repeats", "1", "--no-compile", "--dtype", "float16",
                       "--nets", str(tmp_path / "small.net"), "--json", str(tmp_path / "out.json"),
                       env={"TRITON_INTERPRET": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "out.json").read_text())
    assert report["dtype"] == "float16" and len(report["kernels"]) == 6
    for case in report["kernels"]:
        rows = {row["implementation"]: row for row in case["results"]}
        assert "failed" not in rows["triton"], f"{case['case']}: {rows['triton']}"
        assert rows["triton"]["error"] < 2**-10, case["case"]  # float16 rounds within 2**-11 of each value
    assert all(row["images/s"] > 0 for row in report["networks"]) and len(report["networks"]) == 2


def test_without_a_gpu_it_says_so_and_exits_0():
    result = run_bench(env={"CUDA_VISIBLE_DEVICES": ""})
    assert result.returncode == 0
    assert "needs a CUDA GPU" in result.stdout and "nothing measured" in result.stdout


def test_the_cpu_run_asks_for_the_interpreter():
    result = run_bench("--device", "cpu", unset=["TRITON_INTERPRET"])
    assert result.returncode == 2
    assert "TRITON_INTERPRET=1 python" in result.stderr and "Traceback" not in result.stderr


class ReluWithBrokenBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clamp_min(0)

    @staticmethod
    def backward(ctx, grad):
        raise RuntimeError("no backward\nsecond line")


def test_an_implementation_that_fails_is_reported_and_the_others_timed(monkeypatch):
    """A torch.compile (or kernel) failure, forward or backward, must not cost the rest of a GPU run."""
    spec = importlib.util.spec_from_file_location("bench_kernels", BENCH)
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, bench)  # its dataclasses look it up there
    spec.loader.exec_module(bench)
    x = torch.randn(64, requires_grad=True)
    case = bench.Case("relu", {"eager": torch.relu, "broken": ReluWithBrokenBackward.apply,
                               "also eager": lambda x: x.clamp_min(0)}, [x], bytes=2 * 64 * 4)
    bench.measure(case, repeats=2, copy=1e9, device=torch.device("cpu"))
    rows = {row["implementation"]: row for row in case.results}
    assert rows["broken"] == {"implementation": "broken", "failed": "RuntimeError: no backward"}
    assert rows["eager"]["error"] == 0 and rows["also eager"]["error"] == 0
    assert rows["eager"]["vs eager"] == 1 and rows["also eager"]["ms"] > 0
