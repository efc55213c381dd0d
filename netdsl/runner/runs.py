"""Run folders read back, for `netdsl runs RUN...` (netdsl/commands/runs.py): one row a run.

    runs = [read_run(path) for path in ("runs/a", "runs/b")]   # NetError where one is not a run
    print(table(runs))                                         # or json.dumps(as_json(runs))

A run folder is what `netdsl train` writes (netdsl/runner/train.py): metrics.jsonl, one JSON
object an epoch, is what makes a folder a run; the rest is read where it is there:

- the network: <name>.net, the text trained; its recipe is compared with the first run's
  (language/netdiff.recipe_diff, the `recipe:` lines of `netdsl diff`);
- epochs done (the last record's `epoch`), the lowest `val_top1_err` and the epoch of it (the
  first, if several tie, as best.pt keeps), the median `images_per_s` over the epochs;
- the test error: a `RUN/*.json` that `netdsl eval --json` wrote, whose record has `"split":
  "test"` and a `result` with `top1_err`; of several, those of best.pt first (the checkpoint the
  run keeps as its result), then the newest (its evaluation's end time, else the file's
  modification time);
- the wall time: the sum over provenance.jsonl's segments of `ended` - `started` (a segment
  without an end, running or killed, counts nothing); where no segment has both, the sum of the
  epochs' `epoch_s` in metrics.jsonl if every epoch has one; `wall_time_from` says which;
- the commit: each segment's, short, distinct ones in order, `+dirty` if any segment was.

A run with no epoch yet is a row with blanks. A malformed metrics.jsonl or provenance.jsonl
line is a NetError naming its line; a .net that no longer parses leaves the recipe unknown.
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import statistics
from pathlib import Path

from ..errors import NetError
from ..language import netdiff

SHORT = 7                 # characters of a short commit, as git prints them
SHOWN_CHANGES = 3         # recipe changes the table shows before `+N more`


@dataclasses.dataclass
class Run:
    path: str
    net_file: str | None = None
    network: str | None = None
    net: object = dataclasses.field(default=None, repr=False)   # the parsed Net, None where unreadable
    net_error: str | None = None
    epochs: int | None = None
    best_val_top1_err: float | None = None
    best_epoch: int | None = None
    test_top1_err: float | None = None
    test_top5_err: float | None = None
    test_file: str | None = None
    test_checkpoint_epoch: int | None = None
    wall_time_s: float | None = None
    wall_time_from: str | None = None          # "provenance", "metrics" or None
    images_per_s: float | None = None
    commits: list = dataclasses.field(default_factory=list)   # full hashes, distinct, in segment order
    dirty: bool | None = None


def read_run(path) -> Run:
    """The run in folder `path`; NetError where it is not a run folder."""
    folder = Path(path)
    name = str(path).rstrip("/") or str(path)
    if not folder.exists():
        raise NetError("no such run folder", name)
    if not folder.is_dir():
        raise NetError("not a run folder (a file, not a folder)", name)
    metrics_path = folder / "metrics.jsonl"
    if not metrics_path.is_file():
        inside = sorted(p.parent.name for p in folder.glob("*/metrics.jsonl"))
        hint = " (netdsl train writes one each epoch)"
        if inside:
            listed = ", ".join(inside[:3]) + (", ..." if len(inside) > 3 else "")
            hint = f"; it holds run folders ({listed}): give them, as {name}/*"
        raise NetError(f"not a run folder: no metrics.jsonl{hint}", name)
    run = Run(path=name)
    _read_net(run, folder)
    epochs = _json_lines(metrics_path)
    segments = _json_lines(folder / "provenance.jsonl") if (folder / "provenance.jsonl").is_file() else []
    if epochs:
        run.epochs = max(int(record.get("epoch", 0)) for record in epochs)
        scored = [r for r in epochs if isinstance(r.get("val_top1_err"), (int, float))]
        if scored:
            best = min(scored, key=lambda r: r["val_top1_err"])   # min keeps the first of a tie
            run.best_val_top1_err, run.best_epoch = best["val_top1_err"], best.get("epoch")
        speeds = [r["images_per_s"] for r in epochs if isinstance(r.get("images_per_s"), (int, float))]
        if speeds:
            run.images_per_s = statistics.median(speeds)
    _read_wall_time(run, segments, epochs)
    _read_commit(run, segments)
    _read_test(run, folder)
    return run


def _json_lines(path: Path) -> list[dict]:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise NetError(f"cannot read it: {getattr(err, 'strerror', None) or err}", str(path)) from None
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if not isinstance(record, dict):
            raise NetError("not a JSON object, as each line of a run's records is", str(path), number)
        records.append(record)
    return records


def _read_net(run: Run, folder: Path) -> None:
    """RUN/<name>.net: the one beside its generated <name>.py where there are several."""
    import netdsl

    nets = sorted(folder.glob("*.net"))
    if not nets:
        return
    chosen = next((p for p in nets if p.with_suffix(".py").exists()), nets[0])
    run.net_file, run.network = str(chosen), chosen.stem
    try:
        run.net = netdsl.parse_file(chosen)
        run.network = run.net.name
    except NetError as err:
        run.net_error = str(err)


def _time(text) -> datetime.datetime | None:
    try:
        moment = datetime.datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.timezone.utc)


def _read_wall_time(run: Run, segments: list[dict], epochs: list[dict]) -> None:
    spans = [(_time(s.get("started")), _time(s.get("ended"))) for s in segments]
    spans = [(start, end) for start, end in spans if start and end]
    if spans:
        run.wall_time_s = sum((end - start).total_seconds() for start, end in spans)
        run.wall_time_from = "provenance"
    elif epochs and all(isinstance(r.get("epoch_s"), (int, float)) for r in epochs):
        run.wall_time_s = float(sum(r["epoch_s"] for r in epochs))
        run.wall_time_from = "metrics"


def _read_commit(run: Run, segments: list[dict]) -> None:
    for segment in segments:
        commit = segment.get("commit")
        if isinstance(commit, str) and commit and commit not in run.commits:
            run.commits.append(commit)
    flags = [s["dirty"] for s in segments if isinstance(s.get("dirty"), bool)]
    run.dirty = any(flags) if flags else None


def _read_test(run: Run, folder: Path) -> None:
    """The `netdsl eval --json` record of the test split in the folder: best.pt's, the newest."""
    found = []
    for path in sorted(folder.glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError, UnicodeDecodeError):
            continue
        if not isinstance(record, dict) or record.get("split") != "test":
            continue
        result = record.get("result")
        if not isinstance(result, dict) or not isinstance(result.get("top1_err"), (int, float)):
            continue
        made = record.get("provenance") if isinstance(record.get("provenance"), dict) else {}
        when = _time(made.get("ended")) or _time(made.get("started")) or datetime.datetime.fromtimestamp(
            path.stat().st_mtime, datetime.timezone.utc)
        checkpoints = record.get("checkpoints")
        of_best = (isinstance(checkpoints, list) and len(checkpoints) == 1 and isinstance(checkpoints[0], dict)
                   and Path(str(checkpoints[0].get("path", ""))).name == "best.pt")
        found.append((of_best, when, path.name, path, record))
    if not found:
        return
    *_, path, record = max(found, key=lambda item: item[:3])
    run.test_file = str(path)
    run.test_top1_err = record["result"]["top1_err"]
    top5 = record["result"].get("top5_err")
    run.test_top5_err = top5 if isinstance(top5, (int, float)) else None
    checkpoints = record.get("checkpoints")
    if isinstance(checkpoints, list) and len(checkpoints) == 1 and isinstance(checkpoints[0], dict):
        epoch = checkpoints[0].get("epoch")
        run.test_checkpoint_epoch = epoch if isinstance(epoch, int) else None


def commit_text(run: Run) -> str:
    """`6a7ce3d`, `6a7ce3d+dirty`, `6a7ce3d,8ca3d89` for a run resumed at another commit; '' without one."""
    text = ",".join(commit[:SHORT] for commit in run.commits)
    return f"{text}+dirty" if text and run.dirty else text


def recipe_changes(run: Run, first: Run) -> list[str] | None:
    """How the run's recipe differs from the first run's, one change a line (`lr 0.01 -> 0.001`);
    None where either network is unknown."""
    if run.net is None or first.net is None:
        return None
    return [line.removeprefix("recipe: ") for line in netdiff.recipe_diff(first.net, run.net)]


def as_json(runs: list[Run]) -> list[dict]:
    """`netdsl runs --json`: one object a run, fractions and seconds as they are recorded; `recipe_diff`
    lists how its recipe differs from the first run's (`recipe_vs`), [] where it does not, None where
    a .net is missing or unreadable; `commit` is the table's text, `commits` the full hashes."""
    rows = []
    for index, run in enumerate(runs):
        row = {"run": run.path, "network": run.network, "net_file": run.net_file, "net_error": run.net_error,
               "recipe_vs": runs[0].path if index else None, "recipe_diff": recipe_changes(run, runs[0])}
        row.update((field.name, getattr(run, field.name)) for field in dataclasses.fields(Run)
                   if field.name not in ("path", "network", "net_file", "net_error", "net"))
        row["commit"] = commit_text(run) or None
        rows.append(row)
    return rows


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def _percent(value: float | None) -> str:
    return "" if value is None else f"{value:.2%}"


def _speed(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def _recipe_cell(run: Run, index: int, first: Run) -> str:
    if index == 0:
        return "(first)"
    changes = recipe_changes(run, first)
    if changes is None:
        return "?"
    if not changes:
        return "same"
    shown = changes[:SHOWN_CHANGES]
    more = len(changes) - len(shown)
    return "; ".join(shown) + (f"; +{more} more" if more else "")


COLUMNS = ("run", "network", "recipe vs first", "epochs", "best val top-1", "at epoch", "test top-1",
           "wall time", "img/s", "commit")
RIGHT = {"epochs", "best val top-1", "at epoch", "test top-1", "wall time", "img/s"}


def cells(runs: list[Run]) -> list[list[str]]:
    """The table's cells, a list of COLUMNS' texts a run, '' where a run has no value yet."""
    rows = []
    for index, run in enumerate(runs):
        wall = duration(run.wall_time_s) + ("*" if run.wall_time_from == "metrics" else "")
        rows.append([run.path, run.network or "", _recipe_cell(run, index, runs[0]),
                     "" if run.epochs is None else str(run.epochs), _percent(run.best_val_top1_err),
                     "" if run.best_epoch is None else str(run.best_epoch), _percent(run.test_top1_err),
                     wall, _speed(run.images_per_s), commit_text(run)])
    return rows


def table(runs: list[Run]) -> str:
    """The runs as a text table, one row each, a blank where a run has no value yet."""
    rows = cells(runs)
    widths = [max(len(column), *(len(row[i]) for row in rows)) for i, column in enumerate(COLUMNS)]

    def line(cells):
        return "  ".join(cell.rjust(width) if name in RIGHT else cell.ljust(width)
                         for name, cell, width in zip(COLUMNS, cells, widths)).rstrip()

    lines = [line(COLUMNS), *(line(row) for row in rows)]
    if any(run.wall_time_from == "metrics" for run in runs):
        lines.append("* the sum of the epochs' times in metrics.jsonl: no provenance.jsonl segment with an end")
    unreadable = [run for run in runs if run.net_error]
    lines += [f"? {run.net_error}" for run in unreadable]
    return "\n".join(lines)
