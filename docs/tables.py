"""Markdown rows for docs/results.md's tables, generated from run folders rather than typed.

    python docs/tables.py runs/fashion_tf runs/fashion_tiny          # a header, then a row a run
    python docs/tables.py --rows runs/fashion_tiny                    # the rows alone, to paste under a header
    netdsl runs --json runs/* | python docs/tables.py -               # from `netdsl runs --json` output

Each run folder goes through `netdsl runs --json` (netdsl/runner/runs.py reads it; run from the
checkout, `python -m netdsl`), and each object becomes a row:

    | network | test accuracy | epochs | wall time | commit |

the `.net` trained, the test accuracy 1 - top-1 error of the newest `netdsl eval --split test
--json RUN/FILE.json` in the folder (blank before one is written), epochs done with the best
validation epoch, the wall time in minutes (from provenance.jsonl's segments; `(epochs' times)`
where it is the sum of metrics.jsonl's) and the commit. A folder that is not a run stops it with
`netdsl runs`'s own one-line error and exit status.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HEADER = ("| network | test accuracy | epochs | wall time | commit |\n"
          "| --- | --- | --- | --- | --- |")


def runs_json(folders: list[str]) -> list[dict]:
    """`netdsl runs --json FOLDERS...`, run with this Python; SystemExit with its error if it fails."""
    done = subprocess.run([sys.executable, "-m", "netdsl", "runs", "--json", *folders],
                          capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(done.returncode)
    return json.loads(done.stdout)


def minutes(seconds: float | None, source: str | None) -> str:
    if seconds is None:
        return ""
    text = f"{seconds:.0f} s" if seconds < 60 else f"{seconds / 60:.0f} min"
    return text + (" (epochs' times)" if source == "metrics" else "")


def row(run: dict) -> str:
    net = Path(run["net_file"]).name if run.get("net_file") else run.get("network") or run["run"]
    error = run.get("test_top1_err")
    accuracy = "" if error is None else f"**{1 - error:.4f}**"
    epochs = "" if run.get("epochs") is None else str(run["epochs"])
    if run.get("best_epoch") is not None:
        epochs += f" (best `val/`: epoch {run['best_epoch']})"
    commit = f"`{run['commit']}`" if run.get("commit") else ""
    cells = [f"`{net}`", accuracy, epochs, minutes(run.get("wall_time_s"), run.get("wall_time_from")), commit]
    return "| " + " | ".join(cells) + " |"


def markdown(runs: list[dict], header: bool = True) -> str:
    return "\n".join([HEADER] * header + [row(run) for run in runs])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", metavar="RUN",
                        help="run folders, or - to read `netdsl runs --json` output on stdin")
    parser.add_argument("--rows", action="store_true", help="the rows alone, no header")
    args = parser.parse_args(argv)
    runs = json.load(sys.stdin) if args.runs == ["-"] else runs_json(args.runs)
    print(markdown(runs, header=not args.rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
