"""`netdsl data`: dataset preparation, one subcommand a job.

    netdsl data prepare ~/imagenet-raw ~/imagenet-256    # shorter side 256, centre 256x256, JPEG

`prepare` does the paper's preprocessing (section 2) once, so training does not decode
full-size images every epoch: every JPEG or PNG under SRC is scaled so its shorter side is
`--size`, centre-cropped square and written as JPEG to the same relative path under DST (with
a .jpg suffix), in parallel with a progress bar. Files already in DST are kept, so an
interrupted run picks up where it stopped; each output is written to a temporary name and
renamed, so none is ever half-written. Unreadable files are skipped, named and counted.

`mnist-scale` and `fashion-mnist` write those datasets as image folders; their logic is
netdsl/datasets/mnist_scale.py's and netdsl/datasets/fashion_mnist.py's, their flags are here.
A new job is a pair add_arguments(parser), run(args), as each netdsl command is, listed in JOBS.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from ..argtypes import positive, usable_cores
from ..datasets import fashion_mnist, idx, mnist_scale
from ..errors import NetError

SOURCE_SUFFIXES = (".jpg", ".jpeg", ".png")


def _prepare_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("src", metavar="SRC", help="a folder of images (any depth, e.g. train/<class>/...)")
    parser.add_argument("dst", metavar="DST", help="where the prepared copies go, same relative paths")
    parser.add_argument("--size", type=positive, default=256, help="the side of the output squares (256)")
    parser.add_argument("--quality", type=positive, default=90, help="JPEG quality, 1 to 95 (90)")
    parser.add_argument("--workers", type=positive, default=usable_cores(),
                        help="processes (default: one a CPU core)")


def prepare_one(job: tuple[str, str, int, int]) -> str | None:
    """Scale, crop and write one image; the reason it could not be read, or None."""
    src, dst, size, quality = job
    try:
        with Image.open(src) as image:
            if image.format == "JPEG":
                image.draft("RGB", (size, size))  # decode at reduced scale, both sides >= size
            w, h = image.size
            side = min(w, h)
            box = ((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2)
            square = image.convert("RGB").resize((size, size), Image.Resampling.BICUBIC, box=box)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        return str(err) or type(err).__name__
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    tmp = f"{dst}.{os.getpid()}.tmp"
    square.save(tmp, format="JPEG", quality=quality)
    os.replace(tmp, dst)
    return None


def _jobs(src: Path, dst: Path, size: int, quality: int) -> tuple[list, int]:
    """The images still to prepare, and how many are prepared already."""
    jobs, done = [], 0
    for top, dirs, files in os.walk(src, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.lower().endswith(SOURCE_SUFFIXES):
                continue
            source = Path(top) / name
            target = (dst / source.relative_to(src)).with_suffix(".jpg")
            if target.exists():
                done += 1
            else:
                jobs.append((str(source), str(target), size, quality))
    return jobs, done


def _prepare(args) -> int:
    src, dst = Path(args.src), Path(args.dst)
    if not src.is_dir():
        raise NetError("no such folder", str(src))
    if dst.resolve() == src.resolve() or src.resolve() in dst.resolve().parents:
        raise NetError("DST must lie outside SRC", str(dst))
    if args.quality > 95:
        raise NetError(f"--quality {args.quality}: Pillow's JPEG quality goes up to 95")
    jobs, done = _jobs(src, dst, args.size, args.quality)
    if not jobs and not done:
        raise NetError(f"no {'/'.join(SOURCE_SUFFIXES)} files", str(src))
    skipped = 0
    with ProcessPoolExecutor(args.workers) as pool:
        results = pool.map(prepare_one, jobs, chunksize=64)
        for job, error in tqdm(zip(jobs, results), total=len(jobs), unit="img",
                               desc=f"preparing {args.size}x{args.size}", disable=None):
            if error is not None:
                skipped += 1
                tqdm.write(f"warning: skipped {job[0]}: cannot decode it ({error})", file=sys.stderr)
    print(f"prepared {len(jobs) - skipped} images in {dst}" + (f" ({done} there already)" if done else "")
          + (f"; {skipped} skipped as unreadable" if skipped else ""))
    return 0


# ---------------------------------------------------------------- mnist-scale

def fold_number(text: str) -> int:
    if not (text.isdigit() and int(text) < mnist_scale.FOLDS):
        raise argparse.ArgumentTypeError(f"expected a split from 0 to {mnist_scale.FOLDS - 1}, "
                                         f"got `{text}`")
    return int(text)


def add_mnist_scale_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("idx_dir", metavar="IDX_DIR",
                        help="a folder with train-images-idx3-ubyte, train-labels-idx1-ubyte, "
                             "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte (.gz or not)")
    parser.add_argument("out_dir", metavar="OUT_DIR", help="where train/, val/, test/ go (new or empty)")
    parser.add_argument("--split", type=fold_number, default=0, metavar="K",
                        help=f"which of the {mnist_scale.FOLDS} splits (0..{mnist_scale.FOLDS - 1}): fixes "
                             "the scales and the partition (default 0)")
    parser.add_argument("--workers", type=positive, default=None, metavar="N",
                        help="processes writing images (default: one per CPU core)")


def run_mnist_scale(args) -> int:
    started = time.monotonic()
    data = idx.load_idx_set(args.idx_dir)
    images = np.concatenate([data.train_images, data.test_images])
    labels = np.concatenate([data.train_labels, data.test_labels])
    written = mnist_scale.build(images, labels, args.out_dir, args.split, mnist_scale.SIZES,
                                workers=args.workers)
    print(f"MNIST-scale split {args.split} from {args.idx_dir}: "
          + ", ".join(f"{n} {split}" for split, n in written.items())
          + f" images in {args.out_dir} ({time.monotonic() - started:.1f} s)")
    return 0


# ---------------------------------------------------------------- fashion-mnist

def add_fashion_mnist_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out_dir", metavar="OUT",
                        help="where train/, val/, test/ go (new or empty, or a complete earlier run)")
    parser.add_argument("--idx", default=fashion_mnist.DEFAULT_IDX, metavar="DIR",
                        help="the folder of the four IDX files (default: %(default)s, from Debian's "
                             "dataset-fashion-mnist)")
    parser.add_argument("--workers", type=positive, default=None, metavar="N",
                        help="processes writing images (default: one per CPU core)")


def run_fashion_mnist(args) -> int:
    started = time.monotonic()
    data = idx.load_idx_set(args.idx, classes=len(fashion_mnist.LABELS))
    built = fashion_mnist.build(*data, args.out_dir, fashion_mnist.VAL_SIZE, workers=args.workers)
    counts = ", ".join(f"{n} {split}" for split, n in built.counts.items())
    if not built.written:
        print(f"Fashion-MNIST is already in {args.out_dir} ({counts} images, same source and "
              f"split); nothing to do ({time.monotonic() - started:.1f} s)")
        return 0
    print(f"Fashion-MNIST from {args.idx}: {counts} images in {args.out_dir} "
          f"({time.monotonic() - started:.1f} s)")
    return 0


# name: (add_arguments, run, help)
JOBS = {
    "prepare": (_prepare_arguments, _prepare,
                "scale images to a shorter side of 256, centre-crop them square, save as JPEG"),
    "mnist-scale": (add_mnist_scale_arguments, run_mnist_scale,
                    "make MNIST-scale (Sohn and Lee 2012) from MNIST-format files"),
    "fashion-mnist": (add_fashion_mnist_arguments, run_fashion_mnist,
                      "write Fashion-MNIST as train/, val/ (5,000 held out, stratified) and test/ image folders"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    jobs = parser.add_subparsers(dest="data_command", required=True, metavar="JOB")
    for name, (add, run_job, help_text) in JOBS.items():
        sub = jobs.add_parser(name, help=help_text, description=help_text)
        add(sub)
        sub.set_defaults(job=run_job)


def run(args) -> int:
    return args.job(args)
