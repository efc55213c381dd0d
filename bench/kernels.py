"""The triton backend on a CUDA GPU: each kernel's forward+backward time and bytes/s, and training images/s.

    python bench/kernels.py                            # median of 20 runs of everything
    python bench/kernels.py --repeats 50 --json results.json
    python bench/kernels.py --no-compile               # skip torch.compile (it takes minutes to compile)

What it measures, all in one process, implementations of a case timed side by side (alternating
runs, CUDA events, after a warm-up), reporting medians:
- copy bandwidth: a 1 GiB device-to-device copy, read + write bytes per second, the ceiling for
  these memory-bound kernels;
- forward + backward of every LRN and max-pool layer of nets/alexnet.net at batch 128, and of
  every SI warp-max of nets/si_alexnet.net and nets/mnist_scale_si.net at batch 128 (the warp
  and max alone, given each scale's conv output), for:
    triton          the generated kernels (netdsl's triton backend)
    torch backend   netdsl's torch backend (its own LRN; F.max_pool2d; interpolate-stack-max)
    eager           plain PyTorch: F.local_response_norm with alpha * size, F.max_pool2d, and
                    each scale interpolated, stacked and maxed
    torch.compile   the eager code compiled
  with bytes/s: the bytes the triton kernels must move (each tensor read or written once; the
  max-pool's and warp-max's one byte per output included), the same count for every
  implementation of a case so the columns compare; the speed-up over eager; and for the
  warp-max the peak memory the step allocates;
- training images/s (forward, cross-entropy, backward, SGD step) of nets/alexnet.net and
  nets/si_alexnet.net with the torch and the triton backend, at each net's [train] batch.

Record the output in docs/benchmarks.md with the device name. Without CUDA it says so and exits 0.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from itertools import chain
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
import triton

import netdsl

NETS = Path(__file__).resolve().parent.parent / "nets"
DEVICE = "cuda"
BATCH = 128
FLOAT = 4  # bytes


@dataclass
class Case:
    """One kernel at one size: the implementations to time, their inputs and the bytes a step must move."""
    name: str
    implementations: dict[str, Callable]
    inputs: list[torch.Tensor]
    bytes: int
    memory: bool = False  # report each implementation's peak memory
    results: list[dict] = field(default_factory=list)


def time_side_by_side(steps: dict[str, Callable], repeats: int) -> dict[str, float]:
    """Median milliseconds of each step, the steps run in turn `repeats` times after a warm-up."""
    for step in steps.values():
        for _ in range(3):
            step()
    torch.cuda.synchronize()
    times = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            step()
            end.record()
            end.synchronize()
            times[name].append(start.elapsed_time(end))
    return {name: statistics.median(ms) for name, ms in times.items()}


def peak_megabytes(step: Callable) -> float:
    """What one step allocates at its peak, beyond what was allocated before it, in MiB."""
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    step()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - before) / 2**20


def copy_bandwidth(repeats: int) -> float:
    """Bytes per second of a 1 GiB device-to-device copy, counting what is read and what is written."""
    src = torch.empty(2**28, device=DEVICE)
    dst = torch.empty_like(src)
    ms = time_side_by_side({"copy": lambda: dst.copy_(src)}, repeats)["copy"]
    return 2 * src.numel() * FLOAT / (ms / 1e3)


def forward_backward(op: Callable, inputs: list[torch.Tensor], grad: torch.Tensor) -> Callable:
    """A step: op(*inputs), then the inputs' gradients for the output gradient `grad`."""
    return lambda: torch.autograd.grad(op(*inputs), inputs, grad)


def modules(net):
    """The network's generated triton and torch modules."""
    return (netdsl.load_source(netdsl.generate_source(net, backend="triton"), net.name),
            netdsl.load_source(netdsl.generate_source(net, backend="torch"), net.name))


def lrn_cases(path: Path) -> Iterator[Case]:
    """Every LRN layer of the network, on post-ReLU activations of conv-output size."""
    net = netdsl.parse_file(path)
    triton_module, torch_module = modules(net)
    for layer in net.layers:
        if layer.type != "lrn":
            continue
        o = layer.options
        size, k, alpha, beta = o["size"], o["k"], o["alpha"], o["beta"]
        groups = net.groups if layer.split else 1
        c, h, w = layer.in_shape
        x = torch.relu(torch.randn(BATCH, c, h, w, device=DEVICE) * 50).requires_grad_()

        def eager(x, size=size, k=k, alpha=alpha, beta=beta, groups=groups):
            n, c, h, w = x.shape  # PyTorch's LRN divides alpha by the size; each group on its own
            out = F.local_response_norm(x.reshape(n * groups, c // groups, h, w), size, alpha * size, beta, k)
            return out.reshape(n, c, h, w)

        implementations = {
            "triton": getattr(triton_module, f"lrn_{layer.name}"),
            "torch backend": lambda x, size=size, k=k, alpha=alpha, beta=beta, groups=groups:
                torch_module.local_response_norm(x, size, k, alpha, beta, groups),
            "eager": eager,
            "torch.compile": torch.compile(eager, dynamic=False),
        }
        yield Case(f"{net.name} {layer.name} {BATCH}x{c}x{h}x{w}, {groups} group(s)", implementations,
                   [x], bytes=5 * x.numel() * FLOAT)  # forward: a, b; backward: a, grad b, grad a


def maxpool_cases(path: Path) -> Iterator[Case]:
    """Every max-pool layer of the network; the torch backend is F.max_pool2d itself."""
    net = netdsl.parse_file(path)
    triton_module, _ = modules(net)
    for layer in net.layers:
        if layer.type != "maxpool":
            continue
        o = layer.options
        c, h, w = layer.in_shape
        x = torch.relu(torch.randn(BATCH, c, h, w, device=DEVICE)).requires_grad_()
        eager = lambda x, o=o: F.max_pool2d(x, o["size"], o["stride"], o["pad"], ceil_mode=o["round"] == "ceil")
        implementations = {
            "triton": getattr(triton_module, f"maxpool_{layer.name}"),
            "eager = torch backend": eager,
            "torch.compile": torch.compile(eager, dynamic=False),
        }
        inputs, outputs = x.numel(), BATCH * layer.out_shape.numel
        # forward: x, y and a byte per output; backward: grad y, the bytes, grad x
        yield Case(f"{net.name} {layer.name} {BATCH}x{c}x{h}x{w}, {o['size']}/{o['stride']}",
                   implementations, [x], bytes=2 * FLOAT * inputs + 2 * (FLOAT + 1) * outputs)


def warp_max_cases(path: Path) -> Iterator[Case]:
    """Every SI layer's warp-max, given random conv outputs at each scale."""
    net = netdsl.parse_file(path)
    triton_module, _ = modules(net)
    for layer in net.layers:
        if layer.type != "siconv":
            continue
        size = (layer.out_shape.h, layer.out_shape.w)
        zs = [torch.randn(BATCH, layer.out_shape.c, ch, cw, device=DEVICE, requires_grad=True)
              for _, _, _, ch, cw in layer.derived["scale_maps"]]

        def eager(*zs, size=size):
            warped = [F.interpolate(z, size=size, mode="bilinear", align_corners=False) for z in zs]
            return torch.stack(warped).max(dim=0).values

        implementations = {
            "triton": getattr(triton_module, f"SIWarpMax_{layer.name}").apply,
            "eager = torch backend": eager,
            "torch.compile": torch.compile(eager, dynamic=False),
        }
        maps, outputs = sum(z.numel() for z in zs), BATCH * layer.out_shape.numel
        scales = ", ".join(f"{s:g}" for s in layer.options["scales"])
        # forward: every map, the output and its winner byte; backward: grad out, the bytes, every map's grad
        yield Case(f"{net.name} {layer.name} {BATCH}x{layer.out_shape}, scales {scales}", implementations,
                   zs, bytes=2 * FLOAT * maps + 2 * (FLOAT + 1) * outputs, memory=True)


def measure(case: Case, repeats: int, copy: float) -> None:
    """Check every implementation against eager, then time them side by side into case.results."""
    eager = next(fn for name, fn in case.implementations.items() if name.startswith("eager"))
    expected = eager(*case.inputs).detach()
    grad = torch.randn_like(expected)
    steps = {}
    for name, fn in case.implementations.items():
        try:
            error = ((fn(*case.inputs) - expected).abs().max() / expected.abs().max()).item()
        except Exception as err:  # torch.compile can fail on a given setup: report it, keep going
            case.results.append({"implementation": name, "error": f"{type(err).__name__}: {err}"[:200]})
            continue
        if error > 1e-4:
            print(f"  warning: {name} differs from eager by {error:.1e} on {case.name}")
        steps[name] = forward_backward(fn, case.inputs, grad)
    times = time_side_by_side(steps, repeats)
    for name, ms in times.items():
        row = {"implementation": name, "ms": ms, "GB/s": case.bytes / (ms / 1e3) / 1e9,
               "of copy": case.bytes / (ms / 1e3) / copy}
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
        if "error" in row:
            print(f"  {row['implementation']:24s} failed: {row['error']}")
            continue
        memory = f"  {row['peak MiB']:8.0f} MiB peak" if "peak MiB" in row else ""
        print(f"  {row['implementation']:24s} {row['ms']:8.3f} ms {row['GB/s']:7.0f} GB/s "
              f"{row['of copy']:6.0%} of copy {row['vs eager']:6.2f}x eager{memory}")


def training_images_per_s(paths: list[Path], repeats: int) -> list[dict]:
    """Images per second of a full training step of each network, with each backend, side by side."""
    rows = []
    for path in paths:
        net = netdsl.parse_file(path)
        batch = net.train.batch
        x = torch.randn(batch, *net.input_shape, device=DEVICE) * 50
        labels = torch.randint(net.classes, (batch,), device=DEVICE)
        steps = {}
        for backend in ("torch", "triton"):
            model = netdsl.compile_net(net, backend=backend, devices=[DEVICE]).train()
            optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

            def step(model=model, optimizer=optimizer):
                optimizer.zero_grad(set_to_none=True)
                F.cross_entropy(model(x), labels).backward()
                optimizer.step()

            steps[backend] = step
        for backend, ms in time_side_by_side(steps, repeats).items():
            rows.append({"net": net.name, "backend": backend, "batch": batch, "ms": ms,
                         "images/s": batch / (ms / 1e3)})
            print(f"  {net.name:16s} {backend:7s} batch {batch}: {ms:8.1f} ms a step, {batch / (ms / 1e3):8.0f} images/s")
        del steps
        torch.cuda.empty_cache()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20, help="timed runs per implementation (default 20)")
    parser.add_argument("--no-compile", action="store_true", help="leave out torch.compile")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("bench/kernels.py needs a CUDA GPU (the Triton kernels run on CUDA); none here, nothing measured.")
        return 0

    torch.backends.cudnn.benchmark = True
    device = torch.cuda.get_device_name()
    print(f"{device}; torch {torch.__version__}, triton {triton.__version__}; float32, median of {args.repeats}")
    copy = copy_bandwidth(args.repeats)
    print(f"copy bandwidth: {copy / 1e9:.0f} GB/s (1 GiB device-to-device, read + write)")

    print(f"\nforward + backward, batch {BATCH}")
    cases = []
    for case in chain(lrn_cases(NETS / "alexnet.net"), maxpool_cases(NETS / "alexnet.net"),
                      warp_max_cases(NETS / "si_alexnet.net"), warp_max_cases(NETS / "mnist_scale_si.net")):
        if args.no_compile:
            case.implementations.pop("torch.compile")
        measure(case, args.repeats, copy)
        print_case(case)
        case.inputs.clear()  # free this case's tensors before the next is made
        cases.append(case)

    print("\ntraining step (forward, cross-entropy, backward, SGD)")
    networks = training_images_per_s([NETS / "alexnet.net", NETS / "si_alexnet.net"], args.repeats)

    if args.json:
        args.json.write_text(json.dumps({
            "device": device, "torch": torch.__version__, "triton": triton.__version__,
            "repeats": args.repeats, "copy GB/s": copy / 1e9,
            "kernels": [{"case": case.name, "bytes": case.bytes, "results": case.results} for case in cases],
            "networks": networks}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
