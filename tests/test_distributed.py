"""Data-parallel training: two processes under torchrun (gloo on loopback) against one.

    pytest tests/test_distributed.py

Real torchrun subprocesses over tiny data: they finish, both ranks end with the same weights
(each saves them through NETDSL_DEBUG_RANK_STATE), rank 0 writes one metrics line an epoch,
an epoch equals a single process's epoch on the same global batch, and --resume continues,
there on a network split over `--devices cpu,cpu` in each process. 20 training images in
batches of 8 leave rank 1 nothing in the last step of epoch 1 (it joins with a zero-weighted
image); epoch 2 resumes with batches of 12, whose last step gives the ranks 6 and 2 images.
The network has no dropout: each process draws its own masks.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from netdsl import cli
from netdsl.devices import distributed
from netdsl.runner import data
from faultmatrix import free_port
from test_data import make_folder, tiny_net

ROOT = Path(__file__).resolve().parents[1]


def torchrun(net, folder, out, ranks, *flags, timeout=300) -> subprocess.CompletedProcess:
    """`netdsl train` in two processes; each saves its final weights to ranks/rank<R>.pt."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           distributed.DEBUG_STATE_ENV: str(ranks)}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
               "--master_addr=127.0.0.1", f"--master_port={free_port()}",
               "-m", "netdsl", "train", str(net), "--data", str(folder), "--out", str(out),
               "--workers", "0", *map(str, flags)]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)


def single(net, folder, out, *flags) -> int:
    return cli.main(["train", str(net), "--data", str(folder), "--out", str(out), "--workers", "0",
                     *map(str, flags)])


def model_of(path) -> dict:
    state = torch.load(path, weights_only=True)
    return state.get("model", state)


def metrics(run) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def relative_error(a: dict, b: dict) -> float:
    return max(float((a[k] - b[k]).norm() / b[k].norm()) for k in b)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One process, then two: an epoch of batches of 8, then --resume with batches of 12."""
    root = tmp_path_factory.mktemp("distributed")
    folder = make_folder(root / "data", classes=4, train=5, val=3)
    net = tiny_net(root, classes=4)
    net.write_text(net.read_text().replace("[net]", "[net]\ngroups = 2")
                   .replace("[drop]\ntype = dropout\np = 0.25\n", ""))
    found = {}
    assert single(net, folder, root / "one", "--epochs", 1) == 0
    found["one_epoch1"] = model_of(root / "one" / "checkpoint.pt")
    assert single(net, folder, root / "one", "--epochs", 2, "--batch", 12, "--resume") == 0
    found["first"] = torchrun(net, folder, root / "two", root / "ranks1", "--epochs", 1)
    found["two_epoch1"] = model_of(root / "two" / "checkpoint.pt")
    found["metrics_epoch1"] = metrics(root / "two")
    found["resumed"] = torchrun(net, folder, root / "two", root / "ranks2", "--epochs", 2,
                                "--batch", 12, "--resume", "--devices", "cpu,cpu")
    return root, found


def test_two_processes_finish_and_hold_identical_weights(runs):
    root, found = runs
    for name, ranks in (("first", "ranks1"), ("resumed", "ranks2")):
        assert found[name].returncode == 0, found[name].stderr
        rank0, rank1 = model_of(root / ranks / "rank0.pt"), model_of(root / ranks / "rank1.pt")
        assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    final = model_of(root / "two" / "checkpoint.pt")
    assert all(torch.equal(final[k], model_of(root / "ranks2" / "rank0.pt")[k]) for k in final)


def test_rank_0_alone_writes_one_metrics_line_an_epoch_and_prints(runs):
    root, found = runs
    assert [r["epoch"] for r in found["metrics_epoch1"]] == [1]
    assert [r["epoch"] for r in metrics(root / "two")] == [1, 2]
    assert found["first"].stdout.count("epoch 1/1: train loss") == 1
    assert found["resumed"].stdout.count("epoch 2/2: train loss") == 1
    assert "epoch 1/" not in found["resumed"].stdout  # resumed, not started again
    assert sorted(p.name for p in (root / "two").iterdir()) == [
        ".lock", "best.pt", "checkpoint.pt", "metrics.jsonl", "provenance.jsonl", "tiny.net", "tiny.py"]
    assert (root / "two" / ".lock").read_text().split()[1] == socket.gethostname()  # rank 0's lock


def test_an_epoch_equals_one_process_with_the_same_global_batch(runs):
    root, found = runs
    assert relative_error(found["two_epoch1"], found["one_epoch1"]) < 1e-5
    assert relative_error(model_of(root / "two" / "checkpoint.pt"),
                          model_of(root / "one" / "checkpoint.pt")) < 1e-5
    for two, one in zip(metrics(root / "two"), metrics(root / "one")):
        assert two["train_loss"] == pytest.approx(one["train_loss"], rel=1e-5)
        assert two["val_loss"] == pytest.approx(one["val_loss"], rel=1e-5)
        assert (two["val_top1_err"], two["val_top5_err"], two["lr"]) == \
               (one["val_top1_err"], one["val_top5_err"], one["lr"])


def test_a_rank_without_an_image_in_the_epoch_second_step_does_not_stall_the_others(tmp_path):
    """9 images in batches of 8: step 2 gives rank 0 one image and rank 1 none. DDP rebuilds its
    buckets in each process's second forward pass, an exchange: rank 1's forward of a blank image
    must come where rank 0's forward comes, before the step's sum, or each waits for the other."""
    folder = make_folder(tmp_path / "data", classes=3, train=3, val=1)
    net = tiny_net(tmp_path)
    result = torchrun(net, folder, tmp_path / "run", tmp_path / "ranks", "--epochs", 1, timeout=120)
    assert result.returncode == 0, result.stderr
    rank0, rank1 = model_of(tmp_path / "ranks" / "rank0.pt"), model_of(tmp_path / "ranks" / "rank1.pt")
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)


@pytest.mark.parametrize("batch, size", [(8, 20), (12, 20), (8, 17), (4, 3)])
def test_each_rank_takes_its_share_of_each_single_process_batch(batch, size):
    """Rank r's step k is positions [r*B/W, (r+1)*B/W) of the one-process step k, and every
    rank takes the same number of steps (a placeholder where the last batch leaves it none)."""
    def steps(rank, world):
        sampler = data.EpochSampler(size, seed=3, batch=batch, world=distributed.World(rank, world))
        sampler.set_epoch(5)
        keys, share = list(sampler), batch // world
        return [[k for k in keys[i:i + share] if k[1] is not None] for i in range(0, len(keys), share)]

    whole, rank0, rank1 = steps(0, 1), steps(0, 2), steps(1, 2)
    assert len(rank0) == len(rank1) == len(whole)
    assert [a + b for a, b in zip(rank0, rank1)] == whole


class _Images:
    """A stand-in for an EvalSet of `size` images."""
    tencrop = False

    def __init__(self, size):
        self.size = size

    def __len__(self):
        return self.size


@pytest.mark.parametrize("size", [2, 10])
def test_the_ranks_validation_shares_cover_val_once(size):
    shares = [list(data.eval_loader(_Images(size), 6, 0, distributed.World(rank, 3)).sampler)
              for rank in range(3)]
    assert sorted(i for share in shares for i in share) == list(range(size))


def test_devices_are_counted_from_each_process_local_rank():
    assert distributed.offset_devices(["cuda:0", "cuda:1"], 1) == ["cuda:2", "cuda:3"]
    assert distributed.offset_devices(["cuda:0"], 3) == ["cuda:3"]
    assert distributed.offset_devices(["cpu", "cpu"], 1) == ["cpu", "cpu"]


@pytest.mark.parametrize("flags, world, message", [
    (["--batch", "7"], "2", "--batch 7 does not divide among the 2 processes torchrun started"),
    ([], "3", "[train] batch = 8 does not divide among the 3 processes torchrun started"),
])
def test_a_batch_that_does_not_divide_among_the_processes_exits_2(tmp_path, monkeypatch, capsys,
                                                                   flags, world, message):
    # torchrun's variables, as each process sees them: the check comes before any exchange
    for name, value in (("WORLD_SIZE", world), ("RANK", "0"), ("LOCAL_RANK", "0")):
        monkeypatch.setenv(name, value)
    folder = make_folder(tmp_path / "data", classes=3, train=1, val=1)
    assert single(tiny_net(tmp_path), folder, tmp_path / "run", *flags) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()
