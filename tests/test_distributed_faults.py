"""Faults under data parallelism: a stop signal that reaches one rank, a user error that one rank
meets, a user error every rank meets.

    pytest tests/test_distributed_faults.py

Two training processes on gloo over loopback. Most tests start them the way torchrun does
(RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT in each one's environment), without
torchrun's agent in between, so that each process's exit status, output and moment of exit can be
checked, and each rank given its own --data, as machines with their own copies of the data are.
One test runs torchrun itself. The signal comes from inside rank 1, at a chosen step, through a
wrapper around Trainer.step that the test's `python -c` program installs before it runs the
command, so that the step it stops after, and so what the resume must get right, is known.
"""
from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest
import torch

from netdsl.devices import distributed
from test_data import make_folder, tiny_net
from faultmatrix import free_port
from test_runner_kill import _env
from test_runner_signals import assert_same_training

NETDSL = [sys.executable, "-m", "netdsl"]


class Ranks:
    """Two `netdsl train` processes, started as torchrun starts them; rank R trains on data[R].
    With `code`, each runs `python -c code train ...` instead of `python -m netdsl train ...`."""

    def __init__(self, net, data, out, *flags, debug_state=None, code=None):
        port = free_port()
        self.processes, self.ended = [], {}
        for rank, folder in enumerate(data):
            env = {**_env(), "RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_RANK": str(rank),
                   "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
            if debug_state is not None:
                env[distributed.DEBUG_STATE_ENV] = str(debug_state)
            command = [*(NETDSL if code is None else [sys.executable, "-c", code]), "train", str(net),
                       "--data", str(folder), "--out", str(out), "--workers", "0", *map(str, flags)]
            self.processes.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                                                   stderr=subprocess.PIPE, text=True))

    def finish(self, timeout=300.0) -> list[tuple[int, str, str]]:
        """(exit status, stdout, stderr) of each rank; self.ended has when each was seen to end."""
        deadline = time.monotonic() + timeout
        while len(self.ended) < len(self.processes):
            for rank, process in enumerate(self.processes):
                if rank not in self.ended and process.poll() is not None:
                    self.ended[rank] = time.monotonic()
            if time.monotonic() > deadline:
                for process in self.processes:
                    process.kill()
                raise AssertionError(f"timed out: ranks {sorted(self.ended)} had ended")
            time.sleep(0.02)
        return [(p.returncode, *p.communicate(timeout=60)) for p in self.processes]

    @property
    def spread(self) -> float:
        """Seconds between the first rank's end and the last's."""
        return max(self.ended.values()) - min(self.ended.values())


def model_of(path) -> dict:
    state = torch.load(path, weights_only=True)
    return state.get("model", state)


# ---------------------------------------------------------------- a signal that reaches one rank

# `netdsl train`, rank 1 of which sends itself SIGTERM as step STEP of epoch EPOCH begins
SIGTERM_IN_RANK_1 = """
import signal, sys
from netdsl import cli
from netdsl.runner import train

EPOCH, STEP = {epoch}, {step}
real_train_epoch, real_step = train.Trainer.train_epoch, train.Trainer.step
now = {{}}

def train_epoch_noted(self, epoch, batches, start):
    now["epoch"] = epoch
    return real_train_epoch(self, epoch, batches, start)

def step_signalled(self, batch, number):
    if self.world.rank == 1 and (now["epoch"], number) == (EPOCH, STEP):
        signal.raise_signal(signal.SIGTERM)
    return real_step(self, batch, number)

train.Trainer.train_epoch, train.Trainer.step = train_epoch_noted, step_signalled
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """Data, a network with dropout (each rank's own random state is saved and given back to it),
    and two ranks' run never stopped. 20 images in batches of 8: three steps an epoch, the last
    leaving rank 1 no image (it joins with a zero-weighted one)."""
    root = tmp_path_factory.mktemp("two_ranks")
    folder = make_folder(root / "data", classes=4, train=5, val=3)
    net = tiny_net(root, classes=4)
    whole = Ranks(net, [folder, folder], root / "whole", "--epochs", 3).finish()
    assert [code for code, _, _ in whole] == [0, 0], whole
    return folder, net, root / "whole"


def test_sigterm_in_one_rank_stops_both_after_the_same_step_and_resume_ends_as_never_stopped(
        two_ranks, tmp_path):
    """Rank 0 never gets the signal: it learns of it in the step's sum. Resumed after step 1, the
    ranks' second forward pass, where DDP rebuilds its buckets, is the step rank 1 has no image in.
    (A stop after an epoch's last step, and the other boundaries, are tested in one process, in
    tests/test_runner_signals.py.)"""
    folder, net, whole = two_ranks
    step = 1
    run = tmp_path / "run"
    ranks = Ranks(net, [folder, folder], run, "--epochs", 3, debug_state=tmp_path / "at_stop",
                  code=SIGTERM_IN_RANK_1.format(epoch=2, step=step))
    stopped = ranks.finish()

    assert [code for code, _, _ in stopped] == [143, 143], stopped
    assert stopped[0][2].strip() == (
        f"{run}: stopped by SIGTERM in epoch 2 of 3, after step {step} of 3; "
        "checkpoint.pt holds it: run the same command with --resume to continue")
    assert stopped[1][2] == ""
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    assert (state["epoch"], state["step"]) == (2, step) and len(state["progress"]["rng"]) == 2
    at_stop = [model_of(tmp_path / "at_stop" / f"rank{r}.pt") for r in (0, 1)]
    assert all(torch.equal(at_stop[0][k], at_stop[1][k]) for k in at_stop[0])  # the same step
    assert all(torch.equal(at_stop[0][k], state["model"][k]) for k in at_stop[0])

    resumed = Ranks(net, [folder, folder], run, "--epochs", 3, "--resume").finish(timeout=120)
    assert [code for code, _, _ in resumed] == [0, 0], resumed
    assert_same_training(run, whole)


# ---------------------------------------------------------------- user errors

def _one_error_line(results, ranks: Ranks) -> str:
    """Every rank exited 2 within a few seconds of the first; rank 0 printed one line, the others
    nothing; that line."""
    assert [code for code, _, _ in results] == [2, 2], results
    assert ranks.spread < 5.0, ranks.ended
    assert [err for _, _, err in results[1:]] == [""]
    err = results[0][2].strip()
    assert "\n" not in err and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("bad_rank", [1, 0])
def test_a_data_folder_one_rank_alone_finds_wrong_ends_every_rank_with_2_printed_once(tmp_path, bad_rank):
    """Rank `bad_rank`'s copy of the data has a fourth class: it alone finds the class count wrong,
    while the other goes on to the first exchange and would wait there for it."""
    good = make_folder(tmp_path / "good", classes=3, train=2, val=1)
    bad = make_folder(tmp_path / "bad", classes=4, train=2, val=1)
    data = [bad, good] if bad_rank == 0 else [good, bad]
    ranks = Ranks(tiny_net(tmp_path), data, tmp_path / "run", "--epochs", 1)
    err = _one_error_line(ranks.finish(timeout=120), ranks)
    assert err == f"{bad}: error: train/ has 4 classes but the network's output [prob] has 3"


def test_a_damaged_checkpoint_every_rank_finds_is_printed_once(tmp_path):
    folder = make_folder(tmp_path / "data", classes=3, train=2, val=1)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoint.pt").write_bytes(b"PK\x03\x04 half a zip")
    ranks = Ranks(tiny_net(tmp_path), [folder, folder], tmp_path / "run", "--resume")
    err = _one_error_line(ranks.finish(timeout=120), ranks)
    assert err == (f"{tmp_path / 'run' / 'checkpoint.pt'}: error: cannot read it as a checkpoint: "
                   "the file is damaged, or it was not written by netdsl train")


def test_under_torchrun_a_user_error_is_printed_once_and_every_worker_exits_2(tmp_path):
    folder = make_folder(tmp_path / "data", classes=3, train=2, val=1)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoint.pt").write_bytes(b"PK\x03\x04 half a zip")
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
               "--master_addr=127.0.0.1", f"--master_port={free_port()}",
               *NETDSL[1:], "train", str(tiny_net(tmp_path)), "--data", str(folder),
               "--out", str(tmp_path / "run"), "--workers", "0", "--resume"]
    result = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=120)
    assert result.stderr.count("error: cannot read it as a checkpoint") == 1, result.stderr
    # torchrun's report of its workers: each one's exit status
    assert sorted(re.findall(r"rank\s*: (\d) \(local_rank.*\n\s*exitcode\s*: (-?\d+)", result.stderr)) == \
        [("0", "2"), ("1", "2")], result.stderr
