"""`netdsl diff A.net B.net`: what differs between two networks as networks, not as lines.

    netdsl diff nets/alexnet.net nets/si_alexnet.net

Layers are matched by name. It lists the [net] and [train] settings that differ, layers
added and removed, and for each layer kept: changed type, keys, inputs and output shape,
with parameter and FLOP deltas, then the totals.
"""
from __future__ import annotations

from dataclasses import asdict

from .ir import Layer, Net


def add_arguments(parser) -> None:
    parser.add_argument("a", metavar="A.net")
    parser.add_argument("b", metavar="B.net")


def _value(x) -> str:
    if isinstance(x, tuple) and x and isinstance(x[0], str):  # init: ("normal", 0.0, 0.01)
        return f"{x[0]}({', '.join(_value(a) for a in x[1:])})"
    if isinstance(x, tuple):
        return ", ".join(map(_value, x))
    if isinstance(x, bool):
        return "yes" if x else "no"
    return f"{x:g}" if isinstance(x, float) else str(x)


def _delta(before: int, after: int) -> str:
    return f"{after - before:+,}"


def _layer_changes(a: Layer, b: Layer) -> list[str]:
    changes = []
    if a.type != b.type:
        changes.append(f"type {a.type} -> {b.type}")
    for key in sorted(set(a.options) | set(b.options)):
        if key not in a.options:
            changes.append(f"+ {key} = {_value(b.options[key])}")
        elif key not in b.options:
            changes.append(f"- {key} = {_value(a.options[key])}")
        elif a.options[key] != b.options[key]:
            changes.append(f"{key} {_value(a.options[key])} -> {_value(b.options[key])}")
    if a.inputs != b.inputs:
        changes.append(f"input {', '.join(a.inputs)} -> {', '.join(b.inputs)}")
    if a.out_shape != b.out_shape:
        changes.append(f"output {a.out_shape} -> {b.out_shape}")
    if a.params != b.params:
        changes.append(f"params {_delta(a.params, b.params)}")
    if a.flops != b.flops:
        changes.append(f"FLOPs {_delta(a.flops, b.flops)}")
    return changes


def diff(a: Net, b: Net) -> list[str]:
    """The differences as lines of text; empty when the two are the same network."""
    lines = []
    for field, (x, y) in {"name": (a.name, b.name), "groups": (a.groups, b.groups)}.items():
        if x != y:
            lines.append(f"[net] {field} {x} -> {y}")
    train_a, train_b = asdict(a.train), asdict(b.train)
    lines += [f"[train] {k} {_value(train_a[k])} -> {_value(train_b[k])}"
              for k in train_a if train_a[k] != train_b[k]]
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


def run(args) -> int:
    from . import parse_file

    lines = diff(parse_file(args.a), parse_file(args.b))
    print("\n".join(lines) if lines else "the two networks are the same")
    return 0
