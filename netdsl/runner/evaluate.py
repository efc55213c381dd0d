"""Evaluation: top-1 and top-5 error of a model over a loader, the evaluation train uses each
epoch, and of checkpoints (one, or an ensemble) on a held-out split, which `netdsl eval`
(netdsl/commands/eval.py) and netdsl.evaluate run. The model itself, on its devices, is
netdsl/runner/model.py's, shared with training.

Ten crops average the softmax (or sigmoid) probabilities of the four corners, the centre and
their reflections, as the paper does.
"""
from __future__ import annotations

import contextlib
import dataclasses

import torch

from . import data
from ..devices.distributed import SINGLE, World
from ..errors import NetError
from ..layers.registry import REGISTRY


def probabilities(model, views: torch.Tensor, output_type: str) -> torch.Tensor:
    """N x classes: the probabilities of N x V x C x H x W views, averaged over the V views."""
    n, v = views.shape[:2]
    logits = model(views.flatten(0, 1)).float()
    probs = REGISTRY[output_type].probabilities(logits)
    return probs.view(n, v, -1).mean(1)


def loss_of_probabilities(probs: torch.Tensor, y: torch.Tensor, output_type: str) -> torch.Tensor:
    """Summed over the batch: the output type's loss of probabilities (netdsl/layers/output.py):
    cross-entropy, or binary cross-entropy summed over the classes."""
    return REGISTRY[output_type].loss_of_probabilities(probs, y)


def wrong(probs: torch.Tensor, y: torch.Tensor, k: int) -> int:
    """How many of y are not among the k most probable classes."""
    top = probs.topk(min(k, probs.shape[1]), 1).indices
    return int((top != y[:, None]).all(1).sum())


@torch.no_grad()
def evaluate(model, loader, output_type: str, device, problems: data.ProblemLog,
             world: World = SINGLE) -> dict:
    """loss, top1_err, top5_err and images over a loader of EvalSet batches; under data
    parallelism each process's loader holds its share and the sums are taken over them all."""
    model.eval()
    # a too-small image in one process's share stops them all with its message
    sums = world.together(lambda: _sums(model, loader, output_type, device, problems))
    loss, top1, top5, images = world.sum(sums)
    images = int(images)
    if not images:
        raise NetError("no validation image could be read: every one was skipped")
    return {"loss": loss / images, "top1_err": top1 / images, "top5_err": top5 / images,
            "images": images}


def _sums(model, loader, output_type: str, device, problems: data.ProblemLog) -> list:
    """The summed loss, top-1 and top-5 mistakes, and images."""
    loss, top1, top5, images = 0.0, 0, 0, 0
    for batch in loader:
        problems.note(batch.problems)
        if batch.x is None:
            continue
        probs = probabilities(model, batch.x.to(device, non_blocking=True), output_type)
        y = batch.y.to(probs.device)
        loss += float(loss_of_probabilities(probs, y, output_type))
        top1 += wrong(probs, y, 1)
        top5 += wrong(probs, y, 5)
        images += len(y)
    return [loss, top1, top5, images]


# ---------------------------------------------------------------- checkpoints on a held-out split

@contextlib.contextmanager
def evaluating(net, precision: str | None, devices):
    """How an evaluation's forward passes run: denormals flushed, under autocast to `precision`,
    or to the network's [train] precision where it is None."""
    from . import precision as precisions
    from .model import default_devices, flushing_denormals

    with flushing_denormals(), precisions.autocast(precision or net.train.precision, default_devices(devices)):
        yield


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """The error of one checkpoint, or of an ensemble and each of its members, on a split."""
    net: str              # the network's name
    split: str            # val or test
    folder: str           # the split's folder read
    test: str             # center or tencrop
    result: dict          # top1_err, top5_err, loss, images (the ensemble's, for several checkpoints)
    members: list         # each checkpoint's result in an ensemble; [] for one checkpoint
    skipped: int          # images that could not be read
    means: int            # distinct training means among the checkpoints
    provenance: dict      # this evaluation's record (runner/provenance.py)
    checkpoints: list     # each checkpoint's path, epoch and training records

    def record(self, net_path: str) -> dict:
        """`netdsl eval --json`'s record."""
        result = {**self.result, "test": self.test, "skipped_images": self.skipped}
        if self.members:
            result["members"] = self.members
        return {"net": net_path, "split": self.split, "result": result, "provenance": self.provenance,
                "checkpoints": self.checkpoints}


def evaluate_checkpoints(net, checkpoints: list, data_dir, split: str = "val", test: str | None = None,
                         batch: int | None = None, workers: int | None = None, backend: str = "auto",
                         devices=None, compile: bool = False, command_line=()) -> Evaluation:
    """Top-1 and top-5 error of the checkpoints of `net` (several: an ensemble, their probabilities
    averaged) on data_dir/<split>, each image minus its checkpoint's training mean. The caller sets
    the forward's precision (precision.autocast) and flushing_denormals, as `netdsl eval` does."""
    from . import checkpoint, ensemble, precision, provenance
    from .model import build_model, default_devices, default_workers, load_weights
    from .workers import owned

    paths = [str(path) for path in checkpoints]
    states = [checkpoint.load(path) for path in paths]
    classes = ensemble.common_classes(states, paths)
    recipe = data.Recipe.of(net)
    val = data.open_val(data_dir, recipe, classes, split)
    means, groups = ensemble.distinct_means([checkpoint.checked_mean(state, recipe.resize, path)
                                             for state, path in zip(states, paths)])
    devices = default_devices(devices)
    models = []
    for state, path in zip(states, paths):
        model, device = build_model(net, backend, devices)
        load_weights(model, state, path)
        models.append(precision.compiled(model, compile))
    test = test or net.train.test
    workers = default_workers() if workers is None else workers
    batch = batch or net.train.batch
    if len(models) == 1:
        loader = data.eval_loader(data.EvalSet(val, recipe, means[0], test == "tencrop"), batch, workers)
    else:
        loader = data.eval_loader(data.EnsembleEvalSet(val, recipe, means, test == "tencrop"), batch, workers)
    problems = data.ProblemLog()
    segment = provenance.record(list(command_line), seed=0, workers=workers, data=[val])
    with owned(loader):
        if len(models) == 1:
            result, members = evaluate(models[0], loader, net.output.type, device, problems), []
        else:
            members, result = ensemble.evaluate_ensemble(models, groups, loader, net.output.type, device, problems)
    return Evaluation(net.name, split, str(val.root), test, result, members, problems.take(), len(means),
                      provenance.ended(segment, 0),
                      [{"path": path, "epoch": state.get("epoch"), "provenance": state.get("provenance", [])}
                       for path, state in zip(paths, states)])
