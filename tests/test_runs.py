"""`netdsl runs RUN...` (netdsl/runner/runs.py, netdsl/commands/runs.py) and docs/tables.py, on run
folders written by hand as `netdsl train` and `netdsl eval --json` write them: no training.

    pytest tests/test_runs.py
"""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import one_line_error
from netdsl import cli
from netdsl.runner import runs

ROOT = Path(__file__).resolve().parent.parent

NET = """\
[data]
type  = data
shape = 1x8x8

[fc]
type    = fc
outputs = 3

[prob]
type = softmax

[train]
lr     = {lr}
epochs = 3
"""

COMMIT_A = "a" * 40
COMMIT_B = "b" * 40


def epoch(number, err, speed, **more):
    return {"epoch": number, "train_loss": 1.0 / number, "images_per_s": speed, "data_wait_s": 0.1,
            "val_loss": 0.5, "val_top1_err": err, "val_top5_err": err / 10, "lr": 0.01,
            "skipped_images": 0, "precision": "fp32", "best": False, **more}


def segment(started, ended, commit=COMMIT_A, dirty=False):
    return {"netdsl": "0.1.0", "commit": commit, "dirty": dirty, "command": ["netdsl", "train", "tiny.net"],
            "seed": 0, "started": started, "ended": ended, "exit_status": None if ended is None else 0}


def eval_record(split, top1, ended, epoch_of_checkpoint=3):
    return {"net": "tiny.net", "split": split,
            "result": {"loss": 0.3, "top1_err": top1, "top5_err": top1 / 4, "images": 100, "test": "center",
                       "skipped_images": 0},
            "provenance": {"commit": COMMIT_A, "dirty": False, "started": ended, "ended": ended},
            "checkpoints": [{"path": "RUN/best.pt", "epoch": epoch_of_checkpoint, "provenance": []}]}


def write_lines(path: Path, records) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def make_run(folder: Path, lr="0.01", metrics=(), segments=None, evals=None) -> Path:
    folder.mkdir(parents=True)
    (folder / "tiny.net").write_text(NET.format(lr=lr))
    (folder / "tiny.py").write_text("# generated\n")
    write_lines(folder / "metrics.jsonl", metrics)
    if segments is not None:
        write_lines(folder / "provenance.jsonl", segments)
    for name, record in (evals or {}).items():
        (folder / name).write_text(json.dumps(record, indent=1) + "\n")
    return folder


@pytest.fixture
def three(tmp_path):
    """A resumed run with provenance and eval records; a second one with a smaller lr and only
    per-epoch times; a third with no epoch yet."""
    first = make_run(
        tmp_path / "a", lr="0.01",
        metrics=[epoch(1, 0.40, 100.0), epoch(2, 0.25, 300.0), epoch(3, 0.25, 200.0)],
        segments=[segment("2026-01-01T10:00:00+00:00", "2026-01-01T10:10:00+00:00"),
                  segment("2026-01-01T11:00:00+00:00", "2026-01-01T11:05:30+00:00", COMMIT_B, dirty=True)],
        evals={"test.json": eval_record("test", 0.30, "2026-01-01T12:00:00+00:00", 2),
               "test-last.json": eval_record("test", 0.28, "2026-01-01T12:05:00+00:00", 3),
               "val.json": eval_record("val", 0.01, "2026-01-01T13:00:00+00:00"),
               "notes.json": {"anything": "else"}})
    (first / "broken.json").write_text("{not json")
    second = make_run(
        tmp_path / "b", lr="0.001",
        metrics=[epoch(1, 0.50, 50.0, epoch_s=60.0), epoch(2, 0.45, 70.0, epoch_s=90.75)])
    third = make_run(tmp_path / "c", segments=[segment("2026-01-02T09:00:00+00:00", None)])
    return [str(first), str(second), str(third)]


def test_every_column_of_a_run(three):
    first = runs.read_run(three[0])
    assert first.network == "tiny" and first.net_file == str(Path(three[0]) / "tiny.net")
    assert first.epochs == 3
    assert (first.best_val_top1_err, first.best_epoch) == (0.25, 2)   # the first of a tie, as best.pt
    assert first.images_per_s == 200.0                                 # the median of 100, 300, 200
    assert (first.test_top1_err, first.test_top5_err) == (0.28, 0.07)  # the newest test record
    assert first.test_file.endswith("test-last.json") and first.test_checkpoint_epoch == 3
    assert (first.wall_time_s, first.wall_time_from) == (600 + 330, "provenance")
    assert first.commits == [COMMIT_A, COMMIT_B] and first.dirty is True
    assert runs.commit_text(first) == "aaaaaaa,bbbbbbb+dirty"

    row = runs.cells([first])[0]
    assert row == [three[0], "tiny", "(first)", "3", "25.00%", "2", "28.00%", "15m 30s", "200",
                   "aaaaaaa,bbbbbbb+dirty"]


def test_the_table_and_the_recipe_column(three):
    found = [runs.read_run(path) for path in three]
    rows = runs.cells(found)
    assert rows[1] == [three[1], "tiny", "lr 0.01 -> 0.001", "2", "45.00%", "2", "", "2m 31s*", "60.0", ""]
    assert rows[2] == [three[2], "tiny", "same", "", "", "", "", "", "", "aaaaaaa"]   # no epoch: blanks

    text = runs.table(found).splitlines()
    header = text[0]
    assert header.split() == "run network recipe vs first epochs best val top-1 at epoch test top-1 " \
                             "wall time img/s commit".split()
    at = 0
    for index, name in enumerate(runs.COLUMNS):   # each cell under its header: text to the left, numbers to the right
        at = header.index(name, at)
        for line, row in zip(text[1:4], rows):
            cell = row[index]
            if name in runs.RIGHT:
                assert line[at + len(name) - len(cell):at + len(name)] == cell, (name, line)
            else:
                assert line[at:at + len(cell)] == cell, (name, line)
        at += len(name)
    assert len(text) == 5 and text[4].startswith("* the sum of the epochs' times in metrics.jsonl")


def test_the_json(three):
    objects = runs.as_json([runs.read_run(path) for path in three])
    json.dumps(objects)   # plain JSON values
    first, second, third = objects
    assert first["run"] == three[0] and first["recipe_vs"] is None and first["recipe_diff"] == []
    assert first["network"] == "tiny" and first["epochs"] == 3
    assert first["best_val_top1_err"] == 0.25 and first["best_epoch"] == 2
    assert first["test_top1_err"] == 0.28 and first["test_file"].endswith("test-last.json")
    assert first["wall_time_s"] == 930.0 and first["wall_time_from"] == "provenance"
    assert first["images_per_s"] == 200.0
    assert first["commit"] == "aaaaaaa,bbbbbbb+dirty" and first["commits"] == [COMMIT_A, COMMIT_B]
    assert first["dirty"] is True

    assert second["recipe_vs"] == three[0] and second["recipe_diff"] == ["lr 0.01 -> 0.001"]
    assert second["wall_time_s"] == 150.75 and second["wall_time_from"] == "metrics"
    assert second["images_per_s"] == 60.0 and second["test_top1_err"] is None
    assert second["commit"] is None and second["commits"] == [] and second["dirty"] is None

    assert third["recipe_diff"] == [] and third["epochs"] is None and third["best_val_top1_err"] is None
    assert third["best_epoch"] is None and third["images_per_s"] is None
    assert third["wall_time_s"] is None and third["wall_time_from"] is None   # the segment has no end
    assert third["commit"] == "aaaaaaa" and third["dirty"] is False


def test_the_command(three, capsys):
    assert cli.main(["runs", *three]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("run") and "lr 0.01 -> 0.001" in out
    assert cli.main(["runs", "--json", *three]) == 0
    objects = json.loads(capsys.readouterr().out)
    assert [o["run"] for o in objects] == three and objects[1]["recipe_diff"] == ["lr 0.01 -> 0.001"]


def test_a_net_that_no_longer_parses_leaves_the_recipe_unknown(three):
    Path(three[1], "tiny.net").write_text("[data]\ntype = nonsense\n")
    found = [runs.read_run(path) for path in three[:2]]
    assert found[1].network == "tiny" and found[1].net is None and "nonsense" in found[1].net_error
    assert runs.cells(found)[1][2] == "?"
    assert runs.as_json(found)[1]["recipe_diff"] is None
    assert runs.table(found).splitlines()[-1].startswith("? ")


@pytest.mark.parametrize("case, words", [
    ("missing", ["missing", "no such run folder"]),
    ("file", ["file.txt", "not a run folder"]),
    ("empty folder", ["not a run folder: no metrics.jsonl"]),
    ("parent", ["not a run folder: no metrics.jsonl", "it holds run folders (a)", "/*"]),
    ("bad metrics", ["metrics.jsonl:2:", "not a JSON object"]),
    ("bad provenance", ["provenance.jsonl:1:", "not a JSON object"]),
])
def test_what_is_not_a_run_is_one_line_and_exit_2(tmp_path, capsys, case, words):
    good = make_run(tmp_path / "parent" / "a", metrics=[epoch(1, 0.5, 10.0)])
    target = tmp_path / case.replace(" ", "_")
    if case == "file":
        target = tmp_path / "file.txt"
        target.write_text("x")
    elif case == "empty folder":
        target.mkdir()
    elif case == "parent":
        target = tmp_path / "parent"
    elif case == "bad metrics":
        make_run(target, metrics=[epoch(1, 0.5, 10.0)])
        with open(target / "metrics.jsonl", "a") as f:
            f.write('{"epoch": 2, "train_lo\n')
    elif case == "bad provenance":
        make_run(target, metrics=[epoch(1, 0.5, 10.0)])
        (target / "provenance.jsonl").write_text("[1, 2]\n")
    code = cli.main(["runs", str(good), str(target)])
    assert capsys.readouterr().out == ""   # nothing printed before the error, not even the good run's row
    code = cli.main(["runs", str(good), str(target), "--json"])
    one_line_error(capsys, code, *words)


def load_tables():
    spec = importlib.util.spec_from_file_location("tables", ROOT / "docs" / "tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_docs_tables_rows(three):
    tables = load_tables()
    lines = tables.markdown(runs.as_json([runs.read_run(path) for path in three])).splitlines()
    assert lines[0] == "| network | test accuracy | epochs | wall time | commit |"
    assert lines[1] == "| --- | --- | --- | --- | --- |"
    assert lines[2] == "| `tiny.net` | **0.7200** | 3 (best `val/`: epoch 2) | 16 min | `aaaaaaa,bbbbbbb+dirty` |"
    assert lines[3] == "| `tiny.net` |  | 2 (best `val/`: epoch 2) | 3 min (epochs' times) |  |"
    assert lines[4] == "| `tiny.net` |  |  |  | `aaaaaaa` |"


def test_docs_tables_script_end_to_end(three, tmp_path):
    script = str(ROOT / "docs" / "tables.py")
    done = subprocess.run([sys.executable, script, "--rows", three[0]], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "| `tiny.net` | **0.7200** | 3 (best `val/`: epoch 2) | 16 min | `aaaaaaa,bbbbbbb+dirty` |\n"

    piped = json.dumps(runs.as_json([runs.read_run(three[1])]))
    done = subprocess.run([sys.executable, script, "-"], input=piped, capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[2].startswith("| `tiny.net` |  | 2 (best")

    done = subprocess.run([sys.executable, script, str(tmp_path)], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "not a run folder" in done.stderr
