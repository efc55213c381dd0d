"""`netdsl train`: a network trained with its [train] recipe, the paper's SGD and schedule.

    netdsl train nets/alexnet.net                           # on the built-in shapes, 10 epochs
    netdsl train nets/alexnet.net --data imagenet/ --out runs/alexnet
    netdsl train nets/alexnet.net --data imagenet/ --resume  # continue runs/alexnet
    netdsl train nets/mnist_scale_si.net --data fmnist-scale-0 --epochs 60 --schedule "multistep(42, 54)"

The flags, read here; the run itself (the run folder, resume, the epochs, pre-emption, data
parallelism) is netdsl/runner/train.py's.
"""
from __future__ import annotations

import argparse
import math

from ..argtypes import count, positive
from ..errors import NetError
from ..language import values
from ..runner import train
from ..runner.model import flushing_denormals
from .eval import add_model_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("net", metavar="NET", help="the .net file")
    parser.add_argument("--data", metavar="DIR",
                        help="a folder with train/<class>/<image> and val/<class>/<image> "
                             "(default: the built-in shapes dataset)")
    parser.add_argument("--out", metavar="RUN", help="the run folder (default: runs/<net name>)")
    parser.add_argument("--epochs", type=positive, metavar="N", help="override [train] epochs")
    parser.add_argument("--batch", type=positive, metavar="N", help="override [train] batch")
    parser.add_argument("--lr", type=positive_float, metavar="X", help="override [train] lr")
    parser.add_argument("--schedule", type=schedule_flag, metavar="S",
                        help="override [train] schedule, written as in the file: "
                             "`multistep(42, 54)`, `step(0.9)`, `cosine`, `plateau`, `none`")
    parser.add_argument("--resume", action="store_true", help="continue from RUN/checkpoint.pt")
    parser.add_argument("--seed", type=count, metavar="N",
                        help="seeds the initial weights, data order, augmentation and dropout "
                             "(default 0, or the resumed run's)")
    add_model_arguments(parser)


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got `{text}`") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a positive number, got `{text}`")
    return value


def schedule_flag(text: str) -> tuple[str, float | None, tuple[int, ...]]:
    """--schedule, read by the file's own grammar and checks: a shorter run can keep the file's
    stages in proportion (`--epochs 60 --schedule "multistep(42, 54)"` for 1000 epochs of
    `multistep(700, 900)`) without an edit to the file."""
    try:
        return values.schedule_of_text(text, "--schedule")
    except NetError as err:
        raise argparse.ArgumentTypeError(f"{err.message} in `{text}`") from None


def run(args) -> int:
    import netdsl

    with flushing_denormals():
        return train.train_run(netdsl.parse_file(args.net), train.Options.of_flags(args))
