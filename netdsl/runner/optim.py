"""The paper's SGD update (Krizhevsky et al. 2012, section 5), its Nesterov form, and Caffe's
per-blob multipliers of the learning rate and the weight decay.

    opt = make_optimizer(model, net, net.train)   # one parameter group per weight and bias
    loss.backward(); opt.step()

Every parameter group holds the network's lr and weight_decay (the schedule sets lr, the same
in every group) and the multipliers of its tensors, `lr_mult` and `decay_mult`: the layer's
`lr_mult = W, B` and `decay_mult = W, B`, W for its weight, B for its bias. As in Caffe, a
tensor's local rate is lr*lr_mult and its local decay weight_decay*decay_mult.

`sgd`, the paper's rule for a tensor w with gradient g (the batch mean), in those local terms:

    v = momentum*v - lr*lr_mult*(g + weight_decay*decay_mult*w)
    w = w + v

which with lr_mult = decay_mult = 1 is the paper's v = momentum*v - weight_decay*lr*w - lr*g.
The language's defaults (lr_mult 1, 1; decay_mult 1, 0) decay weights and not biases, as
cuda-convnet, which the paper trained with, does; lr_mult 0 freezes a tensor (its velocity
starts at zero and stays there).

torch.optim.SGD keeps v = momentum*v + g and steps w -= lr*v, so lr multiplies the whole
velocity: when the schedule lowers lr, its old velocity shrinks at once. Here the velocity
already holds lr, as in the paper, Caffe and cuda-convnet, so it carries on at the old rate
and decays by momentum.

`nesterov`: the same with Nesterov's look-ahead, v = momentum*v - lr*(grad + weight_decay*w)
(local rate and decay as above) taken at the look-ahead point w + momentum*v, then w = w + v.
That point is computable only from a gradient there, so the parameters held are the
look-ahead point u = w + momentum*v (the reparametrisation of Sutskever et al. 2013) and,
with g the gradient at u,

    v = momentum*v - lr*lr_mult*(g + weight_decay*decay_mult*u)
    u = u + momentum*v - lr*lr_mult*(g + weight_decay*decay_mult*u)

which is the same trajectory shifted by momentum*v (tests/test_runner_optim.py checks both
against the formulas written out by hand).
"""
from __future__ import annotations

import torch

from ..devices.placement import fused_parameters


class PaperSGD(torch.optim.Optimizer):
    """The update above; each parameter's velocity (state "velocity") starts at zero.

    A group without `lr_mult` or `decay_mult` takes 1: the multipliers of a network's tensors
    come from its file, through make_optimizer."""

    def __init__(self, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0005,
                 nesterov: bool = False):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay,
                                      nesterov=nesterov, lr_mult=1.0, decay_mult=1.0))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr = group["lr"] * group["lr_mult"]                  # the local rate
            decay = group["weight_decay"] * group["decay_mult"]  # the local decay
            mu = group["momentum"]
            for w in group["params"]:
                if w.grad is None:
                    continue
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


BLOBS = ("weight", "bias")  # the W and B of `lr_mult = W, B` and `decay_mult = W, B`


def parameter_groups(model: torch.nn.Module, net) -> list[dict]:
    """One group per weighted layer's weight and bias, in the model's order, with the layer's
    multipliers for it. A tensor split over GPU groups is one group of its slices."""
    groups = []
    for name, params in fused_parameters(model).items():
        layer, blob = name.rsplit(".", 1)
        options = net.layer(layer).options
        index = BLOBS.index(blob)
        groups.append({"params": params, "lr_mult": options["lr_mult"][index],
                       "decay_mult": options["decay_mult"][index]})
    return groups


def make_optimizer(model: torch.nn.Module, net, config) -> PaperSGD:
    """The optimizer a recipe asks for: `config` (net.train, or it with flags applied) for the
    rule, lr, momentum and weight decay; the layers of `net` for each tensor's multipliers."""
    return PaperSGD(parameter_groups(model, net), lr=config.lr, momentum=config.momentum,
                    weight_decay=config.weight_decay, nesterov=config.optimizer == "nesterov")


def get_lr(optimizer: PaperSGD) -> float:
    """The network's lr (each group holds it; its multiplier is kept apart, in `lr_mult`)."""
    return optimizer.param_groups[0]["lr"]


def set_lr(optimizer: PaperSGD, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
