"""A training step of the canon networks: netdsl's generated module against torchvision's model.

    pip download torchvision --no-deps -d /tmp/tv
    python -m zipfile -e /tmp/tv/torchvision-*.whl /tmp/torchvision
    python bench/canon.py --torchvision /tmp/torchvision --json docs/benchmarks/canon-cpu.json
    python bench/canon.py --torchvision /tmp/torchvision --nets resnet50 --batch 8 --repeats 7

For each of nets/resnet50.net, nets/vgg16.net and nets/alexnet_1gpu.net: netdsl's module (torch
backend) and torchvision's model, the same weights copied across and their logits checked equal
first, then one training step each (forward, cross-entropy, backward, SGD update), alternating
in one process, `repeats` times after a warm-up, in training mode. The medians and their ratio
(netdsl / torchvision: below 1 is faster) are printed and, with --json, written with the machine.

torchvision from PyPI is a CUDA build whose compiled operators do not load against a CPU torch;
its model code is plain Python. --torchvision is a folder holding the unpacked wheel, imported
with its operator registrations skipped (the models never call them).
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import netdsl
from netdsl.runner.provenance import cpu_model

NETS = {"resnet50": "resnet50", "vgg16": "vgg16", "alexnet_1gpu": "alexnet"}   # ours: torchvision's


def import_torchvision_models(folder: str):
    """torchvision.models from an unpacked wheel, its compiled operators' registrations skipped."""
    import torch.library as library

    sys.path.insert(0, folder)
    saved = library.register_fake, library.register_autograd
    library.register_fake = lambda *args, **kwargs: (lambda function: function)
    library.register_autograd = lambda *args, **kwargs: None
    try:
        import torchvision.models as models
    finally:
        library.register_fake, library.register_autograd = saved
    return models


def copy_weights(ours: torch.nn.Module, theirs: torch.nn.Module) -> None:
    """Their state dict into ours, tensor by tensor in order: the canon files write the layers in
    torchvision's order, with the same shapes (checked)."""
    mine, given = ours.state_dict(), list(theirs.state_dict().values())
    assert len(mine) == len(given), (len(mine), len(given))
    for (name, tensor), value in zip(mine.items(), given):
        assert tensor.shape == value.shape, (name, tensor.shape, value.shape)
    ours.load_state_dict({name: value for name, value in zip(mine, given)})


def step_time(model: torch.nn.Module, optimizer, x, y) -> float:
    start = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()
    optimizer.step()
    return time.perf_counter() - start


def bench(name: str, models, batch: int, repeats: int) -> dict:
    net = netdsl.parse_file(f"nets/{name}.net")
    ours = netdsl.compile_net(net, backend="torch")
    theirs = getattr(models, NETS[name])()
    copy_weights(ours, theirs)
    x = torch.randn(batch, *net.input_shape, generator=torch.Generator().manual_seed(0))
    y = torch.randint(net.classes, (batch,), generator=torch.Generator().manual_seed(1))
    ours.eval(), theirs.eval()
    with torch.no_grad():
        assert torch.allclose(ours(x), theirs(x), rtol=1e-4, atol=1e-4), f"{name}: the logits differ"
    ours.train(), theirs.train()
    optimizers = {"netdsl": torch.optim.SGD(ours.parameters(), lr=1e-4, momentum=0.9),
                  "torchvision": torch.optim.SGD(theirs.parameters(), lr=1e-4, momentum=0.9)}
    times = {"netdsl": [], "torchvision": []}
    for round_ in range(repeats + 1):   # the first round warms up
        for who, model in (("netdsl", ours), ("torchvision", theirs)):
            seconds = step_time(model, optimizers[who], x, y)
            if round_:
                times[who].append(seconds)
    medians = {who: statistics.median(t) for who, t in times.items()}
    return {"net": name, "torchvision_model": NETS[name], "batch": batch, "repeats": repeats,
            "netdsl_ms": medians["netdsl"] * 1e3, "torchvision_ms": medians["torchvision"] * 1e3,
            "ratio": medians["netdsl"] / medians["torchvision"],
            "netdsl_all_ms": [t * 1e3 for t in times["netdsl"]],
            "torchvision_all_ms": [t * 1e3 for t in times["torchvision"]]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--torchvision", required=True, help="a folder holding torchvision's unpacked wheel")
    parser.add_argument("--nets", default=",".join(NETS), help="comma-separated, of " + ", ".join(NETS))
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    models = import_torchvision_models(args.torchvision)
    torch.manual_seed(0)
    rows = []
    for name in args.nets.split(","):
        row = bench(name, models, args.batch, args.repeats)
        rows.append(row)
        print(f"{name:13s} batch {row['batch']}: netdsl {row['netdsl_ms']:8.1f} ms, torchvision "
              f"{row['torchvision_ms']:8.1f} ms, ratio {row['ratio']:.3f}", flush=True)
    if args.json:
        record = {"command": "python " + " ".join(sys.argv), "machine": cpu_model(), "threads": torch.get_num_threads(),
                  "torch": torch.__version__, "python": platform.python_version(), "results": rows}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
