"""Value kinds of the language: each turns a parsed Value into a checked Python value or refuses it.

Every number that reaches generated code passes through here, so it is a real int or a
finite float by then; every name is an identifier. Nothing a `.net` file says is executed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from ..errors import NetError, did_you_mean
from .parse import Value

REQUIRED = object()

# The most of any count or size (filters, a kernel's side, a stride, epochs, ...), and of one
# layer's parameters or the values it outputs for one image: 2**31 - 1, 8 GiB of float32, more
# than 50 times the largest layer of the seed networks, and the reach of the 32-bit indices
# of the generated Triton kernels.
SIZE_LIMIT = 2**31 - 1
# The largest float32. Weights, and the constants of arithmetic on the float32 maps, must fit
# it: PyTorch refuses to fill a float32 tensor with more (bias = 1e308 stopped build()).
FLOAT32_MAX = 3.4028234663852886e38


@dataclass(frozen=True)
class Key:
    """One key a section accepts: how to read its value, and its default (or REQUIRED)."""
    read: Callable[[Value], Any]
    default: Any = REQUIRED
    help: str = ""


def fail(value: Value, message: str):
    raise NetError(message, None, value.line, value.col)


def _number(value: Value, what: str) -> float:
    if value.kind not in ("int", "float"):
        fail(value, f"expected {what}, got `{value}`")
    if not math.isfinite(value.data):
        fail(value, "this number is too large for a 64-bit float")
    return value.data


def integer(low: int = 1, high: int | None = None) -> Callable[[Value], int]:
    def read(value: Value) -> int:
        if value.kind != "int":
            fail(value, f"expected an integer, got `{value}`")
        if value.data < low or (high is not None and value.data > high):
            limit = f"from {low} to {high}" if high is not None else f"at least {low}"
            fail(value, f"expected an integer {limit}, got {value.data}")
        if value.data > SIZE_LIMIT:
            fail(value, f"{value.data} exceeds the limit of {SIZE_LIMIT:,} (2**31 - 1) for a count or size")
        return value.data
    return read


def number(low: float = -math.inf, high: float = math.inf, *, above: bool = False,
           below: bool = False) -> Callable[[Value], float]:
    """A float in [low, high]; `above`/`below` make that end open."""
    def read(value: Value) -> float:
        x = float(_number(value, "a number"))
        if x < low or x > high or (above and x == low) or (below and x == high):
            lo = f"above {low}" if above else f"at least {low}"
            hi = f"below {high}" if below else f"at most {high}"
            limit = " and ".join(p for p, inf in ((lo, low == -math.inf), (hi, high == math.inf)) if not inf)
            fail(value, f"expected a number {limit}, got {value}")
        return x
    return read


def _fits_float32(value: Value, x: float, what: str) -> float:
    if abs(x) > FLOAT32_MAX:
        fail(value, f"{value} does not fit a float32, as {what} must (at most {FLOAT32_MAX:.8g} in size)")
    return x


def float32(read: Callable[[Value], float], what: str) -> Callable[[Value], float]:
    """`read`, and the number must fit a float32: a weight, or a constant of float32 arithmetic."""
    return lambda value: _fits_float32(value, read(value), what)


def choice(*names: str) -> Callable[[Value], str]:
    def read(value: Value) -> str:
        if value.kind != "name" or value.data not in names:
            listed = ", ".join(f"`{n}`" for n in names)
            hint = did_you_mean(str(value), names) if value.kind == "name" else ""
            fail(value, f"expected one of {listed}, got `{value}`{hint}")
        return value.data
    return read


def yes_no(value: Value) -> bool:
    return choice("yes", "no")(value) == "yes"


def shape(value: Value) -> tuple[int, int, int]:
    if value.kind != "shape" or len(value.data) != 3:
        fail(value, f"expected a shape C x H x W such as 3x224x224, got `{value}`")
    if min(value.data) < 1:
        fail(value, f"every size in a shape must be at least 1, got `{value}`")
    return value.data


def scales(value: Value) -> tuple[float, ...]:
    items = value.data if value.kind == "list" else (value,)
    factors = tuple(number(0, above=True)(item) for item in items)
    if len(set(factors)) != len(factors):
        fail(value, "each scale may appear only once")
    return factors


def _call(value: Value, names: tuple[str, ...]) -> tuple[str, tuple[float, ...]]:
    if value.kind != "call" or value.data[0] not in names:
        shown = " or ".join(f"`{n}(a, b)`" for n in names)
        fail(value, f"expected {shown}, got `{value}`")
    name, args = value.data
    return name, tuple(float(_number(arg, "a number")) for arg in args)


def init(value: Value) -> tuple[str, float, float]:
    """normal(mean, std) with std > 0, or uniform(low, high) with low < high."""
    name, args = _call(value, ("normal", "uniform"))
    if len(args) != 2:
        fail(value, f"`{name}` takes two numbers, got {len(args)}")
    for arg, x in zip(value.data[1], args):
        _fits_float32(arg, x, f"the numbers of `{name}(...)`")
    if name == "normal" and args[1] <= 0:
        fail(value, "the standard deviation of `normal(mean, std)` must be above 0")
    if name == "uniform" and args[0] >= args[1]:
        fail(value, "`uniform(low, high)` needs low < high")
    if name == "uniform" and args[1] - args[0] > FLOAT32_MAX:
        fail(value, f"`uniform(low, high)` needs high - low to fit a float32 (at most {FLOAT32_MAX:.8g})")
    return name, args[0], args[1]


def multipliers(value: Value) -> tuple[float, float]:
    """`W, B`: two non-negative factors, for a layer's weights and its bias (lr_mult, decay_mult)."""
    items = value.data if value.kind == "list" else (value,)
    if len(items) != 2 or any(item.kind not in ("int", "float") for item in items):
        fail(value, f"expected two numbers `W, B` (for the weights and the bias), got `{value}`")
    weights, bias = (number(0)(item) for item in items)
    return weights, bias


SCHEDULES = ("plateau", "none", "step", "multistep", "cosine")
SCHEDULE_FORMS = "`plateau`, `none`, `step(g)`, `multistep(E1, E2, ...)` or `cosine`"


def schedule(value: Value) -> tuple[str, float | None, tuple[int, ...]]:
    """(kind, its own factor, milestones): plateau (0.1), none, step(g) with 0 < g <= 1,
    multistep(E1, E2, ...), whose factor is the [train] key `gamma` (None here), or cosine
    (no factor: lr follows half a cosine over the epochs)."""
    if value.kind == "name" and value.data in ("plateau", "none", "cosine"):
        return value.data, (0.1 if value.data == "plateau" else None), ()
    if value.kind == "call" and value.data[0] == "step":
        args = value.data[1]
        if len(args) != 1 or not 0 < _number(args[0], "a factor") <= 1:
            fail(value, "`step(g)` takes one factor g with 0 < g <= 1")
        return "step", float(args[0].data), ()
    if value.kind == "call" and value.data[0] == "multistep":
        return "multistep", None, milestones(value)
    name = value.data if value.kind == "name" else value.data[0] if value.kind == "call" else ""
    if name == "step":
        hint = "; `step` takes its factor: `step(g)`"
    elif name == "multistep":
        hint = "; `multistep` takes the epochs after which lr is cut: `multistep(E1, E2, ...)`"
    elif name == "cosine":
        hint = "; `cosine` takes nothing: it runs over the epochs after the warm-up (`warmup = N`)"
    else:
        hint = did_you_mean(name, SCHEDULES) if name else ""
    fail(value, f"expected {SCHEDULE_FORMS}, got `{value}`{hint}")


def schedule_of_text(text: str, where: str) -> tuple[str, float | None, tuple[int, ...]]:
    """A schedule written as a .net file writes it (`multistep(42, 54)`), read by the file's own
    grammar and checks; NetError naming `where` (a flag, an argument) otherwise."""
    from .parse import parse_text

    document = parse_text(f"[train]\nschedule = {text}\n", where)
    return schedule(document.sections[0].entries[0].value)


def milestones(value: Value) -> tuple[int, ...]:
    """The epochs of `multistep(E1, E2, ...)`: at least one, positive integers, strictly increasing."""
    args = value.data[1]
    if not args:
        fail(value, "`multistep(E1, E2, ...)` needs at least one epoch")
    epochs: list[int] = []
    for arg in args:
        if arg.kind != "int":
            fail(arg, f"a milestone is an epoch, a whole number; got `{arg}`")
        epoch = integer(1)(arg)
        if epochs and epoch <= epochs[-1]:
            fail(arg, f"milestones must increase: {epoch} comes after {epochs[-1]}")
        epochs.append(epoch)
    return tuple(epochs)


def betas(value: Value) -> tuple[float, float]:
    """Adam's `b1, b2`: the decay rates of its running means of the gradient and of its square,
    each 0 <= b < 1 (torch.optim.Adam's rule)."""
    items = value.data if value.kind == "list" else (value,)
    if len(items) != 2 or any(item.kind not in ("int", "float") for item in items):
        fail(value, f"expected two numbers `b1, b2` (as 0.9, 0.999), got `{value}`")
    first, second = (number(0, 1, below=True)(item) for item in items)
    return first, second


MEAN_NAMES = ("image", "channel", "none")


def mean(value: Value) -> str | tuple[float, ...]:
    """What is subtracted from the pixels: `image` (the training set's mean image), `channel` (its
    per-channel mean), `none`, or fixed numbers, one a channel in the order the images are read
    (R, G, B), in 0..255 pixel units, as Caffe's `mean_value`s (whose ImageNet 104, 117, 123 are
    B, G, R: `123, 117, 104` here). The count is checked against the data layer's channels where
    the network is known (check.py)."""
    if value.kind == "name":
        return choice(*MEAN_NAMES)(value)
    items = value.data if value.kind == "list" else (value,)
    if any(item.kind not in ("int", "float") for item in items):
        fail(value, f"expected `image`, `channel`, `none` or one number a channel (as 123, 117, 104), got `{value}`")
    return tuple(number(0, 255)(item) for item in items)


def identifier(value: Value) -> str:
    if value.kind != "name":
        fail(value, f"expected a name, got `{value}`")
    return value.data


def names(value: Value) -> tuple[str, ...]:
    items = value.data if value.kind == "list" else (value,)
    return tuple(identifier(item) for item in items)


NEURONS = ("relu", "tanh", "sigmoid", "none")
neuron = choice(*NEURONS)


def written(x: Any) -> str:
    """A checked value as a .net file writes it: `normal(0, 0.01)`, `1, 2`, `yes`, `0.0001`."""
    if isinstance(x, tuple) and x and isinstance(x[0], str):  # ("normal", 0.0, 0.01), ("relu",)
        return f"{x[0]}({', '.join(written(a) for a in x[1:])})" if len(x) > 1 else x[0]
    if isinstance(x, tuple):
        return ", ".join(map(written, x))
    if x is None:
        return "none"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        short = f"{x:g}"
        return short if float(short) == x else repr(x)  # 0.0039215686 stays whole
    return str(x)
