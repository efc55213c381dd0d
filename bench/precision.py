"""Training speed by precision and torch.compile: images/s of whole training steps, as ratios to fp32.

    python bench/precision.py                                  # alexnet and si_alexnet, batch 8, on the CPU
    python bench/precision.py nets/alexnet.net --batch 16 --steps 7
    python bench/precision.py --modes fp32,bf16,fp16            # no compilation (it takes minutes), fp16 too
    python bench/precision.py --device cuda:0 --backend triton --batch 128 --modes fp32,bf16,fp16,fp32+compile,bf16+compile

A step is what `netdsl train` does for one batch (netdsl/runner/train.py): the forward under the
mode's autocast (netdsl/runner/precision.py), the loss in float32, the backward through fp16's loss
scaler, PaperSGD's update. The modes are fp32, bf16, fp16 (autocast with a loss scaler) and
`+compile` of any of them (torch.compile, inductor), each with a model of its own with the same
initial weights, on random inputs of the network's size (pixels minus a mean, -128..128, times the
[train] scale). Every mode takes its first step apart (for a compiled mode that step compiles, and
its time is printed), then the modes take their steps in turn, round after round (`--warmup` rounds
untimed, `--steps` timed), so that a load on the machine falls on all of them alike; the median step
is reported, as images/s and as a ratio to fp32's, with the mode's last loss. The torch backend
(`--backend triton` for the Triton kernels, on a GPU), on the device given (`--device`, the CPU by
default).
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

import netdsl
from netdsl.runner import precision
from netdsl.runner.optim import make_optimizer
from netdsl.runner.train import train_loss


class Mode:
    """One way of training: a precision, compiled or not, with its own model, optimizer and scaler."""

    def __init__(self, name: str, net, backend: str, device: torch.device, weights: dict):
        self.name = name
        self.precision, _, compiled = name.partition("+")
        self.net, self.device = net, device
        self.model = netdsl.compile_net(net, backend=backend).to(device).train()
        self.model.load_state_dict(weights)
        self.optimizer = make_optimizer(self.model, net, net.train)
        self.scaler = precision.grad_scaler(self.precision, [str(device)])
        self.forward = precision.compiled(self.model, compiled == "compile")
        self.times: list[float] = []
        self.loss = float("nan")

    def step(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """One training step; its time in seconds."""
        sync(self.device)
        start = time.perf_counter()
        with precision.autocast(self.precision, [str(self.device)]):
            logits = self.forward(x)
        loss = train_loss(self.net, logits, y)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss / len(y)).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        sync(self.device)
        self.loss = loss.item() / len(y)
        return time.perf_counter() - start


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_net(path: str, modes: list[str], batch: int, warmup: int, steps: int, backend: str,
              device: torch.device) -> None:
    net = netdsl.parse_file(path)
    torch.manual_seed(0)
    weights = netdsl.compile_net(net, backend="torch").state_dict()
    x = (torch.rand(batch, *net.input_shape, device=device) * 256 - 128) * net.train.scale
    y = torch.randint(0, net.classes, (batch,), device=device)
    runs = [Mode(name, net, backend, device, weights) for name in modes]
    first = {run.name: run.step(x, y) for run in runs}
    for round in range(warmup + steps):
        for run in runs:
            elapsed = run.step(x, y)
            if round >= warmup:
                run.times.append(elapsed)
    threads = torch.get_num_threads() if device.type == "cpu" else None
    print(f"{net.name}: training steps at batch {batch} ({net.input_shape} images), {backend} backend on {device}"
          + (f", {threads} thread{'s' if threads > 1 else ''}" if threads else "")
          + f", median of {steps} steps after {warmup} warm-up rounds")
    print(f"  {'mode':14s} {'step ms':>9s} {'images/s':>9s} {'vs fp32':>8s} {'first step s':>13s} {'loss':>7s}")
    base = statistics.median(runs[0].times)
    for run in runs:
        median = statistics.median(run.times)
        print(f"  {run.name:14s} {median * 1e3:9.1f} {batch / median:9.2f} {base / median:7.2f}x "
              f"{first[run.name]:13.1f} {run.loss:7.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("nets", nargs="*", default=["nets/alexnet.net", "nets/si_alexnet.net"])
    parser.add_argument("--modes", default="fp32,bf16,fp32+compile,bf16+compile",
                        help="comma-separated, fp32 first: the ratios are to it; fp16 is left out by default, "
                             "which a CPU runs some 30x slower than fp32")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--backend", choices=("torch", "triton"), default="torch",
                        help="triton: the Triton kernels, on a GPU")
    args = parser.parse_args()
    modes = args.modes.split(",")
    if modes[0] != "fp32" or any(m.partition("+")[0] not in precision.PRECISIONS or m.partition("+")[2] not in ("", "compile")
                                 for m in modes):
        parser.error(f"--modes: fp32 first, then any of {', '.join(precision.PRECISIONS)}, each with +compile or not")
    torch.set_flush_denormal(True)  # as netdsl train runs
    for path in args.nets:
        bench_net(path, modes, args.batch, args.warmup, args.steps, args.backend, torch.device(args.device))


if __name__ == "__main__":
    main()
