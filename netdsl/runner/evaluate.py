"""Evaluation: top-1 and top-5 error of a model over a loader, the evaluation train uses each
epoch and `netdsl eval` (netdsl/commands/eval.py) runs on a checkpoint; and what both commands
share to build the model: devices checked, the model compiled, a checkpoint's weights loaded.

Ten crops average the softmax (or sigmoid) probabilities of the four corners, the centre and
their reflections, as the paper does.
"""
from __future__ import annotations

import contextlib
import os

import torch

from . import data
from ..devices.distributed import SINGLE, World
from ..argtypes import usable_cores
from ..errors import NetError
from ..layers.registry import REGISTRY


def default_workers() -> int:
    processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))  # torchrun's processes on this machine
    return max(1, min(4, usable_cores() // processes))


def check_devices(devices, backend: str) -> None:
    """Refuse, before anything runs or is written, a device this machine lacks, and the triton backend
    where its kernels cannot run: they need CUDA, or Triton's interpreter (TRITON_INTERPRET=1)."""
    import netdsl

    for name in devices or []:
        device = torch.device(name)
        if device.type != "cuda":
            continue
        if not torch.cuda.is_available():
            raise NetError(f"--devices {name}: this machine has no CUDA GPU that PyTorch can use")
        count = torch.cuda.device_count()
        if (device.index or 0) >= count:
            raise NetError(f"--devices {name}: this machine has {count} CUDA GPU{'s' if count > 1 else ''}, "
                           f"cuda:0 to cuda:{count - 1}")
    # Where `auto` would not take triton, the model is not all on CUDA
    if backend == "triton" and netdsl.resolve_backend("auto", default_devices(devices)) != "triton":
        from triton import knobs  # what Triton itself read from TRITON_INTERPRET

        if not knobs.runtime.interpret:
            raise NetError("--backend triton runs its kernels on CUDA GPUs, and this run would use the CPU; "
                           "use --backend torch (or auto), or set TRITON_INTERPRET=1 to run the kernels in "
                           "Triton's interpreter, slowly")


def default_devices(devices):
    """--devices, else the first GPU if there is one, else None (the CPU)."""
    if devices is None and torch.cuda.is_available():
        return ["cuda:0"]
    return devices


@contextlib.contextmanager
def flushing_denormals():
    """Denormal floats flushed to zero while a command runs: x86 CPUs compute with them 10 to
    100 times slower, and a saturated softmax fills the gradients with them (a tiny network's
    steps went from 0.7 ms to 25 ms here). The default comes back afterwards."""
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def build_model(net, backend: str, devices):
    """The compiled network and the device its input goes to."""
    import netdsl

    model = netdsl.compile_net(net, backend=backend, devices=devices)
    return model, torch.device(devices[0] if devices else "cpu")


def load_weights(model, state: dict, where: str) -> None:
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as err:
        first = str(err).splitlines()[1:2] or [str(err)]
        raise NetError(f"the checkpoint does not fit this network: {first[0].strip()}", where) from None


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
