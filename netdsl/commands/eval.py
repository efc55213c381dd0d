"""`netdsl eval`: top-1 and top-5 error of a checkpoint on DIR/val; the evaluation train uses.

    netdsl eval nets/alexnet.net --checkpoint runs/alexnet/best.pt --data imagenet/ [--tencrop]

The checkpoint carries the training set's mean and class names, so only DIR/val is read.
Without --tencrop or --center the test is the network's [train] `test` setting. Ten crops
average the softmax (or sigmoid) probabilities of the four corners, the centre and their
reflections, as the paper does (netdsl/runner/evaluate.py).

With --scales, one or two networks' error against scale (the SI paper's experiment,
netdsl/scale_invariance/scale_eval.py); the runner itself knows no experiment, so this
command is where the two meet.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ..argtypes import count, positive, scale_list
from ..errors import NetError
from ..runner import checkpoint, data
from ..runner.evaluate import (build_model, check_devices, default_devices, default_workers, evaluate,
                               flushing_denormals, load_weights)


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
