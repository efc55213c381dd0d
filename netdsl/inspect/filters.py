"""A conv layer's kernels as an image grid: the AlexNet paper's Figure 3.

    netdsl filters nets/alexnet.net --checkpoint runs/alexnet/best.pt --layer conv1 -o conv1.png

    image = kernel_grid(weight, groups=2)     # weight: filters x in-channels x kh x kw

What a cell shows, by the kernel's input channels (the weight tensor's second dimension):
3 channels as RGB, 1 channel as grey, any other count (2, or more than 3, as in a conv past
the first) as grey too: the norm map, at each spatial position the L2 norm of the weights
over the input channels, sqrt(sum_c w[c, y, x]^2), one cell a filter as for the first layer.

The normalisation is Figure 3's shared scale: one minimum and one maximum over all the values
the layer shows (its weights, or its norm maps), so that the kernels compare with one another,
mapped to 0..255: pixel = round(255 * (v - min) / (max - min)), computed in float64 and rounded
half to even (numpy's rint); a layer whose values are all equal is 128.

Layout: one block a group of `[net] groups` (AlexNet's 96 conv1 kernels are two blocks of 48,
the first and the second half of the filters, one a GPU), blocks stacked top to bottom with
BLOCK_GAP pixels between them; in a block, filter i of the group sits at row i // columns,
column i % columns, each kernel pixel a zoom x zoom square (nearest neighbour), cells
CELL_GAP pixels apart, MARGIN pixels of BACKGROUND around everything.
"""
from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .. import files
from ..errors import NetError, did_you_mean
from ..layers.registry import REGISTRY

CELL_GAP = 2
BLOCK_GAP = 12
MARGIN = 4
BACKGROUND = 255
COLUMNS = 16           # Figure 3's 16 kernels a row
CELL_PIXELS = 44       # the default zoom makes a cell at least this wide: 11x11 kernels x4


def kernel_layer(net, name: str | None):
    """The layer whose kernels are drawn: `name`, or the first layer with kernels (conv, siconv)."""
    with_kernels = [layer.name for layer in net.layers if REGISTRY[layer.type].has_kernels]
    listed = f"layers with kernels: {', '.join(with_kernels)}" if with_kernels else "it has no conv layer"
    if name is None:
        if not with_kernels:
            raise NetError(f"{net.name} has no conv or siconv layer to draw", net.path)
        return net.layer(with_kernels[0])
    names = [layer.name for layer in net.layers]
    if name not in names:
        raise NetError(f"no layer `{name}` in {net.name}{did_you_mean(name, names)}; {listed}", net.path)
    layer = net.layer(name)
    if not REGISTRY[layer.type].has_kernels:
        raise NetError(f"`{name}` is a {layer.type} layer, which has no kernels to draw"
                       f"{did_you_mean(name, with_kernels)}; {listed}", net.path)
    return layer


def kernel_weight(model: torch.nn.Module, layer) -> torch.Tensor:
    """filters x in-channels x kh x kw: the conv weights (an SI layer's one conv, shared by its scales)."""
    return model.get_submodule(layer.name).weight.detach().cpu()


def shown_values(weight: torch.Tensor) -> tuple[np.ndarray, str]:
    """(filters x kh x kw x 1 or 3 float64 values to draw, the mode: rgb, grey or norm)."""
    w = weight.double().numpy()
    if w.shape[1] == 3:
        return w.transpose(0, 2, 3, 1), "rgb"
    if w.shape[1] == 1:
        return w.transpose(0, 2, 3, 1), "grey"
    return np.sqrt((w ** 2).sum(axis=1))[..., None], "norm"


def normalised(values: np.ndarray) -> tuple[np.ndarray, float, float]:
    """(values as uint8 by the layer's one min/max, min, max)."""
    low, high = float(values.min()), float(values.max())
    if high == low:
        return np.full(values.shape, 128, np.uint8), low, high
    return np.rint(255 * (values - low) / (high - low)).astype(np.uint8), low, high


def default_zoom(kh: int, kw: int) -> int:
    return max(1, math.ceil(CELL_PIXELS / max(kh, kw)))


def cell_origin(index: int, per_block: int, columns: int, cell: tuple[int, int]) -> tuple[int, int]:
    """(x, y) of filter `index`'s cell, cell = (height, width) in pixels."""
    block, i = divmod(index, per_block)
    rows = math.ceil(per_block / columns)
    h, w = cell
    block_height = rows * h + (rows - 1) * CELL_GAP
    return (MARGIN + (i % columns) * (w + CELL_GAP),
            MARGIN + block * (block_height + BLOCK_GAP) + (i // columns) * (h + CELL_GAP))


def grid(pixels: np.ndarray, groups: int, columns: int, zoom: int) -> Image.Image:
    """filters x kh x kw x 1|3 uint8 pixels as the grid, one block a group."""
    count, kh, kw, channels = pixels.shape
    per_block = count // groups
    columns = min(columns, per_block)
    rows = math.ceil(per_block / columns)
    cell = (kh * zoom, kw * zoom)
    width = 2 * MARGIN + columns * cell[1] + (columns - 1) * CELL_GAP
    height = (2 * MARGIN + groups * (rows * cell[0] + (rows - 1) * CELL_GAP)
              + (groups - 1) * BLOCK_GAP)
    canvas = np.full((height, width, channels), BACKGROUND, np.uint8)
    big = pixels.repeat(zoom, axis=1).repeat(zoom, axis=2)   # nearest neighbour, an integer factor
    for index in range(count):
        x, y = cell_origin(index, per_block, columns, cell)
        canvas[y:y + cell[0], x:x + cell[1]] = big[index]
    return Image.fromarray(canvas[..., 0] if channels == 1 else canvas, "L" if channels == 1 else "RGB")


def write_png(image: Image.Image, path: Path) -> None:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    files.replace(path, buffer.getvalue())


def draw_filters(net, model: torch.nn.Module, layer_name: str | None, out: Path,
                 columns: int = COLUMNS, zoom: int | None = None) -> str:
    """Write the layer's kernel grid to `out`; return a line saying what it shows."""
    layer = kernel_layer(net, layer_name)
    weight = kernel_weight(model, layer)
    values, mode = shown_values(weight)
    pixels, low, high = normalised(values)
    groups = net.groups   # a conv's filters are always split over the groups
    zoom = zoom or default_zoom(*values.shape[1:3])
    write_png(grid(pixels, groups, columns, zoom), out)
    count, channels, kh, kw = weight.shape
    shown = {"rgb": "as RGB", "grey": "as grey",
             "norm": f"as the L2 norm over its {channels} input channels"}[mode]
    blocks = f", {groups} blocks of {count // groups} (one a group)" if groups > 1 else ""
    return (f"{out}: {layer.name}'s {count} kernels, {kh}x{kw} x {channels} channel"
            f"{'s' if channels > 1 else ''} {shown}{blocks}; {low:.4g}..{high:.4g} "
            f"(the layer's min and max) to 0..255, each pixel {zoom}x{zoom}")
