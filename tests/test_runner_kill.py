"""Runs killed with SIGKILL: checkpoints stay whole and a resumed run ends where it would have.

    pytest tests/test_runner_kill.py

Real subprocesses, killed without warning. The training images are large noisy PNGs (about
20 ms each to decode) so an epoch lasts over half a second and the kill lands inside one.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from netdsl import cli
from faultmatrix import env as _env
from test_data import make_folder, tiny_net

ROOT = Path(__file__).resolve().parents[1]


def _wait_for(predicate, process, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert process.poll() is None, process.communicate(timeout=60)
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _slow_folder(root: Path) -> Path:
    """Three classes, 10 training images each, every one a 1000x1000 noise PNG (hard links)."""
    make_folder(root, classes=3, train=1, val=2)
    rng = np.random.default_rng(0)
    for k in range(3):
        folder = root / "train" / f"class{k}"
        noise = rng.integers(0, 256, (1000, 1000, 3), dtype=np.uint8)
        noise[300:700, 300:700] = (60 + 60 * k, 200 - 60 * k, 120)
        Image.fromarray(noise).save(folder / "big.png", compress_level=1)
        for i in range(9):
            os.link(folder / "big.png", folder / f"big{i:02d}.png")
    return root


def test_a_checkpoint_written_while_the_writer_is_killed_is_old_or_new_never_torn(tmp_path):
    writer = textwrap.dedent(f"""
        import itertools, torch
        from netdsl.runner import checkpoint
        for i in itertools.count():
            checkpoint.save({{"model": {{"w": torch.full((3_000_000,), float(i))}}, "i": i}},
                            {str(tmp_path / "checkpoint.pt")!r})
    """)
    target = tmp_path / "checkpoint.pt"
    for delay in (0.3, 0.75):
        process = subprocess.Popen([sys.executable, "-c", writer], env=_env())
        _wait_for(target.exists, process)
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
        state = torch.load(target, weights_only=True)
        assert torch.equal(state["model"]["w"], torch.full((3_000_000,), float(state["i"])))
        target.unlink()


def test_a_run_killed_mid_epoch_resumes_to_the_uninterrupted_weights(tmp_path):
    folder = _slow_folder(tmp_path / "data")
    net = tiny_net(tmp_path)
    run = tmp_path / "run"
    argv = ["train", str(net), "--data", str(folder), "--out", str(run), "--epochs", "3"]
    process = subprocess.Popen([sys.executable, "-m", "netdsl", *argv, "--workers", "1"],
                               env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _wait_for((run / "checkpoint.pt").exists, process)
    first = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    time.sleep(0.4 * 30 / first["images_per_s"])  # 40% into epoch 2's 30 training images
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)

    state = torch.load(run / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 1, "the kill did not land in epoch 2"
    resumed = subprocess.run([sys.executable, "-m", "netdsl", *argv, "--workers", "1", "--resume"],
                             env=_env(), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "epoch 2/3" in resumed.stdout and "epoch 1/3" not in resumed.stdout
    assert not list(run.glob("*.tmp"))

    whole = tmp_path / "whole"
    assert cli.main(["train", str(net), "--data", str(folder), "--out", str(whole), "--epochs", "3",
                     "--workers", "0"]) == 0
    a = torch.load(run / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(whole / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (run / "metrics.jsonl").read_text().count("\n") == 3
