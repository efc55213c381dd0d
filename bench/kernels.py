"""The triton backend on a CUDA GPU: each kernel's forward+backward time and bytes/s, and training images/s.

    python bench/kernels.py                            # median of 20 runs of everything
    python bench/kernels.py --repeats 50 --json results.json
    python bench/kernels.py --no-compile               # skip torch.compile (it takes minutes to compile)
    python bench/kernels.py --nets nets/tiny_imagenet.net
    python bench/kernels.py --dtype bfloat16           # kernels on bfloat16 maps; training under autocast
    TRITON_INTERPRET=1 python bench/kernels.py --device cpu --batch 1 --repeats 1 --no-compile   # does the script work?

What it measures, all in one process, implementations of a case timed side by side (alternating
runs, CUDA events, after a warm-up), reporting medians:
- copy bandwidth: a 1 GiB device-to-device copy, read + write bytes per second, the ceiling for
  these memory-bound kernels;
- forward + backward at batch 128 of every LRN, max-pool and SI warp-max layer (the warp and max
  alone, given each scale's conv output) of the networks, by default nets/alexnet.net,
  nets/si_alexnet.net (whose LRNs and pools are alexnet's, so timed once) and the SI paper's
  nets/mnist_scale_si.net, for:
    triton          the generated kernels (netdsl's triton backend)
    torch backend   netdsl's torch backend (its own LRN; F.max_pool2d, which is eager's; its SI
                    layer, channels-last inside si_conv2d, is bench/si_layer.py's)
    eager           plain PyTorch: F.local_response_norm with alpha * size, F.max_pool2d, and
                    each scale interpolated, stacked and maxed
    torch.compile   the eager code compiled
  with bytes/s: the bytes the triton kernels must move (each tensor read or written once; the
  max-pool's and warp-max's one byte per output included), the same count for every
  implementation of a case so the columns compare; the speed-up over eager; the largest difference
  from eager's output, relative to its largest value; and for the warp-max the peak memory the
  step allocates;
- training images/s (forward, cross-entropy, backward, SGD step) of each network with the torch
  and the triton backend, at its [train] batch.
With `--dtype float16` or `bfloat16` the cases' tensors are in that dtype (bytes counted at its size)
and the training step runs under torch.autocast to it, its weights and optimizer still float32.

Record the output in docs/benchmarks.md with the device name. Without CUDA it says so and exits 0.
`--device cpu` (with TRITON_INTERPRET=1) runs everything in Triton's interpreter with the wall clock
instead, at `--batch` images: how tests/test_bench_kernels.py checks the script before a GPU's time
is spent on it. Its times say nothing about the kernels.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
import triton

import netdsl

NETS = Path(__file__).resolve().parent.parent / "nets"
NETWORKS = ("alexnet.net", "si_alexnet.net", "mnist_scale_si.net")  # AlexNet's sizes and the SI paper's
BATCH = 128
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass
class Case:
    """One kernel at one size: the implementations to time, their inputs and the bytes a step must move."""
    name: str
    implementations: dict[str, Callable]
    inputs: list[torch.Tensor]
    bytes: int
    memory: bool = False  # report each implementation's peak memory
    results: list[dict] = field(default_factory=list)


def elapsed_ms(step: Callable, device: torch.device) -> float:
    """One run of `step` in milliseconds: CUDA events on a GPU, the wall clock on the CPU."""
    if device.type != "cuda":
        start = time.perf_counter()
        step()
        return (time.perf_counter() - start) * 1e3
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    step()
    end.record()
    end.synchronize()
    return start.elapsed_time(end)


def time_side_by_side(steps: dict[str, Callable], repeats: int, device: torch.device) -> dict[str, float]:
    """Median milliseconds of each step, the steps run in turn `repeats` times after a warm-up."""
    for step in steps.values():
        for _ in range(3 if device.type == "cuda" else 1):
            step()
    times = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            times[name].append(elapsed_ms(step, device))
    return {name: statistics.median(ms) for name, ms in times.items()}


def peak_megabytes(step: Callable) -> float:
    """What one step allocates on the GPU at its peak, beyond what was allocated before it, in MiB."""
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    step()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - before) / 2**20


def copy_bandwidth(repeats: int, device: torch.device) -> float:
    """Bytes per second of a 1 GiB device-to-device copy (64 MiB on the CPU), counting what is read and what is written."""
    src = torch.empty(2**28 if device.type == "cuda" else 2**24, device=device)
    dst = torch.empty_like(src)
    ms = time_side_by_side({"copy": lambda: dst.copy_(src)}, repeats, device)["copy"]
    return 2 * src.numel() * src.element_size() / (ms / 1e3)


def failure(err: Exception) -> str:
    """An exception as one short line for the report."""
    return f"{type(err).__name__}: {err}".splitlines()[0][:200]


def forward_backward(op: Callable, inputs: list[torch.Tensor], grad: torch.Tensor) -> Callable:
    """A step: op(*inputs), then the inputs' gradients for the output gradient `grad`."""
    return lambda: torch.autograd.grad(op(*inputs), inputs, grad)


def modules(net):
    """The network's generated triton and torch modules."""
    return (netdsl.load_source(netdsl.generate_source(net, backend="triton"), net.name),
            netdsl.load_source(netdsl.generate_source(net, backend="torch"), net.name))


def lrn_case(net, layer, triton_module, torch_module, device: torch.device, batch: int, dtype: torch.dtype) -> Case:
    """An LRN layer on post-ReLU activations of its input's size."""
    o = layer.options
    size, k, alpha, beta = o["size"], o["k"], o["alpha"], o["beta"]
    groups = net.groups if layer.split else 1
    c, h, w = layer.in_shape
    x = torch.relu(torch.randn(batch, c, h, w, device=device) * 50).to(dtype).requires_grad_()

    def eager(x):
        n, c, h, w = x.shape  # PyTorch's LRN divides alpha by the size; each group on its own
        out = F.local_response_norm(x.reshape(n * groups, c // groups, h, w), size, alpha * size, beta, k)
        return out.reshape(n, c, h, w)

    implementations = {
        "triton": getattr(triton_module, f"lrn_{layer.name}"),
        "torch backend": lambda x: torch_module.local_response_norm(x, size, k, alpha, beta, groups),
        "eager": eager,
        "torch.compile": torch.compile(eager, dynamic=False),
    }
    return Case(f"{net.name} {layer.name} {batch}x{c}x{h}x{w}, {groups} group(s)", implementations,
                [x], bytes=5 * x.numel() * x.element_size())  # forward: a, b; backward: a, grad b, grad a


def maxpool_case(net, layer, triton_module, torch_module, device: torch.device, batch: int, dtype: torch.dtype) -> Case:
    """A max-pool layer on post-ReLU activations; the torch backend is F.max_pool2d itself."""
    o = layer.options
    c, h, w = layer.in_shape
    x = torch.relu(torch.randn(batch, c, h, w, device=device)).to(dtype).requires_grad_()
    def eager(x):
        return F.max_pool2d(x, o["size"], o["stride"], o["pad"], ceil_mode=o["round"] == "ceil")
    implementations = {
        "triton": getattr(triton_module, f"maxpool_{layer.name}"),
        "eager = torch backend": eager,
        "torch.compile": torch.compile(eager, dynamic=False),
    }
    inputs, outputs, itemsize = x.numel(), batch * layer.out_shape.numel, x.element_size()
    # forward: x, y and a byte per output; backward: grad y, the bytes, grad x
    return Case(f"{net.name} {layer.name} {batch}x{c}x{h}x{w}, {o['size']}/{o['stride']}",
                implementations, [x], bytes=2 * itemsize * inputs + 2 * (itemsize + 1) * outputs)


def warp_max_case(net, layer, triton_module, torch_module, device: torch.device, batch: int, dtype: torch.dtype) -> Case:
    """An SI layer's warp-max, given random conv outputs at each scale."""
    size = (layer.out_shape.h, layer.out_shape.w)
    zs = [torch.randn(batch, layer.out_shape.c, ch, cw, device=device, dtype=dtype, requires_grad=True)
          for _, _, _, ch, cw in layer.derived["scale_maps"]]

    def eager(*zs):
        warped = [F.interpolate(z, size=size, mode="bilinear", align_corners=False) for z in zs]
        return torch.stack(warped).max(dim=0).values

    # The warp-max alone: the si_warp_max operator with the constants the layer's line binds to si_conv2d, but the scales
    constants = {name: value for name, value in getattr(triton_module, f"si_warp_max_{layer.name}").keywords.items()
                 if name != "scales"}
    # The torch backend's warp-max works on channels-last maps inside its si_conv2d (bench/si_layer.py
    # times that layer whole), so here eager is plain PyTorch only
    implementations = {
        "triton": lambda *zs: triton_module.si_warp_max(list(zs), **constants)[0],
        "eager": eager,
        "torch.compile": torch.compile(eager, dynamic=False),
    }
    maps, outputs, itemsize = sum(z.numel() for z in zs), batch * layer.out_shape.numel, zs[0].element_size()
    scales = ", ".join(f"{s:g}" for s in layer.options["scales"])
    # forward: every map, the output and its winner byte; backward: grad out, the bytes, every map's grad
    return Case(f"{net.name} {layer.name} {batch}x{layer.out_shape}, scales {scales}", implementations,
                zs, bytes=2 * itemsize * maps + 2 * (itemsize + 1) * outputs, memory=device.type == "cuda")


CASES = {"lrn": lrn_case, "maxpool": maxpool_case, "siconv": warp_max_case}  # layer type -> its case


def kernel_cases(paths: list[Path], device: torch.device, batch: int, dtype: torch.dtype) -> Iterator[Case]:
    """A case for each LRN, max-pool and SI layer of the networks; a layer the same as one before
    (si_alexnet's LRNs and pools are alexnet's) is timed once."""
    seen = set()
    for path in paths:
        net = netdsl.parse_file(path)
        triton_module, torch_module = modules(net)
        for layer in net.layers:
            if layer.type not in CASES:
                continue
            groups = net.groups if layer.split else 1
            same = (layer.type, tuple(layer.in_shape), groups, repr(sorted(layer.options.items())))
            if same not in seen:
                seen.add(same)
                yield CASES[layer.type](net, layer, triton_module, torch_module, device, batch, dtype)


def measure(case: Case, repeats: int, copy: float, device: torch.device) -> None:
    """Check every implementation against eager in float32, then time them side by side into case.results."""
    eager = next(fn for name, fn in case.implementations.items() if name.startswith("eager"))
    with torch.no_grad():  # float32 whatever the dtype: in float16 the error column shows its rounding
        expected = eager(*(x.float() for x in case.inputs))
    grad = torch.randn_like(expected).to(case.inputs[0].dtype)
    steps, errors = {}, {}
    for name, fn in case.implementations.items():
        step = forward_backward(fn, case.inputs, grad)
        try:
            errors[name] = ((fn(*case.inputs).float() - expected).abs().max() / expected.abs().max()).item()
            step()  # the backward compiles here too (Triton, torch.compile)
        except Exception as err:  # torch.compile can fail on a given setup: report it, keep going
            case.results.append({"implementation": name, "failed": failure(err)})
            continue
        steps[name] = step
    times = time_side_by_side(steps, repeats, device)
    for name, ms in times.items():
        row = {"implementation": name, "ms": ms, "GB/s": case.bytes / (ms / 1e3) / 1e9,
               "of copy": case.bytes / (ms / 1e3) / copy, "error": errors[name]}
        if case.memory:
            row["peak MiB"] = peak_megabytes(steps[name])
        case.results.append(row)
    eager_ms = next((r["ms"] for r in case.results if r["implementation"].startswith("eager") and "ms" in r), None)
    for row in case.results:
        if "ms" in row and eager_ms:
            row["vs eager"] = eager_ms / row["ms"]


def print_case(case: Case) -> None:
    print(f"\n{case.name}  ({case.bytes / 1e6:.0f} MB moved)")
    for row in case.results:
        if "failed" in row:
            print(f"  {row['implementation']:24s} failed: {row['failed']}")
            continue
        memory = f"  {row['peak MiB']:8.0f} MiB peak" if "peak MiB" in row else ""
        vs_eager = f"{row['vs eager']:6.2f}x eager" if "vs eager" in row else "(eager failed)"
        print(f"  {row['implementation']:24s} {row['ms']:8.3f} ms {row['GB/s']:7.0f} GB/s "
              f"{row['of copy']:6.0%} of copy {vs_eager}  error {row['error']:.0e}{memory}")


def training_images_per_s(paths: list[Path], repeats: int, device: torch.device, batch: int | None,
                          dtype: torch.dtype) -> list[dict]:
    """Images per second of a full training step of each network, with each backend, side by side,
    at `batch` images or the network's [train] batch; under autocast to `dtype` unless it is float32."""
    rows = []
    for path in paths:
        net = netdsl.parse_file(path)
        images = batch or net.train.batch
        x = torch.randn(images, *net.input_shape, device=device) * 50
        labels = torch.randint(net.classes, (images,), device=device)
        steps = {}
        for backend in ("torch", "triton"):
            try:  # a backend that fails on one network is reported, and the others still run
                model = netdsl.compile_net(net, backend=backend, devices=[device]).train()
                optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

                def step(model=model, optimizer=optimizer):
                    optimizer.zero_grad(set_to_none=True)
                    with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
                        loss = F.cross_entropy(model(x), labels)
                    loss.backward()
                    optimizer.step()

                step()
            except Exception as err:
                rows.append({"net": net.name, "backend": backend, "batch": images, "failed": failure(err)})
                print(f"  {net.name:16s} {backend:7s} failed: {failure(err)}")
                continue
            steps[backend] = step
        for backend, ms in time_side_by_side(steps, repeats, device).items():
            rows.append({"net": net.name, "backend": backend, "batch": images, "ms": ms,
                         "images/s": images / (ms / 1e3)})
            print(f"  {net.name:16s} {backend:7s} batch {images}: {ms:8.1f} ms a step, {images / (ms / 1e3):8.0f} images/s")
        del steps
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20, help="timed runs per implementation (default 20)")
    parser.add_argument("--no-compile", action="store_true", help="leave out torch.compile")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--nets", type=Path, nargs="+", default=[NETS / n for n in NETWORKS],
                        help="networks whose LRN, max-pool and SI layers are timed, and whose training step is "
                             f"(default: {', '.join(NETWORKS)})")
    parser.add_argument("--device", type=torch.device, default=torch.device("cuda"),
                        help="cuda (default), or cpu: the kernels in Triton's interpreter, to check the script, not to time it")
    parser.add_argument("--dtype", choices=DTYPES, default="float32",
                        help="the cases' tensors, and the training step's autocast (default float32: none)")
    parser.add_argument("--batch", type=int, help="images per case and per training step "
                        "(default: 128 for the kernels, each network's [train] batch for training)")
    args = parser.parse_args()
    device = args.device
    if device.type == "cuda" and not torch.cuda.is_available():
        print("bench/kernels.py needs a CUDA GPU (the Triton kernels run on CUDA); none here, nothing measured.")
        return 0
    if device.type == "cpu" and os.environ.get("TRITON_INTERPRET") != "1":
        print("--device cpu runs the kernels in Triton's interpreter, which must be on before triton is imported:\n"
              f"    TRITON_INTERPRET=1 python {' '.join(sys.argv)}", file=sys.stderr)
        return 2
    batch, dtype = args.batch or BATCH, DTYPES[args.dtype]

    torch.backends.cudnn.benchmark = True
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (Triton interpreter)"
    print(f"{device_name}; torch {torch.__version__}, triton {triton.__version__}; {args.dtype}, median of {args.repeats}")
    copy = copy_bandwidth(args.repeats, device)
    print(f"copy bandwidth: {copy / 1e9:.0f} GB/s (device-to-device, read + write)")

    print(f"\nforward + backward, batch {batch}")
    cases = []
    for case in kernel_cases(args.nets, device, batch, dtype):
        if args.no_compile:
            case.implementations.pop("torch.compile")
        measure(case, args.repeats, copy, device)
        print_case(case)
        case.inputs.clear()  # free this case's tensors before the next is made
        cases.append(case)

    print("\ntraining step (forward, cross-entropy, backward, SGD)")
    networks = training_images_per_s(args.nets, args.repeats, device, args.batch, dtype)

    if args.json:
        args.json.write_text(json.dumps({
            "device": device_name, "torch": torch.__version__, "triton": triton.__version__,
            "dtype": args.dtype, "repeats": args.repeats, "copy GB/s": copy / 1e9,
            "kernels": [{"case": case.name, "bytes": case.bytes, "results": case.results} for case in cases],
            "networks": networks}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
