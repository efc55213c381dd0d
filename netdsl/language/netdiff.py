"""What differs between two networks as networks, not as lines (`netdsl diff A.net B.net`,
netdsl/commands/diff.py, prints it; `netdsl train --resume` refuses another network with it).

    lines = diff(parse_file("nets/alexnet.net"), parse_file("nets/si_alexnet.net"))

Layers are matched by name. It lists the [net] settings that differ, layers added and
removed, and for each layer kept: changed type, keys, inputs and output shape, with
parameter and FLOP deltas, then the totals. The training recipe comes after, apart: the
[train] keys that differ (as the files write them) and each kept layer's changed lr_mult and
decay_mult, one `recipe:` line each.
"""
from __future__ import annotations

from dataclasses import fields

from .ir import Layer, Net, TrainConfig
from ..layers.weights import RECIPE_KEYS
from .values import written


def _delta(before: int, after: int) -> str:
    return f"{after - before:+,}"


def _key_changes(before: dict, after: dict, keys) -> list[str]:
    """`+ key = value`, `- key = value` or `key old -> new` for each of `keys` that differs."""
    changes = []
    for key in keys:
        if key not in before and key in after:
            changes.append(f"+ {key} = {written(after[key])}")
        elif key in before and key not in after:
            changes.append(f"- {key} = {written(before[key])}")
        elif key in before and before[key] != after[key]:
            changes.append(f"{key} {written(before[key])} -> {written(after[key])}")
    return changes


def _layer_changes(a: Layer, b: Layer) -> list[str]:
    changes = []
    if a.type != b.type:
        changes.append(f"type {a.type} -> {b.type}")
    changes += _key_changes(a.options, b.options, sorted((set(a.options) | set(b.options)) - set(RECIPE_KEYS)))
    if a.inputs != b.inputs:
        changes.append(f"input {', '.join(a.inputs)} -> {', '.join(b.inputs)}")
    if a.out_shape != b.out_shape:
        changes.append(f"output {a.out_shape} -> {b.out_shape}")
    if a.params != b.params:
        changes.append(f"params {_delta(a.params, b.params)}")
    if a.flops != b.flops:
        changes.append(f"FLOPs {_delta(a.flops, b.flops)}")
    return changes


def network_diff(a: Net, b: Net) -> list[str]:
    """How the networks differ, recipe aside; empty when they are the same network."""
    lines = []
    for field, (x, y) in {"name": (a.name, b.name), "groups": (a.groups, b.groups)}.items():
        if x != y:
            lines.append(f"[net] {field} {x} -> {y}")
    names_a = {layer.name: layer for layer in a.layers}
    names_b = {layer.name: layer for layer in b.layers}
    for layer in a.layers:
        if layer.name not in names_b:
            lines.append(f"- [{layer.name}] {layer.type} {layer.out_shape}, {layer.params:,} params")
    for layer in b.layers:
        if layer.name not in names_a:
            lines.append(f"+ [{layer.name}] {layer.type} {layer.out_shape}, {layer.params:,} params")
        elif changes := _layer_changes(names_a[layer.name], layer):
            lines.append(f"~ [{layer.name}] " + "; ".join(changes))
    if lines:
        lines.append(f"total params {a.params:,} -> {b.params:,} ({_delta(a.params, b.params)}), "
                     f"FLOPs {a.flops:,} -> {b.flops:,} ({_delta(a.flops, b.flops)})")
    return lines


def recipe_changes(a: Net, b: Net) -> list[tuple[str, str]]:
    """How the training recipes differ, as (key, line) pairs: the [train] key or the multiplier
    (`lr_mult`, `decay_mult`) each `recipe:` line of recipe_diff is about."""
    keys_a, keys_b = a.train.written(), b.train.written()
    order = [f.name for f in fields(TrainConfig)]
    keys = sorted(set(keys_a) | set(keys_b), key=order.index)
    changes = [(key, f"recipe: {change}") for key in keys for change in _key_changes(keys_a, keys_b, [key])]
    names_a = {layer.name: layer for layer in a.layers}
    for layer in b.layers:
        if layer.name in names_a:
            changes += [(key, f"recipe: {layer.name} {change}") for key in RECIPE_KEYS
                        for change in _key_changes(names_a[layer.name].options, layer.options, [key])]
    return changes


def recipe_diff(a: Net, b: Net) -> list[str]:
    """How the training recipes differ: [train] keys, then the multipliers of layers in both."""
    return [line for _, line in recipe_changes(a, b)]


def diff(a: Net, b: Net) -> list[str]:
    """The differences as lines of text, the network's then the recipe's; empty when the two
    are the same network trained the same way."""
    network, recipe = network_diff(a, b), recipe_diff(a, b)
    if recipe and not network:
        network = ["the two networks are the same"]
    return network + recipe
