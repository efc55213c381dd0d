"""What the layers with weights share: their keys, and how their initial weights are written.

    init = normal(0, 0.01) | uniform(-0.1, 0.1) | xavier | xavier(in|out|avg) | msra | msra(in|out|avg)
    bias = 0.1 | uniform(-0.2, 0.2) | normal(0, 0.01) | none

`xavier` is Caffe's XavierFiller: uniform(-sqrt(3 / n), sqrt(3 / n)), n the fan-in unless
written (`avg`: (fan-in + fan-out) / 2, which is PyTorch's xavier_uniform_). `msra` is Caffe's
MSRAFiller: normal(0, sqrt(2 / n)), n the fan-in unless written (`out` is PyTorch's
kaiming_normal_(mode="fan_out", nonlinearity="relu"), torchvision's ResNet and VGG init). The
fans are PyTorch's (and Caffe's): fan-in = input channels a filter sees x its area; fan-out =
filters x area. `bias` is a constant, or drawn as `init` draws (PyTorch draws its default biases
from uniform(-1/sqrt(fan-in), 1/sqrt(fan-in))); `bias = none`: no bias at all (a conv before a
batch norm, as ResNet's).
"""
from __future__ import annotations

import math

from ..language import values as v
from ..language.parse import Value
from ..language.values import Key
from .base import python_number
from .neuron import NEURON_KEY

FANS = ("in", "out", "avg")


def read_init(value: Value) -> tuple:
    """("normal", mean, std), ("uniform", low, high), ("xavier", fan) or ("msra", fan)."""
    name = value.data if value.kind == "name" else value.data[0] if value.kind == "call" else None
    if name in ("xavier", "msra"):
        args = value.data[1] if value.kind == "call" else ()
        if len(args) > 1 or (args and (args[0].kind != "name" or args[0].data not in FANS)):
            v.fail(value, f"expected `{name}` or `{name}(in)`, `{name}(out)`, `{name}(avg)`: the fan it scales by")
        return (name, args[0].data if args else "in")
    if name in ("normal", "uniform"):
        return v.init(value)
    v.fail(value, "expected `normal(mean, std)`, `uniform(low, high)`, `xavier` or `msra`, "
                  f"got `{value}`{v.did_you_mean(name, ('normal', 'uniform', 'xavier', 'msra')) if name else ''}")


def read_bias(value: Value) -> float | tuple | None:
    """The initial bias: a number, `uniform(low, high)` or `normal(mean, std)`; `none` for no bias."""
    if value.kind == "name" and value.data == "none":
        return None
    if value.kind == "call":
        return v.init(value)
    if value.kind not in ("int", "float"):
        v.fail(value, f"expected a number, `uniform(low, high)`, `normal(mean, std)` or `none`, got `{value}`")
    return v.float32(v.number(), "a weight")(value)


WEIGHT_KEYS = {
    "connect": Key(v.choice("all", "group"), "all", "`group`: each group reads only its own chunk"),
    "neuron": NEURON_KEY,
    "bias": Key(read_bias, 0.0, "the initial bias: a number, uniform(low, high), normal(mean, std); `none` for no bias"),
    "init": Key(read_init, ("normal", 0.0, 0.01), "initial weights: normal(mean, std), uniform(low, high), xavier, msra"),
    "lr_mult": Key(v.multipliers, (1.0, 1.0), "multipliers of the learning rate for the weights and the bias"),
    "decay_mult": Key(v.multipliers, (1.0, 0.0), "multipliers of the weight decay for the weights and the bias"),
}
# Keys of the training recipe rather than of the network: they change how the weights are
# trained, not what the network computes (`netdiff` lists them with the [train] recipe).
RECIPE_KEYS = ("lr_mult", "decay_mult")


def init_code(module: str, init: tuple, fan_in: int, fan_out: int) -> str:
    """The build() line initialising `module`.weight."""
    name = init[0]
    if name == "normal":
        return f"nn.init.normal_({module}.weight, mean={python_number(init[1])}, std={python_number(init[2])})"
    if name == "uniform":
        return f"nn.init.uniform_({module}.weight, a={python_number(init[1])}, b={python_number(init[2])})"
    fan = {"in": fan_in, "out": fan_out, "avg": (fan_in + fan_out) / 2}[init[1]]
    shown = {"in": f"fan-in {fan_in}", "out": f"fan-out {fan_out}", "avg": f"mean fan {fan:g}"}[init[1]]
    if name == "xavier":
        bound = math.sqrt(3 / fan)
        return (f"nn.init.uniform_({module}.weight, a={python_number(-bound)}, b={python_number(bound)})"
                f"  # xavier({init[1]}): sqrt(3 / {shown})")
    return (f"nn.init.normal_({module}.weight, mean=0.0, std={python_number(math.sqrt(2 / fan))})"
            f"  # msra({init[1]}): sqrt(2 / {shown})")


def bias_code(module: str, bias: float | tuple | None) -> str:
    """The build() line initialising `module`.bias ("" for none)."""
    if bias is None:
        return ""
    if isinstance(bias, tuple):
        if bias[0] == "normal":
            return f"nn.init.normal_({module}.bias, mean={python_number(bias[1])}, std={python_number(bias[2])})"
        return f"nn.init.uniform_({module}.bias, a={python_number(bias[1])}, b={python_number(bias[2])})"
    return f"nn.init.constant_({module}.bias, {python_number(bias)})"


def param_count(weights: int, biases: int, o) -> int:
    return weights + (biases if o["bias"] is not None else 0)
