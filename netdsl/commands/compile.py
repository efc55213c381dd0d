"""`netdsl compile NET`: check a network, print its per-layer table (or JSON), write its source.

    netdsl compile nets/alexnet.net                 # the table
    netdsl compile nets/alexnet.net --json          # the same as JSON
    netdsl compile nets/alexnet.net -o alexnet.py   # also write the generated Python

The table and the JSON are netdsl/language/report.py's. Imports no torch unless -o asks for
the `auto` backend.
"""
from __future__ import annotations

import json
from pathlib import Path

from .. import files
from ..language.report import report, table


def add_arguments(parser) -> None:
    parser.add_argument("net", metavar="NET", help="the .net file")
    parser.add_argument("-o", "--output", metavar="FILE.py", help="write the generated Python source here")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--backend", choices=("torch", "triton", "auto"), default="auto",
                        help="the backend of the source -o writes (auto: triton where CUDA is available)")


def _backend(choice: str) -> str:
    if choice != "auto":
        return choice
    import torch
    return "triton" if torch.cuda.is_available() else "torch"


def run(args) -> int:
    from .. import generate_source, parse_file

    net = parse_file(args.net)
    if args.output:
        files.replace(Path(args.output), generate_source(net, _backend(args.backend)))
    print(json.dumps(report(net), indent=2) if args.json else table(net))
    return 0
