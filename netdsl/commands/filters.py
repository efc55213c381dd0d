"""`netdsl filters`: a conv layer's kernels as an image grid, the AlexNet paper's Figure 3.

    netdsl filters nets/alexnet.net --checkpoint runs/alexnet/best.pt --layer conv1 -o conv1.png

One block a group (AlexNet's two GPUs' 48 kernels each); 3-channel kernels as RGB, 1-channel as
grey, others as the L2 norm over their input channels; the layer's weights scaled together by one
min and max to 0..255 (netdsl/inspect/filters.py says exactly how).
"""
from __future__ import annotations

import argparse

from ..argtypes import output_file, positive


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("net", metavar="NET", help="the .net file the checkpoint was trained from")
    parser.add_argument("--checkpoint", required=True, metavar="CKPT",
                        help="a checkpoint.pt or best.pt of netdsl train, or a plain state dict")
    parser.add_argument("--layer", metavar="L",
                        help="a conv or siconv layer (default: the first); an SI layer shows its one conv, "
                             "shared by its scales")
    parser.add_argument("-o", "--output", required=True, type=output_file(".png"), metavar="FILE.png",
                        help="the grid: kernels of 3 input channels as RGB, of 1 as grey, of any other "
                             "count as the L2 norm over the input channels at each position; the "
                             "layer's values scaled together by one min and max to 0..255 "
                             "(Figure 3's shared scale); a block per group, stacked")
    parser.add_argument("--columns", type=positive, default=16, metavar="N",
                        help="kernels a row in each block (default 16, as Figure 3)")
    parser.add_argument("--zoom", type=positive, default=None, metavar="N",
                        help="each kernel pixel as an N x N square, nearest neighbour (default: the "
                             "smallest N making a kernel at least 44 pixels wide, 4 for 11x11)")


def run(args) -> int:
    from .. import compile_net, parse_file
    from ..inspect.filters import draw_filters, kernel_layer
    from ..runner.checkpoint import load_checkpoint
    from ..runner.model import load_weights

    net = parse_file(args.net)
    layer = kernel_layer(net, args.layer)   # a wrong name is refused before the checkpoint is read
    state, _ = load_checkpoint(args.checkpoint)
    model = compile_net(net, backend="torch")
    load_weights(model, {"model": state}, args.checkpoint)   # the checkpoint must be this network's
    print(draw_filters(net, model, layer.name, args.output, args.columns, args.zoom))
    return 0
