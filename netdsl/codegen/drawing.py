"""The network as a picture, in the spirit of the AlexNet paper's Figure 2 (`netdsl draw`).

    drawing = layout(net)              # the structure: boxes and arrows, from the checked IR alone
    source = to_dot(drawing)           # the same as Graphviz DOT text (needs the graphviz package)
    png = render(source, "png")        # the picture (needs Graphviz's `dot` program)

One box per layer with its name, type and output shape, read from top to bottom. With
`[net] groups = G > 1` each group is a column, as each GPU is a row of Figure 2: a layer split
over the groups is one box per group, in its group's column, showing that group's share of the
channels; `data` and the weightless layers reading it, whole in every group, are one box above
the columns. Arrows are the IR's input relations: inside a group a box reads its own group's
box; a `connect = all` layer (conv3 and fc6-8 of AlexNet) reads every group's box, and each
arrow from another group's column is a cross-group copy, drawn red and dashed and labelled
with the float32 bytes it carries per image (layers.chunk_bytes, the figure whose sum over a
layer is the compile report's `cross`). The arrows of a layer reading several inputs
(`input = a, b`) meet at one point of its box, blue where they stay in a group, each marked
with its place in the concatenation.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..language.ir import Layer, Net, Shape
from ..layers.base import chunk_bytes
from ..layers.registry import REGISTRY

FORMATS = ("png", "svg")   # what render() writes; `dot` also writes the DOT source itself
LOCAL, CROSS = "local", "cross"

_CROSS_COLOUR, _JOIN_COLOUR = "#d62728", "#1f77b4"


@dataclass(frozen=True)
class Box:
    id: str                 # the DOT node: the layer's name, or `name@g` for group g's share
    layer: str
    type: str
    group: int | None       # the column; None for a layer whole in every group (or a net of one group)
    shape: Shape            # what this box holds: the group's share of a split layer's output

    @property
    def label(self) -> str:
        return f"{self.layer}\\n{self.type}\\n{self.shape}"


@dataclass(frozen=True)
class Arrow:
    tail: str               # the box read
    head: str               # the box reading it
    kind: str               # LOCAL, or CROSS: a copy from another group's column
    bytes: int              # float32 bytes a CROSS arrow carries per image; 0 for LOCAL
    order: int              # the tail's place among the head layer's inputs, from 1
    of: int                 # how many inputs the head layer concatenates

    @property
    def label(self) -> str:
        return f"{self.bytes:,} B" if self.kind == CROSS else ""


@dataclass(frozen=True)
class Drawing:
    name: str
    groups: int
    boxes: tuple[Box, ...]
    arrows: tuple[Arrow, ...]

    @property
    def title(self) -> str:
        text = f"{self.name}: {len({box.layer for box in self.boxes})} layers"
        if self.groups > 1:
            text += (f" over {self.groups} groups, a column each (a box: its group's share)"
                     "\nred dashed: a copy between groups, float32 bytes per image")
        if any(arrow.of > 1 for arrow in self.arrows):
            text += "\nblue: inputs concatenated, numbered in order"
        return text


def _per_group(layer: Layer, groups: int) -> bool:
    """Whether the layer is drawn once per group: split over more than one group."""
    return layer.split and groups > 1


def _boxes(layer: Layer, groups: int) -> list[Box]:
    if not _per_group(layer, groups):
        return [Box(layer.name, layer.name, layer.type, None, layer.out_shape)]
    share = Shape(layer.out_shape.c // groups, layer.out_shape.h, layer.out_shape.w)
    return [Box(f"{layer.name}@{g}", layer.name, layer.type, g, share) for g in range(groups)]


def _arrows(layer: Layer, net: Net, boxes: dict[str, list[Box]]) -> list[Arrow]:
    """The arrows into `layer`'s boxes, one input after another. The IR says which layers read
    every group: those with cross_bytes (a `connect = all` weighted layer on a split input)."""
    arrows = []
    reads_every_group = layer.cross_bytes > 0
    for order, name in enumerate(layer.inputs, 1):
        tails = boxes[name]
        for head in boxes[layer.name]:
            for tail in tails:
                if tail.group is None or tail.group == head.group:
                    arrows.append(Arrow(tail.id, head.id, LOCAL, 0, order, len(layer.inputs)))
                elif reads_every_group:
                    size = chunk_bytes(net.layer(name).out_shape, net.groups)
                    arrows.append(Arrow(tail.id, head.id, CROSS, size, order, len(layer.inputs)))
    return arrows


def layout(net: Net) -> Drawing:
    """The drawing's structure, from the checked network alone."""
    boxes: dict[str, list[Box]] = {layer.name: _boxes(layer, net.groups) for layer in net.layers}
    arrows = [arrow for layer in net.layers for arrow in _arrows(layer, net, boxes)]
    return Drawing(net.name, net.groups, tuple(box for layer in net.layers for box in boxes[layer.name]),
                   tuple(arrows))


def _arrow_style(arrow: Arrow) -> dict[str, str]:
    style = {}
    if arrow.of > 1:   # the inputs of one concatenation meet at one point, numbered in their order
        style.update(samehead="concat", label=f"({arrow.order})", color=_JOIN_COLOUR,
                     fontcolor=_JOIN_COLOUR, penwidth="1.5")
    if arrow.kind == CROSS:
        label = f"({arrow.order}) {arrow.label}" if arrow.of > 1 else arrow.label
        style.update(label=label, color=_CROSS_COLOUR, fontcolor=_CROSS_COLOUR,
                     style="dashed", penwidth="1.5")
    return style


def to_dot(drawing: Drawing) -> str:
    """The DOT source: top to bottom, each group a column (a cluster) in group order."""
    import graphviz

    dot = graphviz.Digraph(drawing.name, graph_attr={
        "rankdir": "TB", "newrank": "true", "ranksep": "0.3", "nodesep": "0.3", "labelloc": "t",
        "label": drawing.title, "fontname": "Helvetica", "fontsize": "14"},
        node_attr={"shape": "box", "style": "rounded,filled", "fontname": "Helvetica",
                   "fontsize": "10", "margin": "0.08,0.03", "height": "0.4"},
        edge_attr={"fontname": "Helvetica", "fontsize": "9", "arrowsize": "0.6", "color": "#555555"})
    for box in drawing.boxes:
        if box.group is None:
            dot.node(box.id, box.label, fillcolor=REGISTRY[box.type].colour)
    for group in range(drawing.groups if any(box.group is not None for box in drawing.boxes) else 0):
        with dot.subgraph(name=f"cluster_group{group}") as column:
            column.attr(label=f"group {group}", style="dashed", color="#999999", fontsize="12")
            for box in drawing.boxes:
                if box.group == group:
                    column.node(box.id, box.label, fillcolor=REGISTRY[box.type].colour)
    _align_rows(dot, drawing)
    for arrow in drawing.arrows:
        dot.edge(arrow.tail, arrow.head, **_arrow_style(arrow))
    return dot.source


def _align_rows(dot, drawing: Drawing) -> None:
    """A layer's boxes side by side on one row, across the columns (newrank allows it)."""
    rows: dict[str, list[str]] = {}
    for box in drawing.boxes:
        if box.group is not None:
            rows.setdefault(box.layer, []).append(box.id)
    for ids in rows.values():
        with dot.subgraph() as row:
            row.attr(rank="same")
            for box_id in ids:
                row.node(box_id)


def render(source: str, fmt: str) -> bytes:
    """The picture, by Graphviz's `dot`, in memory; graphviz.ExecutableNotFound where `dot` is
    missing, graphviz.CalledProcessError (with dot's stderr) where it fails. Quiet: dot's
    warnings (a PNG too tall for its bitmaps is scaled down, say) would break the one-line output."""
    import graphviz

    return graphviz.Source(source).pipe(format=fmt, engine="dot", quiet=True)
