"""Where a result came from (netdsl/runner/provenance.py): the record `netdsl train` writes in its
run folder and checkpoints, a segment a resume, and `netdsl eval --json`.

    pytest tests/test_provenance.py
"""
from __future__ import annotations

import datetime
import importlib.metadata
import json
import platform
import socket
import subprocess

import pytest
import torch

from netdsl import cli
from netdsl.runner import data, provenance
from test_data import make_folder, tiny_net


def segments(run) -> list[dict]:
    return [json.loads(line) for line in (run / "provenance.jsonl").read_text().splitlines()]


def at(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text)


@pytest.fixture(scope="module")
def resumed(tmp_path_factory):
    """(data, net, run): one epoch, then resumed to two with other flags."""
    root = tmp_path_factory.mktemp("provenance")
    folder, net, run = make_folder(root / "data"), tiny_net(root), root / "run"
    first = ["train", str(net), "--data", str(folder), "--out", str(run), "--epochs", "1", "--workers", "0",
             "--seed", "5"]
    assert cli.main(first) == 0
    assert cli.main([*first[:-6], "--epochs", "2", "--workers", "1", "--resume"]) == 0
    return folder, net, run, first


def test_a_run_records_versions_commit_command_seed_threads_host_and_data(resumed):
    folder, _, run, first = resumed
    one = segments(run)[0]
    assert one["netdsl"] == importlib.metadata.version("netdsl")
    assert one["torch"] == torch.__version__ and one["python"] == platform.python_version()
    assert one["triton"] == importlib.metadata.version("triton")
    head = subprocess.run(["git", "-C", str(provenance.SOURCE), "rev-parse", "HEAD"], capture_output=True,
                          text=True, timeout=60)
    if head.returncode == 0:   # run from a checkout, as the suite is
        assert one["commit"] == head.stdout.strip() and isinstance(one["dirty"], bool)
    assert one["command"] == ["netdsl", *first]
    assert (one["seed"], one["workers"], one["processes"]) == (5, 0, 1)
    assert one["threads"] == torch.get_num_threads() and one["host"] == socket.gethostname()
    assert one["cpu"].endswith("cores") and one["gpus"] == []
    assert one["data"]["path"] == str(folder.resolve()) and one["data"]["files"] == 3 * (8 + 4)
    assert at(one["started"]) <= at(one["ended"]) and one["exit_status"] == 0


def test_a_resume_adds_a_segment_and_each_checkpoint_holds_those_that_trained_it(resumed):
    _, _, run, _ = resumed
    one, two = segments(run)
    assert two["command"][-5:] == ["--epochs", "2", "--workers", "1", "--resume"]
    assert (two["seed"], two["workers"], two["exit_status"]) == (5, 1, 0)
    assert at(one["ended"]) <= at(two["started"])
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    assert [s["command"] for s in state["provenance"]] == [one["command"], two["command"]]
    assert state["provenance"][0] == one   # the first segment as it ended
    assert state["provenance"][1]["ended"] is not None
    best = torch.load(run / "best.pt", weights_only=True)
    assert len(best["provenance"]) in (1, 2)


def test_the_data_fingerprint_follows_names_and_sizes_not_the_reading(tmp_path):
    folder = make_folder(tmp_path / "data")
    recipe = data.Recipe.of(__import__("netdsl").parse_file(tiny_net(tmp_path)))
    train, val = data.open_folders(folder, recipe)
    before = provenance.fingerprint([train, val])
    assert provenance.fingerprint([train, val]) == before
    image = folder / "train" / "class0" / "0.png"
    image.write_bytes(image.read_bytes() + b"\0")          # one byte more
    assert provenance.fingerprint([train, val])["listing_sha256"] != before["listing_sha256"]
    image.rename(image.with_name("renamed.png"))
    train, val = data.open_folders(folder, recipe)
    assert provenance.fingerprint([train, val])["listing_sha256"] != before["listing_sha256"]


def test_a_run_stopped_by_an_error_records_its_status(tmp_path, monkeypatch):
    folder, net, run = make_folder(tmp_path / "data"), tiny_net(tmp_path), tmp_path / "run"
    from netdsl.runner import train

    monkeypatch.setattr(train, "train_loss", lambda *a: torch.tensor(float("nan"), requires_grad=True))
    assert cli.main(["train", str(net), "--data", str(folder), "--out", str(run), "--workers", "0"]) == 2
    assert segments(run)[-1]["exit_status"] == 2


@pytest.mark.parametrize("checkpoints", [1, 2])
def test_eval_json_holds_the_result_its_record_and_each_checkpoint_record(resumed, tmp_path, capsys, checkpoints):
    folder, net, run, _ = resumed
    out = tmp_path / "eval.json"
    argv = ["eval", str(net), "--data", str(folder), "--workers", "0", "--json", str(out),
            *["--checkpoint", str(run / "checkpoint.pt")] * checkpoints]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    written = json.loads(out.read_text())
    top1 = written["result"]["top1_err"]
    assert f"top-1 error {top1:.2%}" in printed and written["result"]["images"] == 12
    assert written["provenance"]["command"] == ["netdsl", *argv] and written["provenance"]["data"]["files"] == 12
    assert [c["provenance"] for c in written["checkpoints"]] == \
        [torch.load(run / "checkpoint.pt", weights_only=True)["provenance"]] * checkpoints
    if checkpoints == 2:
        assert [m["top1_err"] for m in written["result"]["members"]] == [top1, top1]
