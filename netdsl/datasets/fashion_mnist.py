"""Fashion-MNIST as image folders that `netdsl train` and `netdsl eval` read, from its IDX files.

    netdsl data fashion-mnist data/fashion-mnist                      # IDX files from the default
    netdsl data fashion-mnist data/fashion-mnist --idx ~/fashion-idx --workers 4

Input: the four MNIST-format files (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz],
t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]) in --idx, by default
/usr/share/datasets/fashion-mnist (Debian's dataset-fashion-mnist), read by netdsl/datasets/idx.py.

Output, greyscale 28 x 28 PNGs, pixel for pixel the IDX images:

    OUT/train/<class>/train-NNNNN.png    55,000 of the official 60,000 training images
    OUT/val/<class>/train-NNNNN.png       5,000 held out of them, 500 a class
    OUT/test/<class>/t10k-NNNNN.png      the official 10,000 test images
    OUT/fashion-mnist.json               the manifest: counts, seed, digest of the source

NNNNN is the image's index in its official file, zero-padded to five digits (more if a file
holds more than 100,000 images), so every name is unique in the whole set and says where the
image came from. <class> is `<label>_<name>`, the name as the Fashion-MNIST README gives it with
"/" and spaces made "-": 0_T-shirt-top, 1_Trouser, 2_Pullover, 3_Dress, 4_Coat, 5_Sandal,
6_Shirt, 7_Sneaker, 8_Bag, 9_Ankle-boot; the one-digit prefix makes sorted order (the order
in which the runner numbers classes) label order.

val/ is stratified: each class's share of it is its share of the training file (largest
remainders, totals exact; mnist_scale.apportion), the members drawn with the fixed SEED, so
every run makes the same split. Every class keeps training images; a training file too small
for that is refused.

The set is written into `.OUT.partial-PID` beside OUT and renamed into place, so OUT is
either absent or complete: an error or Ctrl-C removes the partial folder, and one left by a
killed run is removed by the next run. Running again on a complete OUT changes nothing and
says it is there: the manifest must match the source and the settings, and the split folders
must hold exactly the expected files (names are checked, not pixels). Files beside the split
folders, such as the training statistics `netdsl train` caches there, are left alone. Any
other non-empty OUT is refused. `netdsl data fashion-mnist` (netdsl/commands/data.py) runs build().
"""
from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import signal
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image
from tqdm import tqdm

from ..argtypes import usable_cores
from ..errors import NetError
from .mnist_scale import apportion

DEFAULT_IDX = "/usr/share/datasets/fashion-mnist"
LABELS = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
          "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")   # the Fashion-MNIST README's names
VAL_SIZE = 5000
SEED = 0xFA5410          # fixes the val draw; changing it changes every split already written
SPLITS = ("train", "val", "test")
MANIFEST = "fashion-mnist.json"
LAYOUT = 1               # bump when names or the split change, so old folders are not taken as ours
CHUNK = 1000             # images a worker task: big enough to pay for the pickling


class File(NamedTuple):
    """One PNG to write: its path under OUT, the official file it comes from, its index there."""
    path: str
    source: str          # "train" or "t10k"
    index: int


class Built(NamedTuple):
    counts: dict[str, int]   # images a split
    written: bool            # False when OUT already held this very set


def class_folders() -> list[str]:
    """`0_T-shirt-top` ... `9_Ankle-boot`: label prefix first, so sorting keeps label order."""
    return [f"{label}_{name.replace('/', '-').replace(' ', '-')}" for label, name in enumerate(LABELS)]


def split_val(labels: np.ndarray, val_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted indices of the training images kept for train/ and of those held out for val/."""
    counts = np.bincount(labels, minlength=len(LABELS))
    if val_size >= len(labels):
        raise NetError(f"the training file holds {len(labels)} images, too few for {val_size} "
                       "validation images and a training set")
    shares = apportion(counts, val_size)
    for label, (count, share) in enumerate(zip(counts, shares)):
        if share >= count:
            raise NetError(f"the training file is too small for {val_size} stratified validation "
                           f"images: class {label} ({LABELS[label]}) has {count} images and its "
                           f"share of val/ is {share}, leaving none to train on")
    rng = np.random.default_rng(SEED)
    val = [rng.permutation(np.flatnonzero(labels == label))[:share]
           for label, share in enumerate(shares)]
    val = np.sort(np.concatenate(val))
    return np.setdiff1d(np.arange(len(labels)), val), val


def _check(images: np.ndarray, labels: np.ndarray, source: str) -> None:
    """What netdsl/datasets/idx.py checks for the command, for callers of build() with arrays of their own."""
    if images.ndim != 3 or images.dtype != np.uint8 or len(images) != len(labels):
        raise NetError(f"{source}: expected uint8 images N x H x W and N labels, got images "
                       f"{images.shape} of {images.dtype} and {len(labels)} labels")
    if len(labels) and (labels.min() < 0 or labels.max() >= len(LABELS)):
        raise NetError(f"{source}: labels must lie in 0..{len(LABELS) - 1}")


def plan(train_labels: np.ndarray, test_labels: np.ndarray, val_size: int) -> list[File]:
    """Every file of the set, train/ then val/ then test/, each in index order."""
    train, val = split_val(train_labels, val_size)
    folders = class_folders()

    def files(split, source, labels, indices):
        width = max(5, len(str(len(labels) - 1)))
        return [File(f"{split}/{folders[labels[i]]}/{source}-{i:0{width}d}.png", source, int(i))
                for i in indices]

    return (files("train", "train", train_labels, train) + files("val", "train", train_labels, val)
            + files("test", "t10k", test_labels, np.arange(len(test_labels))))


def source_digest(*arrays: np.ndarray) -> str:
    """sha256 of the decoded arrays (shape and values), so the same data gzipped or not agrees."""
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(repr(array.shape).encode())
        digest.update(np.ascontiguousarray(array, array.dtype.newbyteorder("<")).tobytes())
    return digest.hexdigest()


def manifest(files: list[File], digest: str, val_size: int) -> dict:
    folders = class_folders()
    per_class = {split: dict.fromkeys(folders, 0) for split in SPLITS}
    for file in files:
        split, folder, _ = file.path.split("/")
        per_class[split][folder] += 1
    return {"dataset": "Fashion-MNIST", "layout": LAYOUT, "source_sha256": digest,
            "seed": SEED, "val_size": val_size, "images": per_class}


def _listed(out_dir: Path) -> set[str]:
    """The files in OUT's split folders, as paths relative to OUT."""
    found = set()
    for split in SPLITS:
        for top, _, names in os.walk(out_dir / split):
            found.update(Path(top, name).relative_to(out_dir).as_posix() for name in names)
    return found


def _read_manifest(out_dir: Path) -> dict | None:
    try:
        return json.loads((out_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def already_there(out_dir: Path, files: list[File], expected: dict) -> bool:
    """True if OUT holds this very set, False if it is absent or empty; NetError otherwise."""
    if not out_dir.exists():
        return False
    if not out_dir.is_dir():
        raise NetError("exists and is not a folder", str(out_dir))
    if not any(out_dir.iterdir()):
        return False
    found = _read_manifest(out_dir)
    if found is None:
        raise NetError(f"is not empty and holds no {MANIFEST} (not a set this job wrote); remove "
                       "it or choose another folder", str(out_dir))
    differ = [key for key in expected if found.get(key) != expected[key]]
    if differ:
        raise NetError(f"holds a different Fashion-MNIST set ({MANIFEST} differs in "
                       f"{', '.join(differ)}); remove it or choose another folder", str(out_dir))
    listed, wanted = _listed(out_dir), {file.path for file in files}
    if listed != wanted:
        raise NetError(f"is incomplete or changed: {len(wanted - listed)} files missing, "
                       f"{len(listed - wanted)} unexpected in {', '.join(SPLITS)}; remove it "
                       "and run again", str(out_dir))
    return True


def _write_chunk(task) -> int:
    """Worker: save one chunk of (image, path) as greyscale PNGs."""
    images, paths = task
    for image, path in zip(images, paths):
        Image.fromarray(image, "L").save(path, format="PNG")
    return len(paths)


def _tasks(files: list[File], arrays: dict[str, np.ndarray], root: Path):
    for start in range(0, len(files), CHUNK):
        chunk = files[start:start + CHUNK]
        images = np.stack([arrays[file.source][file.index] for file in chunk])
        yield images, [str(root / file.path) for file in chunk]


def _write_images(files: list[File], arrays: dict[str, np.ndarray], root: Path,
                  workers: int | None) -> None:
    workers = workers or usable_cores()
    tasks = _tasks(files, arrays, root)
    with tqdm(total=len(files), unit="img", desc="Fashion-MNIST", disable=None) as bar:
        if workers == 1:
            for task in tasks:
                bar.update(_write_chunk(task))
            return
        # workers ignore Ctrl-C: the parent alone stops them and cleans up, with no worker tracebacks
        with multiprocessing.Pool(workers, signal.signal, (signal.SIGINT, signal.SIG_IGN)) as pool:
            for done in pool.imap_unordered(_write_chunk, tasks):
                bar.update(done)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True          # someone else's live process
    return True


def _remove_stale_partials(out_dir: Path) -> None:
    """Partial folders of killed runs (their process is gone); a live run's is left alone."""
    prefix = f".{out_dir.name}.partial-"
    if not out_dir.parent.is_dir():
        return
    for path in out_dir.parent.iterdir():
        pid = path.name[len(prefix):]
        if path.name.startswith(prefix) and pid.isdigit() and not _pid_alive(int(pid)):
            print(f"removing {path}, left by an interrupted run", file=sys.stderr)
            shutil.rmtree(path, ignore_errors=True)


def _write_set(files, arrays, expected: dict, out_dir: Path, workers) -> bool:
    """Write the set beside OUT and rename it into place; False if a concurrent run beat us to it."""
    partial = out_dir.parent / f".{out_dir.name}.partial-{os.getpid()}"
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(partial, ignore_errors=True)   # left by a killed run that had our pid
        for split in SPLITS:
            for folder in class_folders():
                (partial / split / folder).mkdir(parents=True)
        _write_images(files, arrays, partial, workers)
        (partial / MANIFEST).write_text(json.dumps(expected, indent=1) + "\n")
        if already_there(out_dir, files, expected):
            return False
        os.rename(partial, out_dir)  # replaces an empty folder; atomic on one file system
    except OSError as err:
        raise NetError(f"cannot write the dataset: {err.strerror or err}", str(out_dir)) from None
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return True


def build(images: np.ndarray, labels: np.ndarray, test_images: np.ndarray,
          test_labels: np.ndarray, out_dir: str | Path, val_size: int = VAL_SIZE,
          workers: int | None = None) -> Built:
    """Write the folders from uint8 images N x H x W and their labels (0..9), the official
    training set first, then t10k; nothing is written if OUT already holds the same set."""
    out_dir = Path(out_dir)
    _check(images, labels, "train")
    _check(test_images, test_labels, "t10k")
    files = plan(labels, test_labels, val_size)
    expected = manifest(files, source_digest(images, labels, test_images, test_labels), val_size)
    counts = {split: sum(expected["images"][split].values()) for split in SPLITS}
    if already_there(out_dir, files, expected):
        return Built(counts, written=False)
    _remove_stale_partials(out_dir)
    written = _write_set(files, {"train": images, "t10k": test_images}, expected, out_dir, workers)
    return Built(counts, written)
