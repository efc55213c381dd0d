"""`netdsl import`: a Caffe or cuda-convnet network as a `.net` file, the same network or a refusal.

    netdsl import caffe models/bvlc_alexnet/deploy.prototxt -o alexnet.net
    netdsl import caffe cifar10_full_train_test.prototxt --solver cifar10_full_solver.prototxt \\
        --input 3x32x32 --train-images 50000 -o cifar10_full.net
    netdsl import cuda-convnet layers-18pct.cfg layer-params-18pct.cfg --input 3x32x32 -o 18pct.net

(The module is import_net.py because `import` is a Python keyword; the command is `import`.)
The conversion is netdsl/importers/'s. The output is checked by netdsl before it is written:
a layer netdsl cannot express exactly is one line, `FILE:LINE: error: layer 'x' (Type): ...`,
exit status 2, and nothing is written. Without -o the text goes to standard output.
"""
from __future__ import annotations

from pathlib import Path

from .. import files
from ..argtypes import positive
from ..errors import NetError


def _shape(text: str) -> tuple[int, int, int]:
    from ..importers.caffe import parse_shape
    return parse_shape(text)


def _caffe_arguments(parser) -> None:
    parser.add_argument("net", metavar="NET.prototxt", help="a Caffe net: deploy or train_val, V1 or V2 syntax")
    parser.add_argument("--solver", metavar="SOLVER.prototxt", help="the solver, written as the [train] recipe")
    parser.add_argument("--input", metavar="CxHxW", help="the input size where the file gives none (an LMDB data layer)")
    parser.add_argument("--train-images", type=positive, metavar="N",
                        help="the training set's size: the solver's iterations in epochs")
    parser.add_argument("--batch", type=positive, metavar="N", help="the batch size where the net's data layer gives none")
    parser.add_argument("-o", "--output", metavar="OUT.net", help="write the .net here (default: standard output)")


def _cuda_convnet_arguments(parser) -> None:
    parser.add_argument("layers", metavar="LAYERS.cfg", help="cuda-convnet's or cuda-convnet2's layer definition file")
    parser.add_argument("params", metavar="LAYER_PARAMS.cfg", nargs="?",
                        help="its layer parameter file: learning rates, and the norms' scale and pow")
    parser.add_argument("--input", metavar="CxHxW", required=True,
                        help="the input size, which cuda-convnet takes from its data provider")
    parser.add_argument("--network-only", action="store_true",
                        help="take the layers alone: the parameter file's epsW, momW and wc are left out")
    parser.add_argument("-o", "--output", metavar="OUT.net", help="write the .net here (default: standard output)")


def _run_caffe(args):
    from ..importers.caffe import convert_caffe
    return convert_caffe(args.net, solver=args.solver, input_shape=_shape(args.input) if args.input else None,
                         train_images=args.train_images, batch=args.batch, out_path=_out_name(args, args.net))


def _run_cuda_convnet(args):
    from ..importers.cuda_convnet import convert_cuda_convnet
    return convert_cuda_convnet(args.layers, args.params, input_shape=_shape(args.input),
                                out_path=_out_name(args, args.layers), network_only=args.network_only)


def _out_name(args, source: str) -> str:
    """The name netdsl checks the text under (the network is named after it unless it names itself)."""
    if args.output:
        return args.output
    stem = Path(source).stem.replace("-", "_").replace(".", "_")
    return f"{stem}.net"


SYSTEMS = {
    "caffe": (_caffe_arguments, _run_caffe, "a Caffe .prototxt net (and its solver) as a .net file"),
    "cuda-convnet": (_cuda_convnet_arguments, _run_cuda_convnet,
                     "cuda-convnet's or cuda-convnet2's layer files as a .net file"),
}


def add_arguments(parser) -> None:
    systems = parser.add_subparsers(dest="system", required=True, metavar="SYSTEM")
    for name, (add, run_system, help_text) in SYSTEMS.items():
        sub = systems.add_parser(name, help=help_text, description=help_text)
        add(sub)
        sub.set_defaults(convert=run_system)


def run(args) -> int:
    imported = args.convert(args)
    if args.output:
        if Path(args.output).is_dir():
            raise NetError("is a directory; -o names the .net file to write", args.output)
        files.replace(Path(args.output), imported.text)
        net = imported.net
        print(f"{args.output}: {net.name}, {len(net.layers)} layers, {net.params:,} parameters"
              + (f", {net.groups} groups" if net.groups > 1 else ""))
    else:
        print(imported.text, end="")
    return 0
