"""The first SGD steps of a network on the built-in shapes, step by step: is it stable?

    python bench/first_steps.py nets/alexnet.net --steps 6
    python bench/first_steps.py nets/alexnet.net --steps 6 --rescale train   # inverted dropout

Each step prints the batch's loss, the largest logit, and for each weighted layer the share
of its outputs above zero (after the neuron), which falls towards 0 when a ReLU layer dies.
The batches are drawn as `netdsl train` draws them (the built-in data, its batch, the
network's crops, reflections and lighting), with the paper's update and the file's lr.
`--rescale` rewrites every dropout layer's `rescale` before compiling, to compare the
paper's dropout with inverted dropout on the same weights and batches.
"""
from __future__ import annotations

import argparse
import dataclasses
import re

import torch
import torch.nn.functional as F

import netdsl
from netdsl.datasets import synthetic
from netdsl.runner import data
from netdsl.runner.optim import make_optimizer


def with_rescale(text: str, rescale: str | None) -> str:
    """The .net text with every dropout's `rescale` set to `rescale` (None: unchanged)."""
    if rescale is None:
        return text
    text = re.sub(r"(?m)^rescale\s*=.*$", "", text)
    return re.sub(r"(?m)^(type\s*=\s*dropout.*)$", rf"\1\nrescale = {rescale}", text)


def batches(net, steps: int, batch: int, seed: int):
    """The first `steps` training batches of a built-in-data run with this seed."""
    recipe = data.Recipe.of(net)
    root = synthetic.builtin_dataset(net)
    train, _ = data.open_folders(root, recipe)
    stats = data.load_stats(train, recipe, [root], 0, data.ProblemLog())
    loader = data.train_loader(data.TrainSet(train, recipe, stats, seed), batch, 0, seed)
    loader.sampler.set_epoch(1)
    for number, item in enumerate(loader, 1):
        if number > steps:
            return
        yield item.x, item.y


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("net")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rescale", choices=("test", "train"), help="every dropout's `rescale`")
    args = parser.parse_args()
    with open(args.net) as f:
        net = netdsl.parse_string(with_rescale(f.read(), args.rescale), args.net)
    config = dataclasses.replace(net.train, **synthetic.recipe_changes(net.train))
    torch.manual_seed(args.seed)
    model = netdsl.compile_net(net, backend="torch")
    weighted = [layer.name for layer in net.layers if layer.params]
    outputs = {}
    for name in weighted:
        getattr(model, name).register_forward_hook(
            lambda module, inputs, out, name=name: outputs.__setitem__(name, out.detach()))
    optimizer = make_optimizer(model, net, config)
    print(f"{net.name}: batch {config.batch}, lr {config.lr}, dropout rescale {args.rescale or 'as in the file'}")
    print("step  loss     max|logit|  active share after the neuron: " + " ".join(weighted))
    for step, (x, y) in enumerate(batches(net, args.steps, config.batch, args.seed), 1):
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        active = [_active_share(net.layer(name), outputs[name]) for name in weighted]
        print(f"{step:4d}  {loss.item():7.3f}  {logits.abs().max().item():10.1f}  "
              + " ".join(f"{a:.2f}" for a in active))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def _active_share(layer, out: torch.Tensor) -> float:
    """The share of the layer's outputs above zero once its neuron is applied."""
    neuron = {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid}.get(
        layer.options.get("neuron"), lambda t: t)
    return (neuron(out) > 0).float().mean().item()


if __name__ == "__main__":
    main()
