"""Image folders to batches: the paper's preprocessing (section 2) and augmentation (section 4.1).

    recipe = Recipe.of(net)                          # sizes, channels, flip, lighting, mean
    train, val = open_folders("imagenet/", recipe)   # checked ImageFolder layout (NetError if not)
    stats = load_stats(train, recipe, [data_dir, run_dir], 4, ProblemLog())  # mean image, PCA
    loader = train_loader(TrainSet(train, recipe, stats, seed=0), batch=128, workers=4, seed=0)
    with workers.owned(loader): ...                  # its worker processes end with the block

Layout: DIR/train/<class>/<file> and DIR/val/<class>/<file>, classes sorted by name, nested
folders allowed. Networks with 1 or 3 channels read JPEG and PNG (greyscale or RGB); any other
channel count reads `.npy` arrays of C x H x W on the same 0..255 scale.

Every image is scaled so its shorter side is `resize` and centre-cropped square (one Pillow
call, after JPEG draft mode has decoded it at the smallest size still at least that big).
Training takes a random H x W crop, a reflection with probability 1/2 and the PCA lighting
shift; testing takes the centre crop or the ten crops. The network sees raw 0..255 values
minus the mean: the training set's (image or channel), fixed values (`mean = 123, 117, 104`,
one a channel in the order read, R, G, B for images, on the same 0..255 scale), or none.

The training set's mean image and pixel PCA take one pass over it, once: they are cached as
.netdsl-stats-<key>.npz in the data directory, or in the run folder where that is read-only,
the key covering `resize`, the channels and the list of training files. A cache that cannot
be written anywhere (a full disk) is a warning, not an error: the run has the stats it needs.

Randomness depends only on (seed, epoch, index): the epoch's order on (seed, epoch), an
image's crop, flip and lighting on (seed, epoch, index). So the batches are the same with any
number of workers and a resumed run sees what an uninterrupted one would.

Under data parallelism (netdsl/devices/distributed.py; `world` below) the global batch is split:
process r of W takes positions [r*B/W, (r+1)*B/W) of each global batch of B, so its step k
holds exactly its share of the single-process step k, augmented alike. Validation and the
statistics pass give each process every W-th image and sum the results over the processes.

A file that cannot be decoded is skipped and reported (a Problem travels with the batch);
an image smaller than the crop is a user error (NetError), as is a bad layout.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset, Sampler, Subset
from tqdm import tqdm

from .. import files
from . import preemption
from .workers import Loader, owned
from ..devices.distributed import SINGLE, World
from ..errors import NetError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
ARRAY_SUFFIXES = (".npy",)
STATS_VERSION = 1
_ORDER_TAG, _ITEM_TAG = 0xA, 0xB   # keep the order's and the items' random streams apart


# ---------------------------------------------------------------- settings and folders

@dataclass(frozen=True)
class Recipe:
    """What the pipeline does to an image, from the network's input and its [train] section."""
    channels: int
    resize: int
    height: int
    width: int
    flip: bool = True
    lighting: float = 0.1
    mean: str | tuple[float, ...] = "image"   # image | channel | none | fixed values, one a channel
    draft: bool = True
    scale: float = 1.0        # applied last, after the mean and the lighting, as Caffe's `scale`

    @staticmethod
    def of(net, draft: bool = True) -> "Recipe":
        s, t = net.input_shape, net.train
        return Recipe(s.c, t.resize, s.h, s.w, t.flip, t.lighting, t.mean, draft, t.scale)

    @property
    def reads_arrays(self) -> bool:
        return self.channels not in (1, 3)

    @property
    def suffixes(self) -> tuple[str, ...]:
        return ARRAY_SUFFIXES if self.reads_arrays else IMAGE_SUFFIXES


@dataclass(frozen=True)
class Folder:
    """One split: its class names (sorted) and its (path, class index) samples."""
    root: Path
    classes: tuple[str, ...]
    samples: tuple[tuple[str, int], ...]


def _class_files(folder: Path, suffixes) -> list[str]:
    found = []
    for top, dirs, names in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [os.path.join(top, f) for f in sorted(names) if f.lower().endswith(suffixes)]
    return found


def scan_split(data_dir: Path, split: str, suffixes) -> Folder:
    if not data_dir.is_dir():
        raise NetError("no such data directory", str(data_dir))
    root = data_dir / split
    if not root.is_dir():
        raise NetError(f"no `{split}/` folder; the data directory must hold "
                       "train/<class>/<image> and val/<class>/<image>", str(data_dir))
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise NetError(f"`{split}/` has no class folders (expected {split}/<class>/<image>)",
                       str(data_dir))
    samples = [(path, index) for index, name in enumerate(classes)
               for path in _class_files(root / name, suffixes)]
    if not samples:
        raise NetError(f"`{split}/` holds no {'/'.join(suffixes)} files", str(data_dir))
    return Folder(root, tuple(classes), tuple(samples))


def open_val(data_dir, recipe: Recipe, classes, split: str = "val") -> Folder:
    """val/ (or another held-out split, such as test/) checked against the training classes,
    its labels their indices."""
    val = scan_split(Path(data_dir), split, recipe.suffixes)
    unknown = [name for name in val.classes if name not in classes]
    if unknown:
        raise NetError(f"{split}/ has classes that train/ lacks: {', '.join(unknown[:5])}"
                       + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""), str(data_dir))
    index = {name: i for i, name in enumerate(classes)}
    val = Folder(val.root, tuple(classes),
                 tuple((path, index[val.classes[label]]) for path, label in val.samples))
    check_first_of_each_class(val, recipe)
    return val


def open_folders(data_dir, recipe: Recipe) -> tuple[Folder, Folder]:
    """train/ and val/ checked: present, not empty, val's classes known to train, sizes fit."""
    data_dir = Path(data_dir)
    train = scan_split(data_dir, "train", recipe.suffixes)
    empty = sorted(set(train.classes) - {train.classes[label] for _, label in train.samples})
    if empty:
        raise NetError(f"train/ has class folders without images: {', '.join(empty[:5])}",
                       str(data_dir))
    check_first_of_each_class(train, recipe)
    return train, open_val(data_dir, recipe, train.classes)


# ---------------------------------------------------------------- decoding

class BadImage(Exception):
    """A file that cannot be decoded: skipped and counted."""


class SmallImage(Exception):
    """An image smaller than the network's crop: a user error."""


def _too_small(w: int, h: int, recipe: Recipe) -> SmallImage | None:
    need = max(recipe.height, recipe.width)
    if min(w, h) >= need:
        return None
    return SmallImage(f"the image is {w}x{h}, smaller than the network's "
                      f"{recipe.height}x{recipe.width} crop; use images whose shorter side is "
                      f"at least {need} (`netdsl data prepare SRC DST --size N` scales a folder)")


def _read_array(path: str, recipe: Recipe) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise BadImage(str(err)) from None
    if array.ndim != 3 or array.shape[0] != recipe.channels:
        raise BadImage(f"an array of shape {tuple(array.shape)}, not {recipe.channels} x H x W")
    _, h, w = array.shape
    if (small := _too_small(w, h, recipe)) is not None:
        raise small
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = torch.from_numpy(np.ascontiguousarray(array[:, top:top + side, left:left + side],
                                                    dtype=np.float32))
    scaled = F.interpolate(square[None], size=(recipe.resize, recipe.resize), mode="bilinear",
                           align_corners=False, antialias=True)[0]
    return scaled.permute(1, 2, 0).numpy()


def read_image(path: str, recipe: Recipe) -> np.ndarray:
    """The file as a resize x resize x C array (uint8 for images, float32 for arrays).

    Raises BadImage for a file it cannot decode, SmallImage for one smaller than the crop.
    """
    if recipe.reads_arrays:
        return _read_array(path, recipe)
    mode = "L" if recipe.channels == 1 else "RGB"
    try:
        with Image.open(path) as image:
            if (small := _too_small(*image.size, recipe)) is not None:
                raise small
            if recipe.draft and image.format == "JPEG":
                # decode at 1/2, 1/4 or 1/8 scale while both sides stay >= resize
                image.draft(mode, (recipe.resize, recipe.resize))
            w, h = image.size
            side = min(w, h)
            box = ((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2)
            square = image.convert(mode).resize((recipe.resize, recipe.resize),
                                                Image.Resampling.BILINEAR, box=box)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise BadImage(str(err) or type(err).__name__) from None
    array = np.asarray(square)
    return array[:, :, None] if array.ndim == 2 else array


def check_first_of_each_class(folder: Folder, recipe: Recipe) -> None:
    """Catch a folder of too-small images or wrong arrays before any work, from one file a class."""
    first: dict[int, str] = {}
    for path, label in folder.samples:
        first.setdefault(label, path)
    for path in first.values():
        try:
            if recipe.reads_arrays:
                array = np.load(path, mmap_mode="r", allow_pickle=False)
                if array.ndim != 3 or array.shape[0] != recipe.channels:
                    raise NetError(f"an array of shape {tuple(array.shape)}; the network reads "
                                   f"{recipe.channels} x H x W", path)
                small = _too_small(array.shape[2], array.shape[1], recipe)
            else:
                with Image.open(path) as image:
                    small = _too_small(*image.size, recipe)
        except (OSError, ValueError, SyntaxError, EOFError):
            continue  # undecodable: skipped and counted when read
        if small is not None:
            raise NetError(str(small), path)


# ---------------------------------------------------------------- augmentation

def lighting_shift(eigvecs: np.ndarray, eigvals: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """The paper's [p1 p2 p3][a1*l1, a2*l2, a3*l3]^T, on the 0..255 scale (one value a channel).

    The eigenvalues are those of the covariance of pixel values scaled to 0..1. The formula
    multiplies alpha by an eigenvalue, a variance, so its result depends on the scale: on 0..1
    (the scale of common reimplementations, e.g. fb.resnet.torch's) it shifts an image by a few
    grey levels, a change of lighting; on 0..255 it would shift it by hundreds. The shift is
    then scaled back to 0..255.
    """
    return (255.0 * (eigvecs @ (alpha * eigvals))).astype(np.float32)


def ten_crop_boxes(size: int, h: int, w: int) -> list[tuple[int, int]]:
    """(top, left) of the four corners and the centre of a size x size image."""
    return [(0, 0), (0, size - w), (size - h, 0), (size - h, size - w),
            ((size - h) // 2, (size - w) // 2)]


def _chw(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))


# ---------------------------------------------------------------- statistics

@dataclass(frozen=True)
class Stats:
    """The training set's mean image (resize x resize x C, 0..255) and the PCA of its pixels."""
    mean_image: np.ndarray
    eigvals: np.ndarray       # C, of the pixel covariance on the 0..1 scale, descending
    eigvecs: np.ndarray       # C x C, eigenvector i in column i
    images: int

    def mean(self, mode: str | tuple[float, ...]) -> np.ndarray:
        """What is subtracted: broadcastable to resize x resize x C. Fixed values (a tuple, one a
        channel, in the image's channel order) are 1 x 1 x C, as the `channel` mean is, so the
        checkpoint stores them as it stores that and evaluation subtracts what training did."""
        if isinstance(mode, tuple):
            return np.asarray(mode, np.float32).reshape(1, 1, -1)
        if mode == "image":
            return self.mean_image
        if mode == "channel":
            return self.mean_image.mean(axis=(0, 1), keepdims=True, dtype=np.float64).astype(np.float32)
        return np.zeros((1, 1, self.mean_image.shape[2]), np.float32)


class Problem(NamedTuple):
    """A sample that did not load: kind `bad` (skipped) or `small` (a user error)."""
    kind: str
    path: str
    detail: str


def _load(path: str, recipe: Recipe):
    try:
        return read_image(path, recipe)
    except BadImage as err:
        return Problem("bad", path, str(err))
    except SmallImage as err:
        return Problem("small", path, str(err))


class _RawSet(Dataset):
    def __init__(self, folder: Folder, recipe: Recipe):
        self.samples, self.recipe = folder.samples, recipe

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        return _load(self.samples[index][0], self.recipe)


def _sum_batch(items):
    """Runs in a worker: a batch's image sum and pixel moments, so only sums cross processes."""
    images = [i for i in items if not isinstance(i, Problem)]
    problems = [i for i in items if isinstance(i, Problem)]
    if not images:
        return None, None, None, 0, problems
    stack = np.stack(images).astype(np.float64)
    pixels = stack.reshape(-1, stack.shape[-1]) / 255.0
    return stack.sum(axis=0), pixels.sum(axis=0), pixels.T @ pixels, len(images), problems


def _shard_sums(folder: Folder, recipe: Recipe, workers: int, problems: "ProblemLog",
                world: World) -> list[np.ndarray]:
    """This process's share (every world.size-th image): image sum, pixel sum and moments, count."""
    side, c = recipe.resize, recipe.channels
    sums = [np.zeros((side, side, c)), np.zeros(c), np.zeros((c, c)), np.zeros(1)]
    shard = Subset(_RawSet(folder, recipe), range(world.rank, len(folder.samples), world.size))
    loader = Loader(shard, batch_size=32, num_workers=workers, collate_fn=_sum_batch,
                    worker_init_fn=preemption.ignore_in_worker)
    with owned(loader):
        for image_sum, p_sum, p_moment, n, batch_problems in tqdm(
                loader, desc="mean image and lighting PCA", unit="batch", leave=False,
                disable=None if world.main else True):
            problems.note(batch_problems)
            if n:
                for total, part in zip(sums, (image_sum, p_sum, p_moment, n)):
                    total += part
    return sums


def compute_stats(folder: Folder, recipe: Recipe, workers: int, problems: "ProblemLog",
                  world: World = SINGLE) -> Stats:
    """The stats of the whole folder; under data parallelism each process reads its share."""
    sums = world.together(lambda: _shard_sums(folder, recipe, workers, problems, world))
    total, pixel_sum, moment, count = world.sum_arrays(*sums)
    count = int(count[0])
    if not count:
        raise NetError("no training image could be read", str(folder.root))
    pixels = count * recipe.resize * recipe.resize
    centre = pixel_sum / pixels
    covariance = moment / pixels - np.outer(centre, centre)
    eigvals, eigvecs = np.linalg.eigh(covariance)
    order = np.argsort(eigvals)[::-1]
    return Stats((total / count).astype(np.float32), np.clip(eigvals[order], 0, None),
                 eigvecs[:, order], count)


def _stats_key(folder: Folder, recipe: Recipe) -> str:
    """Changes with the resize, the channels or the list of training files."""
    files = [os.path.relpath(path, folder.root) for path, _ in folder.samples]
    blob = json.dumps([STATS_VERSION, recipe.resize, recipe.channels, files]).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _read_cached(path: Path) -> Stats | None:
    try:
        with np.load(path, allow_pickle=False) as f:
            return Stats(f["mean_image"], f["eigvals"], f["eigvecs"], int(f["images"]))
    except (OSError, ValueError, KeyError, EOFError):
        return None


def _write_cached(stats: Stats, path: Path) -> None:
    """The stats to `path`, atomically; files.WriteError if they cannot be written."""
    buffer = io.BytesIO()  # the mean image and the PCA: small enough to build in memory
    np.savez(buffer, mean_image=stats.mean_image, eigvals=stats.eigvals,
             eigvecs=stats.eigvecs, images=stats.images)
    files.replace(path, buffer.getbuffer())


def _cache(stats: Stats, cache_dirs, name: str) -> None:
    """Write the stats to the first of `cache_dirs` that takes them (a read-only data directory
    leaves them to the run folder). Where none does, a warning: a cache that cannot be written
    costs the next run one pass over the data, not this run, so training goes on."""
    failures = []
    for folder_path in cache_dirs:
        try:
            _write_cached(stats, Path(folder_path) / name)
            return
        except files.WriteError as err:
            failures.append(f"{err.path}: {err.strerror}")
    print(f"warning: cannot cache the training set's statistics ({'; '.join(failures)}); "
          "the next run computes them again", file=sys.stderr)


def load_stats(folder: Folder, recipe: Recipe, cache_dirs, workers: int,
               problems: "ProblemLog", world: World = SINGLE) -> Stats:
    """The training set's stats, from the first cache folder that has them, else computed once
    and written to the first cache folder that is writable (the data directory, then the run);
    where none is, a warning on stderr and the run goes on (_cache).

    Under data parallelism the processes compute them together unless every one of them finds
    the cache (machines need not share a disk); one process a machine writes it."""
    name = f".netdsl-stats-{_stats_key(folder, recipe)}.npz"
    cached = next((found for folder_path in cache_dirs
                   if (found := _read_cached(Path(folder_path) / name)) is not None), None)
    if world.sum([cached is not None])[0] == world.size:
        return cached
    stats = compute_stats(folder, recipe, workers, problems, world)
    if world.local_rank == 0:
        _cache(stats, cache_dirs, name)
    return stats


# ---------------------------------------------------------------- datasets and loaders

class TrainSet(Dataset):
    """Training samples: random crop, reflection and lighting, keyed by (epoch, index)."""

    def __init__(self, folder: Folder, recipe: Recipe, stats: Stats, seed: int):
        self.samples, self.recipe, self.seed = folder.samples, recipe, seed
        self.mean = stats.mean(recipe.mean)
        self.eigvals, self.eigvecs = stats.eigvals, stats.eigvecs

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, key):
        epoch, index = key
        if index is None:
            return None  # EpochSampler's placeholder: this process has no image this step
        path, label = self.samples[index]
        image = _load(path, self.recipe)
        if isinstance(image, Problem):
            return image
        r = self.recipe
        rng = np.random.default_rng([self.seed, epoch, index, _ITEM_TAG])
        top = int(rng.integers(0, r.resize - r.height + 1))
        left = int(rng.integers(0, r.resize - r.width + 1))
        flip = bool(rng.random() < 0.5) and r.flip
        alpha = rng.normal(0.0, r.lighting, r.channels) if r.lighting else None
        x = image[top:top + r.height, left:left + r.width].astype(np.float32)
        x -= self.mean[top:top + r.height, left:left + r.width] if self.mean.shape[0] > 1 else self.mean
        if flip:
            x = x[:, ::-1]
        if alpha is not None:
            x = x + lighting_shift(self.eigvecs, self.eigvals, alpha)
        return _chw(x * r.scale), label


class EvalSet(Dataset):
    """Test samples: V x C x H x W views of each image, the centre crop (V=1) or ten crops."""

    def __init__(self, folder: Folder, recipe: Recipe, mean: np.ndarray, tencrop: bool):
        self.samples, self.recipe, self.mean, self.tencrop = folder.samples, recipe, mean, tencrop

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        path, label = self.samples[index]
        image = _load(path, self.recipe)
        if isinstance(image, Problem):
            return image
        return self.views_of(image), label

    def views_of(self, image: np.ndarray) -> torch.Tensor:
        return self.views_minus(image, self.mean)

    def views_minus(self, image: np.ndarray, mean: np.ndarray) -> torch.Tensor:
        x = (image.astype(np.float32) - mean) * self.recipe.scale
        return views(x, self.recipe, self.tencrop)


class EnsembleEvalSet(EvalSet):
    """Test samples for several checkpoints: each image's V views once for each of M training
    means, one block after another (M*V x C x H x W). Checkpoints trained on different data carry
    different means, and each must see the image as it was trained to; the image is read once."""

    def __init__(self, folder: Folder, recipe: Recipe, means: list[np.ndarray], tencrop: bool):
        super().__init__(folder, recipe, means[0], tencrop)
        self.means = means

    def views_of(self, image: np.ndarray) -> torch.Tensor:
        return torch.cat([self.views_minus(image, mean) for mean in self.means])


def views(x: np.ndarray, recipe: Recipe, tencrop: bool) -> torch.Tensor:
    """The centre crop of a resize x resize x C image, or its ten crops (corners, centre, then
    the same five reflected), as V x C x H x W."""
    h, w = recipe.height, recipe.width
    boxes = ten_crop_boxes(recipe.resize, h, w)
    if not tencrop:
        top, left = boxes[4]
        return _chw(x[top:top + h, left:left + w])[None]
    crops = [x[top:top + h, left:left + w] for top, left in boxes]
    return torch.stack([_chw(c) for c in crops] + [_chw(c[:, ::-1]) for c in crops])


class Batch(NamedTuple):
    x: torch.Tensor | None
    y: torch.Tensor
    problems: list


def collate(items) -> Batch:
    items = [i for i in items if i is not None]  # placeholders
    good = [i for i in items if not isinstance(i, Problem)]
    problems = [i for i in items if isinstance(i, Problem)]
    x = torch.stack([g[0] for g in good]) if good else None
    return Batch(x, torch.tensor([g[1] for g in good], dtype=torch.long), problems)


class EpochSampler(Sampler):
    """The epoch's order, a permutation drawn from (seed, epoch); yields (epoch, index) keys.

    With world.size W > 1, this process's share of it: of each global batch of `batch`
    positions, those from rank * batch/W on, batch/W of them (fewer in the last, short batch).
    Where the last batch leaves this process nothing it yields one (epoch, None) placeholder
    instead, so every process takes the same number of steps.

    set_epoch(e, start=p) begins epoch e at position p of its order, as a run stopped mid-epoch
    resumes: with the batch it stopped at, p = steps taken x batch, and the steps left are exactly
    those the uninterrupted epoch takes next; with another batch the epoch still sees each image
    once.
    """

    def __init__(self, size: int, seed: int, batch: int = 1, world: World = SINGLE):
        self.size, self.seed, self.epoch, self.start = size, seed, 0, 0
        self.batch, self.world = batch, world

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        if not 0 <= start <= self.size:
            raise ValueError(f"position {start} is outside an epoch of {self.size} images")
        self.epoch, self.start = epoch, start

    def steps_after(self, position: int) -> int:
        """The steps of an epoch left after `position` images of its order."""
        return -(-(self.size - position) // self.batch)

    def _positions(self) -> list[int | None]:
        share = self.batch // self.world.size
        positions = []
        for begin in range(self.start, self.size, self.batch):
            first = begin + self.world.rank * share
            mine = list(range(first, min(first + share, self.size)))
            positions += mine or [None]
        return positions

    def __len__(self):
        return len(self._positions())

    def __iter__(self):
        order = np.random.default_rng([self.seed, self.epoch, _ORDER_TAG]).permutation(self.size)
        return iter([(self.epoch, None if p is None else int(order[p])) for p in self._positions()])


def _loader(dataset, batch: int, workers: int, sampler=None) -> Loader:
    """Batches from worker processes that live as long as the loader (persistent): the caller
    ends them with workers.owned(loader) (netdsl/runner/workers.py)."""
    return Loader(dataset, batch_size=batch, sampler=sampler, num_workers=workers,
                  collate_fn=collate, pin_memory=torch.cuda.is_available(),
                  persistent_workers=workers > 0, worker_init_fn=preemption.ignore_in_worker,
                  # the loader's own generator: making it draws nothing from torch's global one
                  generator=torch.Generator().manual_seed(0))


def train_loader(dataset: TrainSet, batch: int, workers: int, seed: int,
                 world: World = SINGLE) -> Loader:
    """This process's share of each global batch of `batch` images.
    Call loader.sampler.set_epoch(e) before iterating epoch e."""
    return _loader(dataset, batch // world.size, workers,
                   EpochSampler(len(dataset), seed, batch, world))


def eval_loader(dataset: EvalSet, batch: int, workers: int, world: World = SINGLE) -> Loader:
    """This process's share (every world.size-th image), batch / world.size images a step.
    With ten crops an image, a tenth of that: the model sees that many views."""
    batch //= world.size
    return _loader(dataset, max(1, batch // 10) if dataset.tencrop else batch, workers,
                   range(world.rank, len(dataset), world.size))


class ProblemLog:
    """Images skipped: a warning once per file, a count; a too-small image stops the run."""

    def __init__(self):
        self.skipped = 0
        self._warned: set[str] = set()

    def note(self, problems) -> None:
        for problem in problems:
            if problem.kind == "small":
                raise NetError(problem.detail, problem.path)
            self.skipped += 1
            if problem.path not in self._warned:
                self._warned.add(problem.path)
                tqdm.write(f"warning: skipped {problem.path}: cannot decode it ({problem.detail})",
                           file=sys.stderr)

    def take(self) -> int:
        """Images skipped since the last call."""
        count, self.skipped = self.skipped, 0
        return count
