"""`netdsl features`: a layer's activations for every image of a split, to a memory-mapped .npy.

    netdsl features nets/alexnet.net --checkpoint runs/alexnet/best.pt --data imagenet/ \\
        --split val --layer fc7 -o fc7-val.npy

FILE.npy holds images x the layer's output shape (float32), row i for the i-th image in file
order; FILE.labels.npy their class indices and FILE.json the paths, classes, layer and network
(netdsl/inspect/features.py). The images are `netdsl eval`'s centre crops, the network in eval mode.
"""
from __future__ import annotations

import argparse

from ..argtypes import count, output_file, positive


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("net", metavar="NET", help="the .net file the checkpoint was trained from")
    parser.add_argument("--checkpoint", required=True, metavar="CKPT",
                        help="a checkpoint.pt or best.pt of netdsl train (it carries the classes and mean)")
    parser.add_argument("--data", required=True, metavar="DIR", help="a folder with <split>/<class>/<image>")
    parser.add_argument("--split", required=True, choices=("train", "val", "test"), help="the folder of DIR to read")
    parser.add_argument("--layer", required=True, metavar="L",
                        help="any layer: its output (the data layer's is the preprocessed input, the "
                             "output layer's the logits)")
    parser.add_argument("-o", "--output", required=True, type=output_file(".npy"), metavar="FILE.npy",
                        help="the features; FILE.labels.npy and FILE.json (the image paths) go beside it")
    parser.add_argument("--batch", type=positive, default=None, metavar="N",
                        help="images a step (default: the network's batch)")
    parser.add_argument("--workers", type=count, default=None, metavar="N",
                        help="data loading processes (default: up to 4, one per CPU core)")


def run(args) -> int:
    from .. import parse_file
    from ..inspect.features import check_layer, load_trained, sidecars, split_folder, write_features
    from ..runner.model import default_workers, flushing_denormals

    net = parse_file(args.net)
    layer = check_layer(net, args.layer)
    trained = load_trained(net, args.checkpoint)
    folder = split_folder(trained, args.data, args.split)
    workers = default_workers() if args.workers is None else args.workers
    with flushing_denormals():
        shape = write_features(trained, layer, folder, args.output, args.batch or net.train.batch, workers)
    labels, listing = sidecars(args.output)
    print(f"{args.output}: {layer} of the {shape[0]} images of {folder.root}, "
          f"{' x '.join(map(str, shape))} float32; their labels in {labels}, paths in {listing}")
    return 0
