"""Past one machine: two torchrun "nodes" on this one (`--nnodes 2`, c10d rendezvous on
127.0.0.1, one process each), as a user on two machines starts them (docs/devices.md, "Several machines").

    pytest tests/test_multinode.py

Two nodes train as one node with two processes does, to the bit, and within float32 rounding of
one process on the same global batch (not to the bit: two processes sum each gradient in two
halves and then across, one process in one pass, and float addition is not associative). Killing
one node (its agent and its worker, as a machine that dies) mid-epoch ends the other with netdsl's
one line, in seconds, and both resume from the last checkpoint.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import faultmatrix
from netdsl import cli
from netdsl.devices import distributed
from test_data import make_folder, tiny_net
from test_distributed import model_of, relative_error
from test_runner_kill import _slow_folder


def node_command(port: int, net: Path, data: Path, run: Path, *flags) -> list[str]:
    """One machine's command: what docs/devices.md shows, with this machine's address for both."""
    return [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1",
            "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "netdsl-test",
            "-m", "netdsl", "train", str(net), "--data", str(data), "--out", str(run), *map(str, flags)]


def start_nodes(net, data, run, *flags, ranks_dir=None) -> list[subprocess.Popen]:
    env = {**faultmatrix.env(), "OMP_NUM_THREADS": "1"}
    if ranks_dir is not None:
        env[distributed.DEBUG_STATE_ENV] = str(ranks_dir)
    port = faultmatrix.free_port()
    return [subprocess.Popen(node_command(port, net, data, run, *flags), env=env, start_new_session=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]


def finish(nodes, timeout=faultmatrix.KILL_AFTER_S) -> list[tuple[int, str, str]]:
    try:
        ended = [node.communicate(timeout=timeout) for node in nodes]
        return [(node.returncode, out, err) for node, (out, err) in zip(nodes, ended)]
    finally:
        for node in nodes:
            if node.poll() is None:
                os.killpg(node.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def no_dropout(tmp_path_factory):
    """Data and a network without dropout (each process draws its own masks)."""
    root = tmp_path_factory.mktemp("multinode")
    net = tiny_net(root)
    net.write_text(net.read_text().replace("[drop]\ntype = dropout\np = 0.25\n", ""))
    return make_folder(root / "data", classes=3, train=5, val=3), net


@pytest.mark.slow
def test_two_nodes_train_as_two_processes_on_one_node_and_as_one_process(no_dropout, tmp_path):
    data, net = no_dropout
    ended = finish(start_nodes(net, data, tmp_path / "nodes", "--epochs", 2, "--workers", 2,
                               ranks_dir=tmp_path / "ranks"))
    assert [code for code, _, _ in ended] == [0, 0], [err for _, _, err in ended]
    rank0, rank1 = model_of(tmp_path / "ranks" / "rank0.pt"), model_of(tmp_path / "ranks" / "rank1.pt")
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)

    one_node = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
         "--master_port", str(faultmatrix.free_port()), "-m", "netdsl", "train", str(net), "--data", str(data),
         "--out", str(tmp_path / "one_node"), "--epochs", "2", "--workers", "0"],
        env={**faultmatrix.env(), "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
        timeout=faultmatrix.KILL_AFTER_S)
    assert one_node.returncode == 0, one_node.stderr
    nodes, same_machine = model_of(tmp_path / "nodes" / "checkpoint.pt"), model_of(tmp_path / "one_node" / "checkpoint.pt")
    assert nodes.keys() == same_machine.keys() and all(torch.equal(nodes[k], same_machine[k]) for k in nodes)

    with faultmatrix.one_thread():
        assert cli.main(["train", str(net), "--data", str(data), "--out", str(tmp_path / "one"), "--epochs", "2",
                         "--workers", "0"]) == 0
    assert relative_error(nodes, model_of(tmp_path / "one" / "checkpoint.pt")) < 1e-6


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it: torchrun's agent starts its workers in sessions of their own."""
    children = {}
    for child, (_, parent, _) in faultmatrix.processes().items():
        children.setdefault(parent, []).append(child)
    found, todo = [], [pid]
    while todo:
        found.append(todo.pop())
        todo += children.get(found[-1], [])
    return found


@pytest.mark.slow
def test_a_node_killed_mid_epoch_ends_the_other_with_one_line_and_both_resume(no_dropout, tmp_path):
    _, net = no_dropout
    data, run = _slow_folder(tmp_path / "data"), tmp_path / "run"
    flags = ("--epochs", 4, "--workers", 2)
    survivor, victim = start_nodes(net, data, run, *flags)
    deadline = time.monotonic() + faultmatrix.KILL_AFTER_S
    while not (run / "metrics.jsonl").exists():  # epoch 1 is saved; epoch 2 has begun
        assert time.monotonic() < deadline and survivor.poll() is None and victim.poll() is None
        time.sleep(0.02)
    for pid in descendants(victim.pid):  # the machine dies: its agent and its worker at once
        os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    (status, _, err), _ = finish([survivor, victim])
    assert time.monotonic() - killed < faultmatrix.BOUND_S
    assert status != 0
    # netdsl's one line; what torchrun's agent adds is its own (it has lost the rendezvous)
    netdsl_lines = [line for line in err.splitlines() if "error: " in line]
    assert netdsl_lines and all(re.match(r"error: lost contact with another training process \(", line)
                                for line in netdsl_lines), err
    assert "[rank0]:" not in err and "/netdsl/" not in err, err  # no traceback through netdsl
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    assert state["epoch"] in (1, 2, 3) and faultmatrix.temporaries(run) == []

    ended = finish(start_nodes(net, data, run, *flags, "--resume"))
    assert [code for code, _, _ in ended] == [0, 0], [err for _, _, err in ended]
    assert torch.load(run / "checkpoint.pt", weights_only=True)["epoch"] == 4
    assert f"epoch {state['epoch'] + 1}/4" in ended[0][1] + ended[1][1]
