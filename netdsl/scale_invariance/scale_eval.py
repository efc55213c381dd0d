"""Error against scale: test error with every test image shown at one fixed scale.

    netdsl eval nets/mnist_scale_cnn.net nets/mnist_scale_si.net \\
        --checkpoint runs/cnn/best.pt --checkpoint runs/si/best.pt \\
        --data DIR --split test --scales 0.3,0.4,0.5,0.6,0.7,0.8,0.9,1.0 --out error-by-scale.png

A folder made by `netdsl data mnist-scale` records each image's factor f in scales.csv; such
an image is rescaled by s / f about its centre, so every digit appears at scale s of its
original size (a digit drawn small and shown large is an enlargement of the small one,
softer than the original). Without scales.csv each image is rescaled by s itself. Images
must already be the network's input size; the model sees them minus its training mean,
times its [train] scale, as in training. Prints a table (one column of top-1 error per network) and draws the
curves to a PNG.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch

from ..errors import NetError
from .invariance import folder_files, input_mean, load_model, network_input, read_images
from ..datasets.mnist_scale import rescale


def read_factors(data_dir: Path) -> dict[str, float] | None:
    """file (relative to DIR) -> its MNIST-scale factor, from DIR/scales.csv; None without one."""
    path = data_dir / "scales.csv"
    if not path.exists():
        return None
    try:
        with path.open(newline="") as f:
            return {row["file"]: float(row["scale"]) for row in csv.DictReader(f)}
    except (KeyError, ValueError) as err:
        raise NetError(f"expected the columns file,label,scale ({err})", str(path)) from None


def labelled_images(data_dir: Path, split: str, shape, limit: int | None):
    """(raw images N x C x H x W, labels N, files relative to DIR) of DIR/split, classes sorted."""
    files = folder_files(data_dir, split, limit)
    classes = sorted(p.name for p in (data_dir / split).iterdir() if p.is_dir())
    labels = np.array([classes.index(f.parent.name) for f in files])
    return read_images(files, shape, f"{split}/"), labels, [f.relative_to(data_dir).as_posix() for f in files]


def at_scale(images: np.ndarray, factors: np.ndarray, scale: float) -> np.ndarray:
    """Every image rescaled by scale / its own factor, each channel about the centre."""
    return np.stack([[rescale(channel, scale / f) for channel in image] for image, f in zip(images, factors)])


@torch.no_grad()
def top_errors(model, net, images: np.ndarray, labels: np.ndarray, mean: np.ndarray,
               batch: int) -> tuple[float, float]:
    """(top-1, top-5) error in percent of the model of `net` on these raw images."""
    wrong1 = wrong5 = 0
    for start in range(0, len(images), batch):
        x = network_input(images[start:start + batch], mean, net)
        y = torch.from_numpy(labels[start:start + batch])
        logits = model(x)
        top = logits.topk(min(5, logits.shape[1]), dim=1).indices
        wrong1 += (top[:, 0] != y).sum().item()
        wrong5 += (~(top == y[:, None]).any(1)).sum().item()
    return 100 * wrong1 / len(images), 100 * wrong5 / len(images)


def error_by_scale(nets, checkpoints, data_dir: Path, split: str, scales, limit: int | None,
                   batch: int) -> dict[str, list[tuple[float, float]]]:
    """network name -> [(top-1, top-5) at each scale]."""
    images, labels, files = labelled_images(data_dir, split, nets[0].input_shape, limit)
    recorded = read_factors(data_dir)
    if recorded is not None and not all(f in recorded for f in files):
        raise NetError("scales.csv does not list every image of this split", str(data_dir))
    factors = np.array([recorded[f] for f in files]) if recorded else np.ones(len(files))
    shown = {s: at_scale(images, factors, s) for s in scales}
    results = {}
    for net, checkpoint in zip(nets, checkpoints):
        model, saved_mean = load_model(net, checkpoint)
        mean = input_mean(saved_mean, net, data_dir)
        model.eval()
        results[net.name] = [top_errors(model, net, shown[s], labels, mean, batch) for s in scales]
    return results


def format_table(results: dict, scales) -> str:
    names = list(results)
    lines = ["scale  " + "  ".join(f"{name:>18s}" for name in names)]
    for i, s in enumerate(scales):
        lines.append(f"{s:5.2f}  " + "  ".join(f"{results[n][i][0]:17.2f}%" for n in names))
    lines.append("mean   " + "  ".join(f"{np.mean([e[0] for e in results[n]]):17.2f}%" for n in names))
    return "\n".join(lines)


def plot(results: dict, scales, out: Path, title: str) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise NetError("drawing the plot needs matplotlib: pip install netdsl[plot]") from None
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, errors in results.items():
        ax.plot(scales, [e[0] for e in errors], marker="o", label=name)
    ax.set(xlabel="scale of the digit", ylabel="top-1 test error (%)", title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
