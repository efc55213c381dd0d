"""`netdsl train` held against a hand-written PyTorch loop of the paper's update and schedules.

    nice python3 -m pytest -q tests/test_runner_reference.py

Each test trains one tiny network (3x8x8 -> conv 3x3 -> relu -> maxpool 2/2 -> fc -> softmax,
no dropout) twice from the same initial weights on the same batches: once through the real
command, `netdsl.cli.main(["train", ...])`, on a PNG image folder written here, and once
through a loop written in this file from the definitions alone, with plain torch ops (no
netdsl.runner.optim, no netdsl.runner.train.Schedule, no netdsl forward pass):

- `sgd`, the paper's rule (Krizhevsky et al. 2012, section 5), weight decay on weights only:
      v <- mu v - wd lr w - lr g,   w <- w + v          (biases: wd = 0)
- `nesterov`, the look-ahead point u = w + mu v held as the parameters, g the gradient at u:
      v <- mu v - lr (g + wd u),    u <- u + mu v - lr (g + wd u)
- `step(g)`: lr0 * g^(epoch - 1) in epoch `epoch`;
- `plateau` (patience P): lr / 10 once the validation top-1 error, having improved at least
  once after the first epoch, has not improved for P epochs (then P more before the next cut),
  the error computed here with model.eval() and an argmax over the logits.

g is the gradient of the batch-mean cross-entropy (the last batch of an epoch is short: 30
images, batch 4). Every final parameter, the per-epoch lr of metrics.jsonl and (plateau) the
per-epoch val_top1_err must agree; step(g) and plateau cross lr changes, where a velocity
that does not carry lr inside it (torch.optim.SGD's v = mu v + g; w -= lr v) diverges.
test_a_wrong_hand_rule_does_not_match_the_runner shows the comparison is sensitive: the hand
loop with torch.optim.SGD's convention across the step schedule's lr changes, with weight decay
on the biases too, or with the plain update for a nesterov run, does NOT match the runner.
(The plateau runs use a small lr, 3e-5, so that the validation error first improves and then
stalls; there bias decay would stay under the tolerance, so the step runs, at lr 3e-3, are the
ones that pin decay to weights only.)

Augmentation is a no-op ([train] flip = no, lighting = 0, mean = none, resize = the input
size, so the crop is the whole image); the sample order is the runner's data contract, taken
from netdsl.runner.data.EpochSampler (same seed, batch, set_epoch), not under test here. The images
are read here with Pillow. The initial weights are netdsl's (torch.manual_seed(SEED) then
netdsl.compile_net, as the runner's _setup does), copied into a plain nn.Module.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

import netdsl
from netdsl import cli
from netdsl.runner import data
from test_data import make_folder

SEED = 7
BATCH = 4
MU, WD = 0.9, 0.0005
CLASSES, TRAIN_PER_CLASS, VAL_PER_CLASS = 3, 10, 4

NET = """
[net]
name = ref
[data]
type = data
shape = 3x8x8
[conv1]
type = conv
filters = 4
size = 3
neuron = relu
bias = 0.5
[pool1]
type = maxpool
size = 2
stride = 2
[fc2]
type = fc
outputs = {classes}
bias = 0.5
[prob]
type = softmax
[train]
batch = {batch}
epochs = {epochs}
optimizer = {optimizer}
lr = {lr}
momentum = {mu}
weight_decay = {wd}
schedule = {schedule}
patience = {patience}
resize = 8
flip = no
lighting = 0
mean = none
test = center
"""

# Float32 tolerance of the comparison. The two sides run the same torch kernels on the same
# batches and differ only in rounding: the runner sums the per-image losses and scales by
# 1 / images where the hand loop takes F.cross_entropy's mean; it forms -lr (g + wd w) and
# adds mu v and that to w in two steps where the hand loop adds mu v - wd lr w - lr g in one.
# That is at most an ulp or two a step: over 40 steps a 0.5 bias can drift by 40 x 2 half-ulps
# (~2.4e-6), and the largest difference measured was 3.6e-7 on such a bias (Nesterov, plateau)
# and ~6e-8 on a weight, at most 0.06 of the tolerance below (|d| <= atol + rtol |w|). Every
# wrong rule tried misses by far more: decayed biases by ~17x the tolerance, torch.optim.SGD's
# velocity across the step schedule's lr changes by ~10^4 x, the sgd rule for a nesterov run by
# ~10^5 x (test_a_wrong_hand_rule_does_not_match_the_runner asserts that they miss).
RTOL, ATOL = 1e-5, 1e-6


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread while this file runs (the previous count comes back after): on these
    8x8 tensors threads only cost, 10x here on two busy cores. Both sides run in this process
    under the same setting, so it changes nothing they compute alike."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---------------------------------------------------------------- the runner's side

@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """train/class{k}/{i}.png (10 a class) and val/class{k}/{i}.png (4 a class), 8 x 8 RGB."""
    return make_folder(tmp_path_factory.mktemp("data"), classes=CLASSES, train=TRAIN_PER_CLASS,
                       val=VAL_PER_CLASS, size=(8, 8))


def write_net(path: Path, *, optimizer: str, schedule: str, lr: float, epochs: int,
              patience: int = 1) -> Path:
    path.write_text(NET.format(classes=CLASSES, batch=BATCH, epochs=epochs, optimizer=optimizer,
                               lr=lr, mu=MU, wd=WD, schedule=schedule, patience=patience))
    return path


def train_with_netdsl(net: Path, folder: Path, out: Path) -> tuple[dict, list[dict]]:
    """The final weights (RUN/checkpoint.pt) and the metrics.jsonl records of `netdsl train`."""
    argv = ["train", str(net), "--data", str(folder), "--out", str(out), "--workers", "0",
            "--seed", str(SEED), "--devices", "cpu"]
    assert cli.main(argv) == 0
    weights = torch.load(out / "checkpoint.pt", weights_only=True)["model"]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return weights, records


@pytest.fixture(scope="module")
def runs(tmp_path_factory, folder):
    """run(optimizer, schedule, lr, epochs) -> (net path, final weights, records), each run once."""
    done = {}

    def run(optimizer: str, schedule: str, lr: float, epochs: int):
        key = (optimizer, schedule, lr, epochs)
        if key not in done:
            root = tmp_path_factory.mktemp(f"{optimizer}-{schedule.split('(')[0]}")
            net = write_net(root / "ref.net", optimizer=optimizer, schedule=schedule, lr=lr,
                            epochs=epochs)
            done[key] = (net, *train_with_netdsl(net, folder, root / "run"))
        return done[key]

    return run


# ---------------------------------------------------------------- the hand-written side

class Plain(nn.Module):
    """The .net above in plain PyTorch; its state_dict keys are the compiled network's."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, kernel_size=3)
        self.fc2 = nn.Linear(4 * 3 * 3, CLASSES)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), kernel_size=2, stride=2)
        return self.fc2(x.flatten(1))


def read_split(folder: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """N x 3 x 8 x 8 raw 0..255 float32 images and their labels; classes sorted by name, files
    sorted within a class (the layout docs/training.md documents)."""
    images, labels = [], []
    classes = sorted(p.name for p in (folder / "train").iterdir() if p.is_dir())
    for label, name in enumerate(classes):
        for path in sorted((folder / split / name).iterdir()):
            with Image.open(path) as image:
                images.append(np.asarray(image.convert("RGB"), dtype=np.float32).transpose(2, 0, 1))
            labels.append(label)
    return torch.from_numpy(np.stack(images)), torch.tensor(labels)


def initial_model(net: Path) -> Plain:
    """netdsl's initial weights for SEED, as the runner draws them, in the plain module."""
    torch.manual_seed(SEED)
    initial = netdsl.compile_net(netdsl.parse_file(net)).state_dict()
    model = Plain()  # its own default initialisation draws from torch's generator: after
    model.load_state_dict(initial)
    return model


@torch.no_grad()
def val_top1_err(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    wrong = int((model(x).argmax(1) != y).sum())
    return wrong / len(y)


def hand_train(net: Path, folder: Path, *, optimizer: str, schedule: str, lr: float, epochs: int,
               gamma: float = 0.5, patience: int = 1, rule: str = "paper",
               decay_biases: bool = False):
    """The hand-written loop: (final state_dict, lr per epoch, val top-1 error per epoch).

    rule "paper": the definitions in the module docstring; "torch": torch.optim.SGD's
    v = mu v + (g + wd w), w -= lr v (a deliberately wrong rule, for the sensitivity tests).
    """
    model = initial_model(net)
    x_train, y_train = read_split(folder, "train")
    x_val, y_val = read_split(folder, "val")
    sampler = data.EpochSampler(len(y_train), SEED, BATCH)
    velocity = {name: torch.zeros_like(p) for name, p in model.named_parameters()}
    lr0, lrs, errs = lr, [], []
    best, improved_once, bad_epochs = math.inf, False, 0
    for epoch in range(1, epochs + 1):
        if schedule == "step":
            lr = lr0 * gamma ** (epoch - 1)
        lrs.append(lr)
        sampler.set_epoch(epoch)
        order = [index for _, index in sampler]
        model.train()
        for start in range(0, len(order), BATCH):
            batch = order[start:start + BATCH]
            loss = F.cross_entropy(model(x_train[batch]), y_train[batch])   # the batch mean
            grads = torch.autograd.grad(loss, list(model.parameters()))
            with torch.no_grad():
                for (name, w), g in zip(model.named_parameters(), grads):
                    wd = WD if name.endswith("weight") or decay_biases else 0.0
                    v = velocity[name]
                    if rule == "torch":
                        v = MU * v + (g + wd * w)
                        w -= lr * v
                    elif optimizer == "sgd":
                        v = MU * v - wd * lr * w - lr * g
                        w += v
                    else:  # nesterov: w holds the look-ahead point u, g is the gradient there
                        d = g + wd * w
                        v = MU * v - lr * d
                        w += MU * v - lr * d
                    velocity[name] = v
        err = val_top1_err(model, x_val, y_val)
        errs.append(err)
        if schedule == "plateau":
            if err < best:
                improved_once = improved_once or best < math.inf
                best, bad_epochs = err, 0
            elif improved_once:
                bad_epochs += 1
            if bad_epochs >= patience:
                lr, bad_epochs = lr / 10, 0
    return model.state_dict(), lrs, errs


def assert_same_weights(runner: dict, hand: dict) -> None:
    assert set(runner) == set(hand)
    for name in runner:
        torch.testing.assert_close(runner[name], hand[name], rtol=RTOL, atol=ATOL,
                                   msg=lambda m, name=name: f"{name}: {m}")


# ---------------------------------------------------------------- the tests

STEP_GAMMA, STEP_LR, STEP_EPOCHS = 0.5, 0.003, 4          # 4 x 8 = 32 steps, 3 lr changes
PLATEAU_LR, PLATEAU_EPOCHS = 3e-5, 5                      # 40 steps


def step_run(runs, optimizer):
    return runs(optimizer, f"step({STEP_GAMMA})", STEP_LR, STEP_EPOCHS)


def plateau_run(runs, optimizer):
    return runs(optimizer, "plateau", PLATEAU_LR, PLATEAU_EPOCHS)


@pytest.mark.parametrize("optimizer", ["sgd", "nesterov"])
def test_step_schedule_runs_the_hand_written_update(runs, folder, optimizer):
    net, weights, records = step_run(runs, optimizer)
    hand, lrs, errs = hand_train(net, folder, optimizer=optimizer, schedule="step", lr=STEP_LR,
                                 epochs=STEP_EPOCHS, gamma=STEP_GAMMA)
    assert [r["epoch"] for r in records] == list(range(1, STEP_EPOCHS + 1))
    # the lr an epoch trained with: lr0 * g^(epoch - 1)
    assert [r["lr"] for r in records] == pytest.approx(lrs, rel=1e-12)
    assert lrs == pytest.approx([STEP_LR * STEP_GAMMA ** e for e in range(STEP_EPOCHS)], rel=1e-12)
    assert [r["val_top1_err"] for r in records] == errs
    assert_same_weights(weights, hand)


@pytest.mark.parametrize("optimizer", ["sgd", "nesterov"])
def test_plateau_schedule_cuts_lr_where_the_hand_computed_val_error_says(runs, folder, optimizer):
    net, weights, records = plateau_run(runs, optimizer)
    hand, lrs, errs = hand_train(net, folder, optimizer=optimizer, schedule="plateau",
                                 lr=PLATEAU_LR, epochs=PLATEAU_EPOCHS, patience=1)
    # the run is built to cross a cut: the error improves after epoch 1 and then stalls
    assert errs[0] > min(errs[1:]), errs
    cuts = [e for e in range(1, PLATEAU_EPOCHS) if lrs[e] < lrs[e - 1]]
    assert cuts, (lrs, errs)
    assert [r["val_top1_err"] for r in records] == errs
    runner_lrs = [r["lr"] for r in records]
    assert runner_lrs == pytest.approx(lrs, rel=1e-12)
    assert all(runner_lrs[e] == pytest.approx(runner_lrs[e - 1] / 10, rel=1e-12) for e in cuts)
    assert_same_weights(weights, hand)


@pytest.mark.parametrize("run, wrong", [
    ("sgd", dict(rule="torch")),           # torch.optim.SGD's v = mu v + g; w -= lr v
    ("sgd", dict(decay_biases=True)),      # weight decay on the biases too
    ("nesterov", dict(optimizer="sgd")),   # the plain update where Nesterov's was asked for
])
def test_a_wrong_hand_rule_does_not_match_the_runner(runs, folder, run, wrong):
    """The comparison above is sensitive: each of these rules misses the runner's weights."""
    net, weights, _ = step_run(runs, run)
    settings = dict(optimizer=run, schedule="step", lr=STEP_LR, epochs=STEP_EPOCHS,
                    gamma=STEP_GAMMA) | wrong
    hand, _, _ = hand_train(net, folder, **settings)
    with pytest.raises(AssertionError):
        assert_same_weights(weights, hand)
