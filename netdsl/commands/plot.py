"""`netdsl plot RUN`: a run's loss and error curves, from RUN/metrics.jsonl to RUN/curves.png.

    netdsl plot runs/alexnet               # writes runs/alexnet/curves.png
    netdsl plot runs/alexnet -o a.png

Left: training and validation loss by epoch. Right: validation top-1 and top-5 error, with
the epochs where the learning rate fell marked. Needs matplotlib (pip install 'netdsl[plot]').
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import NetError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN", help="a run folder holding metrics.jsonl")
    parser.add_argument("-o", "--output", metavar="FILE.png", help="where to write (default RUN/curves.png)")


def read_metrics(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        raise NetError("no metrics.jsonl: not a run folder, or no epoch has ended yet", str(run_dir))
    try:
        records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except json.JSONDecodeError as err:
        raise NetError(f"line {err.lineno} is not JSON", str(path)) from None
    if not records:
        raise NetError("no epoch recorded yet", str(path))
    return records


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise NetError("plotting needs matplotlib: pip install 'netdsl[plot]' "
                       "(or pip install matplotlib)") from None
    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt
    return plt


def draw(records: list[dict], output: Path, title: str) -> None:
    plt = _pyplot()
    epochs = [r["epoch"] for r in records]
    fig, (loss_ax, err_ax) = plt.subplots(1, 2, figsize=(11, 4))
    loss_ax.plot(epochs, [r["train_loss"] for r in records], marker=".", label="train")
    if all("val_loss" in r for r in records):
        loss_ax.plot(epochs, [r["val_loss"] for r in records], marker=".", label="validation")
    loss_ax.set(xlabel="epoch", ylabel="loss", title="loss")
    loss_ax.legend()
    err_ax.plot(epochs, [100 * r["val_top1_err"] for r in records], marker=".", label="top-1")
    err_ax.plot(epochs, [100 * r["val_top5_err"] for r in records], marker=".", label="top-5")
    for before, after in zip(records, records[1:]):
        if after["lr"] < before["lr"]:
            err_ax.axvline(after["epoch"], color="grey", linewidth=0.8, linestyle=":")
    err_ax.set(xlabel="epoch (dotted: lr lowered)", ylabel="validation error (%)", title="error")
    err_ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    try:
        fig.savefig(output, dpi=100)
    except OSError as err:
        raise NetError(f"cannot write it: {err.strerror}", str(output)) from None
    finally:
        plt.close(fig)


def run(args) -> int:
    run_dir = Path(args.run_dir)
    output = Path(args.output) if args.output else run_dir / "curves.png"
    records = read_metrics(run_dir)
    draw(records, output, run_dir.name)
    print(f"wrote {output}")
    return 0
