"""The paper's SGD, its Nesterov form and the lr schedules, against the formulas by hand.

    pytest tests/test_runner_optim.py
"""
from __future__ import annotations

import math

import pytest
import torch

from netdsl.optim import PaperSGD
from netdsl.train import Schedule

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
    opt = PaperSGD([w, bias], lr=LR, momentum=MU, weight_decay=DECAY, nesterov=optimizer_kind == "nesterov")
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


def test_biases_are_not_decayed():
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


def test_plateau_divides_lr_after_patience_epochs_without_improvement():
    schedule = Schedule("plateau", 0.1, patience=2)
    lrs, lr = [], 0.01
    for epoch, err in enumerate([0.9, 0.8, 0.85, 0.8, 0.7, 0.75, 0.71, 0.72], 1):
        lrs.append(lr)
        lr, _ = schedule.after_epoch(epoch, lr, err)
    assert lrs == pytest.approx([0.01, 0.01, 0.01, 0.01, 0.001, 0.001, 0.001, 0.0001])
    assert (schedule.best_err, schedule.best_epoch) == (0.7, 5)


def test_plateau_keeps_lr_while_the_error_has_never_moved_below_its_first_epoch():
    """Flat at chance is not 'stopped improving': the rate is cut only once it has improved."""
    schedule = Schedule("plateau", 0.1, patience=2)
    lrs, lr = [], 0.01
    for epoch, err in enumerate([0.9, 0.9, 0.9, 0.9, 0.6, 0.7, 0.65, 0.62], 1):
        lrs.append(lr)
        lr, _ = schedule.after_epoch(epoch, lr, err)
    assert lrs == pytest.approx([0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.001])
    assert (schedule.best_epoch, lr) == (5, pytest.approx(0.001))


def test_step_multiplies_every_epoch_and_none_keeps_lr():
    step, none = Schedule("step", 0.5, 2), Schedule("none", 0.1, 2)
    assert step.after_epoch(1, 0.01, 0.5) == (0.005, True)
    assert step.after_epoch(2, 0.005, 0.6) == (0.0025, False)
    assert none.after_epoch(1, 0.01, 0.5)[0] == 0.01
    assert math.isinf(Schedule("none", 0.1, 2).best_err)
