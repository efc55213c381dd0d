"""Any layer's activations for every image of a split, written to a memory-mapped .npy.

    netdsl features nets/alexnet.net --checkpoint runs/alexnet/best.pt --data imagenet/ \\
        --split val --layer fc7 -o fc7-val.npy

    trained = load_trained(net, "runs/alexnet/best.pt")
    folder = split_folder(trained, "imagenet/", "val")
    shape = write_features(trained, "fc7", folder, Path("fc7-val.npy"), batch=128, workers=4)

The images go through `netdsl eval`'s pipeline (netdsl/runner/data.py's EvalSet, the centre
crop, minus the checkpoint's training mean, times the network's `scale`) in file order, and
through the network in eval mode up to the layer (netdsl/runner/activations.py). Each batch's
activations go straight into the output, a .npy opened with numpy's open_memmap and its space
reserved at once, so a split larger than memory works and a full disk is a clear error; the
file is written under a temporary name and renamed when complete (files.building).

Beside FILE.npy (images x the layer's output shape, float32) go FILE.labels.npy (int64, each
image's class index in the checkpoint's classes) and FILE.json: the network, checkpoint, layer,
split, data directory, class names and `paths`, each image's path relative to the data
directory, row i of the features being paths[i]. An image that cannot be decoded is an error
naming it, where eval would skip it: every row must be its listed image.
"""
from __future__ import annotations

import errno
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from numpy.lib.format import open_memmap
from tqdm import tqdm

from .. import files
from ..errors import NetError, did_you_mean
from ..runner import checkpoint, data
from ..runner.activations import LayerOutputs
from ..runner.model import build_model, default_devices, load_weights
from ..runner.workers import owned


@dataclass(frozen=True)
class Trained:
    """A network with a checkpoint's weights, and what its images need: classes, mean, recipe."""
    net: object
    model: torch.nn.Module
    classes: tuple[str, ...]
    mean: np.ndarray
    recipe: data.Recipe
    checkpoint: str


def load_trained(net, path: str) -> Trained:
    """The torch-backend model with the weights of a `netdsl train` checkpoint (which carries the
    classes and mean), on the first GPU if there is one; a checkpoint of another network is refused."""
    state = checkpoint.load(path)
    recipe = data.Recipe.of(net)
    mean = checkpoint.checked_mean(state, recipe.resize, path)
    model, _ = build_model(net, "torch", default_devices(None))
    load_weights(model, state, path)
    return Trained(net, model, tuple(state["classes"]), mean, recipe, str(path))


def check_layer(net, name: str) -> str:
    names = [layer.name for layer in net.layers]
    if name not in names:
        raise NetError(f"no layer `{name}` in {net.name}{did_you_mean(name, names)}; its layers: "
                       f"{', '.join(names)}", net.path)
    return name


def split_folder(trained: Trained, data_dir, split: str) -> data.Folder:
    """DIR/split's images in file order, labelled by the checkpoint's classes."""
    return data.open_val(data_dir, trained.recipe, trained.classes, split)


def evenly_spaced(folder: data.Folder, count: int | None) -> data.Folder:
    """`count` of the folder's images, evenly spaced from the first to the last (all if fewer)."""
    if count is None or count >= len(folder.samples):
        return folder
    picks = np.linspace(0, len(folder.samples) - 1, count).round().astype(int)
    return data.Folder(folder.root, folder.classes, tuple(folder.samples[i] for i in picks))


def sidecars(path: Path) -> tuple[Path, Path]:
    """FILE.labels.npy and FILE.json beside FILE.npy."""
    stem = path.with_suffix("")
    return stem.with_name(stem.name + ".labels.npy"), stem.with_suffix(".json")


def _refuse_unreadable(problems) -> None:
    for problem in problems:
        if problem.kind == "small":
            raise NetError(problem.detail, problem.path)
        raise NetError(f"cannot decode it ({problem.detail}); every image of the split gets a row "
                       "of features: remove or replace it", problem.path)


def _reserve(path: Path) -> None:
    """Claim the memory map's disk space now: a full disk is then an OSError here, where writing
    to a sparse mapping would end the process with SIGBUS."""
    fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    try:
        os.posix_fallocate(fd, 0, os.fstat(fd).st_size)
    except OSError as err:
        if err.errno not in (errno.EOPNOTSUPP, errno.EINVAL):  # a file system without it
            raise
    finally:
        os.close(fd)


def _activations(trained: Trained, layer: str, folder: data.Folder, loader):
    """(activations as float32 numpy, labels) a batch at a time, in the folder's order."""
    outputs = LayerOutputs(trained.model, trained.net, [layer])
    for part in tqdm(loader, desc=f"{layer} of {folder.root.name}/", unit="batch", disable=None, leave=False):
        _refuse_unreadable(part.problems)
        yield outputs(part.x.flatten(0, 1))[layer].float().cpu().numpy(), part.y.numpy()


def write_features(trained: Trained, layer: str, folder: data.Folder, out: Path, batch: int,
                   workers: int) -> tuple[int, ...]:
    """The layer's activations for every image of `folder` to `out` (.npy, memory-mapped), and
    its sidecars; returns the array's shape."""
    out = Path(out)
    count = len(folder.samples)
    labels = np.empty(count, np.int64)
    loader = data.eval_loader(data.EvalSet(folder, trained.recipe, trained.mean, tencrop=False), batch, workers)
    with files.building(out) as tmp, owned(loader):
        features, row = None, 0
        for values, y in _activations(trained, layer, folder, loader):
            if features is None:
                features = open_memmap(tmp, mode="w+", dtype=np.float32, shape=(count, *values.shape[1:]))
                _reserve(tmp)
            features[row:row + len(values)] = values
            labels[row:row + len(values)] = y
            row += len(values)
        shape = features.shape
        features.flush()
        del features   # unmapped before the file is renamed
    labels_path, listing_path = sidecars(out)
    buffer = io.BytesIO()
    np.save(buffer, labels)
    files.replace(labels_path, buffer.getvalue())
    base = folder.root.parent   # the data directory
    listing = {"network": trained.net.name, "net": trained.net.path, "checkpoint": trained.checkpoint,
               "layer": layer, "split": folder.root.name, "data": str(base.resolve()),
               "shape": list(shape), "classes": list(folder.classes),
               "paths": [os.path.relpath(path, base) for path, _ in folder.samples]}
    files.replace(listing_path, json.dumps(listing, indent=1) + "\n")
    return shape
