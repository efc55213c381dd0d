"""Every way out of a run ends the process: the fault matrix of tests/faultmatrix.py, each case
with loader workers (2) and without (0), in one process and in two started as torchrun starts
them.

    pytest tests/test_fault_matrix.py

Each case is a real `netdsl train` with one fault injected at epoch 2, while both loaders' workers
are alive. Each process must end within faultmatrix.BOUND_S (a hang guard, not a timing target)
with its exit status and its line, leave no temporary file and no process of its session alive
(no loader worker outlives it), and where it stopped early, leave a last checkpoint that --resume
takes to the weights of a run never stopped, to the bit. The runs go two at a time.
"""
from __future__ import annotations

import subprocess
import sys
import time

import pytest
import torch

import faultmatrix
from faultmatrix import BOUND_S, fill, jobs, run_matrix

JOBS = jobs()


@pytest.fixture(scope="module")
def zygote():
    """The runs forked from one process that has imported torch and netdsl (faultmatrix.Zygote)."""
    forked = faultmatrix.Zygote()
    yield forked
    forked.close()


@pytest.fixture(scope="module")
def matrix(tmp_path_factory, zygote) -> dict:
    root = tmp_path_factory.mktemp("matrix")
    return {result.id: result for result in run_matrix(root, parallel=2, launcher=zygote)}


@pytest.mark.slow
@pytest.mark.parametrize("case, workers", JOBS, ids=[f"{case.name}-{w}" for case, w in JOBS])
def test_every_fault_ends_the_run_with_its_line_no_debris_and_a_checkpoint_that_resumes(matrix, case, workers):
    result = matrix[faultmatrix.Result(case, workers, []).id]
    assert result.failures == [], [o.stderr for o in result.outcomes]
    assert len(result.outcomes) == case.ranks
    # where it stopped early, --resume ran: to the run never stopped's weights in one process
    assert result.resumed == ("-" if case.checkpoint_epoch is None else "resumed" if case.ranks > 1 else "equal")


def test_the_matrix_has_each_fault_with_and_without_workers_and_under_two_ranks():
    faults = {case.fault for case, _ in JOBS}
    assert faults == set(faultmatrix.INJECTIONS) | {c.fault for c in faultmatrix.CASES if "@" in c.fault}
    for case, _ in JOBS:
        workers = sorted(w for c, w in JOBS if c is case)
        assert workers == ([2] if case.needs_workers else [0, 2])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(data, net, a checkpoint): one epoch on clean data."""
    from netdsl import cli
    from test_data import make_folder, tiny_net

    root = tmp_path_factory.mktemp("trained")
    data, net = make_folder(root / "data"), tiny_net(root)
    assert cli.main(faultmatrix.train_argv(net, data, root / "run", 0, "--epochs", 1)) == 0
    return data, net, root / "run" / "checkpoint.pt"


@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("checkpoints", [1, 2], ids=["one checkpoint", "ensemble"])
def test_eval_stopped_by_a_bad_image_ends_with_its_line_and_no_worker_left(trained, zygote, tmp_path, workers,
                                                                           checkpoints):
    """An image smaller than the crop, met in a worker's batch (not the first of its class, which
    is checked before any work)."""
    template, net, checkpoint = trained
    data = faultmatrix.fresh_copy(template, tmp_path / "data")
    (data / "val" / "class1" / "3.png").write_bytes(faultmatrix.tiny_png())
    argv = ["eval", str(net), "--data", str(data), "--workers", str(workers),
            *[arg for _ in range(checkpoints) for arg in ("--checkpoint", str(checkpoint))]]
    outcome, = faultmatrix.run_case("-", argv, [data], launcher=zygote)
    assert outcome.status == 2, outcome.stderr
    assert outcome.stderr.startswith(f"{data}/val/class1/3.png: error: ") and outcome.stderr.count("\n") == 1
    assert outcome.seconds < BOUND_S and outcome.survivors == 0 and outcome.temporaries == []


@pytest.mark.slow
def test_the_full_disk_trial_with_default_workers_exits_2_naming_the_file(tmp_path, small_disk):
    """The trial that once never exited: a real 600 KiB tmpfs, filled so that epoch 2's
    checkpoint has no room, and the default loader workers."""
    from test_data import make_folder, tiny_net

    run = small_disk / "run"
    argv = [sys.executable, "-m", "netdsl", "train", str(tiny_net(tmp_path)), "--data",
            str(make_folder(tmp_path / "data")), "--out", str(run), "--epochs", "2"]
    # room for epoch 1's files (a page each) and checkpoint (7 pages, linked as best.pt), not epoch 2's
    filler = fill(small_disk, leave=15 * 4096)
    started = time.monotonic()
    full = subprocess.run(argv, env=faultmatrix.env(), capture_output=True, text=True,
                          timeout=faultmatrix.KILL_AFTER_S)
    assert time.monotonic() - started < BOUND_S
    assert full.returncode == 2, full.stderr
    assert full.stderr.strip() == f"{run / 'checkpoint.pt'}: error: cannot write: No space left on device"
    assert faultmatrix.temporaries(run) == []
    assert torch.load(run / "checkpoint.pt", weights_only=True)["epoch"] == 1
    filler.unlink()
    resumed = subprocess.run(argv + ["--resume"], env=faultmatrix.env(), capture_output=True, text=True,
                             timeout=faultmatrix.KILL_AFTER_S)
    assert resumed.returncode == 0, resumed.stderr
    assert torch.load(run / "checkpoint.pt", weights_only=True)["epoch"] == 2


LEFT_OVER = """
from netdsl.runner import preemption, workers
loader = workers.Loader(list(range(100)), batch_size=2, num_workers=2, persistent_workers=True,
                        worker_init_fn=preemption.ignore_in_worker)
batches = iter(loader)
next(batches)
cycle = [batches]
cycle.append(cycle)   # the iterator now only the garbage collector could free, and it does not run
"""


def test_a_loader_no_command_owned_is_ended_by_the_exit_handler(tmp_path):
    """The safety net: torch leaves such an iterator's workers to multiprocessing's exit handler,
    whose SIGTERM they ignore (without netdsl's handler this process never exits)."""
    ended = subprocess.run([sys.executable, "-c", LEFT_OVER], env=faultmatrix.env(), capture_output=True,
                           text=True, timeout=faultmatrix.KILL_AFTER_S, start_new_session=True)
    assert ended.returncode == 0 and ended.stderr == ""
