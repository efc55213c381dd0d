"""The `netdsl` command: one subcommand a module, each with add_arguments(parser) and run(args).

    netdsl compile nets/alexnet.net            # the per-layer table
    netdsl train nets/alexnet.net              # train on the built-in data

A user error (NetError) prints one line on stderr and exits 2, never a traceback; under
torchrun rank 0 alone prints it and every process exits 2 (netdsl/devices/distributed.py). `netdsl
train` stopped by SIGTERM or SIGINT exits 143 or 130 once its checkpoint is written
(netdsl/runner/preemption.py); elsewhere SIGINT exits 130 at once.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys

from .errors import NetError

COMMANDS = {
    "compile": ("netdsl.commands.compile", "check a network and print its layers; -o writes the generated Python"),
    "diff": ("netdsl.commands.diff", "compare two networks layer by layer"),
    "train": ("netdsl.commands.train", "train a network"),
    "eval": ("netdsl.commands.eval", "top-1 and top-5 error of a checkpoint, or of several averaged (an ensemble)"),
    "data": ("netdsl.commands.data", "prepare image folders and datasets"),
    "plot": ("netdsl.commands.plot", "draw a run's loss and error curves to a PNG"),
    "invariance": ("netdsl.commands.invariance", "each layer's invariance to scaling (the SI paper's Figure 5)"),
    "export": ("netdsl.commands.export", "write a network and a checkpoint's weights as an ONNX model"),
    "time": ("netdsl.commands.time", "time a training step layer by layer: forward, backward, memory kept"),
    "filters": ("netdsl.commands.filters", "a conv layer's kernels as an image grid (the AlexNet paper's Figure 3)"),
    "features": ("netdsl.commands.features", "any layer's activations for every image of a split, to a .npy"),
    "neighbours": ("netdsl.commands.neighbours", "the training images nearest to test images by a layer's activations (Figure 4)"),
    "draw": ("netdsl.commands.draw", "the network as a picture (PNG, SVG or DOT), groups side by side"),
    "import": ("netdsl.commands.import_net", "a Caffe or cuda-convnet network as a .net file, exact or refused"),
    "runs": ("netdsl.commands.runs", "a table of run folders: recipe changes, epochs, best and test error, time, commit"),
}


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # a bad flag is a user error: exit 2 with one line, as argparse does
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    """Every command listed; only the one named in argv imported (so `compile` never loads torch)."""
    parser = _Parser(prog="netdsl", description="Networks as text files, compiled to PyTorch.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                     parser_class=_Parser)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (module_name, help_text) in COMMANDS.items():
        if importlib.util.find_spec(module_name) is None:
            continue  # a command not built yet
        sub = commands.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            module = importlib.import_module(module_name)
            module.add_arguments(sub)
            sub.set_defaults(run=module.run)
    return parser


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(argv).parse_args(argv)
    args.command_line = ["netdsl", *argv]   # as typed, for the records results keep (runner/provenance.py)
    try:
        return args.run(args) or 0
    except NetError as err:
        print(err, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("netdsl: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `netdsl time ... | head` closed the pipe: stop quietly, as `yes | head` does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so exit's flush cannot fail again
        return 141


if __name__ == "__main__":
    sys.exit(main())
