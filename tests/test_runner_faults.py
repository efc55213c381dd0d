"""Faults and hostile input for `netdsl train`: a disk that fills, two runs on one folder, a
resume of a network that is not the run's.

    pytest tests/test_runner_faults.py

A write fails on demand: os.open, os.write and os.fsync are wrapped so that the files of a
chosen name fail as a full disk does (the first write writes half of its bytes, every later
one raises ENOSPC or EDQUOT), or fail at fsync. Every file a run writes goes through those
calls (netdsl/files.py), so each kind of file is tried. One test fills a real 600 KiB tmpfs
instead; it needs root to mount one and is skipped, saying why, where that is impossible.

The two-runs tests start real processes (`python -m netdsl train`), as tests/test_runner_kill.py
does, on its slow images so that a run lasts a few seconds.
"""
from __future__ import annotations

import errno
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from conftest import cli_train as train, one_line_error as one_line
from faultmatrix import FailingDisk, fill, without_hard_links
from test_data import make_folder, tiny_net
from test_runner_kill import _env, _slow_folder


def weights(path) -> dict:
    return torch.load(path, weights_only=True)["model"]


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def epochs_logged(run) -> list[int]:
    return [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()]


def temporaries(*folders) -> list[Path]:
    return [p for folder in folders for p in Path(folder).iterdir() if "tmp" in p.name]


def snapshot(folder, but=()) -> dict:
    """Every file's name, bytes and modification time (but those named)."""
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(Path(folder).iterdir())
            if p.name not in but}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Tiny data, and the runs every test compares with: one epoch, and two without a stop."""
    root = tmp_path_factory.mktemp("faults")
    folder = make_folder(root / "data")
    net = tiny_net(root)
    assert train(net, folder, root / "one", "--epochs", 1) == 0
    assert train(net, folder, root / "two", "--epochs", 2) == 0
    return folder, root / "one", root / "two"


def after_one_epoch(reference, tmp_path) -> tuple[Path, Path, Path]:
    """(data, net, run): a copy of the one-epoch run, ready to resume."""
    folder, one, _ = reference
    shutil.copytree(one, tmp_path / "run")
    return folder, tiny_net(tmp_path), tmp_path / "run"


# ---------------------------------------------------------------- a disk that fills

# (the file named, the files that fail, errno, where, resume the one-epoch run or start afresh)
WRITES = [
    ("checkpoint.pt", "checkpoint.pt.*.tmp", errno.ENOSPC, "write", True),
    ("checkpoint.pt", "checkpoint.pt.*.tmp", errno.EDQUOT, "write", True),
    ("checkpoint.pt", "checkpoint.pt.*.tmp", errno.ENOSPC, "fsync", True),
    ("best.pt", "best.pt.*.tmp", errno.ENOSPC, "write", False),       # epoch 1 is always the best
    ("metrics.jsonl", "metrics.jsonl", errno.ENOSPC, "write", True),  # the line appended
    ("metrics.jsonl", "metrics.jsonl.*.tmp", errno.EDQUOT, "write", True),  # the trim on resume
    ("tiny.net", "tiny.net.*.tmp", errno.ENOSPC, "write", True),
    ("tiny.py", "tiny.py.*.tmp", errno.ENOSPC, "write", True),
]


@pytest.mark.parametrize("name, pattern, code, at, resume", WRITES,
                         ids=[f"{p}-{errno.errorcode[c]}-{a}" for _, p, c, a, _ in WRITES])
def test_a_write_that_fails_stops_with_one_line_and_the_run_resumes_from_the_last_checkpoint(
        reference, tmp_path, monkeypatch, capsys, name, pattern, code, at, resume):
    folder, _, two = reference
    if resume:
        folder, net, run = after_one_epoch(reference, tmp_path)
    else:
        net, run = tiny_net(tmp_path), tmp_path / "run"
    disk = FailingDisk(pattern, code, at=at, patch=monkeypatch.setattr)
    if name == "best.pt":
        without_hard_links(pattern, patch=monkeypatch.setattr)
    capsys.readouterr()
    code_ = train(net, folder, run, "--epochs", 2, *(["--resume"] if resume else []))
    assert one_line(capsys, code_) == f"{run / name}: error: cannot write: {os.strerror(code)}"
    assert disk.failures >= 1
    assert temporaries(run) == []
    # the last checkpoint is epoch 1's, whole; metrics.jsonl was not left with a torn line
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 1
    assert epochs_logged(run) in ([1], [1, 2])  # epoch 2's line, if written, is trimmed on resume

    monkeypatch.undo()  # the disk has room again
    assert train(net, folder, run, "--epochs", 2, "--resume") == 0
    assert "epoch 2/2" in capsys.readouterr().out
    assert epochs_logged(run) == [1, 2]
    assert same_weights(weights(run / "checkpoint.pt"), weights(two / "checkpoint.pt"))
    assert torch.load(run / "best.pt", weights_only=True)["epoch"] in (1, 2)
    assert temporaries(run) == []


def test_a_statistics_cache_that_cannot_be_written_is_a_warning_and_the_run_goes_on(
        tmp_path, monkeypatch, capsys):
    """The cache is tried in the data folder, then in the run folder; neither takes it."""
    folder = make_folder(tmp_path / "data")
    disk = FailingDisk(".netdsl-stats-*.tmp", patch=monkeypatch.setattr)
    assert train(tiny_net(tmp_path), folder, tmp_path / "run", "--epochs", 1) == 0
    err = capsys.readouterr().err.strip()
    assert disk.failures == 2
    assert err.count("\n") == 0 and err.startswith("warning: cannot cache the training set's statistics")
    assert f"{folder}/.netdsl-stats-" in err and f"{tmp_path / 'run'}/.netdsl-stats-" in err
    assert "No space left on device" in err and "the next run computes them again" in err
    assert temporaries(folder, tmp_path / "run") == []
    assert not list(folder.glob(".netdsl-stats-*")) and not list((tmp_path / "run").glob(".netdsl-stats-*"))
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["epoch"] == 1


def test_a_checkpoint_on_a_full_tmpfs_fails_cleanly_and_resumes_once_there_is_room(reference, small_disk):
    folder, one, two = reference
    run = small_disk / "run"
    shutil.copytree(one, run)
    (run / "best.pt").unlink()  # a hard link in the run, as epoch 1 was the best: no room of its own
    os.link(run / "checkpoint.pt", run / "best.pt")
    net = tiny_net(small_disk.parent)
    # room for the small files a resumed run rewrites one by one (a page each), not a checkpoint
    filler = fill(small_disk, leave=2 * 4096)
    argv = [sys.executable, "-m", "netdsl", "train", str(net), "--data", str(folder), "--out", str(run),
            "--workers", "0", "--epochs", "2", "--resume"]
    full = subprocess.run(argv, env=_env(), capture_output=True, text=True, timeout=300)
    assert full.returncode == 2, full.stderr
    assert full.stderr.strip() == f"{run / 'checkpoint.pt'}: error: cannot write: No space left on device"
    assert temporaries(run) == []
    assert torch.load(run / "checkpoint.pt", weights_only=True)["epoch"] == 1

    filler.unlink()
    resumed = subprocess.run(argv, env=_env(), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert epochs_logged(run) == [1, 2]
    assert same_weights(weights(run / "checkpoint.pt"), weights(two / "checkpoint.pt"))


# ---------------------------------------------------------------- one run a folder

HOLDER = textwrap.dedent("""
    import os, sys, time
    from netdsl.runner import runlock
    lock = runlock.acquire(sys.argv[1])
    child = os.fork()          # as a DataLoader worker is forked: it must not keep the lock
    if child == 0:
        time.sleep(300)
        os._exit(0)
    print(os.getpid(), child, flush=True)
    time.sleep(300)
""")


def test_a_folder_another_run_holds_is_refused_naming_it_and_its_lock_dies_with_it(
        reference, tmp_path, capsys):
    folder, net, run = after_one_epoch(reference, tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run)], env=_env(),
                              stdout=subprocess.PIPE, text=True)
    pid, child = map(int, holder.stdout.readline().split())
    try:
        before = snapshot(run)
        err = one_line(capsys, train(net, folder, run, "--epochs", 2, "--resume"))
        assert err == (f"{run}: error: another netdsl train (pid {pid} on {socket.gethostname()}) is "
                       "using this run folder; wait for it to end, or pass --out to start another run")
        assert snapshot(run) == before  # it wrote nothing
        # killed without a chance to clean up; its forked child lives on
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=60)
        assert train(net, folder, run, "--epochs", 2, "--resume") == 0
        assert epochs_logged(run) == [1, 2]
    finally:
        holder.kill()
        with_pid_gone = subprocess.run(["kill", "-9", str(child)], capture_output=True, timeout=300)
        assert with_pid_gone.returncode in (0, 1)


def test_two_runs_started_at_once_on_one_folder_one_trains_the_other_exits_2(tmp_path):
    folder = _slow_folder(tmp_path / "data")
    net = tiny_net(tmp_path)
    run = tmp_path / "run"
    argv = [sys.executable, "-m", "netdsl", "train", str(net), "--data", str(folder), "--out", str(run),
            "--workers", "0", "--epochs", "3"]
    processes = [subprocess.Popen(argv, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for _ in range(2)]
    outcomes = [(p, *p.communicate(timeout=300)) for p in processes]
    assert sorted(p.returncode for p, _, _ in outcomes) == [0, 2], outcomes
    (winner, out, _), = [o for o in outcomes if o[0].returncode == 0]
    (_, _, err), = [o for o in outcomes if o[0].returncode == 2]
    assert err.strip() == (f"{run}: error: another netdsl train (pid {winner.pid} on "
                           f"{socket.gethostname()}) is using this run folder; wait for it to end, "
                           "or pass --out to start another run")
    assert epochs_logged(run) == [1, 2, 3]
    assert [out.count(f"epoch {e}/3: train loss") for e in (1, 2, 3)] == [1, 1, 1]


# ---------------------------------------------------------------- --resume checks the network

def test_resuming_another_network_is_refused_with_the_diff_before_anything_is_written(
        reference, tmp_path, capsys):
    folder, net, run = after_one_epoch(reference, tmp_path)
    net.write_text(net.read_text().replace("filters = 4", "filters = 6"))
    before = snapshot(run, but=[".lock"])  # the lock is taken first: it comes before the check
    err = one_line(capsys, train(net, folder, run, "--epochs", 2, "--resume"))
    assert err.startswith(f"{net}: error: is not the network {run} was trained on, so it cannot resume it: ")
    assert "~ [conv1] filters 4 -> 6; output 4x5x5 -> 6x5x5; params +56" in err
    assert err.endswith("; pass --out to train it as a new run")
    assert "size mismatch" not in err
    assert snapshot(run, but=[".lock"]) == before


def test_a_resume_after_only_comments_and_layout_changed_is_silent(reference, tmp_path, capsys):
    folder, net, run = after_one_epoch(reference, tmp_path)
    text = net.read_text()
    relaid = "# the same network, written out again\n\n" + "\n".join(
        re.sub(r"\s*=\s*", "\t=   ", line) + ("   # four filters" if "filters" in line else "")
        for line in text.splitlines()) + "\n\n"
    assert relaid != text
    net.write_text(relaid)
    capsys.readouterr()
    assert train(net, folder, run, "--epochs", 2, "--resume") == 0
    printed = capsys.readouterr()
    assert printed.err == ""
    assert "recipe" not in printed.out and "epoch 2/2: train loss" in printed.out
    assert same_weights(weights(run / "checkpoint.pt"), weights(reference[2] / "checkpoint.pt"))


def test_a_resume_after_a_recipe_change_goes_on_and_prints_each_change(reference, tmp_path, capsys):
    folder, net, run = after_one_epoch(reference, tmp_path)
    net.write_text(net.read_text().replace("epochs = 3", "epochs = 2").replace("lr = 0.0005", "lr = 0.001"))
    capsys.readouterr()
    assert train(net, folder, run, "--resume") == 0
    printed = capsys.readouterr()
    assert printed.err == ""
    lines = [line for line in printed.out.splitlines() if "recipe:" in line]
    assert lines == [
        f"{run}: recipe: epochs 3 -> 2",
        f"{run}: recipe: lr 0.0005 -> 0.001 (not followed: a resumed run keeps its checkpoint's lr; "
        "--lr sets it)",
    ]
    assert epochs_logged(run) == [1, 2]  # the file's new epochs: 2
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert records[1]["lr"] == pytest.approx(0.0005 * 0.5)  # the checkpoint's lr after step(0.5)
