"""The built-in dataset: coloured shapes as real image files, so `netdsl train NET` runs at once.

    root = builtin_dataset(net)    # a folder with train/<shape>/*.png and val/<shape>/*.png

Ten classes of shapes (circle, square, triangle, ...), each drawn at a random size, place and
bright colour on a random dark two-colour gradient, at the network's `resize` so the crops
and reflections have work to do. Greyscale networks get greyscale PNGs; networks with other
channel counts get .npy arrays (channel c a copy of RGB channel c mod 3).

It is deterministic (image i of class k always comes from the same seed), so it is written
once, to data/ in the netdsl cache (NETDSL_CACHE, else ~/.cache/netdsl), named by its
parameters. A network with fewer outputs than there are shapes gets the first `classes`
shapes; one with more (AlexNet's 1000) trains on all ten, which its output covers.

The run on it has a budget of its own (recipe_changes): 100 training images a class, 10 epochs
at batch 32, about 320 steps, which AlexNet, with the paper's init, update and lr, needs to
leave chance on ten classes (docs/benchmarks.md has its curve); about 7 minutes on a 2-core CPU.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

TRAIN_PER_CLASS = 100
VAL_PER_CLASS = 20
EPOCHS = 10                      # a run on this data takes these unless the flags, or the
BATCH = 32                       # file, ask for fewer: 32 steps an epoch
VERSION = 2                      # bump when the drawing or the counts change, so caches are redrawn


def _polygon(points, cx, cy, r):
    return [(cx + r * x, cy + r * y) for x, y in points]


def _circle(d, cx, cy, r, fill):
    d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)


def _square(d, cx, cy, r, fill):
    d.rectangle([cx - 0.8 * r, cy - 0.8 * r, cx + 0.8 * r, cy + 0.8 * r], fill=fill)


def _triangle(d, cx, cy, r, fill):
    d.polygon(_polygon([(0, -1), (-0.87, 0.5), (0.87, 0.5)], cx, cy, r), fill=fill)


def _diamond(d, cx, cy, r, fill):
    d.polygon(_polygon([(0, -1), (1, 0), (0, 1), (-1, 0)], cx, cy, r), fill=fill)


def _plus(d, cx, cy, r, fill):
    t = 0.3 * r
    d.rectangle([cx - r, cy - t, cx + r, cy + t], fill=fill)
    d.rectangle([cx - t, cy - r, cx + t, cy + r], fill=fill)


def _ring(d, cx, cy, r, fill):
    d.ellipse([cx - r, cy - r, cx + r, cy + r], outline=fill, width=max(1, round(0.3 * r)))


def _hbar(d, cx, cy, r, fill):
    d.rectangle([cx - r, cy - 0.3 * r, cx + r, cy + 0.3 * r], fill=fill)


def _vbar(d, cx, cy, r, fill):
    d.rectangle([cx - 0.3 * r, cy - r, cx + 0.3 * r, cy + r], fill=fill)


def _cross(d, cx, cy, r, fill):
    width = max(1, round(0.4 * r))
    d.line([cx - 0.75 * r, cy - 0.75 * r, cx + 0.75 * r, cy + 0.75 * r], fill=fill, width=width)
    d.line([cx - 0.75 * r, cy + 0.75 * r, cx + 0.75 * r, cy - 0.75 * r], fill=fill, width=width)


def _frame(d, cx, cy, r, fill):
    d.rectangle([cx - 0.8 * r, cy - 0.8 * r, cx + 0.8 * r, cy + 0.8 * r], outline=fill,
                width=max(1, round(0.25 * r)))


SHAPES = {"circle": _circle, "square": _square, "triangle": _triangle, "diamond": _diamond,
          "plus": _plus, "ring": _ring, "hbar": _hbar, "vbar": _vbar, "cross": _cross,
          "frame": _frame}


def draw(shape: str, size: int, seed: int) -> np.ndarray:
    """One size x size x 3 uint8 image of `shape`, the same for the same seed."""
    rng = np.random.default_rng(seed)
    # a dark background and a bright shape, each of any hue: with the contrast always of one
    # sign, a small network learns the outlines in a few epochs rather than dozens
    top, bottom = rng.integers(0, 110, 3), rng.integers(0, 110, 3)
    ramp = np.linspace(0.0, 1.0, size)[:, None, None]
    background = top * (1 - ramp) + bottom * ramp                    # size x 1 x 3
    if rng.random() < 0.5:
        background = background.transpose(1, 0, 2)                     # a horizontal gradient
    canvas = np.broadcast_to(background, (size, size, 3)).round().astype(np.uint8)
    image = Image.fromarray(np.ascontiguousarray(canvas))
    r = size * rng.uniform(0.18, 0.4)
    cx, cy = rng.uniform(r, size - r, 2)
    fill = tuple(int(c) for c in rng.integers(140, 256, 3))
    SHAPES[shape](ImageDraw.Draw(image), cx, cy, r, fill)
    return np.asarray(image)


def _write(image: np.ndarray, path: Path, channels: int) -> None:
    if channels == 3:
        Image.fromarray(image).save(path.with_suffix(".png"), compress_level=1)
    elif channels == 1:
        Image.fromarray(image).convert("L").save(path.with_suffix(".png"), compress_level=1)
    else:
        np.save(path.with_suffix(".npy"), image[:, :, np.arange(channels) % 3].transpose(2, 0, 1))


def _generate(root: Path, channels: int, size: int, classes: int) -> None:
    for split, count, offset in (("train", TRAIN_PER_CLASS, 0), ("val", VAL_PER_CLASS, 10_000)):
        for k, shape in enumerate(list(SHAPES)[:classes]):
            folder = root / split / shape
            folder.mkdir(parents=True)
            for i in range(count):
                image = draw(shape, size, seed=(k + 1) * 100_000 + offset + i)
                _write(image, folder / f"{shape}_{i:03d}", channels)


def cache_root() -> Path:
    from ..codegen.load import cache_dir
    return cache_dir().parent / "data"


def class_count(net) -> int:
    return min(net.classes, len(SHAPES))


def recipe_changes(train) -> dict:
    """What a run on this data changes in a [train] section: fewer epochs, a smaller batch."""
    return {"epochs": min(EPOCHS, train.epochs), "batch": min(BATCH, train.batch)}


def describe(net, options) -> str:
    """The data, and each [train] key the run changes, for the line a run prints at its start."""
    changed = [f"{key} {value} (the file says {getattr(net.train, key)})"
               for key, value in recipe_changes(net.train).items()
               if getattr(options, key) is None and value != getattr(net.train, key)]
    return (f"{class_count(net)} classes, {TRAIN_PER_CLASS} training and {VAL_PER_CLASS} validation "
            f"images a class; " + (", ".join(changed) + "; " if changed else "")
            + "the rest of the recipe is the file's")


def builtin_dataset(net) -> Path:
    """The folder of the built-in data for `net`, drawn now if the cache lacks it."""
    channels, size, classes = net.input_shape.c, net.train.resize, class_count(net)
    root = cache_root() / f"shapes-v{VERSION}-{channels}c-{size}px-{classes}cls"
    if root.is_dir():
        return root
    tmp = root.with_name(f"{root.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    _generate(tmp, channels, size, classes)
    try:
        os.rename(tmp, root)  # atomic: a concurrent run sees no folder or the whole folder
    except OSError:           # another run finished it first
        shutil.rmtree(tmp, ignore_errors=True)
    return root
