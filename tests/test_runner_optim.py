"""The paper's SGD, its Nesterov form, the per-layer multipliers and the lr schedules, against
the formulas by hand.

    pytest tests/test_runner_optim.py
"""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

import netdsl
from netdsl.runner.optim import PaperSGD, get_lr, make_optimizer, set_lr
from netdsl.devices.placement import load_optimizer_state, optimizer_state
from netdsl.runner.train import Schedule

LR, MU, DECAY = 0.1, 0.9, 0.05


A = torch.tensor([[1.0, 2.0], [0.5, 3.0]])
B = torch.tensor([[0.3, -0.2], [0.1, 0.4]])


def _loss(w):
    """A quadratic with a known gradient: L = sum(A * w^2) / 2 + sum(B * w)."""
    return (A * w * w).sum() / 2 + (B * w).sum()


def grad(w):
    return A * w + B


def _run(optimizer_kind: str, steps: int, lr_at=lambda i: LR):
    w = torch.nn.Parameter(torch.tensor([[1.0, -1.0], [2.0, 0.5]]))
    bias = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = PaperSGD([{"params": [w]}, {"params": [bias], "decay_mult": 0.0}], lr=LR, momentum=MU,
                   weight_decay=DECAY, nesterov=optimizer_kind == "nesterov")
    for i in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(i)
        opt.zero_grad()
        (_loss(w) + (bias * bias).sum()).backward()
        opt.step()
    return w.detach(), bias.detach()


def test_sgd_is_the_paper_update_rule():
    w, v = torch.tensor([[1.0, -1.0], [2.0, 0.5]]), torch.zeros(2, 2)
    lrs = [LR, LR, LR / 10, LR / 10, LR / 10]     # lr lowered mid-way: v keeps its old steps
    for lr in lrs:
        v = MU * v - DECAY * lr * w - lr * grad(w)   # v := 0.9 v - 0.0005 e w - e <dL/dw>
        w = w + v
    got, _ = _run("sgd", 5, lambda i: lrs[i])
    assert torch.allclose(got, w, atol=1e-6)


def test_a_group_with_decay_mult_0_is_not_decayed():
    b, v = torch.tensor([1.0, -2.0]), torch.zeros(2)
    for _ in range(4):
        v = MU * v - LR * 2 * b                      # the gradient of sum(b^2), no decay term
        b = b + v
    _, got = _run("sgd", 4)
    assert torch.allclose(got, b, atol=1e-6)


def test_nesterov_follows_the_look_ahead_formula():
    """v = mu v - lr (grad + decay w) at w + mu v; w = w + v. The optimizer holds w + mu v."""
    w, v = torch.tensor([[1.0, -1.0], [2.0, 0.5]]), torch.zeros(2, 2)
    for _ in range(6):
        ahead = w + MU * v
        v = MU * v - LR * (grad(ahead) + DECAY * ahead)
        w = w + v
    got, _ = _run("nesterov", 6)
    assert torch.allclose(got, w + MU * v, atol=1e-5)


def test_the_optimizer_state_is_the_velocity():
    w = torch.nn.Parameter(torch.ones(2, 2))
    opt = PaperSGD([w], lr=LR, momentum=MU, weight_decay=0.0)
    w.grad = torch.full((2, 2), 2.0)
    opt.step()
    assert torch.equal(opt.state[w]["velocity"], torch.full((2, 2), -LR * 2.0))


def _plateau(errors, lr=0.01):
    """A patience-2 plateau schedule fed these validation errors: (it, each epoch's lr, the lr after)."""
    schedule, lrs = Schedule("plateau", 0.1, patience=2), []
    for epoch, err in enumerate(errors, 1):
        lrs.append(lr)
        lr, _ = schedule.after_epoch(epoch, lr, err)
    return schedule, lrs, lr


def test_plateau_divides_lr_after_patience_epochs_without_improvement():
    schedule, lrs, _ = _plateau([0.9, 0.8, 0.85, 0.8, 0.7, 0.75, 0.71, 0.72])
    assert lrs == pytest.approx([0.01, 0.01, 0.01, 0.01, 0.001, 0.001, 0.001, 0.0001])
    assert (schedule.best_err, schedule.best_epoch) == (0.7, 5)


def test_plateau_keeps_lr_while_the_error_has_never_moved_below_its_first_epoch():
    """Flat at chance is not 'stopped improving': the rate is cut only once it has improved."""
    schedule, lrs, lr = _plateau([0.9, 0.9, 0.9, 0.9, 0.6, 0.7, 0.65, 0.62])
    assert lrs == pytest.approx([0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.001])
    assert (schedule.best_epoch, lr) == (5, pytest.approx(0.001))


def test_step_multiplies_every_epoch_and_none_keeps_lr():
    step, none = Schedule("step", 0.5, 2), Schedule("none", 0.1, 2)
    assert step.after_epoch(1, 0.01, 0.5) == (0.005, True)
    assert step.after_epoch(2, 0.005, 0.6) == (0.0025, False)
    assert none.after_epoch(1, 0.01, 0.5)[0] == 0.01
    assert math.isinf(Schedule("none", 0.1, 2).best_err)


def test_multistep_cuts_lr_by_gamma_after_each_milestone():
    schedule = Schedule("multistep", 0.5, 2, milestones=(2, 4))
    lrs, lr = [], 1.0
    for epoch in range(1, 7):
        lrs.append(lr)
        lr, _ = schedule.after_epoch(epoch, lr, 0.5)
    assert lrs == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]   # epoch E + 1 trains at lr * gamma


def test_a_schedule_saved_before_multistep_resumes():
    """A checkpoint's schedule state from before milestones existed, as dataclasses.asdict wrote it."""
    old = {"kind": "plateau", "gamma": 0.1, "patience": 2, "best_err": 0.4, "best_epoch": 3,
           "bad_epochs": 1, "improving": True}
    schedule = Schedule(**old)
    assert schedule.milestones == () and schedule.after_epoch(4, 0.01, 0.5) == (pytest.approx(0.001), False)
    saved = dataclasses.asdict(Schedule("multistep", 0.1, 2, [3, 5]))
    assert Schedule(**saved).milestones == (3, 5)


# ---------------------------------------------------------------- multipliers, through the runner's optimizer

MULTIPLIED = """
[data]
type  = data
shape = 1x4x4
[conv1]
type       = conv
filters    = 2
size       = 3
bias       = 0.5
lr_mult    = 0, 1
[fc2]
type       = fc
outputs    = 3
bias       = 0.25
lr_mult    = 1, 2
decay_mult = 1, 1
[prob]
type = softmax
[train]
epochs       = 4
lr           = 0.1
momentum     = 0.9
weight_decay = 0.05
schedule     = multistep(2)
gamma        = 0.1
"""


def _batch():
    generator = torch.Generator().manual_seed(3)
    return torch.randn(5, 1, 4, 4, generator=generator), torch.tensor([0, 1, 2, 1, 0])


def _train_with_netdsl(net, epochs: int):
    """One step an epoch through make_optimizer and Schedule, as the runner drives them."""
    torch.manual_seed(0)
    model = netdsl.compile_net(net, backend="torch")
    initial = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer, schedule = make_optimizer(model, net, net.train), Schedule.of(net.train)
    x, y = _batch()
    for epoch in range(1, epochs + 1):
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
        set_lr(optimizer, schedule.after_epoch(epoch, get_lr(optimizer), 0.5)[0])
    return initial, {name: p.detach() for name, p in model.named_parameters()}, optimizer


def _hand_forward(p, x):
    return F.linear(F.conv2d(x, p["conv1.weight"], p["conv1.bias"]).flatten(1), p["fc2.weight"], p["fc2.bias"])


def test_lr_mult_decay_mult_and_multistep_change_the_update_exactly_as_defined():
    """v = mu v - lr lr_mult (g + wd decay_mult w), w = w + v, lr cut by gamma after epoch 2:
    conv1's weight frozen (lr_mult 0), fc2's bias at twice the rate and decayed."""
    net = netdsl.parse_string(MULTIPLIED)
    initial, got, _ = _train_with_netdsl(net, epochs=4)
    lr_mult = {"conv1.weight": 0.0, "conv1.bias": 1.0, "fc2.weight": 1.0, "fc2.bias": 2.0}
    decay_mult = {"conv1.weight": 1.0, "conv1.bias": 0.0, "fc2.weight": 1.0, "fc2.bias": 1.0}
    w = {name: t.clone().requires_grad_() for name, t in initial.items()}
    v = {name: torch.zeros_like(t) for name, t in initial.items()}
    x, y = _batch()
    for epoch in range(1, 5):
        lr = 0.1 if epoch <= 2 else 0.1 * 0.1      # multistep(2), gamma 0.1: epoch 3 on at lr * gamma
        grads = dict(zip(w, torch.autograd.grad(F.cross_entropy(_hand_forward(w, x), y), list(w.values()))))
        with torch.no_grad():
            for name in w:
                v[name] = 0.9 * v[name] - lr * lr_mult[name] * (grads[name] + 0.05 * decay_mult[name] * w[name])
                w[name] += v[name]
    assert torch.equal(got["conv1.weight"], initial["conv1.weight"])
    for name in w:
        assert torch.allclose(got[name], w[name], rtol=1e-5, atol=1e-6), name
    assert not torch.allclose(got["fc2.bias"], initial["fc2.bias"])


def test_the_default_multipliers_give_the_old_update():
    """No lr_mult or decay_mult in the file: every tensor at the network's lr, weight decay on
    the weights and not the biases (the rule was once `decay if w.dim() > 1`)."""
    text = "\n".join(line for line in MULTIPLIED.splitlines() if "_mult" not in line)
    text = text.replace("schedule     = multistep(2)\ngamma        = 0.1", "schedule     = none")
    net = netdsl.parse_string(text)
    for layer in ("conv1", "fc2"):
        assert net.layer(layer).options["lr_mult"] == (1.0, 1.0)
        assert net.layer(layer).options["decay_mult"] == (1.0, 0.0)
    initial, got, optimizer = _train_with_netdsl(net, epochs=3)
    for group in optimizer.param_groups:
        (param,) = group["params"]
        assert (group["lr_mult"], group["decay_mult"]) == (1.0, float(param.dim() > 1))
    w = {name: t.clone().requires_grad_() for name, t in initial.items()}
    v = {name: torch.zeros_like(t) for name, t in initial.items()}
    x, y = _batch()
    for _ in range(3):
        grads = dict(zip(w, torch.autograd.grad(F.cross_entropy(_hand_forward(w, x), y), list(w.values()))))
        with torch.no_grad():
            for name in w:
                decay = 0.05 if w[name].dim() > 1 else 0.0
                v[name] = 0.9 * v[name] - decay * 0.1 * w[name] - 0.1 * grads[name]
                w[name] += v[name]
    for name in w:
        assert torch.allclose(got[name], w[name], rtol=1e-5, atol=1e-6), name


def test_an_optimizer_state_saved_as_one_group_resumes_into_one_group_a_tensor():
    """Checkpoints written before the multipliers hold every tensor in one parameter group:
    each tensor's group takes that group's settings and the file's multipliers."""
    net = netdsl.parse_string(MULTIPLIED)
    model = netdsl.compile_net(net, backend="torch")
    optimizer = make_optimizer(model, net, net.train)
    names = [name for name, _ in model.named_parameters()]
    velocity = {name: torch.full_like(p, 0.125) for name, p in model.named_parameters()}
    old = {"state": {name: {"velocity": velocity[name]} for name in names},
           "param_groups": [{"lr": 0.003, "momentum": 0.8, "weight_decay": 0.001, "nesterov": False,
                             "params": names}]}
    load_optimizer_state(model, optimizer, old)
    assert [(g["lr"], g["momentum"], g["weight_decay"], g["lr_mult"], g["decay_mult"])
            for g in optimizer.param_groups] == [(0.003, 0.8, 0.001, 0.0, 1.0), (0.003, 0.8, 0.001, 1.0, 0.0),
                                                 (0.003, 0.8, 0.001, 1.0, 1.0), (0.003, 0.8, 0.001, 2.0, 1.0)]
    for name, param in model.named_parameters():
        assert torch.equal(optimizer.state[param]["velocity"], velocity[name])


def test_the_optimizer_state_of_a_split_network_moves_to_a_fused_one():
    two_groups = MULTIPLIED.replace("[data]", "[net]\ngroups = 2\n[data]").replace("outputs    = 3", "outputs    = 4")
    net = netdsl.parse_string(two_groups)
    split = netdsl.compile_net(net, backend="torch", devices=["cpu", "cpu"])
    split_optimizer = make_optimizer(split, net, net.train)
    assert len(split_optimizer.param_groups) == 4 and all(len(g["params"]) == 2 for g in split_optimizer.param_groups)
    x, y = _batch()
    F.cross_entropy(split(x), y).backward()
    split_optimizer.step()
    fused = netdsl.compile_net(net, backend="torch")
    fused_optimizer = make_optimizer(fused, net, net.train)
    load_optimizer_state(fused, fused_optimizer, optimizer_state(split, split_optimizer))
    saved = optimizer_state(split, split_optimizer)["state"]
    for name, param in fused.named_parameters():
        assert torch.equal(fused_optimizer.state[param]["velocity"], saved[name]["velocity"])
    assert [g["lr_mult"] for g in fused_optimizer.param_groups] == [0.0, 1.0, 1.0, 2.0]
    with pytest.raises(ValueError, match="lacks conv1.bias"):
        del saved["conv1.bias"]
        load_optimizer_state(fused, fused_optimizer, {"state": saved, "param_groups": [
            {"lr": 0.1, "params": ["conv1.weight", "fc2.weight", "fc2.bias"]}]})
