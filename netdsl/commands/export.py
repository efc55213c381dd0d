"""`netdsl export`: a network and a checkpoint's weights as a standard ONNX model.

    netdsl export nets/alexnet.net --checkpoint runs/alexnet/best.pt -o alexnet.onnx [--batch dynamic|N]

The graph is built from the network itself, one converter per layer type
(netdsl/codegen/onnx_export.py); the checkpoint is a `netdsl train` checkpoint or a plain state dict. `--batch dynamic`, the default,
leaves the batch dimension symbolic; `--batch N` fixes it, for runtimes that want static shapes.
Needs the onnx package (`pip install -e ".[onnx]"`).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from .. import files
from ..argtypes import positive
from ..errors import NetError

INSTALL = 'netdsl export needs the onnx package: pip install -e ".[onnx]" (or pip install onnx onnxruntime)'


def batch_size(text: str) -> int | None:
    """`dynamic` (None: a symbolic batch dimension) or a positive integer."""
    return None if text == "dynamic" else positive(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("net", metavar="NET", help="the .net file the checkpoint was trained from")
    parser.add_argument("--checkpoint", required=True, metavar="CKPT",
                        help="a checkpoint.pt or best.pt of netdsl train, or a plain state dict")
    parser.add_argument("-o", "--output", required=True, metavar="FILE.onnx", help="the ONNX file to write")
    parser.add_argument("--batch", type=batch_size, default=None, metavar="dynamic|N",
                        help="the batch size the model takes: `dynamic` (the default) any, N only N")


def write_model(path: Path, data: bytes) -> None:
    """The whole file or none (files.replace); -o naming a folder is refused first."""
    if path.is_dir():
        raise NetError("is a directory; -o wants a file name", str(path))
    files.replace(path, data)


def run(args) -> int:
    try:
        import onnx  # noqa: F401  (the one optional dependency)
    except ImportError:
        raise NetError(INSTALL) from None
    from .. import compile_net, parse_file
    from ..codegen.onnx_export import OPSET, to_onnx
    from ..runner.checkpoint import load_checkpoint
    from ..runner.model import load_weights

    net = parse_file(args.net)
    output = Path(args.output)
    if not output.parent.is_dir():   # before the work: a typo in -o should not cost an export
        raise NetError("cannot write it: no such directory", str(output))
    state, _ = load_checkpoint(args.checkpoint)
    model = compile_net(net, backend="torch")
    load_weights(model, {"model": state}, args.checkpoint)   # the checkpoint must be this network's
    proto = to_onnx(net, model.state_dict(), args.batch)
    write_model(output, proto.SerializeToString())
    batch = "N" if args.batch is None else args.batch
    print(f"{output}: {net.name} as ONNX opset {OPSET}, input `{net.data.name}` {batch} x {net.input_shape}, "
          f"output `{proto.graph.output[0].name}` {batch} x {net.classes} (before the {net.output.type})")
    return 0
