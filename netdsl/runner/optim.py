"""The paper's SGD update (Krizhevsky et al. 2012, section 5), its Nesterov form, torch's Adam and
AdamW, and Caffe's per-blob multipliers of the learning rate and the weight decay.

    opt = make_optimizer(model, net, net.train)   # one parameter group per weight and bias
    loss.backward(); opt.step()
    set_lr(opt, get_lr(opt) * 0.1)                # the network's lr, whatever the optimizer

Every parameter group holds the tensors of one layer's weight or bias and the multipliers of
them, `lr_mult` and `decay_mult`: the layer's `lr_mult = W, B` and `decay_mult = W, B`, W for
its weight, B for its bias. As in Caffe, a tensor's local rate is lr*lr_mult and its local
decay weight_decay*decay_mult.

Where the groups keep the lr differs between the two kinds of optimizer, and get_lr/set_lr, the
only way the runner reads or changes it, hide that:

- PaperSGD (`sgd`, `nesterov`) keeps the network's lr and weight_decay in every group (the
  schedule sets lr, the same in every group) and applies the multipliers in its step.
- torch.optim.Adam and AdamW (`adam`, `adamw`) read group["lr"] and group["weight_decay"] as they
  are, so there each group holds its local values, lr*lr_mult and weight_decay*decay_mult, and
  the network's lr beside them in group["net_lr"]; set_lr(lr) writes net_lr = lr and
  lr = lr*lr_mult in each group, get_lr returns net_lr. (The local rate cannot be divided back:
  a group of lr_mult 0 holds lr 0.)

Both keep their multipliers in the groups, so the checkpoint (netdsl/devices/placement.py's
optimizer_state) holds the settings as they were trained, and a resumed run goes on with them.

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

`adam`, `adamw`: torch.optim.Adam and torch.optim.AdamW themselves (Kingma and Ba 2015;
Loshchilov and Hutter 2019), with the file's `betas` and `eps`, over the same groups at their
local lr and weight decay. Adam adds the decay to the gradient (g + weight_decay*decay_mult*w,
then the moments); AdamW decouples it as torch does, w = w * (1 - lr*lr_mult*weight_decay*decay_mult)
before the Adam step, so the decay, too, follows the tensor's rate and the schedule. lr_mult 0
leaves a tensor exactly as it was (both steps are multiplied by its lr, 0). The state of each
tensor is torch's: `step` (a scalar), `exp_avg` and `exp_avg_sq` (shaped like the tensor), which
the checkpoint gathers over GPU groups as it does the SGD velocity (tests/test_recipe_modern.py
holds the steps against torch's own optimizers on a copy).
"""
from __future__ import annotations

import torch

from ..devices.placement import fused_parameters
from ..layers.registry import REGISTRY


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


def parameter_groups(model: torch.nn.Module, net) -> list[dict]:
    """One group per parameter (a layer's weight, bias, batch norm's scale and shift), in the
    model's order, with the multipliers its layer's type gives it (LayerType.multipliers: the
    W and B of `lr_mult = W, B` and `decay_mult = W, B`). A tensor split over GPU groups is one
    group of its slices."""
    groups = []
    for name, params in fused_parameters(model).items():
        layer_name, tensor = name.rsplit(".", 1)
        layer = net.layer(layer_name)
        lr_mult, decay_mult = REGISTRY[layer.type].multipliers(layer.options, tensor)
        groups.append({"params": params, "lr_mult": lr_mult, "decay_mult": decay_mult})
    return groups


ADAMS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}


def make_optimizer(model: torch.nn.Module, net, config) -> torch.optim.Optimizer:
    """The optimizer a recipe asks for: `config` (net.train, or it with flags applied) for the
    rule, lr, momentum or betas and eps, and weight decay; the layers of `net` for each tensor's
    multipliers. PaperSGD for sgd and nesterov, torch.optim.Adam or AdamW for adam and adamw."""
    groups = parameter_groups(model, net)
    if config.optimizer in ADAMS:
        for group in groups:  # torch's optimizers read the local values (the docstring above)
            group.update(net_lr=config.lr, lr=config.lr * group["lr_mult"],
                         weight_decay=config.weight_decay * group["decay_mult"])
        return ADAMS[config.optimizer](groups, lr=config.lr, betas=tuple(config.betas), eps=config.eps,
                                       weight_decay=config.weight_decay)
    return PaperSGD(groups, lr=config.lr, momentum=config.momentum,
                    weight_decay=config.weight_decay, nesterov=config.optimizer == "nesterov")


def get_lr(optimizer: torch.optim.Optimizer) -> float:
    """The network's lr: PaperSGD's group lr (each group holds it; its multiplier is kept apart, in
    `lr_mult`), or the `net_lr` that Adam's and AdamW's groups keep beside their local rate."""
    group = optimizer.param_groups[0]
    return group.get("net_lr", group["lr"])


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set the network's lr: in each group as it keeps it (PaperSGD: lr; Adam: net_lr, and lr*lr_mult
    as the local rate torch reads)."""
    for group in optimizer.param_groups:
        if "net_lr" in group:
            group["net_lr"], group["lr"] = lr, lr * group["lr_mult"]
        else:
            group["lr"] = lr
