"""The training images nearest to test images by a layer's activations: the AlexNet paper's Figure 4.

    netdsl neighbours nets/alexnet.net --checkpoint runs/alexnet/best.pt --data imagenet/ \\
        --layer fc7 --queries 8 -o neighbours.png

    indices, distances = nearest(queries, train, k=5, chunk=2048)

The queries are N images (default 8) of DIR/test, or of DIR/val where DIR has no test/, evenly
spaced over the split in file order, the first and the last included. Their activations and the
whole training split's are written by features.py to memory-mapped .npy files in a temporary
folder beside the output, removed at the end: the training features take disk, not memory,
images x layer size x 4 bytes (fc7 of ImageNet's 1.28M images: 21 GB).

The search is exact brute force: the Euclidean distance between flattened activations, in
float64 from the differences themselves (torch.cdist without the |a|^2 + |b|^2 - 2ab shortcut,
whose cancellation can reorder near ties), over blocks of at most `chunk` queries by `chunk`
training images read from the memory map, a running best k a query merged after each block;
equal distances go to the lower training index.

The picture: a row a query, the query then a gap then its neighbours nearest first, each image
as the network saw it (the centre crop, before the mean), enlarged by an integer factor with
nearest neighbour up to CELL pixels, or shrunk to CELL; under each its class name, red where a
neighbour's class is not the query's. Networks of other channel counts (.npy inputs) show their
first three channels as RGB, or the first as grey where they have two.
"""
from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from .. import files
from ..runner import data
from .features import Trained, evenly_spaced, split_folder, write_features
from .filters import write_png

NEIGHBOURS = 5
CELL = 96
MARGIN = 4
GAP = 4               # between neighbours
QUERY_GAP = 16        # after the query
ROW_GAP = 8
CAPTION = 14
BLOCK_BYTES = 1 << 26  # a block of training features in float64, at most


@dataclass(frozen=True)
class Neighbours:
    """The queries (of `split`), and for each its nearest training images, nearest first."""
    split: str
    train: data.Folder
    queries: data.Folder
    indices: np.ndarray      # queries x k, into train.samples
    distances: np.ndarray    # queries x k


def query_split(data_dir) -> str:
    return "test" if (Path(data_dir) / "test").is_dir() else "val"


def default_chunk(dim: int) -> int:
    """Rows a block: BLOCK_BYTES of float64 features, at most 2048 (a block's distances, 32 MB)."""
    return max(1, min(2048, BLOCK_BYTES // (8 * dim)))


def _rows(array, start: int, stop: int) -> torch.Tensor:
    """Rows of a (memory-mapped) array, flattened, as float64: only these are read."""
    block = np.asarray(array[start:stop], dtype=np.float64)
    return torch.from_numpy(block.reshape(len(block), -1))


def nearest(queries, train, k: int = NEIGHBOURS, chunk: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(indices, distances), queries x k: each query's k nearest rows of `train`, nearest first,
    ties to the lower index. Both arrays may be memory maps; they are read a block at a time."""
    k = min(k, len(train))
    chunk = chunk or default_chunk(math.prod(train.shape[1:]))
    indices = np.empty((len(queries), k), np.int64)
    distances = np.empty((len(queries), k), np.float64)
    for q0 in range(0, len(queries), chunk):
        q = _rows(queries, q0, q0 + chunk)
        best_d, best_i = np.empty((len(q), 0)), np.empty((len(q), 0), np.int64)
        for t0 in range(0, len(train), chunk):
            t = _rows(train, t0, t0 + chunk)
            d = torch.cdist(q, t, compute_mode="donot_use_mm_for_euclid_dist").numpy()
            cand_d = np.concatenate([best_d, d], axis=1)
            cand_i = np.concatenate([best_i, np.broadcast_to(np.arange(t0, t0 + len(t)), d.shape)], axis=1)
            order = np.lexsort((cand_i, cand_d), axis=-1)[:, :k]   # by distance, then index
            best_d = np.take_along_axis(cand_d, order, axis=1)
            best_i = np.take_along_axis(cand_i, order, axis=1)
        indices[q0:q0 + len(q)], distances[q0:q0 + len(q)] = best_i, best_d
    return indices, distances


def find_neighbours(trained: Trained, data_dir, layer: str, queries: int, work_dir: Path,
                    batch: int, workers: int, chunk: int | None = None) -> Neighbours:
    """The NEIGHBOURS nearest training images of `queries` evenly spaced query images; the
    features go through memory-mapped files in a temporary folder inside `work_dir`."""
    split = query_split(data_dir)
    train = split_folder(trained, data_dir, "train")
    chosen = evenly_spaced(split_folder(trained, data_dir, split), queries)
    try:
        scratch = tempfile.TemporaryDirectory(dir=work_dir, prefix=".netdsl-neighbours-")
    except OSError as err:
        raise files.WriteError(Path(work_dir), err) from None
    with scratch as work:
        train_path, query_path = Path(work) / "train.npy", Path(work) / "queries.npy"
        write_features(trained, layer, train, train_path, batch, workers)
        write_features(trained, layer, chosen, query_path, batch, workers)
        indices, distances = nearest(np.load(query_path, mmap_mode="r"), np.load(train_path, mmap_mode="r"),
                                     NEIGHBOURS, chunk)
    return Neighbours(split, train, chosen, indices, distances)


def report(found: Neighbours, layer: str) -> list[str]:
    """A line a query, then a line a neighbour: its index in train/, path, class and distance."""
    classes = found.train.classes
    base = found.train.root.parent
    lines = [f"the {found.indices.shape[1]} nearest of {len(found.train.samples)} train/ images to "
             f"{len(found.queries.samples)} {found.split}/ images by {layer} (Euclidean distance):"]
    for q, (path, label) in enumerate(found.queries.samples):
        lines.append(f"{found.split} {Path(path).relative_to(base)} ({classes[label]})")
        for rank, (i, distance) in enumerate(zip(found.indices[q], found.distances[q]), 1):
            near, near_label = found.train.samples[i]
            lines.append(f"  {rank}. index {i} distance {distance:.6g} {Path(near).relative_to(base)} "
                         f"({classes[near_label]})")
    return lines


# ---------------------------------------------------------------- the picture

def seen_image(path: str, recipe: data.Recipe) -> Image.Image:
    """The image as the network saw it (its centre crop), CELL pixels high."""
    pixels = data.read_image(path, recipe)
    top, left = data.ten_crop_boxes(recipe.resize, recipe.height, recipe.width)[4]
    crop = pixels[top:top + recipe.height, left:left + recipe.width, :3]
    crop = np.clip(crop, 0, 255).astype(np.uint8)
    image = Image.fromarray(crop[..., 0] if crop.shape[2] < 3 else crop).convert("RGB")
    if image.height <= CELL:
        factor = CELL // image.height
        return image.resize((image.width * factor, image.height * factor), Image.Resampling.NEAREST)
    return image.resize((round(image.width * CELL / image.height), CELL), Image.Resampling.LANCZOS)


def _caption(draw: ImageDraw.ImageDraw, text: str, x: int, y: int, width: int, colour) -> None:
    font = ImageFont.load_default()
    while text and draw.textlength(text, font=font) > width:
        text = text[:-1]
    draw.text((x, y), text, fill=colour, font=font)


def picture(found: Neighbours, recipe: data.Recipe) -> Image.Image:
    """A row a query: the query, a gap, its neighbours nearest first, class names beneath."""
    classes = found.train.classes
    rows = []
    for q, (path, label) in enumerate(found.queries.samples):
        cells = [(seen_image(path, recipe), label)]
        cells += [(seen_image(found.train.samples[i][0], recipe), found.train.samples[i][1])
                  for i in found.indices[q]]
        rows.append(cells)
    side_h = max(image.height for row in rows for image, _ in row)
    side_w = max(image.width for row in rows for image, _ in row)
    k = found.indices.shape[1]
    width = 2 * MARGIN + (k + 1) * side_w + QUERY_GAP + (k - 1) * GAP
    row_height = side_h + CAPTION
    height = 2 * MARGIN + len(rows) * row_height + (len(rows) - 1) * ROW_GAP
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    for r, row in enumerate(rows):
        y = MARGIN + r * (row_height + ROW_GAP)
        query_label = row[0][1]
        for c, (image, label) in enumerate(row):
            x = MARGIN + c * (side_w + GAP) + (QUERY_GAP - GAP if c else 0)
            canvas.paste(image, (x, y))
            colour = "black" if label == query_label else (200, 0, 0)
            _caption(draw, classes[label], x, y + side_h + 1, side_w, colour)
    return canvas


def write_picture(found: Neighbours, recipe: data.Recipe, out: Path) -> None:
    write_png(picture(found, recipe), out)
