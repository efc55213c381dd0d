"""How invariant each layer's units are to scaling: the SI paper's Figure 5 criterion.

    netdsl invariance nets/mnist_scale_cnn.net nets/mnist_scale_si.net \\
        --checkpoint runs/cnn/best.pt --checkpoint runs/si/best.pt --data data/mnist-scale-0 \\
        --out invariance.png

    scores = invariance_scores(model, net, images, scales=(0.3, 0.4, ..., 1.2), mean=mean)

The score is Goodfellow et al.'s ("Measuring invariances in deep networks", NIPS 2009), as
the SI paper (section IV-A.2) uses it. Unit i fires on input x when h_i(x) > t_i, with t_i set
so that its global firing rate G_i, the fraction of the test images (at their own scale) it
fires on, is 0.01. Z_i is the set of inputs it fires on, which is the 1% that activate it most
strongly, Goodfellow et al.'s choice of Z. T(z) is z rescaled about its centre by each factor
s in `scales` (the paper: 0.3 to 1.2; the default 0.3, 0.4, ..., 1.2 includes s = 1, on which
z fires by definition). The local firing rate L_i is the fraction of the pairs (z in Z_i, s)
on which the unit still fires; the unit's score is L_i / G_i, from 0 (it never fires once z
is rescaled) to 1 / G_i = 100 (it always does).
A layer's score is the mean over its units (with `top` < 1, over its most invariant
fraction: Goodfellow et al. average their top 20%). A unit for which no threshold gives
G_i = 0.01, because its responses tie at the threshold (a dead ReLU, or one that is 0 on
more than 99% of the images), has no score and is left out of the mean; the command
prints how many units each layer's mean covers.

Units are the weighted layers' (conv, siconv, fc) outputs after their neuron. A map's unit
is its channel, its response the maximum over positions. Why not each position: scaling
about the centre moves every off-centre feature to another position, so a per-position
unit would measure sensitivity to that shift, the same for an SI and a plain network, not
whether the channel still detects its feature at another size, which is the SI layer's
claim. (A 1% firing rate per position would also leave the border positions, which digits
never reach, without a threshold.)

The measured outputs come from the generated forward's own code, run one layer at a time
(each layer's `forward` template, as netdsl/devices/placement.py runs it) on a torch-backend copy of
the model, so any backend and placement can be measured (netdsl/runner/activations.py).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from .. import compile_net, load_net
from ..errors import NetError
from ..layers.registry import REGISTRY
from ..datasets.mnist_scale import rescale
from ..runner.activations import LayerOutputs
from ..runner.checkpoint import load_checkpoint

FIRING_RATE = 0.01
DEFAULT_SCALES = tuple(round(0.1 * k, 1) for k in range(3, 13))   # 0.3, 0.4, ..., 1.2
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


# ---------------------------------------------------------------- the score

class LayerTaps(LayerOutputs):
    """The measured layers' unit responses (N x units) for a batch, from the generated code
    (netdsl/runner/activations.py)."""

    def __init__(self, model: torch.nn.Module, net):
        super().__init__(model, net, [layer.name for layer in net.layers if REGISTRY[layer.type].weighted])

    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {name: _units(output) for name, output in super().__call__(x).items()}


def _units(output: torch.Tensor) -> torch.Tensor:
    """N x units: a map's channels at their strongest position, or an fc's outputs."""
    return output.amax(dim=(2, 3)) if output.dim() == 4 else output


def network_input(images: np.ndarray, mean, net) -> torch.Tensor:
    """What the runner feeds `net` for raw N x C x H x W images: minus the training mean, times
    its [train] scale (netdsl/runner/data.py does the same to each image it loads)."""
    return torch.from_numpy(np.ascontiguousarray((images - mean) * net.train.scale, np.float32))


def _responses(taps: LayerTaps, images: np.ndarray, mean, net, batch: int, bar) -> dict[str, np.ndarray]:
    parts: dict[str, list[np.ndarray]] = {name: [] for name in taps.names}
    for start in range(0, len(images), batch):
        x = network_input(images[start:start + batch], mean, net)
        for name, units in taps(x).items():
            parts[name].append(units.float().cpu().numpy())
        bar.update(len(x))
    return {name: np.concatenate(chunks) for name, chunks in parts.items()}


def firing_count(images: int, rate: float) -> int:
    """k: on how many of the images a unit fires, at the global firing rate `rate`."""
    return max(1, round(rate * images))


def thresholds(responses: np.ndarray, rate: float = FIRING_RATE) -> np.ndarray:
    """t_i per column of N x units: the (k+1)-th largest response, so that the k strongest
    inputs, and only they, lie above it (fewer where responses tie at it)."""
    k = firing_count(len(responses), rate)
    return -np.partition(-responses, k, axis=0)[k]


def rescaled(images: np.ndarray, factor: float) -> np.ndarray:
    """N x C x H x W images, each channel scaled by `factor` about the centre (mnist_scale.rescale)."""
    return np.stack([[rescale(channel, factor) for channel in image] for image in images])


def _check_inputs(net, images: np.ndarray, scales, rate: float) -> None:
    want = tuple(net.input_shape)
    if images.ndim != 4 or images.shape[1:] != want:
        raise NetError(f"{net.name} takes N x {' x '.join(map(str, want))} images; got an array "
                       f"of shape {' x '.join(map(str, images.shape))}", net.path)
    if len(images) <= firing_count(len(images), rate):
        raise NetError(f"{len(images)} images are too few to set a {rate:.0%} firing threshold")
    if not scales or any(not (s > 0 and math.isfinite(s)) for s in scales):
        raise NetError(f"scale factors must be positive numbers; got {list(scales)}")


def unit_scores(model: torch.nn.Module, net, images, scales=DEFAULT_SCALES, mean=0.0,
                rate: float = FIRING_RATE, batch: int = 256) -> dict[str, np.ndarray]:
    """L_i / G_i for each unit of each weighted layer, NaN for a unit without a score.

    net: the network (a Net or a .net path) that `model` was compiled from.

    A unit has a score when exactly k = rate * N images lie above its threshold: where
    responses tie at the threshold (a ReLU that is 0 on more than 1 - rate of the images, a
    dead unit), no threshold gives the global rate the criterion asks for.

    images: raw N x C x H x W (0..255), the network's input size; `mean` (a number or an
    array broadcasting to C x H x W) is subtracted after rescaling and the result multiplied
    by the network's [train] scale, as the runner does.
    """
    net = load_net(net)
    images = np.asarray(images, dtype=np.float32)
    _check_inputs(net, images, scales, rate)
    mean = np.asarray(mean, dtype=np.float32)
    taps = LayerTaps(model, net)
    with tqdm(total=len(images), unit="img", desc="natural scale", disable=None) as bar:
        natural = _responses(taps, images, mean, net, batch, bar)
    limits = {name: thresholds(r, rate) for name, r in natural.items()}
    fires = {name: natural[name] > limits[name] for name in natural}   # Z_i, as a mask per unit
    chosen = np.flatnonzero(np.any([f.any(axis=1) for f in fires.values()], axis=0))
    hits = {name: np.zeros(f.shape[1]) for name, f in fires.items()}
    with tqdm(total=len(chosen) * len(scales), unit="img", desc="rescaled", disable=None) as bar:
        for factor in scales:
            if factor == 1:  # z itself: in Z_i, so the unit fires on it by definition
                for name, f in fires.items():
                    hits[name] += f.sum(axis=0)
                bar.update(len(chosen))
                continue
            for start in range(0, len(chosen), batch):
                part = chosen[start:start + batch]
                moved = _responses(taps, rescaled(images[part], factor), mean, net, batch, bar)
                for name, r in moved.items():
                    hits[name] += ((r > limits[name]) & fires[name][part]).sum(axis=0)
    k = firing_count(len(images), rate)
    global_rate = k / len(images)
    return {name: np.where(f.sum(axis=0) == k, hits[name] / (k * len(scales)) / global_rate, np.nan)
            for name, f in fires.items()}


def layer_score(scores: np.ndarray, top: float = 1.0) -> float:
    """The mean of the units' scores (the highest `top` fraction of them), NaN units left out."""
    scored = np.sort(scores[~np.isnan(scores)])[::-1]
    if not len(scored):
        return math.nan
    return float(scored[:max(1, math.ceil(top * len(scored)))].mean())


def invariance_scores(model: torch.nn.Module, net, images, scales=DEFAULT_SCALES, mean=0.0,
                      rate: float = FIRING_RATE, top: float = 1.0) -> dict[str, float]:
    """{layer name: its invariance score}, for each weighted layer in file order."""
    return {name: layer_score(s, top)
            for name, s in unit_scores(model, net, images, scales, mean, rate).items()}


# ---------------------------------------------------------------- the command


def load_model(net, path: str):
    """(the compiled network with the checkpoint's weights, the saved training mean or None)."""
    state, mean = load_checkpoint(path)
    model = compile_net(net, backend="torch")
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).splitlines()[1:2] or [str(err)]
        raise NetError(f"the checkpoint does not fit {net.name}: {first[0].strip()}", path) from None
    return model, mean


def folder_files(data_dir: Path, split: str, limit: int | None = None) -> list[Path]:
    """DIR/split/<class>/<image> in sorted order; `limit` takes that many, evenly spaced
    (so every class keeps its share)."""
    if not data_dir.is_dir():
        raise NetError("no such data directory", str(data_dir))
    root = data_dir / split
    if not root.is_dir():
        raise NetError(f"no `{split}/` folder (expected {split}/<class>/<image>)", str(data_dir))
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise NetError(f"`{split}/` holds no {'/'.join(IMAGE_SUFFIXES)} files", str(data_dir))
    if limit and limit < len(files):
        files = [files[i] for i in np.linspace(0, len(files) - 1, limit).round().astype(int)]
    return files


def read_images(files: list[Path], shape, what: str = "images") -> np.ndarray:
    """The files as raw N x C x H x W float32; each must already be the network's input size."""
    c, h, w = shape
    images = np.empty((len(files), c, h, w), np.float32)
    for i, path in enumerate(tqdm(files, unit="img", desc=f"reading {what}", disable=None)):
        try:
            with Image.open(path) as image:
                pixels = np.asarray(image.convert("L" if c == 1 else "RGB"), dtype=np.float32)
        except (OSError, ValueError) as err:
            raise NetError(f"cannot read the image: {err}", str(path)) from None
        if pixels.shape[:2] != (h, w):
            raise NetError(f"the image is {pixels.shape[1]}x{pixels.shape[0]}; measures by scale "
                           f"read images of the network's input size, {w}x{h}", str(path))
        images[i] = pixels.reshape(h, w, c).transpose(2, 0, 1)
    return images


def load_folder(data_dir: Path, split: str, shape, limit: int | None = None) -> np.ndarray:
    """DIR/split/<class>/<image> as raw N x C x H x W float32, in sorted order (see folder_files)."""
    return read_images(folder_files(data_dir, split, limit), shape, f"{split}/")


def input_mean(saved: np.ndarray | None, net, data_dir: Path) -> np.ndarray:
    """What the runner subtracted, as C x H x W (or C x 1 x 1): the checkpoint's training mean,
    or, for a plain state dict, the one the network's `mean` setting takes from DIR/train."""
    c, h, w = net.input_shape
    if saved is None:
        if net.train.mean == "none":
            return np.zeros((c, 1, 1), np.float32)
        train = load_folder(data_dir, "train", net.input_shape)
        pixels = train.mean(axis=0)
        return pixels.mean(axis=(1, 2), keepdims=True) if net.train.mean == "channel" else pixels
    mean = saved.transpose(2, 0, 1)
    top, left = (mean.shape[1] - h) // 2, (mean.shape[2] - w) // 2
    return mean if mean.shape[1] == 1 else mean[:, top:top + h, left:left + w]


def table(results, top: float) -> list[tuple[str, list[tuple[float, int, int]]]]:
    """Rows in layer order: (label, per network (score, units scored, units)). Two networks
    are matched layer by layer in order, as the paper's Figure 5 matches the SI and plain CNN."""
    depth = max(len(scores) for _, scores in results)
    rows = []
    for i in range(depth):
        names = [list(scores)[i] if i < len(scores) else None for _, scores in results]
        label = " / ".join(dict.fromkeys(n for n in names if n))
        cells = []
        for name, (_, scores) in zip(names, results):
            unit = scores.get(name, np.array([]))
            cells.append((layer_score(unit, top) if len(unit) else math.nan,
                          int((~np.isnan(unit)).sum()), len(unit)))
        rows.append((label, cells))
    return rows


def format_table(rows, networks: list[str]) -> str:
    header = ["layer"] + [f"{name} (units scored)" for name in networks]
    body = [[label] + [f"{score:.1f} ({scored}/{units})" if units else "-"
                       for score, scored, units in cells] for label, cells in rows]
    widths = [max(len(r[i]) for r in [header] + body) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                               for i, (cell, w) in enumerate(zip(r, widths))).rstrip()
                     for r in [header] + body)


def plot(rows, networks: list[str], out: Path, scales) -> None:
    """The paper's Figure 5: a bar per network for each layer."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise NetError("drawing needs matplotlib: pip install netdsl[plot]") from None
    figure = Figure(figsize=(1.6 + 1.3 * len(rows), 3.6), layout="constrained")
    axes = figure.subplots()
    x = np.arange(len(rows))
    width = 0.8 / len(networks)
    for k, name in enumerate(networks):
        axes.bar(x + (k - (len(networks) - 1) / 2) * width, [cells[k][0] for _, cells in rows],
                 width, label=name)
    axes.set_xticks(x, [label for label, _ in rows])
    axes.set_ylabel("invariance score L / G")
    axes.set_title(f"Invariance to scaling ({min(scales)} to {max(scales)})")
    axes.legend()
    try:
        figure.savefig(out, dpi=120)
    except OSError as err:
        raise NetError(f"cannot write the plot: {err.strerror or err}", str(out)) from None
