"""MNIST-scale as Sohn and Lee (2012) made it, from any MNIST-format IDX files.

    netdsl data mnist-scale /usr/share/datasets/fashion-mnist data/fashion-scale-0 --split 0

The 70,000 train and t10k images are pooled; each is shrunk about its centre by a factor
drawn uniformly from [0.3, 1] and stays centred on its 28 x 28 canvas; 10,000 go to train/,
2,000 to val/ and 50,000 to test/, stratified (each class's share of a split is its share of
the pool, the totals exact); the other 8,000 are left out, as in the benchmark. Split K (0..5,
the paper's six folds) fixes every random draw, so the same K gives byte-identical files.

Output: OUT_DIR/{train,val,test}/<class>/<index>.png, greyscale, where <index> is the
image's place in the pool (train then t10k) and <class> the label, zero-padded so that
sorted names follow label order; OUT_DIR/scales.csv lists file, label and scale factor.
The set is written into a temporary folder beside OUT_DIR and renamed into place, so a
run that is interrupted leaves no half dataset (a killed one may leave `.NAME.partial-PID`).

The rescaling: Pillow's antialiased bilinear resize of a box about the centre, on a canvas
padded with background; unlike resizing to round(28 s) pixels and pasting, it keeps the
factor exact and the centre at the canvas centre for every s (also s > 1, used by
netdsl/scale_invariance/invariance.py). `netdsl data mnist-scale` (netdsl/commands/data.py) runs build().
"""
from __future__ import annotations

import math
import multiprocessing
import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from ..argtypes import usable_cores
from ..errors import NetError

SCALE_RANGE = (0.3, 1.0)
SIZES = (10000, 2000, 50000)
SPLITS = ("train", "val", "test")
FOLDS = 6
SEED_TAG = 0x5CA1E      # keeps this draw apart from any other stream seeded by the fold number
CHUNK = 500             # images a worker task: big enough to pay for the pickling


def rescale(image: np.ndarray, factor: float) -> np.ndarray:
    """An H x W image scaled by `factor` about its centre on its own canvas, as float32.

    Shrinking leaves a background (0) border; enlarging crops. Pixel centre x + 0.5 of the
    result reads the source at W/2 + (x + 0.5 - W/2) / factor, antialiased when shrinking.
    """
    h, w = image.shape
    # room for the box (W / factor wide) plus the filter's reach (1 / factor source pixels)
    pad = math.ceil(max(h, w) / 2 * max(1 / factor - 1, 0) + 2 / factor) + 1
    canvas = np.zeros((h + 2 * pad, w + 2 * pad), np.float32)
    canvas[pad:pad + h, pad:pad + w] = image
    cx, cy, rx, ry = pad + w / 2, pad + h / 2, w / (2 * factor), h / (2 * factor)
    scaled = Image.fromarray(canvas, "F").resize((w, h), Image.Resampling.BILINEAR,
                                                 box=(cx - rx, cy - ry, cx + rx, cy + ry))
    return np.asarray(scaled, dtype=np.float32)


def to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def apportion(counts: np.ndarray, total: int) -> np.ndarray:
    """Integers proportional to `counts` summing to `total` (largest remainders; ties to the
    lower class), so a split's class mix is the pool's."""
    quotas = counts.astype(np.int64) * total
    share, remainder = quotas // counts.sum(), quotas % counts.sum()
    order = np.lexsort((np.arange(len(counts)), -remainder))
    share[order[:total - share.sum()]] += 1
    return share


def draw(labels: np.ndarray, fold: int, sizes=SIZES, classes: int = 10):
    """The fold's scale factor for every pooled image and the indices each split takes.

    Returns (factors, {split: sorted indices}); depends only on labels, fold and sizes.
    """
    if sum(sizes) > len(labels):
        raise NetError(f"the splits ask for {sum(sizes)} images ({', '.join(map(str, sizes))}) "
                       f"but the IDX files hold {len(labels)}")
    rng = np.random.default_rng([SEED_TAG, fold])
    factors = rng.uniform(*SCALE_RANGE, size=len(labels))
    counts = np.bincount(labels, minlength=classes)
    shares = [apportion(counts, size) for size in sizes]
    parts = {split: [] for split in SPLITS}
    for label in range(classes):
        members = rng.permutation(np.flatnonzero(labels == label))
        if sum(share[label] for share in shares) > len(members):
            raise NetError(f"class {label} has {len(members)} images, fewer than its stratified "
                           f"share of the splits ({', '.join(str(s[label]) for s in shares)})")
        start = 0
        for split, share in zip(SPLITS, shares):
            parts[split].append(members[start:start + share[label]])
            start += share[label]
    return factors, {split: np.sort(np.concatenate(chunks)) for split, chunks in parts.items()}


def class_names(classes: int) -> list[str]:
    """"0".."9", zero-padded beyond ten classes, so sorted order is label order."""
    width = len(str(classes - 1))
    return [f"{label:0{width}d}" for label in range(classes)]


def _write_chunk(task) -> int:
    """Worker: rescale and save one chunk of (image, factor, path)."""
    images, factors, paths = task
    for image, factor, path in zip(images, factors, paths):
        Image.fromarray(to_uint8(rescale(image, factor)), "L").save(path, format="PNG")
    return len(paths)


def _free_target(out_dir: Path) -> None:
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise NetError("already exists and is not empty; remove it or choose another folder",
                       str(out_dir))


def build(images: np.ndarray, labels: np.ndarray, out_dir: str | Path, fold: int = 0,
          sizes=SIZES, classes: int = 10, workers: int | None = None) -> dict[str, int]:
    """Write MNIST-scale from uint8 images N x H x W and labels N; {split: images written}.

    fold is the split number K (0..5 on the command line); sizes the train, val and test counts.
    """
    out_dir = Path(out_dir)
    _free_target(out_dir)
    factors, parts = draw(labels, fold, sizes, classes)
    names = class_names(classes)
    width = max(5, len(str(len(labels) - 1)))
    files = [(f"{split}/{names[labels[i]]}/{i:0{width}d}.png", i)
             for split in SPLITS for i in parts[split]]
    partial = out_dir.parent / f".{out_dir.name}.partial-{os.getpid()}"
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(partial, ignore_errors=True)   # left by a killed run that had our pid
        for split in SPLITS:
            for name in names:
                (partial / split / name).mkdir(parents=True)
        _write_images(images, factors, files, partial, workers)
        with open(partial / "scales.csv", "w") as csv:
            csv.write("file,label,scale\n")
            csv.writelines(f"{file},{labels[i]},{float(factors[i])!r}\n" for file, i in files)
        _free_target(out_dir)
        os.rename(partial, out_dir)  # replaces an empty folder; atomic on one file system
    except OSError as err:
        raise NetError(f"cannot write the dataset: {err.strerror or err}", str(out_dir)) from None
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return {split: len(parts[split]) for split in SPLITS}


def _write_images(images, factors, files, root: Path, workers: int | None) -> None:
    tasks = []
    for start in range(0, len(files), CHUNK):
        chunk = files[start:start + CHUNK]
        index = np.array([i for _, i in chunk])
        tasks.append((images[index], factors[index], [str(root / f) for f, _ in chunk]))
    workers = workers or usable_cores()
    with tqdm(total=len(files), unit="img", desc="MNIST-scale", disable=None) as bar:
        if workers == 1:
            for task in tasks:
                bar.update(_write_chunk(task))
            return
        with multiprocessing.Pool(workers) as pool:
            for done in pool.imap_unordered(_write_chunk, tasks):
                bar.update(done)
