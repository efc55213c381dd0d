"""Images per second of the training input pipeline in one worker, with and without JPEG draft mode.

    python bench/data.py                  # generates the JPEG sets in a temporary folder
    python bench/data.py --images 400 --keep bench-data/

One worker is one process running TrainSet.__getitem__: decode, scale the shorter side to 256
and crop the centre square, random 224 x 224 crop, reflection, mean subtraction and PCA
lighting, to a float32 tensor. Total throughput is about this figure times the workers, as
long as there are cores for them.

Three sets of the same pictures (coloured shapes plus noise, so JPEG has detail to code):
  prepared  256 x 256, what `netdsl data prepare` writes; draft mode cannot help (scale 1)
  photo     500 x 375, a typical ImageNet size; draft needs a shorter side >= 512, so none
  large     1600 x 1200, a camera-sized image; draft decodes at 1/4 scale
Each figure is the median of --rounds measurements, draft on and off taken in turn, so that
other work on the machine disturbs both alike. Prints a Markdown table.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from netdsl.datasets import synthetic  # noqa: E402
from netdsl.runner import data

SETS = {"prepared": (256, 256), "photo": (500, 375), "large": (1600, 1200)}


def make_set(root: Path, size: tuple[int, int], images: int) -> Path:
    """train/<shape>/*.jpg at `size`, quality 90 as `netdsl data prepare` writes."""
    rng = np.random.default_rng(0)
    shapes = list(synthetic.SHAPES)
    for i in range(images):
        shape = shapes[i % len(shapes)]
        picture = Image.fromarray(synthetic.draw(shape, max(size), seed=i)).resize(size)
        noisy = np.asarray(picture).astype(np.int16) + rng.integers(-20, 21, (size[1], size[0], 3))
        folder = root / "train" / shape
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(noisy.clip(0, 255).astype(np.uint8)).save(folder / f"{i}.jpg", quality=90)
    return root


def images_per_second(root: Path, draft: bool, seconds: float) -> float:
    recipe = data.Recipe(3, 256, 224, 224, draft=draft)
    folder = data.scan_split(root, "train", recipe.suffixes)
    stats = data.Stats(np.full((256, 256, 3), 120, np.float32), np.array([0.02, 0.005, 0.001]),
                       np.eye(3), len(folder.samples))
    dataset = data.TrainSet(folder, recipe, stats, seed=0)
    dataset[(0, 0)]                                  # warm up
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        dataset[(1, done % len(dataset))]
        done += 1
    return done / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100, help="images a set (default 100)")
    parser.add_argument("--seconds", type=float, default=2.0, help="time a measurement (default 2)")
    parser.add_argument("--rounds", type=int, default=5, help="measurements a figure, the median kept (5)")
    parser.add_argument("--keep", type=Path, help="write the sets here and keep them")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = args.keep or Path(tmp)
        print("| set | size | draft on (img/s) | draft off (img/s) |")
        print("| --- | --- | --- | --- |")
        for name, size in SETS.items():
            root = base / name
            if not root.exists():
                make_set(root, size, args.images)
            on, off = [], []
            for _ in range(args.rounds):
                on.append(images_per_second(root, True, args.seconds))
                off.append(images_per_second(root, False, args.seconds))
            on, off = statistics.median(on), statistics.median(off)
            print(f"| {name} | {size[0]}x{size[1]} | {on:.0f} | {off:.0f} |", flush=True)


if __name__ == "__main__":
    main()
