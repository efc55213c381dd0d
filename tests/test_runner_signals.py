"""Pre-emption: SIGTERM or SIGINT stops `netdsl train` after the step under way, with a
mid-epoch checkpoint from which --resume ends with the weights of a run never stopped.

    pytest tests/test_runner_signals.py

Real subprocesses on tests/test_runner_kill.py's slow images (about 20 ms each to decode, five
steps an epoch) plus one file that cannot be decoded, so that the count of skipped images is
carried across the stop too. The signal is sent 40% of the way into epoch 2, timed by epoch 1's
images/s; wherever it lands the comparisons hold, and the test checks it landed mid-epoch.
In process, on tiny data, the run sends SIGTERM to itself at a chosen point (a step, the
validation), through a wrapper around Trainer.step or evaluate that the test installs: the
boundaries (the last step of an epoch, between epochs, the last epoch) are hit every time.
(The same under torchrun, a signal reaching one rank alone, is in tests/test_distributed_faults.py.)
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from netdsl import cli
from netdsl.runner import train
from test_data import make_folder, tiny_net
from faultmatrix import same_training
from test_runner_kill import _env, _slow_folder, _wait_for
from conftest import cli_train

EPOCHS = 3
DETERMINISTIC = ("epoch", "train_loss", "val_loss", "val_top1_err", "val_top5_err", "lr",
                 "skipped_images", "best")


def argv(net, folder, run, *flags, workers=1) -> list[str]:
    return ["train", str(net), "--data", str(folder), "--out", str(run), "--epochs", str(EPOCHS),
            "--workers", str(workers), *map(str, flags)]


def netdsl(*args) -> list[str]:
    return [sys.executable, "-m", "netdsl", *args]


def records(run) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def assert_same_training(run: Path, whole: Path) -> None:
    """The weights, the optimizer's state and the schedule equal to the bit, and every
    deterministic field of every metrics record."""
    assert same_training(run, whole)
    assert ([{k: r[k] for k in DETERMINISTIC} for r in records(run)]
            == [{k: r[k] for k in DETERMINISTIC} for r in records(whole)])


@pytest.fixture(scope="module")
def slow(tmp_path_factory):
    """(data, net, the uninterrupted run): slow images, a broken one among them."""
    root = tmp_path_factory.mktemp("signals")
    folder = _slow_folder(root / "data")
    (folder / "train" / "class1" / "zz_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    net = tiny_net(root)
    whole = root / "whole"
    assert cli.main(argv(net, folder, whole, workers=0)) == 0
    assert all(r["skipped_images"] == 1 for r in records(whole))
    return folder, net, whole


def start_and_signal(command, run: Path, send) -> subprocess.CompletedProcess:
    """Start `command`, wait for epoch 1's checkpoint and best.pt, then call send(process) 40% of
    the way into epoch 2; the finished process, and best.pt as it was before the signal."""
    process = subprocess.Popen(command, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    _wait_for(lambda: (run / "best.pt").exists() and (run / "checkpoint.pt").exists(), process)
    best = (run / "best.pt").read_bytes(), (run / "best.pt").stat().st_mtime_ns
    time.sleep(0.4 * 34 / records(run)[0]["images_per_s"])
    send(process)
    out, err = process.communicate(timeout=300)
    return subprocess.CompletedProcess(command, process.returncode, out, err), best


def last_line(err: str) -> str:
    """The last line on stderr, after checking the others are the broken image's warning."""
    *warnings, last = err.strip().splitlines()
    assert all("zz_broken.png: cannot decode it" in w for w in warnings), err
    return last


def stopped_line(run: Path, name: str, epoch: int, step: int) -> str:
    return (f"{run}: stopped by {name} in epoch {epoch} of {EPOCHS}, after step {step} of 5; "
            "checkpoint.pt holds it: run the same command with --resume to continue")


def test_sigterm_mid_epoch_saves_that_step_and_resume_ends_with_the_uninterrupted_weights(slow, tmp_path):
    folder, net, whole = slow
    run = tmp_path / "run"
    stopped, best = start_and_signal(netdsl(*argv(net, folder, run)), run,
                                     lambda process: process.send_signal(signal.SIGTERM))

    assert stopped.returncode == 143, stopped.stderr
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    assert state["epoch"] >= 2 and 1 <= state["step"] < 5, "the signal did not land mid-epoch"
    assert last_line(stopped.stderr) == stopped_line(run, "SIGTERM", state["epoch"], state["step"])
    assert state["progress"]["steps"] == state["step"] and state["progress"]["position"] == 8 * state["step"]
    assert len(state["progress"]["rng"]) == 1
    assert [r["epoch"] for r in records(run)] == list(range(1, state["epoch"]))  # no line mid-epoch
    assert ((run / "best.pt").read_bytes(), (run / "best.pt").stat().st_mtime_ns) == best
    assert not list(run.glob("*.tmp"))

    resumed = subprocess.run(netdsl(*argv(net, folder, run), "--resume"), env=_env(), capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"epoch {state['epoch']}/{EPOCHS}: train loss" in resumed.stdout
    assert f"epoch {state['epoch'] - 1}/{EPOCHS}:" not in resumed.stdout
    assert_same_training(run, whole)


def test_ctrl_c_and_more_signals_during_the_stop_end_with_130_and_a_checkpoint_that_resumes(slow, tmp_path):
    """Ctrl-C signals every process of the group, the DataLoader worker too; the signals that follow
    (SIGINT, SIGTERM) land while the step ends and the checkpoint is written, and change nothing.
    Then the resumed run is killed (SIGKILL) a moment in, and resumes again from the same checkpoint."""
    folder, net, whole = slow
    run = tmp_path / "run"

    def ctrl_c_then_more(process):
        os.killpg(process.pid, signal.SIGINT)
        while process.poll() is None:
            time.sleep(0.01)
            with_or_without = [signal.SIGINT, signal.SIGTERM][int(time.monotonic() * 100) % 2]
            try:
                os.killpg(process.pid, with_or_without)
            except ProcessLookupError:
                break

    stopped, _ = start_and_signal(netdsl(*argv(net, folder, run)), run, ctrl_c_then_more)
    assert stopped.returncode == 130, stopped.stderr
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    assert state["epoch"] >= 2 and 1 <= state["step"] < 5, "the signal did not land mid-epoch"
    assert last_line(stopped.stderr) == stopped_line(run, "SIGINT", state["epoch"], state["step"])
    assert not list(run.glob("*.tmp"))

    source = (run / "tiny.py").stat().st_mtime_ns
    killed = subprocess.Popen(netdsl(*argv(net, folder, run), "--resume"), env=_env(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # tiny.py is written again just before the resumed run trains: kill it in the steps after that
    _wait_for(lambda: (run / "tiny.py").stat().st_mtime_ns != source, killed)
    time.sleep(0.3)
    killed.kill()
    killed.wait(timeout=60)
    resumed = subprocess.run(netdsl(*argv(net, folder, run), "--resume"), env=_env(), capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_training(run, whole)


def test_a_checkpoint_from_before_step_resumes_as_before(tmp_path):
    """Format-1 checkpoints written before `step` existed resume at the next epoch."""
    folder = make_folder(tmp_path / "data")
    net = tiny_net(tmp_path)
    def train(out, *flags):
        return cli_train(net, folder, out, *flags)
    assert train(tmp_path / "whole", "--epochs", 2) == 0
    assert train(tmp_path / "old", "--epochs", 1) == 0
    state = torch.load(tmp_path / "old" / "checkpoint.pt", weights_only=True)
    state.pop("step", None)  # (older versions wrote none)
    torch.save(state, tmp_path / "old" / "checkpoint.pt")
    assert train(tmp_path / "old", "--epochs", 2, "--resume") == 0
    assert [r["epoch"] for r in records(tmp_path / "old")] == [1, 2]
    a = torch.load(tmp_path / "old" / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "whole" / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------- in process, at chosen points

@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(data, net, the uninterrupted run): 24 images, three steps an epoch, dropout on."""
    root = tmp_path_factory.mktemp("tiny")
    folder, net = make_folder(root / "data"), tiny_net(root)
    assert cli.main(argv(net, folder, root / "whole", workers=0)) == 0
    return folder, net, root / "whole"


@pytest.fixture
def restore_signal_handlers():
    """A run that stopped leaves SIGTERM and SIGINT ignored, its process being on its way out:
    this one is pytest's, so they are put back."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)


def sigterm_at(monkeypatch, epoch: int, step: int | None) -> None:
    """The run sends itself SIGTERM as step `step` of epoch `epoch` begins (None: as that epoch's
    validation begins)."""
    now = {}
    real_train_epoch, real_step, real_evaluate = train.Trainer.train_epoch, train.Trainer.step, train.evaluate

    def train_epoch_noted(self, number, batches, start):
        now["epoch"] = number
        return real_train_epoch(self, number, batches, start)

    def step_signalled(self, batch, number):
        if (now["epoch"], number) == (epoch, step):
            signal.raise_signal(signal.SIGTERM)
        return real_step(self, batch, number)

    def evaluate_signalled(*args, **kwargs):
        if (now["epoch"], None) == (epoch, step):
            signal.raise_signal(signal.SIGTERM)
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(train.Trainer, "train_epoch", train_epoch_noted)
    monkeypatch.setattr(train.Trainer, "step", step_signalled)
    monkeypatch.setattr(train, "evaluate", evaluate_signalled)


@pytest.mark.parametrize("epoch, step, status, saved, line", [
    (2, 1, 143, (2, 1), "in epoch 2 of 3, after step 1 of 3"),
    (2, 3, 143, (2, 3), "in epoch 2 of 3, after step 3 of 3"),   # validation is left to the resume
    (1, None, 143, (1, 0), "after epoch 1 of 3"),                 # the epoch's own checkpoint
    (3, None, 0, (3, 0), None),                                   # nothing left to do: the run ends
], ids=["first-step", "last-step", "during-validation", "last-validation"])
def test_a_stop_at_each_boundary_resumes_to_the_uninterrupted_run(
        tiny, tmp_path, monkeypatch, capsys, restore_signal_handlers, epoch, step, status, saved, line):
    folder, net, whole = tiny
    run = tmp_path / "run"
    sigterm_at(monkeypatch, epoch, step)
    assert cli.main(argv(net, folder, run, workers=0)) == status
    err = capsys.readouterr().err.strip()
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    assert (state["epoch"], state["step"]) == saved
    assert [r["epoch"] for r in records(run)] == list(range(1, saved[0] + (not saved[1])))
    if line is None:
        assert err == ""
        assert_same_training(run, whole)
        return
    assert err == (f"{run}: stopped by SIGTERM {line}; checkpoint.pt holds it: run the same command "
                   "with --resume to continue")
    monkeypatch.undo()
    # resumed with loader workers this time: the batches do not depend on them
    assert cli.main(argv(net, folder, run, "--resume", workers=2)) == 0
    assert_same_training(run, whole)
