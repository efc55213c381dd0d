"""`netdsl draw NET -o FILE.png|svg|dot`: the network as a picture, groups side by side,
copies between groups marked with their bytes per image (netdsl/codegen/drawing.py).

    netdsl draw nets/alexnet.net -o alexnet.svg
    netdsl draw nets/alexnet.net -o alexnet.png
    netdsl draw nets/alexnet.net -o alexnet.dot     # the DOT source only: no `dot` program needed

The output format is the file's extension. Needs the graphviz Python package
(`pip install "netdsl[draw]"`) and, for PNG and SVG, Graphviz's `dot` program (`apt-get install
graphviz`); either missing is one line and status 2, with nothing written. The file is written
atomically (netdsl/files.py).
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from .. import files
from ..errors import NetError

INSTALL_PACKAGE = ('netdsl draw needs the graphviz Python package: pip install "netdsl[draw]" '
                   "(or pip install graphviz)")
INSTALL_DOT = ("netdsl draw needs Graphviz's `dot` program to write PNG or SVG: apt-get install graphviz "
               "(brew install graphviz on macOS), or write the DOT source with -o FILE.dot")
DOT_SOURCE = "dot"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("net", metavar="NET", help="the .net file")
    parser.add_argument("-o", "--output", required=True, metavar="FILE.png|svg|dot",
                        help="the picture to write; its extension picks the format (.dot: the DOT source)")


def output_format(output: Path) -> str:
    """`png`, `svg` or `dot`, from the file's extension."""
    from ..codegen.drawing import FORMATS

    fmt = output.suffix.lower().lstrip(".")
    if fmt not in (*FORMATS, DOT_SOURCE):
        shown = f"a .{fmt} file" if fmt else "a file without an extension"
        raise NetError(f"cannot draw to {shown}: name a .png, .svg or .dot file", str(output))
    return fmt


def require_graphviz(fmt: str) -> None:
    """The graphviz package, and `dot` unless only the source is asked for; before any work."""
    try:
        import graphviz  # noqa: F401  (the optional dependency)
    except ImportError:
        raise NetError(INSTALL_PACKAGE) from None
    if fmt != DOT_SOURCE and shutil.which("dot") is None:
        raise NetError(INSTALL_DOT)


def check_output(output: Path) -> None:
    """A typo in -o is refused before the drawing is made."""
    if output.is_dir():
        raise NetError("is a directory; -o wants a file name", str(output))
    if not output.parent.is_dir():
        raise NetError("cannot write it: no such directory", str(output))


def picture(source: str, fmt: str) -> bytes | str:
    """What -o receives: the DOT source itself, or dot's rendering of it."""
    if fmt == DOT_SOURCE:
        return source
    import graphviz

    from ..codegen.drawing import render

    try:
        return render(source, fmt)
    except graphviz.ExecutableNotFound:   # `dot` vanished since require_graphviz looked
        raise NetError(INSTALL_DOT) from None
    except graphviz.CalledProcessError as err:
        detail = (err.stderr or b"").decode(errors="replace").strip().splitlines()
        raise NetError(f"dot failed: {detail[0] if detail else f'status {err.returncode}'}") from None


def run(args) -> int:
    from .. import parse_file
    from ..codegen.drawing import CROSS, layout, to_dot

    output = Path(args.output)
    fmt = output_format(output)
    require_graphviz(fmt)
    net = parse_file(args.net)
    check_output(output)
    drawing = layout(net)
    files.replace(output, picture(to_dot(drawing), fmt))
    crossing = sum(arrow.kind == CROSS for arrow in drawing.arrows)
    print(f"{output}: {net.name}, {len(net.layers)} layers in {len(drawing.boxes)} boxes over "
          f"{net.groups} group{'s' if net.groups > 1 else ''}, {crossing} arrows between groups")
    return 0
