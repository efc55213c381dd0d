"""Argument types the commands share (argparse turns their ArgumentTypeError into exit 2),
and the cores this process may use. Imports nothing heavy, so any command can use it."""
from __future__ import annotations

import argparse
import math
import os
from pathlib import Path


def _integer(text: str, least: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = least - 1
    if value < least:
        raise argparse.ArgumentTypeError(f"expected {what}, got `{text}`")
    return value


def positive(text: str) -> int:
    return _integer(text, 1, "a positive integer")


def count(text: str) -> int:
    return _integer(text, 0, "an integer >= 0")


def scale_list(text: str) -> tuple[float, ...]:
    try:
        scales = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected factors such as 0.3,0.5,1, got `{text}`") from None
    if not scales or any(not (s > 0 and math.isfinite(s)) for s in scales):
        raise argparse.ArgumentTypeError(f"expected positive factors, got `{text}`")
    return scales


def output_file(suffix: str):
    """A flag type for a file to write, `-o x.png`: ends with `suffix`, not a folder, and its folder
    exists; checked before any work, so a typo in -o costs nothing."""
    def check(text: str) -> Path:
        path = Path(text)
        if path.suffix.lower() != suffix:
            raise argparse.ArgumentTypeError(f"expected a {suffix} file name, got `{text}`")
        if path.is_dir():
            raise argparse.ArgumentTypeError(f"`{text}` is a directory; expected a file name")
        if not path.parent.is_dir():
            raise argparse.ArgumentTypeError(f"cannot write `{text}`: no such directory `{path.parent}`")
        return path
    return check


def usable_cores() -> int:
    """The cores this process may use, not the machine's."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
