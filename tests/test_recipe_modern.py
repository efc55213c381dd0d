"""The recipe keys of later networks: `optimizer = adam | adamw` with `betas` and `eps`,
`schedule = cosine`, `warmup`, `label_smoothing` and a fixed `mean = 104, 117, 123`.

    pytest tests/test_recipe_modern.py

Each key as the checker reads it and refuses it (one positioned line, as tests/test_errors.py's
corpus), as `netdsl diff` and `compile` write it; Adam's and AdamW's steps against torch's own
optimizers on a copy of the model; the warm-up and cosine lr against the formulas and against
torchvision's LinearLR + CosineAnnealingLR; the smoothed loss against one written by hand; the
fixed mean in the pixels; and an adam + cosine run stopped mid-way and resumed, equal to the bit
to one never stopped (tiny data, a few seconds).
"""
from __future__ import annotations

import copy
import dataclasses
import json
import math
import signal

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import netdsl
from netdsl import NetError
from netdsl.cli import main
from netdsl.devices.placement import load_optimizer_state, optimizer_state
from netdsl.language.values import written
from netdsl.runner import data, train
from netdsl.runner.optim import PaperSGD, get_lr, make_optimizer, set_lr
from netdsl.runner.train import Schedule, train_loss
from faultmatrix import same_training
from test_data import make_folder
from test_runner_signals import sigterm_at

NET = """[data]
type  = data
shape = {c}x12x12
[conv1]
type       = conv
filters    = 2
size       = 3
stride     = 2
lr_mult    = 0, 1
[fc2]
type       = fc
outputs    = 3
bias       = 0.25
lr_mult    = 1, 2
decay_mult = 1, 1
[prob]
type = {output}
[train]
"""
TRAIN_LINE = NET.count("\n") + 1  # the first line of the [train] keys


def net(train: str = "", c: int = 3, output: str = "softmax") -> netdsl.Net:
    return netdsl.parse_string(NET.format(c=c, output=output) + train)


# ---------------------------------------------------------------- the checker

def test_each_key_is_read_with_its_default():
    t = net().train
    assert (t.optimizer, t.betas, t.eps, t.warmup, t.label_smoothing, t.mean) == ("sgd", (0.9, 0.999), 1e-8, 0,
                                                                                   0.0, "image")
    t = net("optimizer = adamw\nbetas = 0.8, 0.95\neps = 1e-6\nschedule = cosine\nwarmup = 5\n"
            "label_smoothing = 0.1\nmean = 104, 117, 123").train
    assert (t.optimizer, t.betas, t.eps, t.schedule, t.warmup, t.label_smoothing, t.mean) == (
        "adamw", (0.8, 0.95), 1e-6, "cosine", 5, 0.1, (104.0, 117.0, 123.0))
    assert net("optimizer = adam").train.optimizer == "adam"
    assert net("mean = 117", c=1).train.mean == (117.0,)
    assert net("mean = 1, 2, 3, 4, 5", c=5).train.mean == (1.0, 2.0, 3.0, 4.0, 5.0)


# (the [train] lines, the line of the fault counted from [train]'s first key, its column, a phrase)
REFUSED = {
    "betas_beside_sgd": ("betas = 0.9, 0.99", 0, 1,
                         "`betas` is a setting of adam and adamw; optimizer `sgd` does not use it"),
    "eps_beside_nesterov": ("optimizer = nesterov\neps = 1e-6", 1, 1,
                            "`eps` is a setting of adam and adamw; optimizer `nesterov` does not use it"),
    "momentum_beside_adam": ("optimizer = adam\nmomentum = 0.9", 1, 1,
                             "`momentum` is a setting of sgd and nesterov; optimizer `adam` does not use it; "
                             "Adam's own are `betas`"),
    "optimizer_misspelt": ("optimizer = adma", 0, 13, "(did you mean `adam`?)"),
    "betas_one_number": ("optimizer = adam\nbetas = 0.9", 1, 9, "expected two numbers `b1, b2` (as 0.9, 0.999)"),
    "betas_of_one": ("optimizer = adam\nbetas = 0.9, 1", 1, 14, "expected a number at least 0 and below 1, got 1"),
    "eps_zero": ("optimizer = adamw\neps = 0", 1, 7, "expected a number above 0, got 0"),
    "gamma_beside_cosine": ("schedule = cosine\ngamma = 0.5", 1, 1,
                            "`gamma` is the factor of `multistep`; schedule `cosine` does not use it"),
    "cosine_with_arguments": ("schedule = cosine(10)", 0, 12, "`cosine` takes nothing"),
    "schedule_misspelt": ("schedule = cosin", 0, 12, "(did you mean `cosine`?)"),
    "warmup_negative": ("warmup = -1", 0, 10, "expected an integer at least 0, got -1"),
    "warmup_fractional": ("warmup = 2.5", 0, 10, "expected an integer, got `2.5`"),
    "warmup_whole_run": ("epochs = 5\nwarmup = 5", 1, 10,
                         "a warm-up of 5 epochs leaves none of the 5 to train at the full lr"),
    "milestone_in_warmup": ("epochs = 20\nwarmup = 5\nschedule = multistep(5, 10)", 2, 22,
                            "milestone 5 falls in the warm-up (epochs 1 to 5)"),
    "label_smoothing_of_one": ("label_smoothing = 1", 0, 19, "expected a number at least 0 and below 1, got 1"),
    "label_smoothing_negative": ("label_smoothing = -0.1", 0, 19, "at least 0"),
    "mean_count": ("mean = 104, 117", 0, 8, "`mean` gives 2 values but the data layer has 3 channels"),
    "mean_beyond_255": ("mean = 104, 300, 123", 0, 13, "expected a number at least 0 and at most 255, got 300"),
    "mean_misspelt": ("mean = imag", 0, 8, "(did you mean `image`?)"),
    "mean_mixed": ("mean = 104, image, 123", 0, 8, "expected `image`, `channel`, `none` or one number a channel"),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_a_bad_key_exits_2_pointing_at_the_fault(name, tmp_path, capsys):
    lines, offset, col, phrase = REFUSED[name]
    path = tmp_path / f"{name}.net"
    path.write_text(NET.format(c=3, output="softmax") + lines + "\n")
    assert main(["compile", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1, err
    assert err.startswith(f"{path}:{TRAIN_LINE + offset}:{col}: error: "), err
    assert phrase in err, err


def test_label_smoothing_beside_a_sigmoid_output_is_refused_and_a_one_channel_mean_counts_one(tmp_path, capsys):
    with pytest.raises(NetError) as err:
        net("label_smoothing = 0.1", output="sigmoid")
    assert (err.value.line, err.value.col) == (TRAIN_LINE, 1)
    assert "a `sigmoid` output trains with binary cross-entropy, which has none" in err.value.message
    with pytest.raises(NetError) as err:
        net("mean = 104, 117, 123", c=1)
    assert "`mean` gives 3 values but the data layer has 1 channel: one a channel" in err.value.message


# ---------------------------------------------------------------- written back: compile, diff, resume

def test_the_recipe_writes_the_new_keys_back_in_the_files_terms():
    adam = net("optimizer = adamw\nbetas = 0.9, 0.95\nschedule = cosine\nwarmup = 2\nlabel_smoothing = 0.1\n"
               "mean = 104, 117, 123").train
    keys = adam.written()
    assert "momentum" not in keys and (keys["betas"], keys["eps"]) == ((0.9, 0.95), 1e-8)
    assert (keys["schedule"], keys["warmup"], keys["label_smoothing"]) == ("cosine", 2, 0.1)
    # read back from what it writes, the same recipe
    text = "\n".join(f"{key} = {written(value)}" for key, value in keys.items())
    assert net(text).train == adam
    # sgd without the new keys writes what it always has
    assert list(net().train.written()) == ["batch", "epochs", "optimizer", "lr", "momentum", "weight_decay",
                                           "schedule", "patience", "resize", "flip", "lighting", "mean", "scale",
                                           "test", "precision"]


def test_diff_shows_a_change_in_each_new_key(tmp_path, capsys):
    a, b = tmp_path / "a.net", tmp_path / "b.net"
    a.write_text(NET.format(c=3, output="softmax") + "[net]\nname = same\n")
    b.write_text(NET.format(c=3, output="softmax") + "optimizer = adamw\nbetas = 0.9, 0.95\neps = 1e-6\n"
                 "label_smoothing = 0.1\nschedule = cosine\nwarmup = 3\nmean = 104, 117, 123\n[net]\nname = same\n")
    assert main(["diff", str(a), str(b)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "the two networks are the same",
        "recipe: optimizer sgd -> adamw",
        "recipe: - momentum = 0.9",
        "recipe: + betas = 0.9, 0.95",
        "recipe: + eps = 1e-06",
        "recipe: + label_smoothing = 0.1",
        "recipe: schedule plateau -> cosine",
        "recipe: - patience = 2",
        "recipe: + warmup = 3",
        "recipe: mean image -> 104, 117, 123",
    ]


# ---------------------------------------------------------------- adam and adamw against torch's own

def _batch(seed=3):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(6, 3, 12, 12, generator=generator), torch.tensor([0, 1, 2, 1, 0, 2])


@pytest.mark.parametrize("kind, torch_class", [("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW)])
def test_adam_steps_equal_torchs_optimizer_on_a_copy_with_lr_times_lr_mult(kind, torch_class):
    """Five steps, lr halved after the second through set_lr: every tensor to the bit, conv1's
    weight (lr_mult 0) untouched, fc2's bias at twice the rate and decayed (decay_mult 1)."""
    the_net = net(f"optimizer = {kind}\nlr = 0.01\nweight_decay = 0.1\nbetas = 0.8, 0.99\neps = 1e-6")
    torch.manual_seed(0)
    model = netdsl.compile_net(the_net, backend="torch")
    copied = copy.deepcopy(model)
    initial = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = make_optimizer(model, the_net, the_net.train)
    assert isinstance(optimizer, torch_class) and not isinstance(optimizer, PaperSGD)
    lr_mult = {"conv1.weight": 0.0, "conv1.bias": 1.0, "fc2.weight": 1.0, "fc2.bias": 2.0}
    decay_mult = {"conv1.weight": 1.0, "conv1.bias": 0.0, "fc2.weight": 1.0, "fc2.bias": 1.0}
    by_hand = torch_class([{"params": [p], "lr": 0.01 * lr_mult[name], "weight_decay": 0.1 * decay_mult[name]}
                           for name, p in copied.named_parameters()], betas=(0.8, 0.99), eps=1e-6)
    x, y = _batch()
    for step in range(5):
        for m, opt in ((model, optimizer), (copied, by_hand)):
            opt.zero_grad()
            F.cross_entropy(m(x), y).backward()
            opt.step()
        if step == 1:
            set_lr(optimizer, get_lr(optimizer) / 2)
            for group, (name, _) in zip(by_hand.param_groups, copied.named_parameters()):
                group["lr"] = 0.005 * lr_mult[name]
    assert get_lr(optimizer) == 0.005
    mine, theirs = dict(model.named_parameters()), dict(copied.named_parameters())
    for name in mine:
        assert torch.equal(mine[name], theirs[name]), name
    assert torch.equal(mine["conv1.weight"], initial["conv1.weight"])
    assert not torch.equal(mine["fc2.bias"], initial["fc2.bias"])
    for p, q in zip(model.parameters(), copied.parameters()):
        assert all(torch.equal(optimizer.state[p][k], by_hand.state[q][k]) for k in ("step", "exp_avg", "exp_avg_sq"))


def test_adamw_decay_is_decoupled_and_adam_adds_it_to_the_gradient():
    """One step from zero moments: Adam's first step is -lr * sign-like (g + wd w) / ..., AdamW's
    multiplies w by 1 - lr*wd first; the two differ exactly there."""
    results = {}
    for kind in ("adam", "adamw"):
        the_net = net(f"optimizer = {kind}\nlr = 0.01\nweight_decay = 0.5")
        torch.manual_seed(0)
        model = netdsl.compile_net(the_net, backend="torch")
        w0 = model.fc2.weight.detach().clone()
        optimizer = make_optimizer(model, the_net, the_net.train)
        x, y = _batch()
        F.cross_entropy(model(x), y).backward()
        g = model.fc2.weight.grad.clone()
        optimizer.step()
        results[kind] = (w0, g, model.fc2.weight.detach())
    w0, g, w = results["adamw"]
    m, v = 0.1 * g, 0.001 * g * g
    expected = w0 * (1 - 0.01 * 0.5) - 0.01 * (m / 0.1) / ((v / 0.001).sqrt() + 1e-8)
    assert torch.allclose(w, expected, rtol=1e-5, atol=1e-7)
    w0, g, w = results["adam"]
    g = g + 0.5 * w0
    m, v = 0.1 * g, 0.001 * g * g
    assert torch.allclose(w, w0 - 0.01 * (m / 0.1) / ((v / 0.001).sqrt() + 1e-8), rtol=1e-5, atol=1e-7)


def test_adams_state_moves_between_placements_and_resumes_equal():
    """exp_avg and exp_avg_sq are shaped like their tensor and step is a scalar: a split model's
    state moves to a fused one, and a fused optimizer restored from it steps exactly as the
    original goes on."""
    two_groups = (NET.format(c=3, output="softmax").replace("[data]", "[net]\ngroups = 2\n[data]")
                  .replace("outputs    = 3", "outputs    = 4") + "optimizer = adam\n")
    the_net = netdsl.parse_string(two_groups)
    split = netdsl.compile_net(the_net, backend="torch", devices=["cpu", "cpu"])
    split_optimizer = make_optimizer(split, the_net, the_net.train)
    x, y = _batch()
    F.cross_entropy(split(x), torch.tensor([0, 1, 2, 3, 0, 2])).backward()
    split_optimizer.step()
    saved = copy.deepcopy(optimizer_state(split, split_optimizer))
    fused = netdsl.compile_net(the_net, backend="torch")
    fused.load_state_dict(split.state_dict())
    fused_optimizer = make_optimizer(fused, the_net, the_net.train)
    load_optimizer_state(fused, fused_optimizer, saved)
    for name, param in fused.named_parameters():
        state = fused_optimizer.state[param]
        assert state["step"].dim() == 0 and state["step"].item() == 1.0
        assert all(torch.equal(state[k], saved["state"][name][k]) for k in ("exp_avg", "exp_avg_sq")), name
    assert [g["lr"] for g in fused_optimizer.param_groups] == [0.0, 0.01, 0.01, 0.02]
    # a copy of the fused pair, restored from its own saved state, steps to the same bits
    again = copy.deepcopy(fused)
    again_optimizer = make_optimizer(again, the_net, the_net.train)
    load_optimizer_state(again, again_optimizer, copy.deepcopy(optimizer_state(fused, fused_optimizer)))
    for m, opt in ((fused, fused_optimizer), (again, again_optimizer)):
        opt.zero_grad()
        F.cross_entropy(m(x), torch.tensor([0, 1, 2, 3, 0, 2])).backward()
        opt.step()
    assert all(torch.equal(p, q) for p, q in zip(fused.parameters(), again.parameters()))


def test_a_split_adam_restored_counts_each_step_once():
    two_groups = (NET.format(c=3, output="softmax").replace("[data]", "[net]\ngroups = 2\n[data]")
                  .replace("outputs    = 3", "outputs    = 4") + "optimizer = adam\n")
    the_net = netdsl.parse_string(two_groups)
    split = netdsl.compile_net(the_net, backend="torch", devices=["cpu", "cpu"])
    optimizer = make_optimizer(split, the_net, the_net.train)
    x, y = _batch()
    F.cross_entropy(split(x), torch.tensor([0, 1, 2, 3, 0, 2])).backward()
    optimizer.step()
    restored = make_optimizer(split, the_net, the_net.train)
    load_optimizer_state(split, restored, copy.deepcopy(optimizer_state(split, optimizer)))
    restored.step()
    assert all(restored.state[p]["step"].item() == 2.0 for g in restored.param_groups for p in g["params"])


# ---------------------------------------------------------------- cosine and warm-up

def _lrs(config, epochs=None) -> list[float]:
    """The lr each epoch trains at, as the runner steps the schedule."""
    schedule = Schedule.of(config)
    lrs = [schedule.first_lr]
    for epoch in range(1, (epochs or config.epochs)):
        lrs.append(schedule.after_epoch(epoch, lrs[-1], 0.5)[0])
    return lrs


def test_cosine_with_warmup_follows_the_formula_and_torchvisions_schedulers():
    E, N, LR = 12, 3, 0.1
    config = net(f"epochs = {E}\nlr = {LR}\nschedule = cosine\nwarmup = {N}").train
    expected = [LR * (0.01 + 0.99 * (e - 1) / N) if e <= N else LR * (1 + math.cos(math.pi * (e - 1 - N) / (E - N))) / 2
                for e in range(1, E + 1)]
    got = _lrs(config)
    assert got == pytest.approx(expected, rel=1e-12, abs=0)
    assert got[N] == LR  # the first epoch after the warm-up trains at lr itself
    # torchvision's references/classification/train.py: LinearLR(start_factor=0.01) then
    # CosineAnnealingLR(T_max=epochs - warmup), chained by SequentialLR, stepped after each epoch
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=LR)
    scheduler = torch.optim.lr_scheduler.SequentialLR(opt, [
        torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.01, total_iters=N),
        torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=E - N)], milestones=[N])
    theirs = []
    for _ in range(E):
        theirs.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    assert got == pytest.approx(theirs, rel=1e-12, abs=1e-15)


def test_cosine_without_warmup_is_cosine_annealing_from_lr():
    config = net("epochs = 4\nlr = 0.2\nschedule = cosine").train
    assert _lrs(config) == pytest.approx([0.2, 0.2 * (1 + math.cos(math.pi / 4)) / 2, 0.1,
                                          0.2 * (1 + math.cos(3 * math.pi / 4)) / 2], rel=1e-15)


@pytest.mark.parametrize("schedule, warmup, expected", [
    ("step(0.5)", 2, [0.01, 0.505, 1, 0.5, 0.25, 0.125]),          # step counts from epoch N + 1
    ("multistep(4)", 2, [0.01, 0.505, 1, 1, 0.1, 0.1]),              # milestones are the run's epochs
    ("none", 2, [0.01, 0.505, 1, 1, 1, 1]),
    # epoch 3 is worse than 2, but inside the warm-up: two bad epochs after it, 4 and 5, cut lr
    ("plateau", 3, [0.01, 0.01 + 0.99 / 3, 0.01 + 0.99 * 2 / 3, 1, 1, 0.1]),
])
def test_warmup_comes_before_every_schedule(schedule, warmup, expected):
    config = net(f"epochs = 6\nlr = 1\nschedule = {schedule}\nwarmup = {warmup}").train
    steps = Schedule.of(config)
    lrs, errors = [steps.first_lr], [0.9, 0.5, 0.6, 0.6, 0.6, 0.6]   # improves once, then stalls
    for epoch in range(1, 6):
        lrs.append(steps.after_epoch(epoch, lrs[-1], errors[epoch - 1])[0])
    assert lrs == pytest.approx(expected, rel=1e-12)


def test_lr_on_resume_rescales_the_rest_of_a_warmup_or_cosine():
    config = net("epochs = 10\nlr = 0.1\nschedule = cosine\nwarmup = 2").train
    whole = _lrs(config)
    schedule = Schedule.of(config)
    lr = schedule.first_lr
    for epoch in range(1, 5):
        lr = schedule.after_epoch(epoch, lr, 0.5)[0]
    resumed = Schedule(**dataclasses.asdict(schedule))   # as a checkpoint restores it
    resumed.rebase(5, whole[4] * 3)                       # --lr: epoch 5 at three times its lr
    lrs = [whole[4] * 3]
    for epoch in range(5, 10):
        lrs.append(resumed.after_epoch(epoch, lrs[-1], 0.5)[0])
    assert lrs == pytest.approx([3 * x for x in whole[4:]], rel=1e-12)


# ---------------------------------------------------------------- label smoothing

def test_label_smoothing_is_the_smoothed_cross_entropy_by_hand():
    generator = torch.Generator().manual_seed(1)
    logits, y, e = torch.randn(5, 4, generator=generator), torch.tensor([0, 3, 1, 1, 2]), 0.1
    target = torch.full((5, 4), e / 4)
    target[torch.arange(5), y] += 1 - e                 # 1 - e + e/K on the class, e/K elsewhere
    by_hand = -(target * torch.log_softmax(logits.double(), 1).float()).sum()
    net = netdsl.parse_string("[data]\ntype = data\nshape = 4x1x1\n[fc]\ntype = fc\noutputs = 4\n"
                              "[prob]\ntype = softmax\n")
    assert torch.allclose(train_loss(net, logits, y, e), by_hand, rtol=1e-6)
    assert torch.equal(train_loss(net, logits, y), F.cross_entropy(logits, y, reduction="sum"))
    assert train_loss(net, logits, y, e) > train_loss(net, logits, y)


# ---------------------------------------------------------------- the fixed mean

def test_a_fixed_mean_is_subtracted_from_every_pixel_in_training_and_test(tmp_path):
    make_folder(tmp_path, classes=2, train=3, val=2, size=(12, 12))
    the_net = net("resize = 12\nflip = no\nlighting = 0\nmean = 104, 117, 123\nscale = 0.5")
    recipe = data.Recipe.of(the_net)
    assert recipe.mean == (104.0, 117.0, 123.0)
    train_folder, val = data.open_folders(tmp_path, recipe)
    stats = data.compute_stats(train_folder, recipe, 0, data.ProblemLog())
    assert stats.mean(recipe.mean).tolist() == [[[104.0, 117.0, 123.0]]]

    def pixels(path):
        return np.asarray(Image.open(path).convert("RGB"), np.float64)

    fixed = np.array([104.0, 117.0, 123.0])   # in the order read: R, G, B
    sample, _ = data.TrainSet(train_folder, recipe, stats, seed=0)[(1, 4)]
    np.testing.assert_allclose(sample.numpy(), ((pixels(train_folder.samples[4][0]) - fixed) * 0.5).transpose(2, 0, 1),
                               atol=1e-5)
    views, _ = data.EvalSet(val, recipe, stats.mean(recipe.mean), tencrop=False)[1]
    np.testing.assert_allclose(views[0].numpy(), ((pixels(val.samples[1][0]) - fixed) * 0.5).transpose(2, 0, 1),
                               atol=1e-5)


# ---------------------------------------------------------------- through the runner, stopped and resumed

RUN_NET = """[net]
name = modern
[data]
type = data
shape = 3x12x12
[conv1]
type = conv
filters = 4
size = 3
stride = 2
neuron = relu
[fc]
type = fc
outputs = 3
lr_mult = 1, 2
[prob]
type = softmax
[train]
batch = 8
epochs = 3
optimizer = adamw
lr = 0.002
weight_decay = 0.01
betas = 0.9, 0.99
schedule = cosine
warmup = 1
label_smoothing = 0.1
mean = 104, 117, 123
resize = 14
"""


def _argv(net_path, folder, run, *flags):
    return ["train", str(net_path), "--data", str(folder), "--out", str(run), "--workers", "0", *map(str, flags)]


def _records(run) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def modern(tmp_path_factory):
    """(data, net, the uninterrupted run, the smoothing each training loss was computed with)."""
    root = tmp_path_factory.mktemp("modern")
    folder = make_folder(root / "data")
    path = root / "modern.net"
    path.write_text(RUN_NET)
    smoothing = []
    real = train.train_loss

    def noted(logits, y, output_type, label_smoothing=0.0):
        smoothing.append(label_smoothing)
        return real(logits, y, output_type, label_smoothing)

    train.train_loss = noted
    try:
        assert main(_argv(path, folder, root / "whole")) == 0
    finally:
        train.train_loss = real
    return folder, path, root / "whole", smoothing


@pytest.fixture
def restore_signal_handlers():
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)


def test_the_run_trains_with_adamw_cosine_warmup_smoothing_and_the_fixed_mean(modern):
    _, _, whole, smoothing = modern
    assert smoothing and set(smoothing) == {0.1}
    lrs = [r["lr"] for r in _records(whole)]
    assert lrs == pytest.approx([0.002 * 0.01, 0.002, 0.002 * (1 + math.cos(math.pi / 2)) / 2], rel=1e-12)
    state = torch.load(whole / "checkpoint.pt", weights_only=True)
    assert state["mean"].tolist() == [[[104.0, 117.0, 123.0]]]
    assert state["config"]["optimizer"] == "adamw" and tuple(state["config"]["mean"]) == (104.0, 117.0, 123.0)
    groups = state["optimizer"]["param_groups"]
    assert all(g["lr"] == g["net_lr"] * g["lr_mult"] and g["weight_decay"] == 0.01 * g["decay_mult"] for g in groups)
    assert [g["lr_mult"] for g in groups] == [1.0, 1.0, 1.0, 2.0] and all(g["betas"] == (0.9, 0.99) for g in groups)
    assert all(set(s) == {"step", "exp_avg", "exp_avg_sq"} for s in state["optimizer"]["state"].values())


@pytest.mark.parametrize("epoch, step", [(2, 2), (1, None)], ids=["mid-epoch", "after-epoch-1"])
def test_an_adamw_cosine_run_stopped_and_resumed_equals_the_uninterrupted_one(
        modern, tmp_path, monkeypatch, capsys, restore_signal_handlers, epoch, step):
    folder, path, whole, _ = modern
    run = tmp_path / "run"
    sigterm_at(monkeypatch, epoch, step)
    assert main(_argv(path, folder, run)) == 143
    monkeypatch.undo()
    assert main(_argv(path, folder, run, "--resume")) == 0
    assert same_training(run, whole)   # weights, Adam's state and the schedule, to the bit
    deterministic = ("epoch", "train_loss", "val_loss", "val_top1_err", "lr", "best")
    assert ([{k: r[k] for k in deterministic} for r in _records(run)]
            == [{k: r[k] for k in deterministic} for r in _records(whole)])


def test_eval_subtracts_the_fixed_mean_the_checkpoint_holds(modern, capsys):
    folder, path, whole, _ = modern
    capsys.readouterr()
    assert main(["eval", str(path), "--checkpoint", str(whole / "checkpoint.pt"), "--data", str(folder),
                 "--workers", "0"]) == 0
    last = _records(whole)[-1]
    assert f"top-1 error {last['val_top1_err']:.2%}, top-5 error {last['val_top5_err']:.2%}" in capsys.readouterr().out


def test_a_resumed_run_keeps_its_checkpoints_optimizer(tmp_path, capsys):
    """An sgd run whose file now says adamw goes on with sgd and says so."""
    folder = make_folder(tmp_path / "data")
    path = tmp_path / "modern.net"
    sgd = RUN_NET.replace("optimizer = adamw\n", "").replace("betas = 0.9, 0.99\n", "")
    path.write_text(sgd)
    assert main(_argv(path, folder, tmp_path / "run", "--epochs", 1)) == 0
    path.write_text(RUN_NET)
    capsys.readouterr()
    assert main(_argv(path, folder, tmp_path / "run", "--epochs", 2, "--resume")) == 0
    out = capsys.readouterr().out
    assert f"{tmp_path / 'run'}: recipe: optimizer sgd -> adamw (not followed: a resumed run keeps its " \
           "checkpoint's optimizer)" in out
    assert f"{tmp_path / 'run'}: recipe: + betas = 0.9, 0.99 (not followed" in out
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert state["config"]["optimizer"] == "sgd"
    assert all(set(s) == {"velocity"} for s in state["optimizer"]["state"].values())


def test_a_cosine_run_resumed_for_more_epochs_keeps_its_length_and_says_so(tmp_path, capsys):
    folder = make_folder(tmp_path / "data")
    path = tmp_path / "modern.net"
    path.write_text(RUN_NET.replace("warmup = 1\n", ""))
    assert main(_argv(path, folder, tmp_path / "run", "--epochs", 2)) == 0
    capsys.readouterr()
    assert main(_argv(path, folder, tmp_path / "run", "--epochs", 3, "--resume")) == 0
    assert (f"warning: {tmp_path / 'run'}: the cosine schedule spans the 2 epochs the run began with; epochs 3 "
            "to 3 go on along it") in capsys.readouterr().err
    assert [r["lr"] for r in _records(tmp_path / "run")] == [0.002, 0.001, 0.0]
