"""`netdsl time NET`: one training step timed layer by layer, in the spirit of `caffe time`.

    netdsl time nets/alexnet.net --batch 32 --repeats 5          # the table
    netdsl time nets/alexnet.net --batch 32 --repeats 5 --json   # the same as JSON
    netdsl time nets/alexnet.net --devices cuda:0,cuda:1          # one group a GPU

Each layer's forward and backward milliseconds (medians of --repeats runs after warm-up), its
share of the step, the activation memory it keeps for its backward, and the whole step timed on
its own beside the layers' sum; random input of the network's shape, so no data folder is needed.
What is timed and counted, and how: netdsl/runner/timing.py.
"""
from __future__ import annotations

import json

from ..argtypes import positive
from ..runner.model import check_devices, default_devices, flushing_denormals
from ..runner.timing import as_json, table, time_net
from .eval import parse_devices


def add_arguments(parser) -> None:
    parser.add_argument("net", metavar="NET", help="the .net file")
    parser.add_argument("--batch", type=positive, metavar="N", help="images a step (default: the file's [train] batch)")
    parser.add_argument("--repeats", type=positive, default=10, metavar="R",
                        help="timed runs of each layer and of the whole step, after 2 warm-up runs; "
                             "the medians are printed (default 10)")
    parser.add_argument("--devices", type=parse_devices, metavar="LIST",
                        help="comma-separated devices (cuda:0,cuda:1); one a group spreads the groups over them, "
                             "and each layer is then timed over all its groups at once. "
                             "Default: cuda:0 if there is a GPU, else the CPU")
    parser.add_argument("--backend", choices=("auto", "torch", "triton"), default="auto",
                        help="kernel backend (auto: triton on CUDA, torch otherwise)")
    parser.add_argument("--json", action="store_true",
                        help="print one object a layer and a summary as JSON instead of the table")


def run(args) -> int:
    import netdsl

    check_devices(args.devices, args.backend)
    net = netdsl.parse_file(args.net)
    with flushing_denormals():
        timing = time_net(net, args.batch or net.train.batch, args.backend, default_devices(args.devices),
                          args.repeats)
    print(json.dumps(as_json(timing), indent=2) if args.json else table(timing))
    return 0
