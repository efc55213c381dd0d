"""`netdsl diff A.net B.net`: what differs between two networks as networks, not as lines.

    netdsl diff nets/alexnet.net nets/si_alexnet.net

The comparison is netdsl/language/netdiff.py's: settings, layers added, removed and changed,
parameter and FLOP deltas, then the training recipe's `recipe:` lines.
"""
from __future__ import annotations

from ..language.netdiff import diff


def add_arguments(parser) -> None:
    parser.add_argument("a", metavar="A.net")
    parser.add_argument("b", metavar="B.net")


def run(args) -> int:
    from .. import parse_file

    lines = diff(parse_file(args.a), parse_file(args.b))
    print("\n".join(lines) if lines else "the two networks are the same, and so are their recipes")
    return 0
