"""`netdsl neighbours`: the five training images nearest to test images by a layer's activations,
the AlexNet paper's Figure 4.

    netdsl neighbours nets/alexnet.net --checkpoint runs/alexnet/best.pt --data imagenet/ --layer fc7 -o nn.png

Queries: N images of DIR/test (DIR/val where there is no test/), evenly spaced. The search is
exact, over memory-mapped features a block at a time (netdsl/inspect/neighbours.py); it prints
each neighbour's index in train/, path and distance, and draws a row a query.
"""
from __future__ import annotations

import argparse

from ..argtypes import count, output_file, positive


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("net", metavar="NET", help="the .net file the checkpoint was trained from")
    parser.add_argument("--checkpoint", required=True, metavar="CKPT",
                        help="a checkpoint.pt or best.pt of netdsl train (it carries the classes and mean)")
    parser.add_argument("--data", required=True, metavar="DIR",
                        help="a folder with train/ and test/ (or val/, where there is no test/), "
                             "<class>/<image> in each")
    parser.add_argument("--layer", default="fc7", metavar="L", help="the layer whose activations are compared "
                        "(default fc7, as the paper)")
    parser.add_argument("--queries", type=positive, default=8, metavar="N",
                        help="query images, evenly spaced over test/ (or val/), first and last included (default 8)")
    parser.add_argument("-o", "--output", required=True, type=output_file(".png"), metavar="FILE.png",
                        help="a row a query: the query, then its 5 nearest training images; the features "
                             "are written to a temporary folder beside it meanwhile")
    parser.add_argument("--chunk", type=positive, default=None, metavar="N",
                        help="queries and training images a block of the search (default: 64 MB of "
                             "training features, at most 2048)")
    parser.add_argument("--batch", type=positive, default=None, metavar="N",
                        help="images a step (default: the network's batch)")
    parser.add_argument("--workers", type=count, default=None, metavar="N",
                        help="data loading processes (default: up to 4, one per CPU core)")


def run(args) -> int:
    from .. import parse_file
    from ..inspect.features import check_layer, load_trained
    from ..inspect.neighbours import find_neighbours, report, write_picture
    from ..runner.model import default_workers, flushing_denormals

    net = parse_file(args.net)
    layer = check_layer(net, args.layer)
    trained = load_trained(net, args.checkpoint)
    workers = default_workers() if args.workers is None else args.workers
    with flushing_denormals():
        found = find_neighbours(trained, args.data, layer, args.queries, args.output.parent,
                                args.batch or net.train.batch, workers, args.chunk)
    print("\n".join(report(found, layer)))
    write_picture(found, trained.recipe, args.output)
    print(f"{args.output}: a row a query, then its {found.indices.shape[1]} nearest training images")
    return 0
