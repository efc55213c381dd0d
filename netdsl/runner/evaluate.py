"""`netdsl eval`: top-1 and top-5 error of a checkpoint on DIR/val; the evaluation train uses.

    netdsl eval nets/alexnet.net --checkpoint runs/alexnet/best.pt --data imagenet/ [--tencrop]

The checkpoint carries the training set's mean and class names, so only DIR/val is read.
Without --tencrop or --center the test is the network's [train] `test` setting. Ten crops
average the softmax (or sigmoid) probabilities of the four corners, the centre and their
reflections, as the paper does.
"""
from __future__ import annotations

import argparse
import contextlib
import os
from pathlib import Path

import torch
import torch.nn.functional as F

from . import checkpoint, data
from ..devices.distributed import SINGLE, World
from ..argtypes import count, positive, usable_cores
from ..errors import NetError
from ..scale_invariance.invariance import scale_list


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags train and eval share."""
    parser.add_argument("--devices", type=parse_devices, metavar="LIST",
                        help="comma-separated devices (cuda:0,cuda:1); one a group spreads the "
                             "groups over them. Default: cuda:0 if there is a GPU, else the CPU")
    parser.add_argument("--backend", choices=("auto", "torch", "triton"), default="auto",
                        help="kernel backend (auto: triton on CUDA, torch otherwise)")
    parser.add_argument("--workers", type=count, default=None, metavar="N",
                        help="data loading processes (default: up to 4, one per CPU core; "
                            "under torchrun, per training process, sharing the machine's cores)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("nets", nargs="+", metavar="NET",
                        help="the .net file the checkpoint was trained from (with --scales, one or two)")
    parser.add_argument("--checkpoint", required=True, action="append", metavar="CKPT",
                        help="a checkpoint.pt or best.pt, one for each NET")
    parser.add_argument("--data", required=True, metavar="DIR", help="a folder with val/<class>/<image>")
    parser.add_argument("--split", default="val", choices=("val", "test"),
                        help="the held-out split to score (default val)")
    crops = parser.add_mutually_exclusive_group()
    crops.add_argument("--tencrop", action="store_const", const="tencrop", dest="test",
                       help="average the ten crops (corners, centre, reflections)")
    crops.add_argument("--center", action="store_const", const="center", dest="test",
                       help="the centre crop only")
    parser.add_argument("--batch", type=positive, default=None, metavar="N",
                        help="images a step (default: the network's batch)")
    parser.add_argument("--scales", type=scale_list, metavar="LIST",
                        help="error with every image shown at each of these scales (0.3,0.4,...,1.0); "
                             "see netdsl/scale_invariance/scale_eval.py")
    parser.add_argument("--images", type=positive, metavar="N",
                        help="with --scales: that many images of the split, evenly spaced")
    parser.add_argument("--out", metavar="PNG", help="with --scales: draw error against scale here")
    add_model_arguments(parser)


def parse_devices(text: str) -> list[str]:
    devices = [d.strip() for d in text.split(",") if d.strip()]
    for device in devices:
        try:
            torch.device(device)
        except RuntimeError:
            raise argparse.ArgumentTypeError(f"`{device}` is not a device (cpu, cuda:0, ...)") from None
    if not devices:
        raise argparse.ArgumentTypeError("expected devices such as cuda:0,cuda:1")
    return devices


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
    probs = F.softmax(logits, 1) if output_type == "softmax" else torch.sigmoid(logits)
    return probs.view(n, v, -1).mean(1)


def loss_of_probabilities(probs: torch.Tensor, y: torch.Tensor, output_type: str) -> torch.Tensor:
    """Summed over the batch: cross-entropy, or binary cross-entropy summed over the classes."""
    probs = probs.clamp(1e-12, 1.0)
    if output_type == "softmax":
        return -probs.gather(1, y[:, None]).log().sum()
    target = F.one_hot(y, probs.shape[1]).float()
    return F.binary_cross_entropy(probs.clamp(max=1 - 1e-7), target, reduction="sum")


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


def run(args) -> int:
    check_devices(args.devices, args.backend)
    if len(args.nets) != len(args.checkpoint):
        raise NetError(f"{len(args.nets)} networks and {len(args.checkpoint)} checkpoints: give one "
                       "--checkpoint for each network")
    with flushing_denormals():
        if args.scales:
            return _scales_command(args)
        if len(args.nets) > 1:
            raise NetError("several networks are compared only by scale: add --scales")
        if args.images or args.out:
            raise NetError("--images and --out go with --scales")
        return _evaluate_command(args)


def _scales_command(args) -> int:
    import netdsl
    from ..scale_invariance import scale_eval

    nets = [netdsl.parse_file(path) for path in args.nets]
    if len({net.input_shape for net in nets}) > 1:
        raise NetError("the networks compared by scale must take the same input shape")
    results = scale_eval.error_by_scale(nets, args.checkpoint, Path(args.data), args.split, args.scales,
                                        args.images, args.batch or nets[0].train.batch)
    print(f"top-1 error (%) on {args.split}/ with every image shown at each scale")
    print(scale_eval.format_table(results, args.scales))
    if args.out:
        scale_eval.plot(results, args.scales, Path(args.out), f"{args.split} error against scale")
    return 0


def _evaluate_command(args) -> int:
    import netdsl

    net = netdsl.parse_file(args.nets[0])
    state = checkpoint.load(args.checkpoint[0])
    recipe = data.Recipe.of(net)
    val = data.open_val(args.data, recipe, state["classes"], args.split)
    mean = state["mean"].numpy()
    if mean.shape[0] > 1 and mean.shape[:2] != (recipe.resize, recipe.resize):
        raise NetError(f"the checkpoint's mean image is {mean.shape[0]}x{mean.shape[1]}, but this "
                       f"network scales images to {recipe.resize}x{recipe.resize} (its `resize`)",
                       args.checkpoint[0])
    model, device = build_model(net, args.backend, default_devices(args.devices))
    load_weights(model, state, args.checkpoint[0])
    test = args.test or net.train.test
    workers = default_workers() if args.workers is None else args.workers
    loader = data.eval_loader(data.EvalSet(val, recipe, mean, test == "tencrop"),
                              args.batch or net.train.batch, workers)
    problems = data.ProblemLog()
    result = evaluate(model, loader, net.output.type, device, problems)
    skipped = problems.take()
    crops = "ten crops" if test == "tencrop" else "centre crop"
    print(f"{net.name}: top-1 error {result['top1_err']:.2%}, top-5 error {result['top5_err']:.2%} "
          f"on {result['images']} images of {val.root} ({crops}"
          + (f"; {skipped} skipped" if skipped else "") + ")")
    return 0
