"""Ensembles: several checkpoints of one network scored together, their probabilities averaged,
as the AlexNet paper's Table 2 averages "the predictions of five similar CNNs".

    means, groups = distinct_means([state["mean"].numpy() for state in states])
    loader = data.eval_loader(data.EnsembleEvalSet(val, recipe, means, tencrop), batch, workers)
    members, together = evaluate_ensemble(models, groups, loader, "softmax", device, problems)

One pass over the data: each batch goes through every model. The probabilities are the softmax
outputs (a sigmoid network's sigmoid outputs, as evaluate.py scores it). With ten crops each
model's probabilities are first averaged over its ten crops (evaluate.probabilities), then over
the models; both are plain means of the same number of terms, so this is the mean over every
(crop, model) pair, and the order does not matter.

Each checkpoint sees the images minus its own training mean: the loader gives every image's views
once for each distinct mean (`groups[k]` is checkpoint k's), so checkpoints trained on the same
data, which share their mean, cost one set of views.
"""
from __future__ import annotations

import numpy as np
import torch

from . import data
from .evaluate import loss_of_probabilities, probabilities, wrong
from ..errors import NetError


def distinct_means(means: list[np.ndarray]) -> tuple[list[np.ndarray], list[int]]:
    """(the distinct means, in order of first use; for each checkpoint, the index of its own)."""
    distinct, groups = [], []
    for mean in means:
        same = [i for i, seen in enumerate(distinct) if seen.shape == mean.shape and np.array_equal(seen, mean)]
        if not same:
            distinct.append(mean)
        groups.append(same[0] if same else len(distinct) - 1)
    return distinct, groups


def member_probabilities(models, groups: list[int], views: torch.Tensor, output_type: str) -> torch.Tensor:
    """K x N x classes: model k's probabilities of N x (M*V) x C x H x W views (M blocks of V, one
    a distinct mean, as EnsembleEvalSet gives them), each averaged over its V views."""
    per_mean = views.shape[1] // (max(groups) + 1)
    return torch.stack([probabilities(model, views[:, g * per_mean:(g + 1) * per_mean], output_type)
                        for model, g in zip(models, groups)])


class Tally:
    """Summed loss, top-1 and top-5 mistakes and images; `result()` is what evaluate() returns."""

    def __init__(self):
        self.loss, self.top1, self.top5, self.images = 0.0, 0, 0, 0

    def add(self, probs: torch.Tensor, y: torch.Tensor, output_type: str) -> None:
        self.loss += float(loss_of_probabilities(probs, y, output_type))
        self.top1 += wrong(probs, y, 1)
        self.top5 += wrong(probs, y, 5)
        self.images += len(y)

    def result(self) -> dict:
        return {"loss": self.loss / self.images, "top1_err": self.top1 / self.images,
                "top5_err": self.top5 / self.images, "images": self.images}


@torch.no_grad()
def evaluate_ensemble(models, groups: list[int], loader, output_type: str, device,
                      problems: data.ProblemLog) -> tuple[list[dict], dict]:
    """(each model's loss, top1_err, top5_err and images, as evaluate() gives them; the same for
    the average of their probabilities) over a loader of EnsembleEvalSet batches."""
    for model in models:
        model.eval()
    members, together = [Tally() for _ in models], Tally()
    for batch in loader:
        problems.note(batch.problems)
        if batch.x is None:
            continue
        probs = member_probabilities(models, groups, batch.x.to(device, non_blocking=True), output_type)
        y = batch.y.to(probs.device)
        for tally, member in zip(members, probs):
            tally.add(member, y, output_type)
        together.add(probs.mean(0), y, output_type)
    if not together.images:
        raise NetError("no validation image could be read: every one was skipped")
    return [tally.result() for tally in members], together.result()


def common_classes(states: list[dict], paths: list[str]) -> list[str]:
    """The classes every checkpoint was trained on; a checkpoint with others is refused by name."""
    first = list(states[0]["classes"])
    for state, path in zip(states[1:], paths[1:]):
        if list(state["classes"]) != first:
            raise NetError(f"its classes ({listed(state['classes'])}) are not those of {paths[0]} "
                           f"({listed(first)}): an ensemble averages the same classes", path)
    return first


def listed(names) -> str:
    names = list(names)
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
