"""`netdsl eval`: top-1 and top-5 error of a checkpoint (or an ensemble) on DIR/val; the evaluation train uses.

    netdsl eval nets/alexnet.net --checkpoint runs/alexnet/best.pt --data imagenet/ [--tencrop]

The checkpoint carries the training set's mean and class names, so only DIR/val is read.
Without --tencrop or --center the test is the network's [train] `test` setting. Ten crops
average the softmax (or sigmoid) probabilities of the four corners, the centre and their
reflections, as the paper does (netdsl/runner/evaluate.py).

Several --checkpoint of one NET are an ensemble, as the paper's Table 2 averages "the
predictions of five similar CNNs" (netdsl/runner/ensemble.py): one pass over the data, each
batch through every checkpoint's model, their softmax (or sigmoid) probabilities averaged; it
prints each checkpoint's top-1 and top-5 error and the ensemble's. Every checkpoint must fit the
network and share the first one's classes; each sees the images minus its own training mean.

    netdsl eval nets/alexnet.net --checkpoint runs/a/best.pt --checkpoint runs/b/best.pt --data imagenet/

--precision (default: the network's [train] precision) runs the forward under autocast to bf16 or
fp16, --compile through torch.compile (netdsl/runner/precision.py); a checkpoint holds float32
weights whatever precision it was trained in.

With --scales, one or two networks' error against scale (the SI paper's experiment,
netdsl/scale_invariance/scale_eval.py); the runner itself knows no experiment, so this
command is where the two meet.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from ..argtypes import count, positive, scale_list
from ..errors import NetError
from .. import files
from ..runner import precision
from ..runner.evaluate import evaluate_checkpoints, evaluating
from ..runner.model import check_devices


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
    parser.add_argument("--precision", choices=precision.PRECISIONS,
                        help="the forward in float32, or under autocast to bfloat16 or float16 (fp16 trains with a "
                             "loss scaler); weights and checkpoints stay float32. Default: [train] precision")
    parser.add_argument("--compile", action="store_true", help="run the model through torch.compile")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("nets", nargs="+", metavar="NET",
                        help="the .net file the checkpoints were trained from (with --scales, one or two)")
    parser.add_argument("--checkpoint", required=True, action="append", metavar="CKPT",
                        help="a checkpoint.pt or best.pt; repeat it with one NET for an ensemble (each "
                             "checkpoint's error and that of their averaged probabilities), or give "
                             "one for each NET with --scales")
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
    parser.add_argument("--json", metavar="FILE",
                        help="also write the result here, with where it came from: this evaluation's record "
                             "(versions, commit, command, data fingerprint) and each checkpoint's training record")
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
    import netdsl

    check_devices(args.devices, args.backend)
    _check_checkpoint_count(args)
    if args.scales and args.compile:
        raise NetError("--compile goes with a checkpoint's or an ensemble's error; --scales runs the networks "
                       "as they are")
    if args.scales and args.json:
        raise NetError("--json records a checkpoint's or an ensemble's error; --scales prints its table "
                       "(and --out draws it)")
    # the first network's [train] precision unless --precision says otherwise
    with evaluating(netdsl.parse_file(args.nets[0]), args.precision, args.devices):
        if args.scales:
            return _scales_command(args)
        if len(args.nets) > 1:
            raise NetError("several networks are compared only by scale: add --scales")
        if args.images or args.out:
            raise NetError("--images and --out go with --scales")
        return _evaluate_command(args)


def _check_checkpoint_count(args) -> None:
    """Several networks: one checkpoint each (--scales). One network: one checkpoint, or several
    (an ensemble). The scale curves score one model a column, so an ensemble is refused there."""
    if len(args.nets) > 1 and len(args.nets) != len(args.checkpoint):
        raise NetError(f"{len(args.nets)} networks and {len(args.checkpoint)} checkpoints: give one "
                       "--checkpoint for each network")
    if len(args.nets) == 1 and len(args.checkpoint) > 1 and args.scales:
        raise NetError(f"--scales scores one checkpoint a network, and {len(args.checkpoint)} checkpoints of "
                       "one network are an ensemble, which is scored without --scales")


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
    """One checkpoint's error, or an ensemble's and each member's (runner/evaluate.py)."""
    import netdsl

    net = netdsl.parse_file(args.nets[0])
    found = evaluate_checkpoints(net, args.checkpoint, args.data, args.split, args.test, args.batch, args.workers,
                                 args.backend, args.devices, args.compile, args.command_line)
    notes = ["ten crops" if found.test == "tencrop" else "centre crop"]
    if found.means > 1:
        notes.append(f"{found.means} different training means, each checkpoint its own")
    if found.skipped:
        notes.append(f"{found.skipped} skipped")
    result = found.result
    if not found.members:
        print(f"{net.name}: top-1 error {result['top1_err']:.2%}, top-5 error {result['top5_err']:.2%} "
              f"on {result['images']} images of {found.folder} ({'; '.join(notes)})")
    else:
        print(f"{net.name}: {len(found.members)} checkpoints, their {net.output.type} probabilities averaged, on "
              f"{result['images']} images of {found.folder} ({'; '.join(notes)})")
        width = max(len(path) for path in args.checkpoint)
        for path, member in [*zip(args.checkpoint, found.members), ("ensemble", result)]:
            print(f"  {path:<{width}}  top-1 error {member['top1_err']:.2%}, top-5 error {member['top5_err']:.2%}")
    if args.json:
        files.replace(Path(args.json), json.dumps(found.record(args.nets[0]), indent=1) + "\n")
    return 0
