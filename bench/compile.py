"""Compile speed: parse + check + render of a .net file, median of many runs after a warm-up.

    python bench/compile.py                      # nets/alexnet.net
    python bench/compile.py nets/si_alexnet.net --repeats 200

Each stage is timed on its own too, so a slow one shows. The first call (grammar and
templates loaded, Lark tables built) is reported separately: a command pays it once.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from netdsl.language.check import check
from netdsl.language.parse import parse_text
from netdsl.codegen.render import render


def timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("net", nargs="?", default="nets/alexnet.net")
    parser.add_argument("--repeats", type=int, default=100)
    args = parser.parse_args()
    text = Path(args.net).read_text()

    start = time.perf_counter()
    render(check(parse_text(text, args.net)))
    first = time.perf_counter() - start

    stages = {"parse": [], "check": [], "render": [], "total": []}
    for _ in range(args.repeats):
        doc, t_parse = timed(parse_text, text, args.net)
        net, t_check = timed(check, doc)
        _, t_render = timed(render, net)
        for name, t in zip(stages, (t_parse, t_check, t_render, t_parse + t_check + t_render)):
            stages[name].append(t)
    print(f"{args.net}: median of {args.repeats} runs (first run, cold: {first * 1e3:.1f} ms)")
    for name, times in stages.items():
        print(f"  {name:<7} {statistics.median(times) * 1e3:7.2f} ms")


if __name__ == "__main__":
    main()
