"""Value kinds of the language: each turns a parsed Value into a checked Python value or refuses it.

Every number that reaches generated code passes through here, so it is a real int or a
finite float by then; every name is an identifier. Nothing a `.net` file says is executed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from .errors import NetError, did_you_mean
from .parse import Value

REQUIRED = object()


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
    if name == "normal" and args[1] <= 0:
        fail(value, "the standard deviation of `normal(mean, std)` must be above 0")
    if name == "uniform" and args[0] >= args[1]:
        fail(value, "`uniform(low, high)` needs low < high")
    return name, args[0], args[1]


def schedule(value: Value) -> tuple[str, float]:
    """plateau, none, or step(g) with 0 < g <= 1; returned with its factor."""
    if value.kind == "call":
        _, args = _call(value, ("step",))
        if len(args) != 1 or not 0 < args[0] <= 1:
            fail(value, "`step(g)` takes one factor g with 0 < g <= 1")
        return "step", args[0]
    return choice("plateau", "none")(value), 0.1


def identifier(value: Value) -> str:
    if value.kind != "name":
        fail(value, f"expected a name, got `{value}`")
    return value.data


def names(value: Value) -> tuple[str, ...]:
    items = value.data if value.kind == "list" else (value,)
    return tuple(identifier(item) for item in items)


NEURONS = ("relu", "tanh", "sigmoid", "none")
neuron = choice(*NEURONS)
