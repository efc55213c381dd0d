"""AlexNet training split over two GPUs (one group on each) against fused on one GPU.

    python bench/groups.py                      # nets/alexnet.net, batch 128, median of 20 steps
    python bench/groups.py nets/si_alexnet.net --repeats 30

Both placements train the same network from the same weights on the same batch, side by
side in one process, a step of each in turn; each step is timed wall-clock between device
synchronisations (the split step runs on two devices). It needs two CUDA GPUs: with fewer
it says so and exits 0.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

import netdsl


def training_step(model, x, labels):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

    def step():
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), labels.to(x.device)).backward()
        optimizer.step()
    return step


def synchronize():
    for device in range(torch.cuda.device_count()):
        torch.cuda.synchronize(device)


def median_ms(steps: dict, repeats: int) -> dict[str, float]:
    for step in steps.values():
        for _ in range(3):
            step()
    times = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            synchronize()
            start = time.perf_counter()
            step()
            synchronize()
            times[name].append((time.perf_counter() - start) * 1e3)
    return {name: statistics.median(ms) for name, ms in times.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("net", nargs="?", default="nets/alexnet.net")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--backend", default="auto", choices=("auto", "torch", "triton"))
    args = parser.parse_args()
    if torch.cuda.device_count() < 2:
        print(f"bench/groups.py needs two CUDA GPUs; {torch.cuda.device_count()} here, nothing measured.")
        return 0
    net = netdsl.parse_file(args.net)
    batch = net.train.batch
    fused = netdsl.compile_net(net, backend=args.backend, devices=["cuda:0"]).train()
    split = netdsl.compile_net(net, backend=args.backend, devices=["cuda:0", "cuda:1"]).train()
    split.load_state_dict(fused.state_dict())
    x = torch.randn(batch, *net.input_shape, device="cuda:0") * 50
    labels = torch.randint(net.classes, (batch,), device="cuda:0")
    ms = median_ms({"fused, 1 GPU": training_step(fused, x, labels),
                    "split, 2 GPUs": training_step(split, x, labels)}, args.repeats)
    print(f"{net.name}, batch {batch}, {torch.cuda.get_device_name(0)}; median of {args.repeats} steps")
    for name, t in ms.items():
        print(f"  {name:14s} {t:8.1f} ms a step  {batch / (t / 1e3):8.0f} images/s")
    print(f"  split / fused  {ms['fused, 1 GPU'] / ms['split, 2 GPUs']:8.2f}x the images/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
