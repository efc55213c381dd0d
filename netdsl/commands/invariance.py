"""`netdsl invariance`: the SI paper's invariance score per layer (its Figure 5), for one or two
networks.

    netdsl invariance nets/mnist_scale_cnn.net nets/mnist_scale_si.net \\
        --checkpoint runs/cnn/best.pt --checkpoint runs/si/best.pt --data data/mnist-scale-0 \\
        --out invariance.png

The score and why it is measured so: netdsl/scale_invariance/invariance.py.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch

from .. import parse_file
from ..argtypes import positive, scale_list
from ..errors import NetError
from ..scale_invariance.invariance import (DEFAULT_SCALES, FIRING_RATE, format_table, input_mean, load_folder,
                                           load_model, plot, table, unit_scores)


def fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in (0, 1], got `{text}`")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("nets", nargs="+", metavar="NET", help="one .net file, or two to compare")
    parser.add_argument("--checkpoint", action="append", required=True, metavar="CKPT",
                        help="the weights of each NET, in order (a runner checkpoint or a state dict)")
    parser.add_argument("--data", required=True, type=Path, metavar="DIR",
                        help="a folder with <split>/<class>/<image>, e.g. from `netdsl data mnist-scale`")
    parser.add_argument("--split", default="test", choices=("test", "val", "train"),
                        help="the images measured (default: test, as the paper)")
    parser.add_argument("--scales", type=scale_list, default=DEFAULT_SCALES, metavar="LIST",
                        help="rescaling factors (default: 0.3,0.4,...,1.2, the paper's range)")
    parser.add_argument("--images", type=positive, default=None, metavar="N",
                        help="measure N images, evenly spaced over the split (default: all; "
                             "10000 keeps a CPU run to minutes)")
    parser.add_argument("--top", type=fraction, default=1.0, metavar="F",
                        help="average each layer's most invariant fraction F of units "
                             "(default 1: all; Goodfellow et al. use 0.2)")
    parser.add_argument("--batch", type=positive, default=256, metavar="N", help="images a forward")
    parser.add_argument("--out", type=Path, metavar="PNG", help="draw the scores, per layer, to a PNG")


def run(args) -> int:
    if len(args.nets) > 2:
        raise NetError(f"give one or two networks, not {len(args.nets)}")
    if len(args.checkpoint) != len(args.nets):
        raise NetError(f"{len(args.nets)} networks but {len(args.checkpoint)} --checkpoint; "
                       "give one checkpoint for each network, in the same order")
    nets = [parse_file(path) for path in args.nets]
    if len({net.input_shape for net in nets}) > 1:
        raise NetError("the networks take inputs of different sizes: "
                       + ", ".join(f"{net.name} {net.input_shape}" for net in nets))
    device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    models = [load_model(net, path) for net, path in zip(nets, args.checkpoint)]
    images = load_folder(args.data, args.split, nets[0].input_shape, args.images)
    results = []
    for net, (model, saved_mean) in zip(nets, models):
        mean = input_mean(saved_mean, net, args.data)
        scores = unit_scores(model.to(device), net, images, args.scales, mean, batch=args.batch)
        results.append((net.name, scores))
    print(f"invariance to scaling by {', '.join(map(str, args.scales))}: {len(images)} "
          f"{args.split} images of {args.data}; score L/G per unit (0..{1 / FIRING_RATE:.0f}), "
          f"mean over {'all scored' if args.top == 1 else f'the top {args.top:.0%} of'} units")
    rows = table(results, args.top)
    print(format_table(rows, [name for name, _ in results]))
    if args.out:
        plot(rows, [name for name, _ in results], args.out, args.scales)
        print(f"wrote {args.out}")
    return 0
