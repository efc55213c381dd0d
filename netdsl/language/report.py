"""The compile report of a checked network: its per-layer table, or the same as plain data
(`netdsl compile`, netdsl/commands/compile.py, prints it).

    print(table(net))                   # the table
    json.dumps(report(net))             # the same as JSON

Parameters and FLOPs are per image; a multiply-add counts as 2 FLOPs. `neurons` is C*H*W of a
layer's output; the total counts the weighted layers, as the AlexNet paper does. `cross`
is the float32 bytes one image sends between groups in the forward pass.

Under the table, the training recipe: the [train] keys as the file writes them, defaults
filled in, and the lr_mult and decay_mult of each layer that does not keep the defaults.
The JSON's "train" holds the same with every value typed: the TrainConfig fields (the
schedule's kind, its milestones, and gamma, the factor of each cut: multistep's gamma, g of
step(g), 0.1 on a plateau) and, under "layers", every weighted layer's multipliers.
"""
from __future__ import annotations

import dataclasses

from .ir import Net
from ..layers.registry import REGISTRY
from ..layers.weights import RECIPE_KEYS
from .values import written


def report(net: Net) -> dict:
    """The report as plain data, the shape `--json` prints."""
    return {
        "name": net.name,
        "groups": net.groups,
        "layers": [{"name": layer.name, "type": layer.type, "output": list(layer.out_shape),
                    "params": layer.params, "neurons": layer.neurons, "flops": layer.flops,
                    "cross_bytes": layer.cross_bytes} for layer in net.layers],
        "params": net.params,
        "neurons": net.neurons,
        "flops": net.flops,
        "cross_bytes": net.cross_bytes,
        "train": {**dataclasses.asdict(net.train),
                  "layers": {layer.name: {key: list(layer.options[key]) for key in RECIPE_KEYS}
                             for layer in net.layers if set(RECIPE_KEYS) <= set(layer.options)}},
    }


def table(net: Net) -> str:
    """The report as an aligned text table with a totals row."""
    header = ("layer", "type", "output", "params", "neurons", "FLOPs", "cross")
    rows = [(layer.name, layer.type, str(layer.out_shape), f"{layer.params:,}", f"{layer.neurons:,}",
             f"{layer.flops:,}", f"{layer.cross_bytes:,}" if layer.cross_bytes else "")
            for layer in net.layers]
    totals = ("total", "", "", f"{net.params:,}", f"{net.neurons:,}", f"{net.flops:,}", f"{net.cross_bytes:,}")
    widths = [max(len(row[i]) for row in [header, *rows, totals]) for i in range(len(header))]

    def line(row):
        cells = [cell.ljust(w) if i < 3 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * w for w in widths)
    title = f"{net.name}: {len(net.layers)} layers, {net.groups} group{'s' if net.groups > 1 else ''}"
    return "\n".join([title, line(header), rule, *map(line, rows), rule, line(totals), "", *recipe_lines(net)])


# The recipe's lines under the table: how it optimizes, how lr changes, what the network is fed, the
# arithmetic's precision.
_RECIPE_LINES = ("batch", "schedule", "resize", "precision")


def recipe_lines(net: Net) -> list[str]:
    """The [train] recipe, a few keys a line, then each layer's multipliers that are not the defaults."""
    lines: list[list[str]] = []
    for key, value in net.train.written().items():
        if key in _RECIPE_LINES:
            lines.append([])
        lines[-1].append(f"{key} {written(value)}")
    text = ["recipe: " + ", ".join(lines[0]), *("        " + ", ".join(parts) for parts in lines[1:])]
    for layer in net.layers:
        changed = [f"{key} {written(layer.options[key])}" for key in RECIPE_KEYS
                   if key in layer.options and layer.options[key] != REGISTRY[layer.type].keys[key].default]
        if changed:
            text.append(f"        [{layer.name}] " + ", ".join(changed))
    return text
