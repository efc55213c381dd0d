"""The paper's SGD update (Krizhevsky et al. 2012, section 5) and its Nesterov form.

    opt = PaperSGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=0.0005)
    loss.backward(); opt.step()

`sgd`, exactly the paper's rule for a weight w with gradient g (the batch mean):

    v = momentum*v - weight_decay*lr*w - lr*g
    w = w + v

torch.optim.SGD keeps v = momentum*v + g and steps w -= lr*v, so lr multiplies the whole
velocity: when the schedule lowers lr, its old velocity shrinks at once. Here the velocity
already holds lr, as in the paper and cuda-convnet, so it carries on at the old rate and
decays by momentum.

`nesterov`: the same with Nesterov's look-ahead, v = momentum*v - lr*(grad + weight_decay*w)
taken at the look-ahead point w + momentum*v, then w = w + v. That point is computable only
from a gradient there, so the parameters held are the look-ahead point u = w + momentum*v
(the reparametrisation of Sutskever et al. 2013) and, with g the gradient at u,

    v = momentum*v - lr*(g + weight_decay*u)
    u = u + momentum*v - lr*(g + weight_decay*u)

which is the same trajectory shifted by momentum*v (tests/test_runner_optim.py checks both
against the formulas written out by hand).

Weight decay applies to weights, not biases (tensors of one dimension): the paper states the
rule for weights and cuda-convnet, which the paper trained with, decays only weights.
"""
from __future__ import annotations

import torch


class PaperSGD(torch.optim.Optimizer):
    """The update above; each parameter's velocity (state "velocity") starts at zero."""

    def __init__(self, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0005,
                 nesterov: bool = False):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay,
                                      nesterov=nesterov))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, mu = group["lr"], group["momentum"]
            for w in group["params"]:
                if w.grad is None:
                    continue
                decay = group["weight_decay"] if w.dim() > 1 else 0.0
                step = w.grad.add(w, alpha=decay).mul_(-lr)   # -lr*(g + decay*w)
                state = self.state[w]
                if "velocity" not in state:
                    state["velocity"] = torch.zeros_like(w)
                v = state["velocity"]
                v.mul_(mu).add_(step)
                if group["nesterov"]:
                    w.add_(v, alpha=mu).add_(step)
                else:
                    w.add_(v)
        return loss


def make_optimizer(model: torch.nn.Module, config) -> PaperSGD:
    """The optimizer a TrainConfig asks for."""
    return PaperSGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                    weight_decay=config.weight_decay, nesterov=config.optimizer == "nesterov")


def get_lr(optimizer: PaperSGD) -> float:
    return optimizer.param_groups[0]["lr"]


def set_lr(optimizer: PaperSGD, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
